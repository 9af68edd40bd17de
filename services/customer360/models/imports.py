from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.customer360.models.base import Base

IMPORT_STATUSES = ("queued", "running", "done", "failed")


class ImportJob(Base):
    """A bulk customer import: its file, progress and outcome."""

    __tablename__ = "import_job"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        CheckConstraint("format IN ('csv', 'ndjson')", name="format"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    status: Mapped[str] = mapped_column(
        String(16), default="queued", server_default=text("'queued'")
    )
    format: Mapped[str] = mapped_column(String(16))
    total: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    created: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    updated: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    failed: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    created_by: Mapped[str] = mapped_column(String(200))
    #: Why a ``failed`` job failed (a crash, a restart); row problems go to ``import_row_error``.
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Touched by every committed chunk; a queued/running job whose heartbeat is stale
    #: belonged to a process that died, and is marked failed at the next start-up.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportRowError(Base):
    """Why one row of an import was not applied (the other rows were)."""

    __tablename__ = "import_row_error"
    __table_args__ = (Index("ix_import_row_error_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    job_id: Mapped[UUID] = mapped_column(ForeignKey("import_job.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column()
    field: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
