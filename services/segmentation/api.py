from fastapi import APIRouter

from services.segmentation.features.endpoints import router as features_router

routers: list[APIRouter] = [features_router]
