"""campaign schedules and triggers: order_placed / task_due triggers, recurrence, one
message per occurrence, more skip reasons

Revision ID: 8d4b1e6a2c57
Revises: 5c2e8a1f9d63
Create Date: 2026-11-23 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8d4b1e6a2c57"
down_revision: str | None = "5c2e8a1f9d63"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "interactions"

_TRIGGER_OLD = "trigger IS NULL OR (trigger = 'segment_entered' AND segment_id IS NOT NULL)"
_TRIGGER_NEW = _TRIGGER_OLD + " OR trigger IN ('order_placed', 'task_due')"
_SKIP_OLD = "skip_reason IS NULL OR skip_reason IN ('no-consent', 'no-address', 'frequency-cap')"
_SKIP_NEW = (
    "skip_reason IS NULL OR skip_reason IN ('no-consent', 'no-address', 'frequency-cap',"
    " 'cancelled', 'erased', 'merged')"
)


def upgrade() -> None:
    op.add_column("campaign", sa.Column("delay_days", sa.Integer(), nullable=True), schema=S)
    op.add_column("campaign", sa.Column("rule_type", sa.String(length=40), nullable=True), schema=S)
    op.add_column("campaign", sa.Column("every_days", sa.Integer(), nullable=True), schema=S)
    op.add_column(
        "campaign", sa.Column("repeat_until", sa.DateTime(timezone=True), nullable=True), schema=S
    )
    op.drop_constraint(op.f("ck_campaign_trigger_known"), "campaign", schema=S, type_="check")
    op.create_check_constraint(
        op.f("ck_campaign_trigger_known"), "campaign", _TRIGGER_NEW, schema=S
    )
    op.create_check_constraint(
        op.f("ck_campaign_delay_days_known"),
        "campaign",
        "(delay_days IS NOT NULL) = coalesce(trigger = 'order_placed', false)"
        " AND (delay_days IS NULL OR delay_days BETWEEN 1 AND 365)",
        schema=S,
    )
    op.create_check_constraint(
        op.f("ck_campaign_rule_type_known"),
        "campaign",
        "rule_type IS NULL OR trigger = 'task_due'",
        schema=S,
    )
    op.create_check_constraint(
        op.f("ck_campaign_every_days_known"),
        "campaign",
        "every_days IS NULL OR (every_days BETWEEN 1 AND 366 AND trigger IS NULL)",
        schema=S,
    )
    op.create_check_constraint(
        op.f("ck_campaign_repeat_until_recurring"),
        "campaign",
        "repeat_until IS NULL OR every_days IS NOT NULL",
        schema=S,
    )

    op.add_column(
        "campaign_message",
        sa.Column("occurrence", sa.String(length=80), server_default="", nullable=False),
        schema=S,
    )
    op.drop_constraint(
        op.f("uq_campaign_message_campaign_id_customer_id"),
        "campaign_message",
        schema=S,
        type_="unique",
    )
    op.create_unique_constraint(
        op.f("uq_campaign_message_campaign_id_customer_id_occurrence"),
        "campaign_message",
        ["campaign_id", "customer_id", "occurrence"],
        schema=S,
    )
    op.drop_constraint(
        op.f("ck_campaign_message_skip_reason_known"), "campaign_message", schema=S, type_="check"
    )
    op.create_check_constraint(
        op.f("ck_campaign_message_skip_reason_known"), "campaign_message", _SKIP_NEW, schema=S
    )


def downgrade() -> None:
    # Rows only the new reasons, triggers and occurrences allow cannot go back as they are:
    # they are removed (messages of other occurrences) or made to fit.
    op.execute(
        f"UPDATE {S}.campaign_message SET skip_reason = 'no-consent'"
        " WHERE skip_reason IN ('cancelled', 'erased', 'merged')"
    )
    op.drop_constraint(
        op.f("ck_campaign_message_skip_reason_known"), "campaign_message", schema=S, type_="check"
    )
    op.create_check_constraint(
        op.f("ck_campaign_message_skip_reason_known"), "campaign_message", _SKIP_OLD, schema=S
    )
    op.execute(
        f"DELETE FROM {S}.campaign_message m USING {S}.campaign_message k"
        " WHERE k.campaign_id = m.campaign_id AND k.customer_id = m.customer_id"
        " AND k.occurrence < m.occurrence"
    )
    op.drop_constraint(
        op.f("uq_campaign_message_campaign_id_customer_id_occurrence"),
        "campaign_message",
        schema=S,
        type_="unique",
    )
    op.create_unique_constraint(
        op.f("uq_campaign_message_campaign_id_customer_id"),
        "campaign_message",
        ["campaign_id", "customer_id"],
        schema=S,
    )
    op.drop_column("campaign_message", "occurrence", schema=S)

    for name in (
        "repeat_until_recurring",
        "every_days_known",
        "rule_type_known",
        "delay_days_known",
    ):
        op.drop_constraint(op.f(f"ck_campaign_{name}"), "campaign", schema=S, type_="check")
    op.execute(
        f"UPDATE {S}.campaign SET status = 'cancelled'"
        " WHERE trigger IN ('order_placed', 'task_due') AND status <> 'completed'"
    )
    op.execute(
        f"UPDATE {S}.campaign SET trigger = NULL WHERE trigger IN ('order_placed', 'task_due')"
    )
    op.drop_constraint(op.f("ck_campaign_trigger_known"), "campaign", schema=S, type_="check")
    op.create_check_constraint(
        op.f("ck_campaign_trigger_known"), "campaign", _TRIGGER_OLD, schema=S
    )
    op.drop_column("campaign", "repeat_until", schema=S)
    op.drop_column("campaign", "every_days", schema=S)
    op.drop_column("campaign", "rule_type", schema=S)
    op.drop_column("campaign", "delay_days", schema=S)
