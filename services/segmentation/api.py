from fastapi import APIRouter

from services.segmentation.analytics.endpoints import router as analytics_router
from services.segmentation.features.endpoints import router as features_router

routers: list[APIRouter] = [features_router, analytics_router]
