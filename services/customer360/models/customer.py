from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import DateTime, String, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.customer360.models.base import Base


class Customer(Base):
    """A customer profile (minimal in the foundation; the customer360 issue grows it)."""

    __tablename__ = "customer"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    kind: Mapped[str] = mapped_column(String(16), default="person")
    display_name: Mapped[str] = mapped_column(String(300))
    emails: Mapped[list[str]] = mapped_column(ARRAY(String(320)), default=list)
    phones: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    #: The sales rep who owns the customer, and their team: the data scope of reps.
    owner_id: Mapped[str | None] = mapped_column(String(200), index=True)
    team_id: Mapped[str | None] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
