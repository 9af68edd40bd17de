"""Loyalty when customers are merged: one account, one ledger, one set of codes."""

from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.loyalty.service import upgrade
from services.orders.models import CouponCode, LoyaltyAccount, LoyaltyEntry, OrderDiscount
from shared.events import CustomerMerged, Envelope


async def on_customer_merged(session: AsyncSession, event: CustomerMerged, _: Envelope) -> None:
    """The duplicate's ledger, balance, redemptions and issued codes become the survivor's
    (a code of a promotion the survivor also holds a code for stays with the duplicate: one
    code per recipient). The tier is evaluated again at once: only upward, as always."""
    survivor, merged = event.customer_id, event.merged_id
    if survivor == merged:
        return
    balance = await session.scalar(
        delete(LoyaltyAccount)
        .where(LoyaltyAccount.customer_id == merged)
        .returning(LoyaltyAccount.balance)
    )
    for table in (LoyaltyEntry, OrderDiscount):
        await session.execute(
            update(table).where(table.customer_id == merged).values(customer_id=survivor)
        )
    held = select(CouponCode.promotion_id).where(CouponCode.customer_id == survivor)
    await session.execute(
        update(CouponCode)
        .where(CouponCode.customer_id == merged, CouponCode.promotion_id.not_in(held))
        .values(customer_id=survivor)
    )
    if balance is None:
        return
    await session.execute(
        insert(LoyaltyAccount)
        .values(customer_id=survivor, balance=balance)
        .on_conflict_do_update(
            index_elements=[LoyaltyAccount.customer_id],
            set_={"balance": LoyaltyAccount.balance + balance},
        )
    )
    await upgrade(session, survivor, datetime.now(UTC))
