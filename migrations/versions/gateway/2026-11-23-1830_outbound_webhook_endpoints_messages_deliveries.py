"""outbound webhooks: endpoints, secrets, messages, deliveries, attempts

Revision ID: 9b41f7c2d0e8
Revises: 5d2c81e0a7b3
Create Date: 2026-11-23 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9b41f7c2d0e8"
down_revision: str | None = "5d2c81e0a7b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "outbound_endpoint",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("event_types", postgresql.ARRAY(sa.String(length=200)), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_endpoint")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_outbound_endpoint_owner"),
        "outbound_endpoint",
        ["owner"],
        unique=False,
        schema="gateway",
    )
    op.create_table(
        "outbound_message",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("erased", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("traceparent", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_message")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_outbound_message_customer_id"),
        "outbound_message",
        ["customer_id", "created_at"],
        unique=False,
        schema="gateway",
    )
    op.create_table(
        "outbound_segment_member",
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint(
            "segment_id", "customer_id", name=op.f("pk_outbound_segment_member")
        ),
        schema="gateway",
    )
    op.create_table(
        "outbound_secret",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["gateway.outbound_endpoint.id"],
            name=op.f("fk_outbound_secret_endpoint_id_outbound_endpoint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_secret")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_outbound_secret_endpoint_id"),
        "outbound_secret",
        ["endpoint_id"],
        unique=False,
        schema="gateway",
    )
    op.create_table(
        "outbound_delivery",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False
        ),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["gateway.outbound_endpoint.id"],
            name=op.f("fk_outbound_delivery_endpoint_id_outbound_endpoint"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["gateway.outbound_message.id"],
            name=op.f("fk_outbound_delivery_message_id_outbound_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbound_delivery")),
        sa.UniqueConstraint(
            "endpoint_id", "message_id", name=op.f("uq_outbound_delivery_endpoint_id_message_id")
        ),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_outbound_delivery_next_attempt_at"),
        "outbound_delivery",
        ["next_attempt_at"],
        unique=False,
        schema="gateway",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        op.f("ix_gateway_outbound_delivery_endpoint_id"),
        "outbound_delivery",
        ["endpoint_id", "customer_id", "seq"],
        unique=False,
        schema="gateway",
    )
    op.create_table(
        "outbound_attempt",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("delivery_seq", sa.BigInteger(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_seq"],
            ["gateway.outbound_delivery.seq"],
            name=op.f("fk_outbound_attempt_delivery_seq_outbound_delivery"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_attempt")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_outbound_attempt_delivery_seq"),
        "outbound_attempt",
        ["delivery_seq"],
        unique=False,
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_outbound_attempt_endpoint_id"),
        "outbound_attempt",
        ["endpoint_id", "attempted_at"],
        unique=False,
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_table("outbound_attempt", schema="gateway")
    op.drop_table("outbound_delivery", schema="gateway")
    op.drop_table("outbound_secret", schema="gateway")
    op.drop_table("outbound_segment_member", schema="gateway")
    op.drop_table("outbound_message", schema="gateway")
    op.drop_table("outbound_endpoint", schema="gateway")
