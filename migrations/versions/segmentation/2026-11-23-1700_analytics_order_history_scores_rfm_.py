"""analytics: order history, scores, RFM boundaries, merge redirects, passes

Revision ID: 5a1d7c3e9b20
Revises: 3a6f91fe949c
Create Date: 2026-11-23 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5a1d7c3e9b20"
down_revision: str | None = "3a6f91fe949c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_passes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("trigger", sa.String(length=10), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column("customers_rescored", sa.Integer(), nullable=True),
        sa.Column("scores_published", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'request')", name=op.f("ck_analytics_passes_trigger")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_passes")),
        schema="segmentation",
    )
    op.create_table(
        "customer_orders",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status", sa.String(length=24), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("total", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column(
            "paid_total",
            sa.Numeric(precision=18, scale=4),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "refunded_total",
            sa.Numeric(precision=18, scale=4),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_customer_orders")),
        schema="segmentation",
    )
    op.create_index(
        "ix_customer_orders_customer_id",
        "customer_orders",
        ["customer_id"],
        unique=False,
        schema="segmentation",
    )
    op.create_table(
        "customer_redirects",
        sa.Column("merged_id", sa.Uuid(), nullable=False),
        sa.Column("survivor_id", sa.Uuid(), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merged_id", name=op.f("pk_customer_redirects")),
        schema="segmentation",
    )
    op.create_index(
        "ix_customer_redirects_survivor_id",
        "customer_redirects",
        ["survivor_id"],
        unique=False,
        schema="segmentation",
    )
    op.create_table(
        "customer_scores",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("recency", sa.SmallInteger(), nullable=True),
        sa.Column("frequency", sa.SmallInteger(), nullable=True),
        sa.Column("monetary", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_segment", sa.String(length=30), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=20), nullable=False),
        sa.Column("order_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "historical_clv",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("predicted_clv", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("clv_currency", sa.String(length=3), nullable=True),
        sa.Column("churn_risk", sa.Numeric(precision=3, scale=2), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "churn_risk BETWEEN 0 AND 1", name=op.f("ck_customer_scores_churn_risk")
        ),
        sa.CheckConstraint("frequency BETWEEN 1 AND 5", name=op.f("ck_customer_scores_frequency")),
        sa.CheckConstraint("monetary BETWEEN 1 AND 5", name=op.f("ck_customer_scores_monetary")),
        sa.CheckConstraint("recency BETWEEN 1 AND 5", name=op.f("ck_customer_scores_recency")),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_scores")),
        schema="segmentation",
    )
    op.create_table(
        "rfm_boundaries",
        sa.Column("dimension", sa.String(length=10), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cuts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "dimension IN ('recency', 'frequency', 'monetary')",
            name=op.f("ck_rfm_boundaries_dimension"),
        ),
        sa.PrimaryKeyConstraint("dimension", "currency", name=op.f("pk_rfm_boundaries")),
        schema="segmentation",
    )


def downgrade() -> None:
    op.drop_table("rfm_boundaries", schema="segmentation")
    op.drop_table("customer_scores", schema="segmentation")
    op.drop_index(
        "ix_customer_redirects_survivor_id", table_name="customer_redirects", schema="segmentation"
    )
    op.drop_table("customer_redirects", schema="segmentation")
    op.drop_index(
        "ix_customer_orders_customer_id", table_name="customer_orders", schema="segmentation"
    )
    op.drop_table("customer_orders", schema="segmentation")
    op.drop_table("analytics_passes", schema="segmentation")
