"""Withdrawing marketing consent in customer360, through its public API.

An unsubscribe is recorded here first (the message's ``unsubscribed_at`` and the recipient
projection), then sent to customer360 as a JSON Merge Patch of the profile's ``consent``
with a short-lived internal token (the resolver's way). A call that fails leaves the
message's ``consent_synced_at`` empty and the campaign sender tries again on its next pass,
so an unsubscribe is never lost to a customer360 outage.
"""

from __future__ import annotations

import logging
from uuid import UUID

import httpx

from shared.auth import Principal, mint_internal_token

__all__ = ["CONSENT_KEY", "ConsentClient", "ConsentUnavailable"]

logger = logging.getLogger(__name__)

#: The profile's consent key each campaign channel withdraws.
CONSENT_KEY = {"email": "email", "sms": "sms", "webhook": "phone"}


class ConsentUnavailable(Exception):
    """customer360 did not take the change (down, timing out, 5xx)."""


class ConsentClient:
    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self._timeout = httpx.Timeout(timeout_s)
        #: Tests put an ``httpx.MockTransport`` (or customer360 in-process) here.
        self.transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, transport=self.transport)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def withdraw(self, customer_id: UUID, channel: str) -> None:
        """Consent on ``channel``'s key withdrawn in customer360 (``source: unsubscribe``).
        A customer that no longer exists there (erased, merged away) is done, not an error."""
        token = mint_internal_token(
            Principal(
                subject="interactions-campaigns",
                kind="service",
                scopes=frozenset({"customers:read", "customers:write"}),
            ),
            self._secret,
        )
        body = {"consent": {CONSENT_KEY[channel]: {"granted": False, "source": "unsubscribe"}}}
        try:
            response = await self._http().patch(
                f"{self.base_url}/customers/{customer_id}",
                json=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/merge-patch+json",
                },
            )
        except httpx.HTTPError as exc:
            raise ConsentUnavailable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code == 404:
            logger.info("unsubscribe of %s: customer360 no longer knows them", customer_id)
            return
        if response.status_code >= 300:
            raise ConsentUnavailable(f"HTTP {response.status_code}: {response.text[:200]}")
