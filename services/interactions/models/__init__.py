"""ORM tables of interactions, all in the ``interactions`` schema."""

from services.interactions.models.base import Base, customer_scope
from services.interactions.models.interaction import Interaction

__all__ = ["Base", "Interaction", "customer_scope"]
from services.interactions.models.survey import SurveyResponse
from services.interactions.models.ticket import SlaPolicy, Ticket, TicketComment

__all__ += ["SlaPolicy", "SurveyResponse", "Ticket", "TicketComment"]
from services.interactions.models.care_plan import (  # noqa: E402
    CarePlanCustomer,
    CarePlanOccurrence,
    CarePlanOrder,
    CarePlanRule,
    CarePlanSegmentMember,
)
from services.interactions.models.task import Task  # noqa: E402

__all__ += [
    "CarePlanCustomer",
    "CarePlanOccurrence",
    "CarePlanOrder",
    "CarePlanRule",
    "CarePlanSegmentMember",
    "Task",
]
from services.interactions.models.campaign import (  # noqa: E402
    Campaign,
    CampaignMessage,
    CampaignRecipient,
)

__all__ += ["Campaign", "CampaignMessage", "CampaignRecipient"]
