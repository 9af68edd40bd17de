"""Writing customer profiles: create, update, and what every write records and publishes.

Every write, in one transaction: the profile row, its identity keys (which decide duplicates),
an audit entry with each changed field's before/after, and its events in the outbox
(``CustomerCreated`` / ``CustomerUpdated``, plus ``CustomerConsentChanged`` per channel whose
consent changed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.custom_fields.repository import definitions
from services.customer360.custom_fields.validation import check_custom_fields
from services.customer360.customer import identity
from services.customer360.customer.normalize import (
    InvalidValue,
    display_name_of,
    identity_keys,
    normalize_phone,
)
from services.customer360.customer.schemas import CustomerCreate, CustomerPatch
from services.customer360.models import AuditEntry, Customer
from shared.auth import Principal
from shared.errors import PreconditionFailed, raise_if_invalid
from shared.events import (
    CustomerConsentChanged,
    CustomerCreated,
    CustomerUpdated,
)
from shared.messaging import publish

__all__ = ["create_customer", "etag", "jsonable", "record_audit", "update_customer"]

#: Fields copied as they are from a create/patch body onto the profile.
_PLAIN_FIELDS = (
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
    "owner_id",
    "team_id",
)


def etag(customer: Customer) -> str:
    return f'"{customer.version}"'


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


async def record_audit(
    session: AsyncSession,
    customer_id: UUID,
    action: str,
    actor: Principal | str,
    changes: dict[str, tuple[Any, Any]],
) -> None:
    """Add an audit entry: ``changes`` maps field → (before, after)."""
    session.add(
        AuditEntry(
            customer_id=customer_id,
            action=action,
            actor=actor if isinstance(actor, str) else actor.subject,
            changes={
                f: {"before": jsonable(b), "after": jsonable(a)} for f, (b, a) in changes.items()
            },
        )
    )


def _normalized(
    values: Iterable[str], normalize: Any, pointer: str, errors: list[dict[str, str]]
) -> list[str]:
    out: list[str] = []
    for i, value in enumerate(values):
        try:
            out.append(normalize(value))
        except InvalidValue as exc:
            errors.append({"pointer": f"{pointer}/{i}", "detail": str(exc)})
    return list(dict.fromkeys(out))


async def _check_company(
    session: AsyncSession, company_id: UUID | None, errors: list[dict[str, str]]
) -> None:
    if company_id is None:
        return
    kind = await session.scalar(
        select(Customer.kind).where(Customer.id == company_id, Customer.status == "active")
    )
    if kind != "company":
        errors.append({"pointer": "/body/company_id", "detail": "not an active company customer"})


def _consent_state(
    given: dict[str, Any], source_default: str | None, now: datetime
) -> dict[str, dict[str, Any]]:
    return {
        channel: {
            "granted": c["granted"],
            "at": now.isoformat(),
            "source": c.get("source") or source_default,
        }
        for channel, c in given.items()
        if c is not None
    }


async def create_customer(
    session: AsyncSession,
    data: CustomerCreate,
    principal: Principal,
    *,
    default_region: str | None = None,
    require_custom_fields: bool = True,
) -> Customer:
    """Store a new profile with its identity keys, audit entry and events.

    ``require_custom_fields=False``: a profile created from a partner's identity keys (a
    prospect) may lack the required custom fields; nobody could have given them.

    Raises :class:`identity.DuplicateIdentity` (409, naming the existing customer) when an
    e-mail, phone or external id already belongs to someone.
    """
    errors: list[dict[str, str]] = []
    emails = list(dict.fromkeys(data.emails or []))  # normalised by the schema
    phones = _normalized(
        data.phones or [], lambda p: normalize_phone(p, default_region), "/body/phones", errors
    )
    custom, custom_errors = check_custom_fields(
        await definitions(session),
        data.custom_fields or {},
        pointer="/body/custom_fields",
        require=require_custom_fields,
    )
    errors += custom_errors
    await _check_company(session, data.company_id, errors)
    if data.kind == "company" and data.company_id is not None:
        errors.append({"pointer": "/body/company_id", "detail": "a company cannot belong to one"})
    display_name = data.display_name or display_name_of(data.given_name, data.family_name)
    if display_name is None:
        errors.append({"pointer": "/body/display_name", "detail": "give a display_name or names"})
    raise_if_invalid(errors)
    assert display_name is not None

    keys = identity_keys(emails, phones, dict(data.external_ids or {}))
    taken = await identity.owners(session, keys)
    if taken:
        raise identity.DuplicateIdentity(taken)

    now = datetime.now(UTC)
    customer = Customer(
        id=uuid4(),
        kind=data.kind,
        display_name=display_name,
        emails=emails,
        phones=phones,
        addresses=[a.model_dump(exclude_none=True) for a in data.addresses or []],
        tags=list(dict.fromkeys(data.tags or [])),
        consent=_consent_state(
            {k: v.model_dump() for k, v in (data.consent or {}).items()}, None, now
        ),
        external_ids=dict(data.external_ids or {}),
        custom_fields=custom,
        **{f: getattr(data, f) for f in _PLAIN_FIELDS},
    )
    if customer.owner_id is None and principal.kind == "user":
        customer.owner_id = principal.subject
    if customer.team_id is None:
        customer.team_id = principal.team
    session.add(customer)
    await session.flush()
    await identity.claim(session, customer.id, keys)
    await session.refresh(customer)

    snapshot = _snapshot(customer)
    await record_audit(
        session,
        customer.id,
        "created",
        principal,
        {f: (None, v) for f, v in snapshot.items() if v not in (None, [], {})},
    )
    await publish(
        session,
        CustomerCreated(customer_id=customer.id, created_at=customer.created_at, **snapshot),
    )
    for channel, state in customer.consent.items():
        await publish(
            session,
            CustomerConsentChanged(
                customer_id=customer.id,
                channel=channel,
                granted=state["granted"],
                changed_at=now,
                source=state["source"],
                actor=principal.subject,
            ),
        )
    return customer


_SNAPSHOT_FIELDS = (
    "kind",
    "display_name",
    "emails",
    "phones",
    "tags",
    "external_ids",
    "custom_fields",
    "consent",
    *_PLAIN_FIELDS,
)


def _snapshot(customer: Customer) -> dict[str, Any]:
    """The profile's event-visible fields (``CustomerCreated``'s, minus bookkeeping)."""
    values = {f: getattr(customer, f) for f in _SNAPSHOT_FIELDS}
    values.pop("given_name"), values.pop("family_name")
    return values


async def update_customer(
    session: AsyncSession,
    customer: Customer,
    patch: CustomerPatch,
    principal: Principal,
    *,
    if_match: str | None = None,
    default_region: str | None = None,
) -> Customer:
    """Apply a JSON Merge Patch; a stale ``If-Match`` is refused with 412."""
    if if_match is not None and if_match.strip() not in (etag(customer), "*"):
        raise PreconditionFailed(
            f"the customer changed since you read it (now {etag(customer)}); "
            "fetch it again and reapply your change",
            current_etag=etag(customer),
        )
    given = patch.model_dump(exclude_unset=True)
    errors: list[dict[str, str]] = []
    new: dict[str, Any] = {}

    for field in _PLAIN_FIELDS:
        if field in given:
            new[field] = given[field]
    if "company_id" in new:
        await _check_company(session, new["company_id"], errors)
        if new["company_id"] == customer.id:
            errors.append(
                {"pointer": "/body/company_id", "detail": "cannot be the customer itself"}
            )
    if "display_name" in given:
        if given["display_name"] is None:
            errors.append({"pointer": "/body/display_name", "detail": "cannot be null"})
        new["display_name"] = given["display_name"]
    elif "given_name" in given or "family_name" in given:
        derived = display_name_of(
            new.get("given_name", customer.given_name), new.get("family_name", customer.family_name)
        )
        if derived is not None and customer.display_name == display_name_of(
            customer.given_name, customer.family_name
        ):
            new["display_name"] = derived  # the name was derived: keep it derived
    if "emails" in given:
        new["emails"] = list(dict.fromkeys(given["emails"] or []))
    if "phones" in given:
        new["phones"] = _normalized(
            given["phones"] or [],
            lambda p: normalize_phone(p, default_region),
            "/body/phones",
            errors,
        )
    if "addresses" in given:
        new["addresses"] = [
            {k: v for k, v in a.items() if v is not None} for a in given["addresses"] or []
        ]
    if "tags" in given:
        new["tags"] = list(dict.fromkeys(given["tags"] or []))
    if "external_ids" in given:
        merged = {**customer.external_ids, **(given["external_ids"] or {})}
        new["external_ids"] = {k: v for k, v in merged.items() if v is not None}
    if "custom_fields" in given:
        patch_values = given["custom_fields"] or {}
        defs = await definitions(session)
        merged = {**customer.custom_fields, **patch_values}
        checked, custom_errors = check_custom_fields(
            defs,
            {k: v for k, v in merged.items() if k in defs or k in patch_values},
            pointer="/body/custom_fields",
        )
        errors += custom_errors
        # Values of fields deleted since they were stored are kept, untouched.
        kept = {k: v for k, v in customer.custom_fields.items() if k not in defs}
        new["custom_fields"] = {**kept, **checked}
    consent_changes: dict[str, dict[str, Any]] = {}
    if "consent" in given:
        now = datetime.now(UTC)
        consent = dict(customer.consent)
        for channel, decision in (given["consent"] or {}).items():
            if decision is None:
                continue
            current = consent.get(channel)
            if current is None or current["granted"] != decision["granted"]:
                consent_changes[channel] = _consent_state({channel: decision}, None, now)[channel]
                consent[channel] = consent_changes[channel]
        new["consent"] = consent
    raise_if_invalid(errors)

    changes = {
        f: (getattr(customer, f), v)
        for f, v in new.items()
        if jsonable(getattr(customer, f)) != jsonable(v)
    }
    if not changes:
        return customer

    old_keys = set(identity_keys(customer.emails, customer.phones, customer.external_ids))
    new_keys = set(
        identity_keys(
            new.get("emails", customer.emails),
            new.get("phones", customer.phones),
            new.get("external_ids", customer.external_ids),
        )
    )
    await identity.release(session, customer.id, sorted(old_keys - new_keys))
    await identity.claim(session, customer.id, sorted(new_keys - old_keys))

    for field, (_, value) in changes.items():
        setattr(customer, field, value)
    customer.updated_at = func.now()
    await session.flush()
    await session.refresh(customer)

    await record_audit(session, customer.id, "updated", principal, changes)
    await publish(
        session,
        CustomerUpdated(
            customer_id=customer.id,
            changes={f: jsonable(a) for f, (_, a) in changes.items()},
            updated_at=customer.updated_at,
            actor=principal.subject,
        ),
    )
    for channel, state in consent_changes.items():
        await publish(
            session,
            CustomerConsentChanged(
                customer_id=customer.id,
                channel=channel,
                granted=state["granted"],
                changed_at=datetime.fromisoformat(state["at"]),
                source=state["source"],
                actor=principal.subject,
            ),
        )
    return customer
