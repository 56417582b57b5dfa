"""The study database: SQLAlchemy models, the engine with its SQLite settings, and migrations.

Only ``studies`` uses this package; other packages go through :mod:`studies.store`.
"""
