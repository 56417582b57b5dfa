"""Why a completed case's answer changed, and several labelled series per case and arm.

* ``answer_revision.reason`` (nullable text): the reader's reason for changing an answer of an
  assignment that was already completed (``Store.record_answer(..., reason=...)``); empty for
  revisions made while the case was still open.
* ``series.label`` (the neutral series name from CASES.csv's ``series`` column, e.g. ``cor_pd``;
  ``"series"`` for the one series of a study made before multi-series cases), and the unique key
  of ``series`` becomes ``(case_pk, arm_pk, label)`` instead of ``(case_pk, arm_pk)``.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: The label of the one series a case had on each arm before multi-series cases.
DEFAULT_SERIES_LABEL = "series"

# Version 0001 created the series table's unique keys without names; a naming convention lets
# the SQLite batch copy name (and so drop) the reflected ones.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def _old_unique_name(bind: sa.Connection) -> str:
    for constraint in sa.inspect(bind).get_unique_constraints("series"):
        if sorted(constraint["column_names"]) == ["arm_pk", "case_pk"]:
            return constraint["name"] or "uq_series_case_pk_arm_pk"
    return "uq_series_case_pk_arm_pk"


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("answer_revision") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
    old_unique = _old_unique_name(bind)
    with op.batch_alter_table("series", naming_convention=_NAMING) as batch:
        batch.add_column(
            sa.Column(
                "label",
                sa.String(length=64),
                nullable=False,
                server_default=DEFAULT_SERIES_LABEL,
            )
        )
        batch.drop_constraint(old_unique, type_="unique")
        batch.create_unique_constraint("uq_series_case_arm_label", ["case_pk", "arm_pk", "label"])


def downgrade() -> None:
    with op.batch_alter_table("series", naming_convention=_NAMING) as batch:
        batch.drop_constraint("uq_series_case_arm_label", type_="unique")
        batch.create_unique_constraint("uq_series_case_pk_arm_pk", ["case_pk", "arm_pk"])
        batch.drop_column("label")
    with op.batch_alter_table("answer_revision") as batch:
        batch.drop_column("reason")
