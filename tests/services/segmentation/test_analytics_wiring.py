"""The analytics are wired in: subscriptions and the gateway's route table."""

from gateway.routes import RouteTable
from services.segmentation import subscriptions as wiring
from shared.events import CustomerErased, CustomerMerged, OrderPlaced, OrderStatusChanged


class TestSubscriptions:
    def test_order_merge_and_erase_events_reach_the_analytics(self) -> None:
        subs = wiring.subscriptions
        assert wiring.analytics.on_order_placed in subs.handlers(OrderPlaced.event_type)
        assert wiring.analytics.on_order_status_changed in subs.handlers(
            OrderStatusChanged.event_type
        )
        assert wiring.analytics.on_customer_merged in subs.handlers(CustomerMerged.event_type)
        assert wiring.analytics.on_customer_erased in subs.handlers(CustomerErased.event_type)


def test_the_gateway_routes_the_analytics_to_segmentation() -> None:
    table = RouteTable()
    assert table.owner("/customers/7c1e/scores") == "segmentation"
    assert table.owner("/analytics/rfm") == "segmentation"
    assert table.owner("/analytics:recompute") == "segmentation"
    assert table.owner("/customers/7c1e") == "customer360"
