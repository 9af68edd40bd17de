from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.segmentation.models.base import Base


class RfmBoundary(Base):
    """The four quintile cut points of one RFM dimension, from the last batch pass.

    ``currency`` is ``''`` for recency and frequency; monetary has one row per currency.
    ``cuts`` holds four values as strings (ISO dates for recency, integers for frequency,
    decimal amounts for monetary); a value scores ``1 + (number of cuts it exceeds)``.
    """

    __tablename__ = "rfm_boundaries"
    __table_args__ = (
        CheckConstraint("dimension IN ('recency', 'frequency', 'monetary')", name="dimension"),
    )

    dimension: Mapped[str] = mapped_column(String(10), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    cuts: Mapped[list[str]] = mapped_column(JSONB)
    population: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
