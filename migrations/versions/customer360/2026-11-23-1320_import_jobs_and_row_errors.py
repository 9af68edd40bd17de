"""bulk import jobs and their row errors

Revision ID: 5e1a7c0d9b21
Revises: 8b4c6fa70919
Create Date: 2026-11-23 13:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1a7c0d9b21"
down_revision: str | None = "8b4c6fa70919"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'queued'"), nullable=False
        ),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("format IN ('csv', 'ndjson')", name=op.f("ck_import_job_format")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_import_job_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_job")),
        schema="customer360",
    )
    op.create_table(
        "import_row_error",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["customer360.import_job.id"],
            name=op.f("fk_import_row_error_job_id_import_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_row_error")),
        schema="customer360",
    )
    op.create_index(
        "ix_import_row_error_job",
        "import_row_error",
        ["job_id", "id"],
        unique=False,
        schema="customer360",
    )


def downgrade() -> None:
    op.drop_index("ix_import_row_error_job", table_name="import_row_error", schema="customer360")
    op.drop_table("import_row_error", schema="customer360")
    op.drop_table("import_job", schema="customer360")
