from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, DateTime, Index, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.interactions.models.base import Base


class SurveyResponse(Base):
    """One CSAT (1-5) or NPS (0-10) answer."""

    __tablename__ = "survey_response"
    __table_args__ = (
        Index("ix_survey_response_customer_id", "customer_id", "answered_at"),
        Index("ix_survey_response_answered_at", "survey", "answered_at"),
        CheckConstraint(
            "(survey = 'csat' AND score BETWEEN 1 AND 5) OR (survey = 'nps' AND score BETWEEN 0 AND 10)",
            name="score_in_range",
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    customer_id: Mapped[UUID]
    survey: Mapped[str] = mapped_column(String(8))
    score: Mapped[int] = mapped_column(SmallInteger)
    ticket_id: Mapped[UUID | None]
    order_id: Mapped[UUID | None]
    comment: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
