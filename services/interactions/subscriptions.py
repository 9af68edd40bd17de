"""What interactions consumes: customer ownership (for the data scope), merges and erasures,
and partner webhooks (mapped to interactions; see interaction/webhooks.py)."""

from services.interactions.interaction import handlers, webhooks
from services.interactions.models import customer_scope
from shared.events import CustomerErased, CustomerMerged, WebhookReceived
from shared.messaging import Subscriptions
from shared.privacy import follow_customer_scope

subscriptions = Subscriptions()
follow_customer_scope(subscriptions, customer_scope)
subscriptions.on(CustomerMerged)(handlers.on_customer_merged)
subscriptions.on(CustomerErased)(handlers.on_customer_erased)
subscriptions.on(WebhookReceived)(webhooks.on_webhook_received)

from services.interactions.ticket import handlers as ticket_handlers  # noqa: E402

subscriptions.on(CustomerMerged)(ticket_handlers.on_customer_merged)
subscriptions.on(CustomerErased)(ticket_handlers.on_customer_erased)

from services.interactions.careplan import handlers as care_plan_handlers  # noqa: E402
from services.interactions.task import handlers as task_handlers  # noqa: E402
from shared.events import (  # noqa: E402
    CustomerCreated,
    CustomerUpdated,
    OrderPlaced,
    SegmentEntered,
    SegmentExited,
)

subscriptions.on(CustomerMerged)(task_handlers.on_customer_merged)
subscriptions.on(CustomerErased)(task_handlers.on_customer_erased)
subscriptions.on(CustomerCreated)(care_plan_handlers.on_customer_created)
subscriptions.on(CustomerUpdated)(care_plan_handlers.on_customer_updated)
subscriptions.on(CustomerMerged)(care_plan_handlers.on_customer_merged)
subscriptions.on(CustomerErased)(care_plan_handlers.on_customer_erased)
subscriptions.on(SegmentEntered)(care_plan_handlers.on_segment_entered)
subscriptions.on(SegmentExited)(care_plan_handlers.on_segment_exited)
subscriptions.on(OrderPlaced)(care_plan_handlers.on_order_placed)

from services.interactions.campaign import handlers as campaign_handlers  # noqa: E402
from shared.events import CustomerConsentChanged  # noqa: E402

subscriptions.on(CustomerCreated)(campaign_handlers.on_customer_created)
subscriptions.on(CustomerUpdated)(campaign_handlers.on_customer_updated)
subscriptions.on(CustomerConsentChanged)(campaign_handlers.on_consent_changed)
subscriptions.on(CustomerMerged)(campaign_handlers.on_customer_merged)
subscriptions.on(CustomerErased)(campaign_handlers.on_customer_erased)
# After the care-plan handler (registered above): membership first, then the triggers.
subscriptions.on(SegmentEntered)(campaign_handlers.on_segment_entered)
subscriptions.on(OrderPlaced)(campaign_handlers.on_order_placed)
