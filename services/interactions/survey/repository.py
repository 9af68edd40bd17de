from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import SurveyResponse, customer_scope
from shared.auth import Principal
from shared.privacy import visible_customers


class SurveyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, response: SurveyResponse) -> SurveyResponse:
        self.session.add(response)
        await self.session.flush()
        return response

    async def summary(
        self,
        principal: Principal,
        *,
        customer_id: UUID | None,
        since: datetime | None,
        until: datetime | None,
    ) -> dict[str, Any]:
        r = SurveyResponse
        csat, nps = r.survey == "csat", r.survey == "nps"
        statement = select(
            func.count().filter(csat).label("csat_responses"),
            func.avg(r.score).filter(csat).label("csat_average"),
            func.count().filter(nps).label("nps_responses"),
            func.count().filter(and_(nps, r.score >= 9)).label("promoters"),
            func.count().filter(and_(nps, r.score.between(7, 8))).label("passives"),
            func.count().filter(and_(nps, r.score <= 6)).label("detractors"),
        ).where(visible_customers(principal, r.customer_id, customer_scope))
        if customer_id is not None:
            statement = statement.where(r.customer_id == customer_id)
        if since is not None:
            statement = statement.where(r.answered_at >= since)
        if until is not None:
            statement = statement.where(r.answered_at < until)
        return dict((await self.session.execute(statement)).mappings().one())
