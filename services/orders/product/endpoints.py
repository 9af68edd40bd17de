from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from services.orders.product import service
from services.orders.product.dependencies import ProductDep
from services.orders.product.repository import ProductRepository
from services.orders.product.schemas import ProductCreate, ProductRead
from shared.auth import require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import CursorDep, CursorPage

router = APIRouter(prefix="/products", tags=["products"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a product",
    dependencies=[Depends(require_scopes("orders:write"))],
    responses=problem_responses(401, 403, 409, 413),
)
async def create_product(body: ProductCreate, session: SessionDep) -> ProductRead:
    """Add a product to the catalogue.

    Send `price` as a decimal string (`"12.90"`), never as a JSON number, with at most four
    decimal places, and `currency` as an upper-case ISO 4217 code (`"EUR"`). The response
    returns the price with four decimal places (`"12.9000"`).

    A SKU that another product already has answers `409` with problem type
    `/problems/product-sku-taken`.
    """
    product = await service.create_product(session, body)
    return ProductRead.model_validate(product)


@router.get(
    "/{product_id}",
    summary="Get a product",
    dependencies=[Depends(require_scopes("orders:read"))],
    responses=problem_responses(401, 403, 404),
)
async def get_product(product: ProductDep) -> ProductRead:
    """One product by id; `404` when there is none."""
    return ProductRead.model_validate(product)


@router.get(
    "",
    summary="List products",
    dependencies=[Depends(require_scopes("orders:read"))],
    responses=problem_responses(401, 403),
)
async def list_products(
    session: SessionDep,
    page: CursorDep,
    active: Annotated[
        bool | None,
        Query(description="`true`: only sellable products; `false`: only inactive ones."),
    ] = None,
) -> CursorPage[ProductRead]:
    """The catalogue in SKU order, one page at a time. Pass the `next_cursor` of a page as
    `cursor` to get the next one; it is absent on the last page."""
    items, next_cursor = await ProductRepository(session).list(page, active=active)
    return CursorPage(items=[ProductRead.model_validate(p) for p in items], next_cursor=next_cursor)
