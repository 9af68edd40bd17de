from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import CHAR, CheckConstraint, DateTime, Numeric, String, func, true
from sqlalchemy.orm import Mapped, mapped_column

from services.orders.models.base import Base


class Product(Base):
    """A product of the catalogue (minimal in the foundation; the orders issue grows it)."""

    __tablename__ = "product"
    __table_args__ = (
        # The API validates both; the database keeps other writers (imports, scripts) honest.
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    # unique=True (not index=True) names the constraint uq_product_sku, which the
    # repository recognises to answer 409 instead of 500.
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(100))
    price: Mapped[Decimal] = mapped_column(Numeric(18, 4, asdecimal=True))
    currency: Mapped[str] = mapped_column(CHAR(3))
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
