from uuid import UUID

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models import Product
from shared.pagination import CursorParams, paginate

_SKU_CONSTRAINT = "uq_product_sku"
_UNIQUE_VIOLATION = "23505"


def _violates(exc: IntegrityError, constraint: str) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) != _UNIQUE_VIOLATION:
        return False
    # SQLAlchemy's asyncpg adapter keeps the driver's exception, which names the constraint.
    driver_error = orig.__cause__ if orig is not None else None
    return getattr(driver_error, "constraint_name", None) == constraint


class SkuTaken(Exception):
    """Another product already has this SKU."""


class ProductRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, product_id: UUID) -> Product | None:
        return await self.session.get(Product, product_id)

    async def add(self, product: Product) -> Product:
        """Insert ``product``; raises :class:`SkuTaken` if its SKU exists.

        The insert runs in a SAVEPOINT, so a duplicate SKU rolls back only the savepoint and
        the caller's transaction stays usable. The unique constraint decides, so two
        concurrent requests for one SKU cannot both win.
        """
        try:
            async with self.session.begin_nested():
                self.session.add(product)
                await self.session.flush()
        except IntegrityError as exc:
            if _violates(exc, _SKU_CONSTRAINT):
                raise SkuTaken(product.sku) from exc
            raise
        await self.session.refresh(product)
        return product

    async def list(
        self, params: CursorParams, *, active: bool | None = None
    ) -> tuple[list[Product], str | None]:
        statement = select(Product)
        if active is not None:
            statement = statement.where(Product.active.is_(active))
        return await paginate(
            self.session,
            statement,
            keys=[Product.sku],
            key_of=lambda p: (p.sku,),
            params=params,
        )
