"""Promotions and coupon codes: administration, redemption at order time, release.

**Redemption** runs in the order's transaction. Every code is checked first (known, active,
started, not expired, for this customer, in the order's currency, minimum spend met, some
line eligible, not given twice); then the uses are claimed with conditional updates, in a
fixed order (issued codes by code, then promotions by id) so two orders never deadlock.
Issued codes are claimed before the order's rows are written; promotions (a row every order
of a campaign updates) and points are claimed last, just before the commit, so their row
locks are held as briefly as possible (:func:`claim_discounts`):

* ``UPDATE coupon_code SET uses = uses + 1 WHERE code = :c AND uses < max_uses``
* ``UPDATE promotion SET uses = uses + 1 WHERE id = :p AND (total_limit IS NULL OR uses <
  total_limit)`` — this also locks the promotion row until commit, so the per-customer count
  that follows sees every committed redemption of it.

A claim that finds nothing answers ``422 coupon-exhausted`` and the whole order rolls back.
The redemption row (``order_discount``) is unique per (order, promotion), and a single-use
code has at most one active row (partial unique index) as a last line of defence.

**Release.** A cancelled or fully refunded order releases its coupons (their uses go back,
the rows stay as ``released``) and gives its points back. A partial refund keeps them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.loyalty import service as loyalty
from services.orders.models import CouponCode, Order, OrderDiscount, Promotion
from services.orders.money import fits_currency, minor_units
from services.orders.promotion.discounts import allocate, percentage_off
from services.orders.promotion.schemas import CodesIssue, PromotionCreate, PromotionUpdate
from shared.auth import Principal
from shared.errors import Conflict, NotFound, UnprocessableEntity, raise_if_invalid

__all__ = [
    "Applied",
    "DraftLine",
    "apply_discounts",
    "claim_discounts",
    "create_promotion",
    "get_coupon",
    "get_promotion",
    "issue_codes",
    "release_discounts",
    "update_promotion",
]


# --- problems: one stable type per reason ----------------------------------------------------
class CouponProblem(UnprocessableEntity):
    slug = "coupon-invalid"


class CouponUnknown(CouponProblem):
    slug = "coupon-unknown"


class CouponInactive(CouponProblem):
    slug = "coupon-inactive"


class CouponNotStarted(CouponProblem):
    slug = "coupon-not-started"


class CouponExpired(CouponProblem):
    slug = "coupon-expired"


class CouponExhausted(CouponProblem):
    slug = "coupon-exhausted"


class CouponCustomerLimit(CouponProblem):
    slug = "coupon-customer-limit-reached"


class CouponWrongCustomer(CouponProblem):
    slug = "coupon-wrong-customer"


class CouponWrongCurrency(CouponProblem):
    slug = "coupon-currency-mismatch"


class CouponMinSpend(CouponProblem):
    slug = "coupon-min-spend-unmet"


class CouponNoEligibleLines(CouponProblem):
    slug = "coupon-no-eligible-lines"


class CouponAppliedTwice(CouponProblem):
    slug = "coupon-applied-twice"


class PointsExceedOrder(UnprocessableEntity):
    slug = "points-exceed-order"


class CodeTaken(Conflict):
    slug = "coupon-code-taken"


# --- administration ---------------------------------------------------------------------------
async def create_promotion(
    session: AsyncSession, data: PromotionCreate, principal: Principal, now: datetime
) -> Promotion:
    if data.code is not None and (
        await session.get(CouponCode, data.code) is not None
        or await session.scalar(select(Promotion.id).where(Promotion.code == data.code))
    ):
        raise CodeTaken(f"the code {data.code} is taken", code=data.code)
    promotion = Promotion(
        **data.model_dump(exclude={"starts_at"}),
        starts_at=data.starts_at or now,
        created_by=principal.subject,
    )
    if promotion.ends_at is not None and promotion.ends_at <= promotion.starts_at:
        raise_if_invalid([{"pointer": "/body/ends_at", "detail": "must be after starts_at"}])
    session.add(promotion)
    await session.flush()
    return promotion


async def get_promotion(session: AsyncSession, promotion_id: UUID) -> Promotion:
    promotion = await session.get(Promotion, promotion_id)
    if promotion is None:
        raise NotFound(f"promotion {promotion_id} does not exist")
    return promotion


async def update_promotion(
    session: AsyncSession, promotion_id: UUID, data: PromotionUpdate
) -> Promotion:
    promotion = await session.scalar(
        select(Promotion).where(Promotion.id == promotion_id).with_for_update()
    )
    if promotion is None:
        raise NotFound(f"promotion {promotion_id} does not exist")
    changes = data.model_dump(exclude_unset=True)
    errors = []
    if changes.get("ends_at") is not None and changes["ends_at"] <= promotion.starts_at:
        errors.append({"pointer": "/body/ends_at", "detail": "must be after starts_at"})
    if changes.get("total_limit") is not None and changes["total_limit"] < promotion.uses:
        errors.append(
            {
                "pointer": "/body/total_limit",
                "detail": f"is below the {promotion.uses} redemptions already made",
            }
        )
    raise_if_invalid(errors)
    for key, value in changes.items():
        if key != "active" or value is not None:
            setattr(promotion, key, value)
    await session.flush()
    return promotion


def _new_code() -> str:
    # 12 characters of Crockford-like base32 without look-alikes: ~60 bits, unguessable.
    alphabet = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
    return "C-" + "".join(secrets.choice(alphabet) for _ in range(12))


async def issue_codes(
    session: AsyncSession, promotion_id: UUID, data: CodesIssue
) -> list[tuple[UUID, str, bool]]:
    """One code per (promotion, customer): asking again returns the code issued before."""
    await get_promotion(session, promotion_id)
    customers = list(dict.fromkeys(data.customer_ids))
    rows = [
        {
            "code": _new_code(),
            "promotion_id": promotion_id,
            "customer_id": c,
            "max_uses": data.max_uses,
        }
        for c in customers
    ]
    created = set(
        await session.scalars(
            insert(CouponCode)
            .values(rows)
            .on_conflict_do_nothing(
                index_elements=[CouponCode.promotion_id, CouponCode.customer_id]
            )
            .returning(CouponCode.customer_id)
        )
    )
    codes = dict(
        (
            await session.execute(
                select(CouponCode.customer_id, CouponCode.code).where(
                    CouponCode.promotion_id == promotion_id, CouponCode.customer_id.in_(customers)
                )
            )
        ).all()
    )
    return [(c, codes[c], c in created) for c in customers]


async def get_coupon(session: AsyncSession, code: str) -> tuple[Promotion, CouponCode | None]:
    issued = await session.get(CouponCode, code)
    if issued is not None:
        return await get_promotion(session, issued.promotion_id), issued
    promotion = await session.scalar(select(Promotion).where(Promotion.code == code))
    if promotion is None:
        raise CouponUnknown(f"no coupon {code}", code=code)
    return promotion, None


# --- redemption -------------------------------------------------------------------------------
@dataclass(slots=True)
class DraftLine:
    """A line being priced: its product and what is left to pay for it before tax."""

    product_id: UUID
    category: str | None
    net: Decimal


@dataclass(slots=True)
class Applied:
    #: Per line, what coupons and points took off (same order as the lines).
    line_discounts: list[Decimal]
    discounts: list[OrderDiscount]
    #: (promotion, issued code or None, code, index in ``coupon_codes``) to claim.
    claims: list[tuple[Promotion, CouponCode | None, str, int]]


def _eligible(promotion: Promotion, line: DraftLine) -> bool:
    if not promotion.product_ids and not promotion.categories:
        return True
    return line.product_id in promotion.product_ids or (
        line.category is not None and line.category in promotion.categories
    )


async def apply_discounts(
    session: AsyncSession,
    *,
    customer_id: UUID,
    currency: str,
    lines: list[DraftLine],
    coupon_codes: list[str],
    loyalty_points: int,
    now: datetime,
) -> Applied:
    """Validate and price the coupons, then the points, and claim the issued codes (the
    promotions and points are claimed by :func:`claim_discounts`, last). Raises a 422 problem naming the code and the reason; the caller's transaction rolls
    back, so nothing is half-written."""
    nets = [line.net for line in lines]
    spend = sum(nets, Decimal(0))
    per_line = [Decimal(0)] * len(lines)
    discounts: list[OrderDiscount] = []
    claims: list[tuple[Promotion, CouponCode | None, str, int]] = []
    seen_codes: set[str] = set()
    seen_promotions: set[UUID] = set()

    for i, code in enumerate(coupon_codes):
        problem = partial(_coupon_problem, code=code, index=i)
        if code in seen_codes:
            raise problem(CouponAppliedTwice, f"the coupon {code} is given twice")
        seen_codes.add(code)
        try:
            promotion, issued = await get_coupon(session, code)
        except CouponUnknown:
            raise problem(CouponUnknown, f"no coupon {code}") from None
        if promotion.id in seen_promotions:
            raise problem(
                CouponAppliedTwice, f"the promotion of {code} is already applied to this order"
            )
        seen_promotions.add(promotion.id)
        if not promotion.active:
            raise problem(CouponInactive, f"the coupon {code} is no longer active")
        if now < promotion.starts_at:
            raise problem(
                CouponNotStarted,
                f"the coupon {code} is valid from {promotion.starts_at.isoformat()}",
                starts_at=promotion.starts_at.isoformat(),
            )
        if promotion.ends_at is not None and now >= promotion.ends_at:
            raise problem(
                CouponExpired,
                f"the coupon {code} expired at {promotion.ends_at.isoformat()}",
                ends_at=promotion.ends_at.isoformat(),
            )
        if issued is not None and issued.customer_id != customer_id:
            raise problem(CouponWrongCustomer, f"the coupon {code} was issued to someone else")
        if promotion.currency != currency:
            raise problem(
                CouponWrongCurrency,
                f"the coupon {code} is for orders in {promotion.currency}",
                currency=promotion.currency,
            )
        if spend < promotion.min_spend:
            raise problem(
                CouponMinSpend,
                f"the coupon {code} needs a spend of {promotion.min_spend} {currency}, "
                f"the order's goods come to {spend}",
                min_spend=str(promotion.min_spend),
                spend=str(spend),
            )
        # What earlier coupons left of a line is what this one may take from.
        eligible = [_eligible(promotion, line) and nets[j] > 0 for j, line in enumerate(lines)]
        if not any(eligible):
            raise problem(CouponNoEligibleLines, f"no line of the order qualifies for {code}")
        if promotion.kind == "percentage":
            off = percentage_off(nets, eligible, promotion.value, currency)
        else:
            off = allocate(promotion.value, nets, eligible, currency)
        for j, amount in enumerate(off):
            per_line[j] += amount
            nets[j] -= amount
        discounts.append(
            OrderDiscount(
                position=len(discounts),
                kind="coupon",
                customer_id=customer_id,
                promotion_id=promotion.id,
                code=code,
                single_use=issued is not None and issued.max_uses == 1,
                amount=sum(off, Decimal(0)),
            )
        )
        claims.append((promotion, issued, code, i))

    # Issued codes are claimed now, before the order's rows exist (a code is one customer's,
    # so its row is never hot); promotions, which may be, last (claim_discounts). Each in a
    # fixed order (codes by code, promotions by id): two orders never deadlock.
    for _promotion, issued, code, i in sorted(claims, key=lambda c: c[2]):
        if issued is None:
            continue
        taken = await session.scalar(
            update(CouponCode)
            .where(CouponCode.code == code, CouponCode.uses < CouponCode.max_uses)
            .values(uses=CouponCode.uses + 1)
            .returning(CouponCode.uses)
        )
        if taken is None:
            raise _coupon_problem(
                CouponExhausted, f"the coupon {code} has been used", code=code, index=i
            )

    if loyalty_points:
        rule = await loyalty.earn_rule(session, currency)
        value = rule.point_value * loyalty_points
        left = sum(nets, Decimal(0))
        if not fits_currency(value, currency):
            raise_if_invalid(
                [
                    {
                        "pointer": "/body/loyalty_points",
                        "detail": f"{loyalty_points} points are worth {value} {currency}, "
                        f"which has {minor_units(currency)} decimal places",
                    }
                ]
            )
        if value > left:
            raise PointsExceedOrder(
                f"{loyalty_points} points are worth {value} {currency}; the order comes to "
                f"{left} before tax",
                points_value=str(value),
                payable=str(left),
            )
        off = allocate(value, nets, [True] * len(lines), currency)
        for j, amount in enumerate(off):
            per_line[j] += amount
            nets[j] -= amount
        discounts.append(
            OrderDiscount(
                position=len(discounts),
                kind="points",
                customer_id=customer_id,
                points=loyalty_points,
                amount=value,
            )
        )
    return Applied(per_line, discounts, claims)


def _coupon_problem(
    cls: type[CouponProblem], detail: str, *, code: str, index: int, **more: Any
) -> CouponProblem:
    """The problem for the coupon at ``coupon_codes[index]``: its type names the reason."""
    return cls(
        detail,
        code=code,
        errors=[{"pointer": f"/body/coupon_codes/{index}", "detail": detail}],
        **more,
    )


async def claim_discounts(
    session: AsyncSession, order: Order, applied: Applied, now: datetime
) -> None:
    """Claim the uses of the order's promotions and spend its points: the last writes of the
    order's transaction, so the rows they lock (a promotion every order of a campaign
    updates, the points account) stay locked for as short a time as possible (until the
    commit that follows). Raises the 422 problem
    of the first claim that fails; the caller's transaction then rolls back entirely."""
    claims, customer_id = applied.claims, order.customer_id
    # Promotions by id: two orders with the same coupons lock them in the same order.
    for promotion, _issued, code, i in sorted(claims, key=lambda c: str(c[0].id)):
        taken = await session.scalar(
            update(Promotion)
            .where(
                Promotion.id == promotion.id,
                or_(Promotion.total_limit.is_(None), Promotion.uses < Promotion.total_limit),
            )
            .values(uses=Promotion.uses + 1)
            .returning(Promotion.uses)
        )
        if taken is None:
            raise _coupon_problem(
                CouponExhausted,
                f"the coupon {code} has reached its total usage limit",
                code=code,
                index=i,
            )
        if promotion.per_customer_limit is not None:
            used = await session.scalar(
                select(func.count()).where(
                    OrderDiscount.promotion_id == promotion.id,
                    OrderDiscount.customer_id == customer_id,
                    OrderDiscount.status == "active",
                )
            )
            if (used or 0) > promotion.per_customer_limit:  # this order's row counts too
                detail = (
                    f"the coupon {code} may be used {promotion.per_customer_limit} time(s) "
                    "per customer"
                )
                raise _coupon_problem(CouponCustomerLimit, detail, code=code, index=i)

    for discount in order.discounts:
        if discount.kind == "points" and discount.points:
            await loyalty.spend_points(session, customer_id, discount.points, order.id, now)


async def release_discounts(session: AsyncSession, order: Order, now: datetime) -> None:
    """A cancelled or fully refunded order gives its coupon uses and points back, once."""
    for discount in order.discounts:
        if discount.status != "active":
            continue
        discount.status, discount.released_at = "released", now
        if discount.kind == "coupon":
            await session.execute(
                update(CouponCode)
                .where(CouponCode.code == discount.code, CouponCode.uses > 0)
                .values(uses=CouponCode.uses - 1)
            )
            await session.execute(
                update(Promotion)
                .where(and_(Promotion.id == discount.promotion_id, Promotion.uses > 0))
                .values(uses=Promotion.uses - 1)
            )
        elif discount.points:
            await loyalty.return_points(session, order.customer_id, discount.points, order.id, now)
    await session.flush()
