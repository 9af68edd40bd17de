from datetime import datetime
from uuid import UUID

from sqlalchemy import DateTime, Integer, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
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
    """

    __tablename__ = "customer_features"

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(300))
    order_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    total_spent: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    interaction_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_interaction_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
