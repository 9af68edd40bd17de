from datetime import datetime
from uuid import UUID

from sqlalchemy import Boolean, DateTime, Index, Integer, SmallInteger, String, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.segmentation.models.base import Base


class CustomerFeatures(Base):
    """What segmentation knows about one customer, folded from other services' events.

    One row per customer, created by whichever event about them arrives first: the topics
    are not ordered against each other, so an order may be seen before its customer.

    ``total_spent`` maps an ISO 4217 currency to the exact sum of that customer's orders in
    it, as a decimal string (``{"EUR": "120.50", "USD": "9.99"}``). Amounts in different
    currencies are never added together: that would need exchange rates at order time,
    which no event carries yet.

    Rolling windows (``orders_30d`` …) are counted from the customer's event log
    (:class:`CustomerEvent`) when an order arrives, and again when time alone changes them:
    ``windows_change_at`` is the next instant one of them changes (the oldest order inside a
    window leaves it), and ``recheck_at`` the next instant any time-relative segment rule may
    change its answer for this customer (it includes ``windows_change_at``). The scheduler
    re-evaluates only the rows whose ``recheck_at`` has passed (indexed), never a full scan.
    """

    __tablename__ = "customer_features"
    __table_args__ = (Index("ix_segmentation_customer_features_recheck_at", "recheck_at"),)

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(300))
    # --- profile (customer events) ---
    kind: Mapped[str | None] = mapped_column(String(20))
    owner_id: Mapped[str | None] = mapped_column(String(200))
    team_id: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(String(100)), server_default=text("'{}'::character varying[]")
    )
    lifecycle_stage: Mapped[str | None] = mapped_column(String(50))
    locale: Mapped[str | None] = mapped_column(String(35))
    acquisition_source: Mapped[str | None] = mapped_column(String(100))
    acquisition_channel: Mapped[str | None] = mapped_column(String(100))
    email_consent: Mapped[bool | None] = mapped_column(Boolean)
    sms_consent: Mapped[bool | None] = mapped_column(Boolean)
    phone_consent: Mapped[bool | None] = mapped_column(Boolean)
    customer_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # --- orders ---
    order_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    total_spent: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    orders_30d: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    orders_90d: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    orders_365d: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    windows_change_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The loyalty tier orders last announced, and when it changed (a late event loses).
    loyalty_tier: Mapped[str | None] = mapped_column(String(20))
    loyalty_tier_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # --- interactions, tickets, surveys ---
    interaction_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_interaction_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    interactions_by_channel: Mapped[dict[str, int]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    interactions_by_kind: Mapped[dict[str, int]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    ticket_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    open_tickets: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_csat: Mapped[int | None] = mapped_column(SmallInteger)
    last_csat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_nps: Mapped[int | None] = mapped_column(SmallInteger)
    last_nps_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # --- membership bookkeeping ---
    recheck_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
