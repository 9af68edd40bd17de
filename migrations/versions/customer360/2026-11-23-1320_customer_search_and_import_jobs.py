"""customer search (pg_trgm, generated search text, trigram index) and bulk import jobs

Revision ID: 5e1a7c0d9b21
Revises: 38bc9d343924
Create Date: 2026-11-23 13:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1a7c0d9b21"
down_revision: str | None = "38bc9d343924"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# pg_trgm treats CJK characters as separators under the C ctype, so each one is spelled as
# a four-letter Latin token: its code point in base 26, lowest digit first (张 → " kxqa "),
# so tokens do not share a common prefix trigram. Queries go through the same function.
NORMALIZE = r"""
CREATE FUNCTION customer360.search_normalize(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (
    SELECT coalesce(string_agg(
        CASE WHEN c ~ '[\u3400-\u9fff\uf900-\ufaff]' THEN
            ' ' || chr(97 + ascii(c) % 26) || chr(97 + ascii(c) / 26 % 26)
            || chr(97 + ascii(c) / 676 % 26) || chr(97 + ascii(c) / 17576 % 26) || ' '
        ELSE c END,
        '' ORDER BY n), '')
    FROM unnest(regexp_split_to_array(lower(t), '')) WITH ORDINALITY AS s(c, n)
)
"""
SEARCH_TEXT = r"""
CREATE FUNCTION customer360.customer_search_text(name text, emails varchar[], phones varchar[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN customer360.search_normalize(
    coalesce(name, '') || ' ' || coalesce(array_to_string(emails, ' '), '') || ' '
    || coalesce(replace(array_to_string(phones, ' '), '+', ''), '')
)
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(NORMALIZE)
    op.execute(SEARCH_TEXT)
    op.add_column(
        "customer",
        sa.Column(
            "search_text",
            sa.Text(),
            sa.Computed(
                "customer360.customer_search_text(display_name, emails, phones)", persisted=True
            ),
            nullable=True,
        ),
        schema="customer360",
    )
    op.create_index(
        "ix_customer_search_text",
        "customer",
        ["search_text"],
        unique=False,
        schema="customer360",
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
    )
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
    op.drop_index(
        "ix_customer_search_text",
        table_name="customer",
        schema="customer360",
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
    )
    op.drop_column("customer", "search_text", schema="customer360")
    op.execute("DROP FUNCTION customer360.customer_search_text(text, varchar[], varchar[])")
    op.execute("DROP FUNCTION customer360.search_normalize(text)")
