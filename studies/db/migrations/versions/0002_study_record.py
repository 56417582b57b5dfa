"""The study record (issue 10): keyed row images, package log, reader passphrases, export ids.

Adds ``record`` (the chained, keyed image of every row that decides the verdict, see
``studies.record``), ``package_log`` (what each ``study pack`` wrote, so ``merge`` can rebuild
and compare a package), ``schema_release`` (which blindreader release applied each revision),
``reader.passphrase`` and the blinded export's ids ``case.export_id`` / ``subject.export_id``
(filled with fresh random ids for the rows of an existing study).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import secrets
from importlib import metadata

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _release() -> str:
    try:
        return metadata.version("blindreader")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _fill_export_ids(table: str) -> None:
    bind = op.get_bind()
    ids = [r[0] for r in bind.execute(sa.text(f'SELECT id FROM "{table}"'))]
    for row_id in ids:
        bind.execute(
            sa.text(f'UPDATE "{table}" SET export_id = :e WHERE id = :i'),
            {"e": f"e-{secrets.token_hex(6)}", "i": row_id},
        )


def upgrade() -> None:
    op.create_table(
        "record",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.String(length=200), nullable=False),
        sa.Column("image_json", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "package_log",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("package_id", sa.String(length=64), nullable=False),
        sa.Column("reader_id", sa.String(length=200), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("os_user", sa.String(length=200), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("package_id"),
    )
    op.create_table(
        "schema_release",
        sa.Column("revision", sa.String(length=32), nullable=False),
        sa.Column("release", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("revision"),
    )
    with op.batch_alter_table("reader", schema=None) as batch_op:
        batch_op.add_column(sa.Column("passphrase", sa.Text(), nullable=True))
    for table in ("case", "subject"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("export_id", sa.String(length=64), nullable=True))
        _fill_export_ids(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_unique_constraint(f"uq_{table}_export_id", ["export_id"])
    op.get_bind().execute(
        sa.text("INSERT INTO schema_release (revision, release) VALUES ('0002', :r)"),
        {"r": _release()},
    )


def downgrade() -> None:
    for table in ("subject", "case"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"uq_{table}_export_id", type_="unique")
            batch_op.drop_column("export_id")
    with op.batch_alter_table("reader", schema=None) as batch_op:
        batch_op.drop_column("passphrase")
    op.drop_table("schema_release")
    op.drop_table("package_log")
    op.drop_table("record")
