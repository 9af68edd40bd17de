"""Identity keys: which customer owns an e-mail, a phone or an external id.

``customer_identity`` has the key ``(kind, value)`` as its primary key, so a key belongs to
one customer at most — the database, not a check-then-insert race, guarantees that no create,
import or merge makes an exact duplicate. Merges move the keys to the survivor, erasure
deletes them, so a key always names an active customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.models import CustomerIdentity
from shared.errors import Conflict

__all__ = ["DuplicateIdentity", "claim", "owners", "release"]

Key = tuple[str, str]


class DuplicateIdentity(Conflict):
    """409: an identity key of the request already belongs to another customer."""

    slug = "duplicate-identity"

    def __init__(self, existing: dict[Key, UUID]) -> None:
        (kind, value), customer_id = next(iter(existing.items()))
        super().__init__(
            f"{kind} {value!r} already belongs to customer {customer_id}",
            existing_customer_id=str(customer_id),
            errors=[
                {"pointer": f"/{k}s" if k != "external" else "/external_ids", "detail": v}
                for (k, v) in existing
            ],
        )
        self.existing = existing
        self.customer_id = customer_id


async def owners(session: AsyncSession, keys: Sequence[Key]) -> dict[Key, UUID]:
    """The customers owning any of ``keys``."""
    if not keys:
        return {}
    rows = await session.execute(
        select(CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id).where(
            tuple_(CustomerIdentity.kind, CustomerIdentity.value).in_(list(keys))
        )
    )
    return {(r.kind, r.value): r.customer_id for r in rows}


async def claim(session: AsyncSession, customer_id: UUID, keys: Sequence[Key]) -> None:
    """Give ``keys`` to ``customer_id``; raise :class:`DuplicateIdentity` if another owns one.

    A concurrent claim of the same key waits on the first one's row and then finds it taken,
    so two racing creates cannot both succeed.
    """
    if not keys:
        return
    taken = {k: c for k, c in (await owners(session, keys)).items() if c != customer_id}
    if taken:
        raise DuplicateIdentity(taken)
    await session.execute(
        insert(CustomerIdentity)
        .values([{"kind": k, "value": v, "customer_id": customer_id} for k, v in keys])
        .on_conflict_do_nothing()
    )
    taken = {k: c for k, c in (await owners(session, keys)).items() if c != customer_id}
    if taken:  # lost a race with a concurrent claim
        raise DuplicateIdentity(taken)


async def release(session: AsyncSession, customer_id: UUID, keys: Sequence[Key]) -> None:
    """Drop ``keys`` from ``customer_id`` (a removed e-mail, a changed phone)."""
    if keys:
        await session.execute(
            delete(CustomerIdentity).where(
                CustomerIdentity.customer_id == customer_id,
                tuple_(CustomerIdentity.kind, CustomerIdentity.value).in_(list(keys)),
            )
        )
