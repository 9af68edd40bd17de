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

from sqlalchemy import ColumnElement, delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

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
from services.customer360.models.base import Base
from services.customer360.search.query import CJK_RUN
from services.customer360.search.repository import like_escape
from shared.auth import Principal
from shared.errors import Conflict, NotFound, PreconditionFailed, UnprocessableEntity
from shared.events import CustomerErased, CustomerMerged, CustomerUpdated
from shared.messaging import publish
from shared.privacy import data_scope

__all__ = ["duplicates_of", "erase", "merge", "resolve"]

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
    customer = await create_customer(
        session, data, principal, default_region=default_region, require_custom_fields=False
    )
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
    # Stored Idempotency-Key replies (the profile as created) are personal data too.
    replies = Base.metadata.tables["customer360.idempotency_key"]
    await session.execute(
        delete(replies).where(replies.c.response["id"].astext.in_([str(t) for t in targets]))
    )
    await record_audit(session, customer.id, "erased", principal, {})
    for customer_id in targets:
        await publish(session, CustomerErased(customer_id=customer_id, erased_at=now))


# --- likely duplicates -------------------------------------------------------------------
#: How much each reason says "same person"; a candidate's score is 1 - Π(1 - weight).
DUPLICATE_WEIGHTS = {
    "same_name": 0.6,
    "similar_name": 0.4,
    "same_phone_number": 0.5,
    "same_email_local_part": 0.45,
    "same_company": 0.2,
    "same_birthday": 0.35,
}


def _local_parts(emails: list[str]) -> set[str]:
    return {e.split("@", 1)[0] for e in emails if "@" in e}


def _national_numbers(phones: list[str]) -> set[str]:
    """The last 8 digits: the same line written with another (or a wrong) country code."""
    return {p[-8:] for p in phones if len(p) >= 9}


def _latin_trigrams(name: str) -> set[str]:
    padded = f"  {' '.join(CJK_RUN.sub(' ', name).lower().split())} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)} if padded.strip() else set()


def _cjk_bigrams(customer: Customer) -> set[str]:
    return {g for g in customer.search_cjk or [] if len(g) == 2}


def duplicate_reasons(a: Customer, b: Customer) -> list[str]:
    reasons = []
    if " ".join(a.display_name.lower().split()) == " ".join(b.display_name.lower().split()):
        reasons.append("same_name")
    else:
        latin_a, latin_b = _latin_trigrams(a.display_name), _latin_trigrams(b.display_name)
        latin_similar = bool(latin_a and latin_b) and (
            len(latin_a & latin_b) / len(latin_a | latin_b) >= 0.45
        )
        if latin_similar or _cjk_bigrams(a) & _cjk_bigrams(b):
            reasons.append("similar_name")
    if _national_numbers(a.phones) & _national_numbers(b.phones):
        reasons.append("same_phone_number")
    if _local_parts(a.emails) & _local_parts(b.emails):
        reasons.append("same_email_local_part")
    if a.company_id is not None and a.company_id == b.company_id:
        reasons.append("same_company")
    if a.birthday is not None and a.birthday == b.birthday:
        reasons.append("same_birthday")
    return reasons


def duplicate_score(reasons: list[str]) -> float:
    remaining = 1.0
    for reason in reasons:
        remaining *= 1 - DUPLICATE_WEIGHTS[reason]
    return round(1 - remaining, 3)


async def duplicates_of(
    session: AsyncSession, customer: Customer, principal: Principal, limit: int
) -> list[tuple[Customer, float, list[str]]]:
    """Active customers of the same kind in the caller's scope that are probably the same
    person or company, best first. Candidates come from the search indexes (similar Latin
    name by trigrams, shared CJK name bigrams, phone digits, e-mail local part); the reasons
    and score are worked out per candidate."""
    await session.refresh(customer, ["search_latin", "search_cjk", "phone_digits"])
    signals: list[ColumnElement[bool]] = []
    latin = " ".join(CJK_RUN.sub(" ", customer.display_name).lower().split())
    if latin:
        signals.append(Customer.search_latin.op("%>")(latin))
    bigrams = sorted(_cjk_bigrams(customer))
    if bigrams:
        signals.append(Customer.search_cjk.overlap(bigrams))
    for number in _national_numbers(customer.phones):
        signals.append(Customer.phone_digits.like(f"%{number}%"))
    for local in _local_parts(customer.emails):
        if len(local) >= 3:
            signals.append(Customer.search_latin.like(f"%{like_escape(local)}@%"))
    if customer.company_id is not None:
        signals.append(Customer.company_id == customer.company_id)
    if not signals:
        return []
    await session.execute(
        text("SELECT set_config('pg_trgm.word_similarity_threshold', '0.5', true)")
    )
    candidates = await session.scalars(
        select(Customer)
        .where(
            Customer.id != customer.id,
            Customer.status == "active",
            Customer.kind == customer.kind,
            data_scope(principal, Customer.owner_id, Customer.team_id),
            or_(*signals),
        )
        .options(undefer(Customer.search_cjk))
        .limit(500)
    )
    found = []
    for other in candidates:
        reasons = duplicate_reasons(customer, other)
        if reasons:
            found.append((other, duplicate_score(reasons), reasons))
    found.sort(key=lambda c: (-c[1], str(c[0].id)))
    return found[:limit]
