from datetime import UTC, datetime
from uuid import UUID

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.orders.customers import ensure_visible
from services.orders.loyalty import service
from services.orders.loyalty.schemas import (
    EarnRuleRead,
    EarnRuleWrite,
    EntryRead,
    EvaluationRead,
    LoyaltyRead,
    TierSettingsRead,
    TierSettingsWrite,
)
from services.orders.models import LoyaltyAccount, LoyaltyEarnRule, LoyaltyEntry, LoyaltySettings
from services.orders.money import CurrencyCode
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import CursorDep, paginate

router = APIRouter(prefix="/loyalty", tags=["loyalty"])
customer_router = APIRouter(prefix="/customers", tags=["loyalty"])

_READ = [Depends(require_scopes("orders:read"))]
_ADMIN = [Depends(require_scopes("orders:write", "admin"))]


def _rule_read(rule: service.EarnRule, configured: bool) -> EarnRuleRead:
    return EarnRuleRead(
        currency=rule.currency,
        points_per_unit=rule.points_per_unit.normalize(),
        point_value=rule.point_value,
        product_multipliers=rule.product_multipliers,
        category_multipliers=rule.category_multipliers,
        configured=configured,
    )


@router.get(
    "/earn-rules/{currency}",
    summary="The earn rule of a currency",
    dependencies=_READ,
    responses=problem_responses(401, 403, 422),
)
async def get_earn_rule(currency: CurrencyCode, session: SessionDep) -> EarnRuleRead:
    """Points per unit spent, the value of a point when redeemed, and the multipliers. A
    currency without a rule earns 1 point per unit and redeems a point for one minor unit
    (`configured: false`)."""
    configured = await session.get(LoyaltyEarnRule, currency) is not None
    return _rule_read(await service.earn_rule(session, currency), configured)


@router.put(
    "/earn-rules/{currency}",
    summary="Set the earn rule of a currency",
    dependencies=_ADMIN,
    responses=problem_responses(401, 403, 422),
)
async def put_earn_rule(
    currency: CurrencyCode, body: EarnRuleWrite, session: SessionDep
) -> EarnRuleRead:
    """Admins only. Multipliers: per product id, else per category, else 1. Applies to
    orders paid from now on (points already earned stay)."""
    values = {
        "points_per_unit": body.points_per_unit,
        "point_value": body.point_value,
        "product_multipliers": {str(k): str(v) for k, v in body.product_multipliers.items()},
        "category_multipliers": {k: str(v) for k, v in body.category_multipliers.items()},
        "updated_at": datetime.now(UTC),
    }
    await session.execute(
        insert(LoyaltyEarnRule)
        .values(currency=currency, **values)
        .on_conflict_do_update(index_elements=[LoyaltyEarnRule.currency], set_=values)
    )
    session.expire_all()
    return _rule_read(await service.earn_rule(session, currency), True)


@router.get(
    "/tiers",
    summary="Tier thresholds and the downgrade grace period",
    dependencies=_READ,
    responses=problem_responses(401, 403),
)
async def get_tiers(session: SessionDep) -> TierSettingsRead:
    """Points earned over the rolling last 12 months that reach Silver, Gold and Platinum,
    and the days a customer may stay below their tier before an evaluation downgrades them."""
    s = await service.tier_settings(session)
    return TierSettingsRead(
        silver_points=s.silver_points,
        gold_points=s.gold_points,
        platinum_points=s.platinum_points,
        grace_days=s.grace_days,
    )


@router.put(
    "/tiers",
    summary="Set tier thresholds",
    dependencies=_ADMIN,
    responses=problem_responses(401, 403, 422),
)
async def put_tiers(body: TierSettingsWrite, session: SessionDep) -> TierSettingsRead:
    """Admins only. Upgrades follow at the customer's next earning or the next evaluation;
    downgrades only at an evaluation after the grace period."""
    values = {**body.model_dump(), "updated_at": datetime.now(UTC)}
    await session.execute(
        insert(LoyaltySettings)
        .values(id=1, **values)
        .on_conflict_do_update(index_elements=[LoyaltySettings.id], set_=values)
    )
    return TierSettingsRead(**body.model_dump())


@router.post(
    "/tiers:evaluate",
    summary="Evaluate every customer's tier now",
    dependencies=_ADMIN,
    responses=problem_responses(401, 403),
)
async def evaluate(session: SessionDep) -> EvaluationRead:
    """Admins only; the service also runs it every `ORDERS_LOYALTY_EVALUATION_INTERVAL_S`.
    Upgrades missed, and downgrades customers who have stayed below their tier's threshold
    for the grace period (the first evaluation that finds them below starts the clock).
    Each change publishes `rapport.order.loyalty_tier_changed.v1`."""
    return EvaluationRead(**await service.evaluate_tiers(session, datetime.now(UTC)))


@customer_router.get(
    "/{customer_id}/loyalty",
    summary="A customer's points, tier and ledger",
    dependencies=_READ,
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def customer_loyalty(
    customer_id: UUID, session: SessionDep, principal: PrincipalDep, page: CursorDep
) -> LoyaltyRead:
    """Balance, tier, points earned over the last 12 months and how many more reach the
    next tier, and the ledger newest first (cursor pagination). A customer who never earned
    has a zero balance and an empty ledger. Outside the caller's data scope: `404`."""
    await ensure_visible(session, principal, customer_id)
    now = datetime.now(UTC)
    account = await session.scalar(
        select(LoyaltyAccount).where(LoyaltyAccount.customer_id == customer_id)
    )
    rolling = await service.rolling_points(session, customer_id, now)
    settings = await service.tier_settings(session)
    tier = account.tier if account is not None else None
    ladder = [
        ("silver", settings.silver_points),
        ("gold", settings.gold_points),
        ("platinum", settings.platinum_points),
    ]
    rank = [name for name, _ in ladder].index(tier) + 1 if tier else 0
    above = [(name, points) for name, points in ladder[rank:] if points > rolling]
    entries: list[LoyaltyEntry]
    entries, next_cursor = await paginate(
        session,
        select(LoyaltyEntry).where(LoyaltyEntry.customer_id == customer_id),
        keys=[LoyaltyEntry.id],
        key_of=lambda e: (e.id,),
        params=page,
        descending=True,
    )
    return LoyaltyRead(
        customer_id=customer_id,
        balance=account.balance if account is not None else 0,
        tier=tier,
        tier_since=account.tier_since if account is not None else None,
        rolling_points=rolling,
        next_tier=above[0][0] if above else None,
        points_to_next_tier=above[0][1] - rolling if above else None,
        ledger=[EntryRead.model_validate(e) for e in entries],
        next_cursor=next_cursor,
    )
