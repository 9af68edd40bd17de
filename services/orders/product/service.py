from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models import Product
from services.orders.product.repository import ProductRepository, SkuTaken
from services.orders.product.schemas import ProductCreate
from shared.errors import Conflict


class ProductSkuTaken(Conflict):
    """409 with its own problem type, so a form can point at the SKU field."""

    slug = "product-sku-taken"


async def create_product(session: AsyncSession, data: ProductCreate) -> Product:
    """Add a product to the catalogue. No event yet: nothing consumes products so far."""
    try:
        return await ProductRepository(session).add(
            Product(
                sku=data.sku,
                name=data.name,
                category=data.category,
                price=data.price,
                currency=data.currency,
                active=data.active,
            )
        )
    except SkuTaken:
        raise ProductSkuTaken(
            f"a product with SKU {data.sku!r} already exists",
            errors=[{"pointer": "/body/sku", "detail": "already taken", "code": "unique"}],
        ) from None
