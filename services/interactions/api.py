from fastapi import APIRouter

from services.interactions.interaction.endpoints import router as interaction_router

routers: list[APIRouter] = [interaction_router]
