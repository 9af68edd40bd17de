from sqlalchemy.orm import DeclarativeBase

from shared.db import schema_metadata
from shared.idempotency import idempotency_table
from shared.messaging import outbox_tables
from shared.privacy import customer_scope_table

__all__ = ["Base", "customer_scope"]


class Base(DeclarativeBase):
    metadata = schema_metadata("orders")


outbox_tables(Base.metadata)
idempotency_table(Base.metadata)
#: Who owns each customer, learned from customer events: the data scope of order lists.
customer_scope = customer_scope_table(Base.metadata)
