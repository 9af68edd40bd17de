"""Built-in analytics: RFM, lifecycle stage, CLV and churn risk from order events.

Definitions: :mod:`.scoring`; when scores are recomputed and published: :mod:`.service`.
"""

from services.segmentation.analytics.handlers import AnalyticsHandlers
from services.segmentation.analytics.service import AnalyticsService, Recompute

__all__ = ["AnalyticsHandlers", "AnalyticsService", "Recompute"]
