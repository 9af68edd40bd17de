from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import CheckConstraint, DateTime, Integer, Numeric, SmallInteger, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.segmentation.models.base import Base


class CustomerScore(Base):
    """A customer's latest analytics (see ``services.segmentation.analytics.scoring``).

    What :class:`~shared.events.CustomerScored` last published for the customer: a new
    computation that equals this row publishes nothing.
    """

    __tablename__ = "customer_scores"
    __table_args__ = (
        CheckConstraint("recency BETWEEN 1 AND 5", name="recency"),
        CheckConstraint("frequency BETWEEN 1 AND 5", name="frequency"),
        CheckConstraint("monetary BETWEEN 1 AND 5", name="monetary"),
        CheckConstraint("churn_risk BETWEEN 0 AND 1", name="churn_risk"),
    )

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    recency: Mapped[int | None] = mapped_column(SmallInteger)
    frequency: Mapped[int | None] = mapped_column(SmallInteger)
    monetary: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_segment: Mapped[str | None] = mapped_column(String(30))
    lifecycle_stage: Mapped[str] = mapped_column(String(20))
    order_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Net paid (paid - refunded) per ISO 4217 currency, as exact decimal strings.
    historical_clv: Mapped[dict[str, str]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    predicted_clv: Mapped[Decimal | None] = mapped_column(Numeric(18, 2, asdecimal=True))
    clv_currency: Mapped[str | None] = mapped_column(String(3))
    churn_risk: Mapped[Decimal | None] = mapped_column(Numeric(3, 2, asdecimal=True))
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
