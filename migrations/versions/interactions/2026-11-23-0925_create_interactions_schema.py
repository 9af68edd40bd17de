"""create interactions schema

Revision ID: 205b20ac3f11
Revises:
Create Date: 2026-11-23 09:25:58.664870
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "205b20ac3f11"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema="interactions",
    )
    op.create_table(
        "interaction",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_interaction_direction_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interaction")),
        schema="interactions",
    )
    op.create_index(
        "ix_interaction_customer_id_occurred_at",
        "interaction",
        ["customer_id", "occurred_at", "id"],
        unique=False,
        schema="interactions",
    )
    op.create_index(
        "ix_interaction_occurred_at",
        "interaction",
        ["occurred_at", "id"],
        unique=False,
        schema="interactions",
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema="interactions",
    )


def downgrade() -> None:
    op.drop_table("outbox", schema="interactions")
    op.drop_index("ix_interaction_occurred_at", table_name="interaction", schema="interactions")
    op.drop_index(
        "ix_interaction_customer_id_occurred_at", table_name="interaction", schema="interactions"
    )
    op.drop_table("interaction", schema="interactions")
    op.drop_table("inbox", schema="interactions")
