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

from shared.service_client import ServiceClient

__all__ = ["CONSENT_KEY", "ConsentClient", "ConsentUnavailable"]

logger = logging.getLogger(__name__)

_SCOPES = frozenset({"customers:read", "customers:write"})

#: The profile's consent key each campaign channel withdraws.
CONSENT_KEY = {"email": "email", "sms": "sms", "webhook": "phone"}


class ConsentUnavailable(Exception):
    """customer360 did not take the change (down, timing out, 5xx)."""


class ConsentClient(ServiceClient):
    async def withdraw(self, customer_id: UUID, channel: str) -> None:
        """Consent on ``channel``'s key withdrawn in customer360 (``source: unsubscribe``).
        A customer that no longer exists there (erased, merged away) is done, not an error."""
        body = {"consent": {CONSENT_KEY[channel]: {"granted": False, "source": "unsubscribe"}}}
        try:
            response = await self._http().patch(
                f"{self.base_url}/customers/{customer_id}",
                json=body,
                headers={
                    **self._auth("interactions-campaigns", _SCOPES),
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
