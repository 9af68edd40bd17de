"""erase webhook bodies with their customer

Revision ID: 5d2c81e0a7b3
Revises: 87a894ca4dd0
Create Date: 2026-11-23 17:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d2c81e0a7b3"
down_revision: str | None = "87a894ca4dd0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erased_customer",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "erased_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_erased_customer")),
        schema="gateway",
    )
    op.add_column(
        "webhook_receipt", sa.Column("customer_id", sa.Uuid(), nullable=True), schema="gateway"
    )
    op.add_column(
        "webhook_receipt",
        sa.Column("body_erased_at", sa.DateTime(timezone=True), nullable=True),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_webhook_receipt_customer_id"),
        "webhook_receipt",
        ["customer_id"],
        unique=False,
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_gateway_webhook_receipt_customer_id"), table_name="webhook_receipt", schema="gateway"
    )
    op.drop_column("webhook_receipt", "body_erased_at", schema="gateway")
    op.drop_column("webhook_receipt", "customer_id", schema="gateway")
    op.drop_table("erased_customer", schema="gateway")
