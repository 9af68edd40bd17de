from datetime import datetime
from uuid import UUID

from sqlalchemy import DateTime, Index
from sqlalchemy.orm import Mapped, mapped_column

from services.segmentation.models.base import Base


class CustomerRedirect(Base):
    """A merged-away customer id and the survivor it now stands for.

    Order events may still name the duplicate after the merge (the orders service learns of
    the merge from the same asynchronous events): analytics re-point them to the survivor.
    """

    __tablename__ = "customer_redirects"
    __table_args__ = (Index("ix_customer_redirects_survivor_id", "survivor_id"),)

    merged_id: Mapped[UUID] = mapped_column(primary_key=True)
    survivor_id: Mapped[UUID]
    merged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
