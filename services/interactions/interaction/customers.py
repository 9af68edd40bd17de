"""Finding the customer of a partner event through customer360's public API.

Partner webhooks name people by e-mail or phone, and only customer360 knows who owns
those (interactions never reads its tables). ``POST /customers:resolve`` answers with the
owner, or creates a prospect when asked to. Like customer360's privacy export, the call
carries a short-lived internal service token with just the scopes it needs.

The resolver is built with the app and its HTTP client opened lazily on first use in the
running loop and closed at shutdown; the webhook handler, which only receives a session
and an event, reaches it through :func:`current_resolver`.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import httpx

from shared.service_client import ServiceClient

__all__ = ["CustomerResolver", "ResolverUnavailable", "current_resolver", "use_resolver"]

logger = logging.getLogger(__name__)

_SCOPES = frozenset({"customers:read", "customers:write"})


class ResolverUnavailable(ConnectionError):
    """customer360 could not answer (down, timing out, or answering 5xx).

    A ``ConnectionError``: a consumer whose handler meets it waits and tries again, without
    ever dead-lettering the event (as for a database that is down)."""


class CustomerResolver(ServiceClient):
    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        super().__init__(base_url, secret, timeout_s=timeout_s, mounts=mounts)
        self._attempts = attempts

    async def resolve(
        self, identity: dict[str, str], *, create: bool, display_name: str | None = None
    ) -> UUID | None:
        """The customer owning ``identity`` (``{"email": …}`` or ``{"phone": …}``); a new
        prospect when ``create``; ``None`` when nobody owns it or the value is not a valid
        e-mail/phone. Raises :class:`ResolverUnavailable` when customer360 cannot answer."""
        auth = self._auth("interactions-webhooks", _SCOPES)
        body: dict[str, object] = {**identity, "create": create}
        if display_name and create:
            body["display_name"] = display_name
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._http().post(
                    f"{self.base_url}/customers:resolve",
                    json=body,
                    headers=auth,
                )
            except httpx.HTTPError as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            else:
                if response.status_code in (200, 201):
                    return _customer_id(response)
                if response.status_code in (404, 422):
                    return None
                problem = f"customer360 answered {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    raise ResolverUnavailable(problem)  # our mistake (token, scopes): no retry
            logger.warning("resolving a customer failed (attempt %d): %s", attempt, problem)
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay *= 2
        raise ResolverUnavailable(problem)

    async def exists(self, customer_id: UUID) -> bool:
        """Whether customer360 knows ``customer_id`` (a merged-away id counts: it resolves
        to its survivor). Raises :class:`ResolverUnavailable` when it cannot answer."""
        try:
            response = await self._http().get(
                f"{self.base_url}/customers/{customer_id}",
                headers=self._auth("interactions", frozenset({"customers:read"})),
            )
        except httpx.HTTPError as exc:
            raise ResolverUnavailable(f"{exc.__class__.__name__}: {exc}") from None
        if response.status_code in (404, 410):
            return False
        if response.status_code == 200:
            return True
        raise ResolverUnavailable(f"customer360 answered {response.status_code}")


def _customer_id(response: httpx.Response) -> UUID:
    """The ``customer_id`` of a resolve answer, which must be a JSON object naming a UUID:
    anything else is customer360 failing, not a customer."""
    try:
        body = response.json()
        return UUID(str(body["customer_id"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ResolverUnavailable(
            f"customer360 answered {response.status_code} without a valid customer_id"
        ) from exc


_current: CustomerResolver | None = None


def use_resolver(resolver: CustomerResolver) -> None:
    """Make ``resolver`` the one the webhook handler uses (the app factory calls this)."""
    global _current
    _current = resolver


def current_resolver() -> CustomerResolver:
    if _current is None:
        raise RuntimeError("no customer resolver configured: build the app first")
    return _current
