"""Initial schema of the study database (tables as in studies/db/models.py at version 0001).

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 10:28:44.476016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.String(length=200), nullable=True),
        sa.Column("assignment_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_assignment_id"), ["assignment_id"], unique=False)

    op.create_table(
        "export_run",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("what", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("unblinded", sa.Boolean(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "merge_log",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("package_id", sa.String(length=36), nullable=False),
        sa.Column("reader_id", sa.String(length=200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("n_answers", sa.Integer(), nullable=False),
        sa.Column("n_revisions", sa.Integer(), nullable=False),
        sa.Column("n_events", sa.Integer(), nullable=False),
        sa.Column("n_conflicts", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "study",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("design", sa.String(length=16), nullable=False),
        sa.Column("protocol_toml", sa.Text(), nullable=False),
        sa.Column("protocol_sha256", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("algorithm_version", sa.String(length=64), nullable=False),
        sa.Column("library_versions", sa.JSON(), nullable=False),
        sa.Column("images_dir", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "arm",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reference", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "code"),
    )
    op.create_table(
        "finding",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("finding_id", sa.String(length=200), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "finding_id"),
    )
    op.create_table(
        "question",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("question_id", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "question_id"),
    )
    op.create_table(
        "reader",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("reader_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "reader_id"),
    )
    op.create_table(
        "subject",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("opaque_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("opaque_id"),
        sa.UniqueConstraint("study_id", "subject_id"),
    )
    op.create_table(
        "case",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("opaque_id", sa.String(length=64), nullable=False),
        sa.Column("subject_pk", sa.String(length=36), nullable=False),
        sa.Column("sequence", sa.String(length=200), nullable=False),
        sa.Column("is_training", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
        ),
        sa.ForeignKeyConstraint(
            ["subject_pk"],
            ["subject.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("opaque_id"),
        sa.UniqueConstraint("study_id", "case_id"),
    )
    op.create_table(
        "reading_session",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("reader_pk", sa.String(length=36), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.Date(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reader_pk"],
            ["reader.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reader_pk", "index"),
    )
    op.create_table(
        "assignment",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("session_pk", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("case_pk", sa.String(length=36), nullable=False),
        sa.Column("arm_pk", sa.String(length=36), nullable=True),
        sa.Column("left_arm_pk", sa.String(length=36), nullable=True),
        sa.Column("right_arm_pk", sa.String(length=36), nullable=True),
        sa.Column("is_training", sa.Boolean(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["arm_pk"],
            ["arm.id"],
        ),
        sa.ForeignKeyConstraint(
            ["case_pk"],
            ["case.id"],
        ),
        sa.ForeignKeyConstraint(
            ["left_arm_pk"],
            ["arm.id"],
        ),
        sa.ForeignKeyConstraint(
            ["right_arm_pk"],
            ["arm.id"],
        ),
        sa.ForeignKeyConstraint(
            ["session_pk"],
            ["reading_session.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_pk", "position"),
    )
    op.create_table(
        "case_truth",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("case_pk", sa.String(length=36), nullable=False),
        sa.Column("finding_id", sa.String(length=200), nullable=False),
        sa.Column("truth", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_pk"],
            ["case.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_pk", "finding_id"),
    )
    op.create_table(
        "series",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("opaque_id", sa.String(length=64), nullable=False),
        sa.Column("case_pk", sa.String(length=36), nullable=False),
        sa.Column("arm_pk", sa.String(length=36), nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("n_slices", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["arm_pk"],
            ["arm.id"],
        ),
        sa.ForeignKeyConstraint(
            ["case_pk"],
            ["case.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_pk", "arm_pk"),
        sa.UniqueConstraint("opaque_id"),
    )
    op.create_table(
        "answer",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("assignment_pk", sa.String(length=36), nullable=False),
        sa.Column("question_id", sa.String(length=200), nullable=False),
        sa.Column("finding_id", sa.String(length=200), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("arm_value", sa.String(length=64), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("first_answered_at", sa.DateTime(), nullable=False),
        sa.Column("last_answered_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_pk"],
            ["assignment.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("assignment_pk", "question_id", "finding_id", "side"),
    )
    op.create_table(
        "answer_revision",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("answer_pk", sa.String(length=36), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("arm_value", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_pk"],
            ["answer.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("answer_pk", "revision"),
    )


def downgrade() -> None:
    op.drop_table("answer_revision")
    op.drop_table("answer")
    op.drop_table("series")
    op.drop_table("case_truth")
    op.drop_table("assignment")
    op.drop_table("reading_session")
    op.drop_table("case")
    op.drop_table("subject")
    op.drop_table("reader")
    op.drop_table("question")
    op.drop_table("finding")
    op.drop_table("arm")
    op.drop_table("study")
    op.drop_table("merge_log")
    op.drop_table("export_run")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_assignment_id"))

    op.drop_table("event")
