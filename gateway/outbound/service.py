"""Managing outbound endpoints: who may subscribe to what, secrets, replays and retries."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from cryptography.fernet import Fernet
from sqlalchemy import Select, Uuid, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import (
    OutboundAttempt,
    OutboundDelivery,
    OutboundEndpoint,
    OutboundMessage,
    OutboundSecret,
)
from gateway.outbound.policy import matches
from gateway.outbound.safety import AddressPolicy, UnsafeAddress
from gateway.outbound.schemas import EndpointCreate, EndpointUpdate
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.events import (
    CUSTOMER_TOPIC,
    INTERACTION_TOPIC,
    ORDER_TOPIC,
    SEGMENT_TOPIC,
    registered_events,
)
from shared.pagination import CursorParams, paginate
from shared.standard_webhooks import generate_secret

__all__ = [
    "OUTBOUND_TOPICS",
    "SecretBox",
    "can_manage_all",
    "create_endpoint",
    "endpoints_of",
    "list_attempts",
    "list_deliveries",
    "live_secrets",
    "replay_since",
    "retry_message",
    "rotate_secret",
    "update_endpoint",
    "visible_endpoint",
]

#: What reading a topic's events needs: the scopes that reading the same data by API needs.
_TOPIC_SCOPES: dict[str, tuple[str, ...]] = {
    CUSTOMER_TOPIC: ("customers:read", "customers:pii"),
    INTERACTION_TOPIC: ("interactions:read",),
    ORDER_TOPIC: ("orders:read",),
    SEGMENT_TOPIC: ("segments:read",),
}
#: The topics partners may subscribe to (raw partner webhooks are not re-published).
OUTBOUND_TOPICS: tuple[str, ...] = tuple(_TOPIC_SCOPES)


class SecretBox:
    """Encrypts endpoint secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256).

    Secrets must be recoverable to sign, so they are encrypted, not hashed. Without a key
    (development) one is derived from ``fallback`` (the dev JWT secret).
    """

    def __init__(self, key: str, fallback: str) -> None:
        raw = (
            key.encode()
            if key
            else base64.urlsafe_b64encode(
                hashlib.sha256(b"rapport-outbound:" + fallback.encode()).digest()
            )
        )
        self._fernet = Fernet(raw)

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, token: bytes) -> str:
        return self._fernet.decrypt(token).decode()


def can_manage_all(principal: Principal) -> bool:
    return principal.has("webhooks:write")


def _check_types(principal: Principal, patterns: list[str]) -> None:
    wanted = [e for e in registered_events() if matches(patterns, e.event_type)]
    for pattern in patterns:
        if not any(matches([pattern], e.event_type) for e in wanted):
            raise UnprocessableEntity(
                f"{pattern!r} matches no event type Rapport publishes to partners",
                errors=[{"pointer": "/body/event_types", "detail": f"{pattern!r} matches nothing"}],
            )
    topics = {e.topic for e in wanted}
    if not topics <= set(OUTBOUND_TOPICS):
        raise UnprocessableEntity(
            "partner webhooks are not re-published; subscribe to rapport.customer.*, "
            "rapport.interaction.*, rapport.order.* or rapport.segment.* events",
            errors=[
                {"pointer": "/body/event_types", "detail": "includes rapport.webhook.* events"}
            ],
        )
    missing = sorted({s for t in topics for s in _TOPIC_SCOPES[t] if not principal.has(s)})
    if missing:
        raise Forbidden(
            f"subscribing to these events needs scope(s) {', '.join(missing)}",
            missing_scopes=missing,
        )


async def _check_url(policy: AddressPolicy, url: str) -> None:
    try:
        await policy.check_resolves(url)
    except (ValueError, UnsafeAddress) as exc:
        raise UnprocessableEntity(
            f"the endpoint URL is not allowed: {exc}",
            errors=[{"pointer": "/body/url", "detail": str(exc)}],
        ) from None


async def create_endpoint(
    session: AsyncSession,
    box: SecretBox,
    policy: AddressPolicy,
    principal: Principal,
    body: EndpointCreate,
) -> tuple[OutboundEndpoint, str]:
    _check_types(principal, body.event_types)
    await _check_url(policy, body.url)
    endpoint = OutboundEndpoint(
        owner=principal.subject,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        segment_id=body.segment_id,
        enabled=body.enabled,
    )
    session.add(endpoint)
    await session.flush()
    secret = generate_secret()
    session.add(OutboundSecret(endpoint_id=endpoint.id, ciphertext=box.seal(secret)))
    await session.flush()
    await session.refresh(endpoint)
    return endpoint, secret


async def visible_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: UUID
) -> OutboundEndpoint:
    """The endpoint if it exists and ``principal`` owns it (or manages all): else 404."""
    endpoint = await session.get(OutboundEndpoint, endpoint_id)
    if endpoint is None or not (can_manage_all(principal) or endpoint.owner == principal.subject):
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
    return endpoint


def endpoints_of(principal: Principal) -> Select[Any]:
    statement = select(OutboundEndpoint)
    if not can_manage_all(principal):
        statement = statement.where(OutboundEndpoint.owner == principal.subject)
    return statement


async def update_endpoint(
    session: AsyncSession,
    policy: AddressPolicy,
    principal: Principal,
    endpoint: OutboundEndpoint,
    patch: EndpointUpdate,
) -> OutboundEndpoint:
    changes = patch.model_dump(exclude_unset=True)
    if changes.get("event_types") is not None:
        _check_types(principal, changes["event_types"])
    if changes.get("url") is not None:
        await _check_url(policy, changes["url"])
    for name in ("url", "event_types"):
        if name in changes and changes[name] is None:
            raise UnprocessableEntity(
                f"{name} cannot be null", errors=[{"pointer": f"/body/{name}", "detail": "null"}]
            )
    if changes.get("enabled") is True and not endpoint.enabled:
        endpoint.disabled_reason = endpoint.disabled_at = endpoint.failing_since = None
    if changes.get("enabled") is False and endpoint.enabled:
        endpoint.disabled_reason, endpoint.disabled_at = "disabled by its owner", func.now()
    for name, value in changes.items():
        setattr(endpoint, name, value)
    endpoint.updated_at = func.now()
    await session.flush()
    await session.refresh(endpoint)
    return endpoint


async def rotate_secret(
    session: AsyncSession, box: SecretBox, endpoint: OutboundEndpoint, overlap_s: int
) -> tuple[str, datetime]:
    """A new secret; the current ones keep signing for ``overlap_s`` seconds."""
    until = datetime.now(UTC) + timedelta(seconds=overlap_s)
    await session.execute(
        update(OutboundSecret)
        .where(
            OutboundSecret.endpoint_id == endpoint.id,
            or_(OutboundSecret.expires_at.is_(None), OutboundSecret.expires_at > until),
        )
        .values(expires_at=until)
    )
    secret = generate_secret()
    session.add(OutboundSecret(endpoint_id=endpoint.id, ciphertext=box.seal(secret)))
    await session.flush()
    return secret, until


async def live_secrets(
    session: AsyncSession, box: SecretBox, endpoint_ids: list[UUID]
) -> dict[UUID, list[str]]:
    rows = await session.execute(
        select(OutboundSecret.endpoint_id, OutboundSecret.ciphertext)
        .where(
            OutboundSecret.endpoint_id.in_(endpoint_ids),
            or_(OutboundSecret.expires_at.is_(None), OutboundSecret.expires_at > func.now()),
        )
        .order_by(OutboundSecret.created_at.desc())
    )
    secrets: dict[UUID, list[str]] = {}
    for endpoint_id, ciphertext in rows:
        secrets.setdefault(endpoint_id, []).append(box.open(ciphertext))
    return secrets


def _requeue(endpoint_id: UUID, message_ids: list[str]) -> Any:
    """Queue deliveries of ``message_ids`` to the endpoint, in creation order; a delivery
    that exists and is finished goes back in the queue, one pending or in flight is left."""
    source = (
        select(literal(endpoint_id, Uuid), OutboundMessage.id, OutboundMessage.customer_id)
        .where(OutboundMessage.id.in_(message_ids), OutboundMessage.erased.is_(False))
        .order_by(OutboundMessage.created_at, OutboundMessage.id)
    )
    return (
        pg_insert(OutboundDelivery)
        .from_select(["endpoint_id", "message_id", "customer_id"], source)
        .on_conflict_do_update(
            index_elements=["endpoint_id", "message_id"],
            set_={
                "status": "pending",
                "next_attempt_at": func.now(),
                "attempts": 0,
                "finished_at": None,
                "lease_until": None,
            },
            where=OutboundDelivery.status.in_(("succeeded", "failed", "cancelled")),
        )
        .returning(OutboundDelivery.seq)
    )


async def replay_since(session: AsyncSession, endpoint: OutboundEndpoint, since: datetime) -> int:
    """Queue again every message since ``since`` the endpoint subscribes to (now), in the
    order they were created. Erased messages are not sent again."""
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled: enable it first", reason=endpoint.disabled_reason)
    candidates = (
        await session.execute(
            select(OutboundMessage.id, OutboundMessage.event_type)
            .where(OutboundMessage.created_at >= since, OutboundMessage.erased.is_(False))
            .order_by(OutboundMessage.created_at, OutboundMessage.id)
        )
    ).all()
    wanted = [m for m, t in candidates if matches(endpoint.event_types, t)]
    if not wanted:
        return 0
    queued = 0
    for start in range(0, len(wanted), 5_000):
        rows = await session.execute(_requeue(endpoint.id, wanted[start : start + 5_000]))
        queued += len(rows.all())
    return queued


async def retry_message(
    session: AsyncSession, endpoint: OutboundEndpoint, message_id: str
) -> OutboundDelivery:
    message = await session.get(OutboundMessage, message_id)
    if message is None or not matches(endpoint.event_types, message.event_type):
        raise NotFound(f"message {message_id} was not sent to this endpoint")
    if message.erased:
        raise Conflict("this message was erased with its customer; it cannot be sent again")
    await session.execute(_requeue(endpoint.id, [message_id]))
    delivery = await session.scalar(
        select(OutboundDelivery).where(
            OutboundDelivery.endpoint_id == endpoint.id,
            OutboundDelivery.message_id == message_id,
        )
    )
    assert delivery is not None
    await session.refresh(delivery)
    return delivery


async def list_attempts(
    session: AsyncSession,
    endpoint: OutboundEndpoint,
    params: CursorParams,
    *,
    event_type: str | None,
    outcome: str | None,
    message_id: str | None,
) -> tuple[list[OutboundAttempt], str | None]:
    statement = select(OutboundAttempt).where(OutboundAttempt.endpoint_id == endpoint.id)
    if event_type is not None:
        statement = statement.where(OutboundAttempt.event_type == event_type)
    if outcome is not None:
        statement = statement.where(OutboundAttempt.outcome == outcome)
    if message_id is not None:
        statement = statement.where(OutboundAttempt.message_id == message_id)
    return await paginate(
        session,
        statement,
        keys=[OutboundAttempt.id],
        key_of=lambda a: (a.id,),
        params=params,
        descending=True,
    )


async def list_deliveries(
    session: AsyncSession,
    endpoint: OutboundEndpoint,
    params: CursorParams,
    *,
    status: str | None,
) -> tuple[list[OutboundDelivery], str | None]:
    statement = select(OutboundDelivery).where(OutboundDelivery.endpoint_id == endpoint.id)
    if status is not None:
        statement = statement.where(OutboundDelivery.status == status)
    return await paginate(
        session,
        statement,
        keys=[OutboundDelivery.seq],
        key_of=lambda d: (d.seq,),
        params=params,
        descending=True,
    )
