"""The recommender's counts, kept up to date as orders are placed (incremental, bounded).

Item-to-item collaborative filtering over the binary customer x product matrix ("bought at
least once"): two products are similar when the same customers bought both,

    sim(a, b) = cosine = co(a, b) / sqrt(buyers(a) * buyers(b))

where ``co(a, b)`` counts customers who bought both and ``buyers(p)`` customers who bought
``p``. A customer's score for a product ``j`` they have not bought is the sum of ``sim(i, j)``
over the products ``i`` they have bought; the top N are recommended.

Incremental upkeep: when a customer buys products ``N`` new to them (they already had
``O``), ``buyers`` grows by one for each of ``N`` and ``co`` by one for each ordered pair
within ``N`` and between ``N`` and ``O``. The work is bounded by ``2*|N|*|N + O|`` counter
updates — the size of the customer's own history, never of the whole order book — and runs
in the order's transaction, so the counts never disagree with the orders. A per-customer
advisory lock keeps two concurrent orders of one customer from missing their common pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Float, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models import CoPurchase, CustomerProduct, Product, ProductBuyers

__all__ = ["Recommendation", "forget_customer", "merge_customers", "recommend", "record_purchase"]


async def _lock_customer(session: AsyncSession, customer_id: UUID) -> None:
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"orders:customer_product:{customer_id}"},
    )


async def record_purchase(
    session: AsyncSession, customer_id: UUID, product_ids: Iterable[UUID]
) -> None:
    """Count ``customer_id`` as a buyer of ``product_ids`` (products they had are skipped)."""
    wanted = sorted(set(product_ids))
    if not wanted:
        return
    await _lock_customer(session, customer_id)
    inserted = await session.scalars(
        insert(CustomerProduct)
        .values([{"customer_id": customer_id, "product_id": p} for p in wanted])
        .on_conflict_do_nothing()
        .returning(CustomerProduct.product_id)
    )
    new = set(inserted)
    if not new:
        return
    mine = set(
        await session.scalars(
            select(CustomerProduct.product_id).where(CustomerProduct.customer_id == customer_id)
        )
    )
    old = mine - new
    buyers = insert(ProductBuyers).values([{"product_id": p, "customers": 1} for p in sorted(new)])
    await session.execute(
        buyers.on_conflict_do_update(
            index_elements=[ProductBuyers.product_id],
            set_={"customers": ProductBuyers.customers + 1},
        )
    )
    pairs = [(p, q) for p in new for q in mine if q != p] + [(q, p) for p in new for q in old]
    if pairs:
        co = insert(CoPurchase).values(
            [{"product_id": a, "other_id": b, "customers": 1} for a, b in sorted(pairs)]
        )
        await session.execute(
            co.on_conflict_do_update(
                index_elements=[CoPurchase.product_id, CoPurchase.other_id],
                set_={"customers": CoPurchase.customers + 1},
            )
        )


async def forget_customer(session: AsyncSession, customer_id: UUID) -> list[UUID]:
    """Take ``customer_id`` out of the counts; returns the products they had bought."""
    await _lock_customer(session, customer_id)
    products = list(
        await session.scalars(
            delete(CustomerProduct)
            .where(CustomerProduct.customer_id == customer_id)
            .returning(CustomerProduct.product_id)
        )
    )
    if products:
        await session.execute(
            update(ProductBuyers)
            .where(ProductBuyers.product_id.in_(products))
            .values(customers=ProductBuyers.customers - 1)
        )
        await session.execute(
            update(CoPurchase)
            .where(
                CoPurchase.product_id.in_(products),
                CoPurchase.other_id.in_(products),
                CoPurchase.product_id != CoPurchase.other_id,
            )
            .values(customers=CoPurchase.customers - 1)
        )
    return products


async def merge_customers(session: AsyncSession, merged_id: UUID, survivor_id: UUID) -> None:
    """The survivor bought the union of both histories: counted once, as one customer."""
    merged = await forget_customer(session, merged_id)
    survivor = await forget_customer(session, survivor_id)
    await record_purchase(session, survivor_id, [*merged, *survivor])


@dataclass(frozen=True, slots=True)
class Recommendation:
    product: Product
    score: float
    because: Sequence[UUID]


async def recommend(session: AsyncSession, customer_id: UUID, limit: int) -> list[Recommendation]:
    """The ``limit`` active products with the highest summed similarity to what
    ``customer_id`` bought, excluding what they bought; ties by SKU."""
    mine = select(CustomerProduct.product_id).where(CustomerProduct.customer_id == customer_id)
    bi = ProductBuyers.__table__.alias("bi")
    bj = ProductBuyers.__table__.alias("bj")
    similarity = CoPurchase.customers / func.sqrt(
        bi.c.customers.cast(Float) * bj.c.customers.cast(Float)
    )
    score = func.sum(similarity).label("score")
    because = func.array_agg(CoPurchase.product_id).label("because")
    statement = (
        select(Product, score, because)
        .select_from(CoPurchase)
        .join(bi, bi.c.product_id == CoPurchase.product_id)
        .join(bj, bj.c.product_id == CoPurchase.other_id)
        .join(Product, Product.id == CoPurchase.other_id)
        .where(
            CoPurchase.product_id.in_(mine),
            CoPurchase.other_id.not_in(mine),
            CoPurchase.customers > 0,
            Product.active.is_(True),
        )
        .group_by(Product.id)
        .order_by(score.desc(), Product.sku)
        .limit(limit)
    )
    rows = await session.execute(statement)
    return [
        Recommendation(product=product, score=round(float(value), 6), because=sorted(ids))
        for product, value, ids in rows
    ]
