from typing import Annotated
from uuid import UUID

from fastapi import Depends

from services.orders.models import Product
from services.orders.product.repository import ProductRepository
from shared.db import SessionDep
from shared.errors import NotFound


async def get_product_or_404(product_id: UUID, session: SessionDep) -> Product:
    product = await ProductRepository(session).get(product_id)
    if product is None:
        raise NotFound(f"product {product_id} does not exist")
    return product


ProductDep = Annotated[Product, Depends(get_product_or_404)]
