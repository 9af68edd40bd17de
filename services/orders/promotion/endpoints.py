from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, status
from sqlalchemy import select

from services.orders.models import Promotion
from services.orders.promotion import service
from services.orders.promotion.schemas import (
    CODE_PATTERN,
    CodesIssue,
    CodesIssued,
    CouponRead,
    IssuedCode,
    PromotionCreate,
    PromotionRead,
    PromotionUpdate,
)
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import NotFound, problem_responses
from shared.pagination import CursorDep, CursorPage, paginate

promotions_router = APIRouter(prefix="/promotions", tags=["promotions"])
coupons_router = APIRouter(prefix="/coupons", tags=["promotions"])

_READ = [Depends(require_scopes("orders:read"))]
_ADMIN = [Depends(require_scopes("orders:write", "admin"))]


@promotions_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a promotion",
    dependencies=_ADMIN,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_promotion(
    body: PromotionCreate, session: SessionDep, principal: PrincipalDep
) -> PromotionRead:
    """Admins only. A percentage (`value` 1-100) or a fixed amount off, in one currency;
    optionally a minimum spend, product/category limits (only matching lines are
    discounted), a validity window `[starts_at, ends_at)`, a total and a per-customer usage
    limit, and a shared `code`. Codes per recipient come from `POST
    /promotions/{id}/codes:issue`. A `code` already in use answers `409`
    (`/problems/coupon-code-taken`)."""
    promotion = await service.create_promotion(session, body, principal, datetime.now(UTC))
    return PromotionRead.model_validate(promotion)


@promotions_router.get(
    "",
    summary="List promotions",
    dependencies=_READ,
    responses=problem_responses(400, 401, 403),
)
async def list_promotions(session: SessionDep, page: CursorDep) -> CursorPage[PromotionRead]:
    """Every promotion, newest first, with its current number of redemptions."""
    items: list[Promotion]
    items, next_cursor = await paginate(
        session,
        select(Promotion),
        keys=[Promotion.created_at, Promotion.id],
        key_of=lambda p: (p.created_at, p.id),
        params=page,
        descending=True,
    )
    return CursorPage(
        items=[PromotionRead.model_validate(p) for p in items], next_cursor=next_cursor
    )


@promotions_router.get(
    "/{promotion_id}",
    summary="Get a promotion",
    dependencies=_READ,
    responses=problem_responses(401, 403, 404),
)
async def get_promotion(promotion_id: UUID, session: SessionDep) -> PromotionRead:
    """One promotion with its redemptions so far (`uses`)."""
    return PromotionRead.model_validate(await service.get_promotion(session, promotion_id))


@promotions_router.patch(
    "/{promotion_id}",
    summary="End, pause or re-limit a promotion",
    dependencies=_ADMIN,
    responses=problem_responses(401, 403, 404, 422),
)
async def update_promotion(
    promotion_id: UUID, body: PromotionUpdate, session: SessionDep
) -> PromotionRead:
    """Admins only. `active: false` stops new redemptions at once (orders placed keep their
    discount); `ends_at` moves the end; a `total_limit` below the redemptions made is
    refused."""
    return PromotionRead.model_validate(await service.update_promotion(session, promotion_id, body))


@promotions_router.post(
    "/{promotion_id}/codes:issue",
    summary="Issue a code per recipient",
    dependencies=_ADMIN,
    responses=problem_responses(401, 403, 404, 422),
)
async def issue_codes(promotion_id: UUID, body: CodesIssue, session: SessionDep) -> CodesIssued:
    """Admins only. One unique code per customer (up to 1,000 per call), usable only by
    that customer, `max_uses` times (default once). Idempotent per (promotion, customer):
    asking again returns the same code with `created: false`, so a campaign can retry and
    personalise its messages with them."""
    issued = await service.issue_codes(session, promotion_id, body)
    return CodesIssued(
        promotion_id=promotion_id,
        codes=[IssuedCode(customer_id=c, code=code, created=new) for c, code, new in issued],
    )


@coupons_router.get(
    "/{code}",
    summary="Look up a coupon code",
    dependencies=_READ,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_coupon(
    code: Annotated[str, Path(pattern=CODE_PATTERN)], session: SessionDep
) -> CouponRead:
    """A shared or issued code, its promotion and its uses. An unknown code answers `404`."""
    try:
        promotion, issued = await service.get_coupon(session, code)
    except service.CouponUnknown:
        raise NotFound(f"no coupon {code}") from None
    return CouponRead(
        code=code,
        promotion_id=promotion.id,
        customer_id=issued.customer_id if issued is not None else None,
        uses=issued.uses if issued is not None else promotion.uses,
        max_uses=issued.max_uses if issued is not None else promotion.total_limit,
        promotion=PromotionRead.model_validate(promotion),
    )
