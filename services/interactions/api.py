from fastapi import APIRouter

from services.interactions.interaction.endpoints import router as interaction_router

routers: list[APIRouter] = [interaction_router]
from services.interactions.ticket.endpoints import router as ticket_router  # noqa: E402

routers.append(ticket_router)
from services.interactions.survey.endpoints import router as survey_router  # noqa: E402

routers.append(survey_router)
from services.interactions.careplan.endpoints import router as care_plan_router  # noqa: E402
from services.interactions.task.endpoints import router as task_router  # noqa: E402

routers += [task_router, care_plan_router]
from services.interactions.campaign.endpoints import router as campaign_router  # noqa: E402

routers.append(campaign_router)
