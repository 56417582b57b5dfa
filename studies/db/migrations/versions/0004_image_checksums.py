"""Checksums of the blinded image files: ``series.files_sha256``.

A canonical JSON object ``{file name: sha256}`` written by ``study create``
(``studies.image_digests``); ``study verify`` compares every series folder with it. Studies made
before this version have none (NULL), and verify says so.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("series", sa.Column("files_sha256", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("series") as batch:
        batch.drop_column("files_sha256")
