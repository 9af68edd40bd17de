from sqlalchemy.orm import DeclarativeBase

from shared.db import schema_metadata
from shared.messaging import outbox_tables

__all__ = ["Base"]


class Base(DeclarativeBase):
    metadata = schema_metadata("gateway")


outbox_tables(Base.metadata)
