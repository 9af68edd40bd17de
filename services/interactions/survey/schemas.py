from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from services.interactions.models import SurveyResponse
from shared.auth import Principal
from shared.privacy import PII_SCOPE

#: Earliest plausible answer time; older ones are typos (1926 for 2026).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: Clock skew tolerated for an answer time "in the future".
SKEW = timedelta(minutes=5)
RANGES = {"csat": (1, 5), "nps": (0, 10)}


class SurveyResponseCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                    "survey": "nps",
                    "score": 9,
                    "ticket_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                    "comment": "Quick and friendly.",
                    "answered_at": "2026-11-23T10:00:00+01:00",
                }
            ]
        },
    )

    customer_id: UUID
    survey: Literal["csat", "nps"] = Field(description="`csat` scores 1-5, `nps` 0-10.")
    score: int
    ticket_id: UUID | None = None
    order_id: UUID | None = None
    comment: str | None = Field(default=None, max_length=4000)
    answered_at: AwareDatetime | None = Field(
        default=None, description="When the customer answered; defaults to now."
    )

    @field_validator("answered_at")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        if value is not None and not EARLIEST <= value <= datetime.now(UTC) + SKEW:
            raise PydanticCustomError(
                "implausible_time", "must be after 2000 and not in the future"
            )
        return value

    @field_validator("score")
    @classmethod
    def _score_in_range(cls, value: int, info: ValidationInfo) -> int:
        survey = info.data.get("survey")
        if survey in RANGES:
            low, high = RANGES[survey]
            if not low <= value <= high:
                raise PydanticCustomError(
                    "score_out_of_range",
                    "{survey} scores are {low} to {high}",
                    {"survey": survey, "low": low, "high": high},
                )
        return value


class SurveyResponseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    customer_id: UUID
    survey: str
    score: int
    ticket_id: UUID | None
    order_id: UUID | None
    comment: str | None
    answered_at: datetime

    @classmethod
    def for_principal(cls, row: SurveyResponse, principal: Principal) -> "SurveyResponseRead":
        read = cls.model_validate(row)
        if read.comment is not None and not principal.has(PII_SCOPE):
            read.comment = "[withheld: needs customers:pii]"
        return read


class CsatSummary(BaseModel):
    responses: int
    average: float | None = Field(description="Mean score 1-5; null without answers.")


class NpsSummary(BaseModel):
    responses: int
    promoters: int = Field(description="Scores 9-10.")
    passives: int = Field(description="Scores 7-8.")
    detractors: int = Field(description="Scores 0-6.")
    score: float | None = Field(
        description="% promoters - % detractors, from -100 to 100; null without answers."
    )


class SurveySummary(BaseModel):
    customer_id: UUID | None = Field(description="Null: every customer in the caller's scope.")
    since: datetime | None
    until: datetime | None
    csat: CsatSummary
    nps: NpsSummary
