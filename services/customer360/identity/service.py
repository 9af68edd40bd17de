"""Identity resolution, merging duplicates, and erasing a person.

Merge survivorship (the target id survives; every rule is applied field by field):

- a scalar field (names, birthday, gender, locale, time zone, acquisition, lifecycle stage,
  company) keeps the survivor's value, and takes the merged customer's only where the
  survivor has none;
- lists (e-mails, phones, tags, addresses) are united, the survivor's first;
- consent: per channel, the most recent decision wins, whoever holds it;
- external ids and custom fields: united; where both have a value, the survivor's wins;
- owner and team stay the survivor's.

The merged customer keeps its row with ``status = merged`` and ``merged_into``, so its id
still resolves; its identity keys, company members and 360 data move to the survivor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.customer import identity
from services.customer360.customer.normalize import (
    InvalidValue,
    external_key,
    normalize_phone,
)
from services.customer360.customer.schemas import CustomerCreate
from services.customer360.customer.service import (
    create_customer,
    etag,
    jsonable,
    record_audit,
)
from services.customer360.identity.schemas import ResolveRequest
from services.customer360.models import AuditEntry, Customer, CustomerIdentity
from shared.auth import Principal
from shared.errors import Conflict, NotFound, PreconditionFailed, UnprocessableEntity
from shared.events import CustomerErased, CustomerMerged, CustomerUpdated
from shared.messaging import publish
from shared.privacy import data_scope

__all__ = ["erase", "merge", "resolve"]

_SCALARS = (
    "given_name",
    "family_name",
    "company_id",
    "birthday",
    "gender",
    "locale",
    "timezone",
    "acquisition_source",
    "acquisition_channel",
    "lifecycle_stage",
)
_LISTS = ("emails", "phones", "tags", "addresses")
#: Personal fields an erase empties (the row and its id stay, so references stay valid).
_PERSONAL: dict[str, Any] = {
    "display_name": "erased customer",
    "given_name": None,
    "family_name": None,
    "emails": [],
    "phones": [],
    "addresses": [],
    "birthday": None,
    "gender": None,
    "locale": None,
    "timezone": None,
    "acquisition_source": None,
    "acquisition_channel": None,
    "tags": [],
    "consent": {},
    "external_ids": {},
    "custom_fields": {},
}


async def resolve(
    session: AsyncSession,
    request: ResolveRequest,
    principal: Principal,
    *,
    default_region: str | None = None,
) -> tuple[Customer, bool, list[str], list[UUID]]:
    """The customer owning the request's keys, or a new prospect holding them.

    Returns (customer, created, which keys matched, other customers owning some keys).
    """
    keys: list[tuple[str, tuple[str, str]]] = []
    if request.external_id is not None:
        ref = request.external_id
        keys.append(("external_id", ("external", external_key(ref.system, ref.id))))
    if request.email is not None:
        keys.append(("email", ("email", request.email)))
    phone = None
    if request.phone is not None:
        try:
            phone = normalize_phone(request.phone, default_region)
        except InvalidValue as exc:
            raise UnprocessableEntity(
                str(exc), errors=[{"pointer": "/body/phone", "detail": str(exc)}]
            ) from None
        keys.append(("phone", ("phone", phone)))

    owners = await identity.owners(session, [k for _, k in keys])
    matches = [(name, owners[k]) for name, k in keys if k in owners]
    if matches:
        winner = matches[0][1]
        customer = await session.get(Customer, winner)
        assert customer is not None
        others = list(dict.fromkeys(c for _, c in matches if c != winner))
        return customer, False, [n for n, c in matches if c == winner], others
    if not request.create:
        raise NotFound("no customer has these identity keys")
    name = request.display_name or request.email or phone or "prospect"
    data = CustomerCreate(
        display_name=name,
        emails=[request.email] if request.email else None,
        phones=[phone] if phone else None,
        external_ids=(
            {request.external_id.system: request.external_id.id} if request.external_id else None
        ),
        lifecycle_stage="prospect",
    )
    customer = await create_customer(session, data, principal, default_region=default_region)
    return customer, True, [n for n, _ in keys], []


def _survivorship(survivor: Customer, merged: Customer) -> dict[str, Any]:
    """The survivor's new values (only the fields that change); see the module's rules."""
    new: dict[str, Any] = {}
    for field in _SCALARS:
        if getattr(survivor, field) is None and getattr(merged, field) is not None:
            new[field] = getattr(merged, field)
    for field in _LISTS:
        mine, theirs = getattr(survivor, field), getattr(merged, field)
        if field == "addresses":
            united = mine + [a for a in theirs if a not in mine]
        else:
            united = list(dict.fromkeys([*mine, *theirs]))
        if united != mine:
            new[field] = united
    consent = dict(survivor.consent)
    for channel, decision in merged.consent.items():
        current = consent.get(channel)
        if current is None or decision["at"] > current["at"]:
            consent[channel] = decision
    if consent != survivor.consent:
        new["consent"] = consent
    for field in ("external_ids", "custom_fields"):
        united_map = {**getattr(merged, field), **getattr(survivor, field)}
        if united_map != getattr(survivor, field):
            new[field] = united_map
    return new


async def merge(
    session: AsyncSession,
    survivor: Customer,
    merged_ids: list[UUID],
    principal: Principal,
    *,
    if_match: str | None = None,
) -> Customer:
    """Fold ``merged_ids`` into ``survivor`` in one transaction (see the module's rules)."""
    if if_match is not None and if_match.strip() not in (etag(survivor), "*"):
        raise PreconditionFailed(
            f"the survivor changed since you read it (now {etag(survivor)})",
            current_etag=etag(survivor),
        )
    ids = list(dict.fromkeys(merged_ids))
    if survivor.id in ids:
        raise UnprocessableEntity(
            "a customer cannot be merged into itself",
            errors=[{"pointer": "/body/merged_ids", "detail": "contains the survivor"}],
        )
    # Lock every row involved, in id order, so two merges can't deadlock or interleave.
    rows = {
        c.id: c
        for c in await session.scalars(
            select(Customer)
            .where(Customer.id.in_([survivor.id, *ids]))
            .order_by(Customer.id)
            .with_for_update()
        )
    }
    await session.refresh(survivor)
    if survivor.status != "active":
        raise Conflict(f"customer {survivor.id} is {survivor.status}")
    visible = set(
        await session.scalars(
            select(Customer.id).where(
                Customer.id.in_(ids), data_scope(principal, Customer.owner_id, Customer.team_id)
            )
        )
    )
    now = datetime.now(UTC)
    changes: dict[str, tuple[Any, Any]] = {}
    for merged_id in ids:
        merged = rows.get(merged_id)
        if merged is None or merged_id not in visible:
            raise NotFound(f"customer {merged_id} does not exist")
        if merged.status != "active":
            raise Conflict(
                f"customer {merged_id} is {merged.status} and cannot be merged",
                errors=[{"pointer": "/body/merged_ids", "detail": str(merged_id)}],
            )
        new = _survivorship(survivor, merged)
        if new.get("company_id") == survivor.id:
            new.pop("company_id")
        for field, value in new.items():
            changes.setdefault(field, (getattr(survivor, field), value))
            changes[field] = (changes[field][0], value)
            setattr(survivor, field, value)
        await session.execute(
            update(CustomerIdentity)
            .where(CustomerIdentity.customer_id == merged_id)
            .values(customer_id=survivor.id)
        )
        await session.execute(
            update(Customer).where(Customer.company_id == merged_id).values(company_id=survivor.id)
        )
        merged.status, merged.merged_into, merged.updated_at = "merged", survivor.id, now
        await record_audit(
            session, merged_id, "merged_into", principal, {"merged_into": (None, survivor.id)}
        )
    survivor.updated_at = now
    await session.flush()
    await session.refresh(survivor)
    await record_audit(
        session,
        survivor.id,
        "merged",
        principal,
        {**changes, "merged_ids": (None, [str(i) for i in ids])},
    )
    if changes:
        await publish(
            session,
            CustomerUpdated(
                customer_id=survivor.id,
                changes={f: jsonable(after) for f, (_, after) in changes.items()},
                updated_at=now,
                actor=principal.subject,
            ),
        )
    for merged_id in ids:
        await publish(
            session,
            CustomerMerged(
                customer_id=survivor.id,
                merged_id=merged_id,
                merged_by=principal.subject,
                merged_at=now,
            ),
        )
    return survivor


async def erase(session: AsyncSession, customer: Customer, principal: Principal) -> None:
    """Erase a person: empty every personal field of the profile (and of the customers merged
    into it), drop its identity keys, redact its audit trail, and publish
    ``CustomerErased`` so every other part removes what it holds."""
    now = datetime.now(UTC)
    merged_in = await session.scalars(
        select(Customer.id).where(Customer.merged_into == customer.id)
    )
    targets = [customer.id, *merged_in]
    await session.execute(
        update(Customer)
        .where(Customer.id.in_(targets))
        .values(**_PERSONAL, status="erased", merged_into=None, erased_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(CustomerIdentity).where(CustomerIdentity.customer_id.in_(targets)))
    await session.execute(
        update(AuditEntry).where(AuditEntry.customer_id.in_(targets)).values(changes={})
    )
    await record_audit(session, customer.id, "erased", principal, {})
    for customer_id in targets:
        await publish(session, CustomerErased(customer_id=customer_id, erased_at=now))
