from uuid import UUID

from sqlalchemy import CheckConstraint, Integer
from sqlalchemy.orm import Mapped, mapped_column

from services.orders.models.base import Base


class CustomerProduct(Base):
    """Which products each customer has bought (at least once): the customer x product
    matrix of the recommender, as a set of ones."""

    __tablename__ = "customer_product"

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    product_id: Mapped[UUID] = mapped_column(primary_key=True, index=True)


class ProductBuyers(Base):
    """How many customers bought the product: the squared norm of its column."""

    __tablename__ = "product_buyers"
    __table_args__ = (CheckConstraint("customers >= 0", name="customers_not_negative"),)

    product_id: Mapped[UUID] = mapped_column(primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)


class CoPurchase(Base):
    """How many customers bought both products (both directions stored): the dot product
    of their columns. Cosine similarity = customers / sqrt(buyers(a) * buyers(b))."""

    __tablename__ = "co_purchase"
    __table_args__ = (CheckConstraint("customers >= 0", name="customers_not_negative"),)

    product_id: Mapped[UUID] = mapped_column(primary_key=True)
    other_id: Mapped[UUID] = mapped_column(primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)
