from fastapi import APIRouter

from services.segmentation.analytics.endpoints import router as analytics_router
from services.segmentation.features.endpoints import router as features_router
from services.segmentation.segments.endpoints import router as segments_router

routers: list[APIRouter] = [features_router, segments_router, analytics_router]
