"""ORM tables of customer360, all in the ``customer360`` schema."""

from services.customer360.models.base import Base
from services.customer360.models.customer import (
    CUSTOMER_STATUSES,
    AuditEntry,
    Customer,
    CustomerIdentity,
    CustomFieldDefinition,
)
from services.customer360.models.imports import IMPORT_STATUSES, ImportJob, ImportRowError
from services.customer360.models.view import (
    CustomerOrder,
    CustomerSpend,
    CustomerSummary,
    CustomerTicket,
    TimelineEntry,
)

__all__ = [
    "CUSTOMER_STATUSES",
    "IMPORT_STATUSES",
    "AuditEntry",
    "Base",
    "CustomFieldDefinition",
    "Customer",
    "CustomerIdentity",
    "CustomerOrder",
    "CustomerSpend",
    "CustomerSummary",
    "CustomerTicket",
    "ImportJob",
    "ImportRowError",
    "TimelineEntry",
]
