from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.segmentation.models.base import Base


class AnalyticsPass(Base):
    """One batch pass of the analytics (scheduled or requested): when it ran and what it did.

    Kept in the database, not in a replica's memory, so whichever replica answers
    ``GET /analytics/rfm`` can say how fresh the scores are. ``finished_at`` stays ``NULL``
    for a pass that is running (or died). Only the latest 100 passes are kept.
    """

    __tablename__ = "analytics_passes"
    __table_args__ = (CheckConstraint("trigger IN ('schedule', 'request')", name="trigger"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    trigger: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    population: Mapped[int | None] = mapped_column(Integer)
    customers_rescored: Mapped[int | None] = mapped_column(Integer)
    scores_published: Mapped[int | None] = mapped_column(Integer)
