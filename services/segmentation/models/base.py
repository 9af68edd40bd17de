from sqlalchemy.orm import DeclarativeBase

from shared.db import schema_metadata
from shared.idempotency import idempotency_table
from shared.messaging import outbox_tables
from shared.privacy import customer_scope_table

__all__ = ["Base", "customer_scope", "idempotency"]


class Base(DeclarativeBase):
    metadata = schema_metadata("segmentation")


outbox_tables(Base.metadata)
#: Who owns each customer (from customer events): the data scope of this part's rows.
customer_scope = customer_scope_table(Base.metadata)
#: Stored answers of creating requests sent with an ``Idempotency-Key``.
idempotency = idempotency_table(Base.metadata)
