"""Tables of the gateway (``gateway`` schema): API keys and webhook receipts arrive with the
gateway issue; the outbox is here because the gateway publishes raw partner webhooks."""

from sqlalchemy.orm import DeclarativeBase

from shared.db import schema_metadata
from shared.messaging import outbox_tables


class Base(DeclarativeBase):
    metadata = schema_metadata("gateway")


outbox_tables(Base.metadata, inbox=False)

__all__ = ["Base"]
