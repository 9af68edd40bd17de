"""What customer360 consumes: the one place its event handlers are listed."""

from services.customer360.view import handlers as view
from shared.events import (
    BehaviourRecorded,
    CustomerConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerScored,
    CustomerUpdated,
    InteractionRecorded,
    LoyaltyTierChanged,
    OrderPlaced,
    OrderStatusChanged,
    SegmentEntered,
    SegmentExited,
    SurveyAnswered,
    TicketOpened,
    TicketStatusChanged,
)
from shared.messaging import Subscriptions

subscriptions = Subscriptions()

# The 360 view and timeline, built from every part's events (and our own profile events).
subscriptions.on(OrderPlaced)(view.on_order_placed)
subscriptions.on(OrderStatusChanged)(view.on_order_status_changed)
subscriptions.on(LoyaltyTierChanged)(view.on_loyalty_tier_changed)
subscriptions.on(InteractionRecorded)(view.on_interaction_recorded)
subscriptions.on(BehaviourRecorded)(view.on_behaviour_recorded)
subscriptions.on(TicketOpened)(view.on_ticket_opened)
subscriptions.on(TicketStatusChanged)(view.on_ticket_status_changed)
subscriptions.on(SurveyAnswered)(view.on_survey_answered)
subscriptions.on(SegmentEntered)(view.on_segment_entered)
subscriptions.on(SegmentExited)(view.on_segment_exited)
subscriptions.on(CustomerScored)(view.on_customer_scored)
subscriptions.on(CustomerCreated)(view.on_customer_created)
subscriptions.on(CustomerUpdated)(view.on_customer_updated)
subscriptions.on(CustomerConsentChanged)(view.on_consent_changed)
subscriptions.on(CustomerMerged)(view.on_customer_merged)
subscriptions.on(CustomerErased)(view.on_customer_erased)
