from sqlalchemy.orm import DeclarativeBase

from shared.db import schema_metadata
from shared.idempotency import idempotency_table
from shared.messaging import outbox_tables

__all__ = ["Base"]


class Base(DeclarativeBase):
    metadata = schema_metadata("customer360")


outbox_tables(Base.metadata)
idempotency_table(Base.metadata)
