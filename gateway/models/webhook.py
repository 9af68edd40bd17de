from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base


class WebhookSource(Base):
    """A partner system allowed to post to ``/webhooks/{name}``."""

    __tablename__ = "webhook_source"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookSecret(Base):
    """A signing secret of a source. Several may be valid at once (rotation overlap)."""

    __tablename__ = "webhook_secret"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    source_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_source.id", ondelete="CASCADE"), index=True
    )
    #: ``whsec_<base64>``; needed in clear to compute the HMAC.
    secret: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookReceipt(Base):
    """A received webhook, stored before ``202`` is answered: the delivery log."""

    __tablename__ = "webhook_receipt"
    __table_args__ = (
        UniqueConstraint("source", "webhook_id"),
        Index(None, "source", "received_at"),
        Index(None, "customer_ids", postgresql_using="gin"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    source: Mapped[str] = mapped_column(String(64))
    webhook_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(200))
    #: received → published (queued on rapport.webhook.v1) → processed | failed
    status: Mapped[str] = mapped_column(String(20), default="published")
    status_detail: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replays: Mapped[int] = mapped_column(Integer, default=0)
    #: The customers the consuming services resolved the webhook to (from their reports).
    customer_ids: Mapped[list[UUID]] = mapped_column(
        ARRAY(Uuid), server_default=text("'{}'::uuid[]")
    )
    #: Set when that customer was erased: body and headers are emptied then.
    body_erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ErasedCustomer(Base):
    """Customers erased in customer360 (ids only), so a report about a webhook that arrives
    after the erase still erases the webhook's body."""

    __tablename__ = "erased_customer"

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
