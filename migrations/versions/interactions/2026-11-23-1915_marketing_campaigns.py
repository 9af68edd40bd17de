"""marketing campaigns, their messages, the recipient projection, and order totals

Revision ID: 5c2e8a1f9d63
Revises: 3f1c9d2e7b40
Create Date: 2026-11-23 19:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5c2e8a1f9d63"
down_revision: str | None = "3f1c9d2e7b40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "interactions"


def upgrade() -> None:
    op.add_column(
        "care_plan_order",
        sa.Column("total", sa.Numeric(precision=18, scale=4), nullable=True),
        schema=S,
    )
    op.add_column(
        "care_plan_order", sa.Column("currency", sa.String(length=3), nullable=True), schema=S
    )
    op.create_table(
        "campaign",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=True),
        sa.Column("customer_ids", postgresql.ARRAY(sa.Uuid()), nullable=True),
        sa.Column("subject_template", sa.Text(), nullable=True),
        sa.Column("body_template", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'scheduled', 'sending', 'completed', 'cancelled')",
            name=op.f("ck_campaign_status_known"),
        ),
        sa.CheckConstraint(
            "channel IN ('email', 'sms', 'webhook')", name=op.f("ck_campaign_channel_known")
        ),
        sa.CheckConstraint(
            "(segment_id IS NULL) <> (customer_ids IS NULL)", name=op.f("ck_campaign_one_audience")
        ),
        sa.CheckConstraint(
            "trigger IS NULL OR (trigger = 'segment_entered' AND segment_id IS NOT NULL)",
            name=op.f("ck_campaign_trigger_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign")),
        schema=S,
    )
    op.create_index(
        "ix_campaign_status_scheduled_at", "campaign", ["status", "scheduled_at"], schema=S
    )
    op.create_table(
        "campaign_message",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("skip_reason", sa.String(length=16), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("interaction_id", sa.Uuid(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bounced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'deferred', 'sending', 'sent', 'failed', 'skipped', "
            "'unconfirmed')",
            name=op.f("ck_campaign_message_status_known"),
        ),
        sa.CheckConstraint(
            "skip_reason IS NULL OR skip_reason IN ('no-consent', 'no-address', 'frequency-cap')",
            name=op.f("ck_campaign_message_skip_reason_known"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            [f"{S}.campaign.id"],
            name=op.f("fk_campaign_message_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_message")),
        sa.UniqueConstraint(
            "campaign_id", "customer_id", name=op.f("uq_campaign_message_campaign_id_customer_id")
        ),
        schema=S,
    )
    op.create_index(
        "ix_campaign_message_due",
        "campaign_message",
        ["not_before"],
        schema=S,
        postgresql_where=sa.text("status IN ('queued', 'deferred')"),
    )
    op.create_index(
        "ix_campaign_message_lease_until",
        "campaign_message",
        ["lease_until"],
        schema=S,
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.create_index(
        "ix_campaign_message_unsynced_unsubscribe",
        "campaign_message",
        ["unsubscribed_at"],
        schema=S,
        postgresql_where=sa.text("unsubscribed_at IS NOT NULL AND consent_synced_at IS NULL"),
    )
    op.create_index(
        "ix_campaign_message_customer_id_sent_at",
        "campaign_message",
        ["customer_id", "sent_at"],
        schema=S,
    )
    op.create_table(
        "campaign_recipient",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("display_name", sa.String(length=300), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("consent_email", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("consent_sms", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("consent_phone", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=30), nullable=True),
        sa.Column(
            "tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "custom_fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_campaign_recipient")),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("campaign_recipient", schema=S)
    op.drop_index(
        "ix_campaign_message_customer_id_sent_at", table_name="campaign_message", schema=S
    )
    op.drop_index(
        "ix_campaign_message_unsynced_unsubscribe",
        table_name="campaign_message",
        schema=S,
        postgresql_where=sa.text("unsubscribed_at IS NOT NULL AND consent_synced_at IS NULL"),
    )
    op.drop_index(
        "ix_campaign_message_lease_until",
        table_name="campaign_message",
        schema=S,
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.drop_index(
        "ix_campaign_message_due",
        table_name="campaign_message",
        schema=S,
        postgresql_where=sa.text("status IN ('queued', 'deferred')"),
    )
    op.drop_table("campaign_message", schema=S)
    op.drop_index("ix_campaign_status_scheduled_at", table_name="campaign", schema=S)
    op.drop_table("campaign", schema=S)
    op.drop_column("care_plan_order", "currency", schema=S)
    op.drop_column("care_plan_order", "total", schema=S)
