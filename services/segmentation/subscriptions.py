"""What segmentation consumes: the one place its event handlers are listed."""

from services.segmentation.analytics import AnalyticsHandlers
from services.segmentation.features import handlers
from services.segmentation.models import customer_scope
from shared.events import (
    BehaviourRecorded,
    CustomerConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
    InteractionRecorded,
    LoyaltyTierChanged,
    OrderPlaced,
    OrderStatusChanged,
    SurveyAnswered,
    TicketOpened,
    TicketStatusChanged,
)
from shared.messaging import Subscriptions
from shared.privacy import follow_customer_scope

subscriptions = Subscriptions()
follow_customer_scope(subscriptions, customer_scope)

subscriptions.on(CustomerCreated)(handlers.on_customer_created)
subscriptions.on(CustomerUpdated)(handlers.on_customer_updated)
subscriptions.on(CustomerConsentChanged)(handlers.on_consent_changed)
subscriptions.on(CustomerErased)(handlers.on_customer_erased)
subscriptions.on(CustomerMerged)(handlers.on_customer_merged)
subscriptions.on(OrderPlaced)(handlers.on_order_placed)
subscriptions.on(OrderStatusChanged)(handlers.on_order_status_changed)
subscriptions.on(InteractionRecorded)(handlers.on_interaction_recorded)
subscriptions.on(BehaviourRecorded)(handlers.on_behaviour_recorded)
subscriptions.on(TicketOpened)(handlers.on_ticket_opened)
subscriptions.on(TicketStatusChanged)(handlers.on_ticket_status_changed)
subscriptions.on(SurveyAnswered)(handlers.on_survey_answered)
subscriptions.on(LoyaltyTierChanged)(handlers.on_loyalty_tier_changed)
subscriptions.at_commit(handlers.reevaluate_deferred)

#: RFM, lifecycle, CLV and churn risk (services/segmentation/analytics).
analytics = AnalyticsHandlers()
subscriptions.on(OrderPlaced)(analytics.on_order_placed)
subscriptions.on(OrderStatusChanged)(analytics.on_order_status_changed)
subscriptions.on(CustomerMerged)(analytics.on_customer_merged)
subscriptions.on(CustomerErased)(analytics.on_customer_erased)
subscriptions.at_commit(analytics.rescore_deferred)
