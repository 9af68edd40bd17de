"""interaction types, typed metadata and idempotent ingest

Revision ID: 3f1c9d2e7b40
Revises: 9ee7559b75d2
Create Date: 2026-11-23 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3f1c9d2e7b40"
down_revision: str | None = "9ee7559b75d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "interaction",
        sa.Column("agent_id", sa.String(length=200), nullable=True),
        schema="interactions",
    )
    op.add_column(
        "interaction",
        sa.Column("subject", sa.String(length=300), nullable=True),
        schema="interactions",
    )
    op.add_column(
        "interaction",
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        schema="interactions",
    )
    op.add_column(
        "interaction",
        sa.Column("source", sa.String(length=64), server_default="api", nullable=False),
        schema="interactions",
    )
    op.add_column(
        "interaction",
        sa.Column("event_id", sa.String(length=200), nullable=True),
        schema="interactions",
    )
    op.create_unique_constraint(
        op.f("uq_interaction_source_event_id"),
        "interaction",
        ["source", "event_id"],
        schema="interactions",
    )
    op.create_index(
        "ix_interaction_agent_id_occurred_at",
        "interaction",
        ["agent_id", "occurred_at", "id"],
        unique=False,
        schema="interactions",
        postgresql_where=sa.text("agent_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_interaction_agent_id_occurred_at",
        table_name="interaction",
        schema="interactions",
        postgresql_where=sa.text("agent_id IS NOT NULL"),
    )
    op.drop_constraint(
        op.f("uq_interaction_source_event_id"), "interaction", schema="interactions", type_="unique"
    )
    op.drop_column("interaction", "event_id", schema="interactions")
    op.drop_column("interaction", "source", schema="interactions")
    op.drop_column("interaction", "metadata", schema="interactions")
    op.drop_column("interaction", "subject", schema="interactions")
    op.drop_column("interaction", "agent_id", schema="interactions")
