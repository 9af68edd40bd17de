"""Who placed a partner order: customer360's ``POST /customers:resolve``, over HTTP.

Like customer360's privacy export calling the other services, this is one of the few
synchronous calls between parts, on purpose: a partner order carries only the shop's
customer id, e-mail or phone, and orders may not read customer360's tables. The call is
authenticated with a short-lived service token; it creates a prospect when nobody matches,
and is safe to repeat (resolving the same keys twice gives the same customer).

Failures: customer360 refusing the keys (``422``, e.g. a malformed phone) is the partner's
mistake — :class:`CustomerNotResolved`, reported as a failed webhook. customer360
unreachable or failing (network error, ``5xx``, ``401``/``403`` from a misconfigured secret)
is :class:`CustomerServiceUnavailable`, a ``ConnectionError``: the consumer treats it as
infrastructure and retries without dead-lettering, so no partner order is lost meanwhile.
"""

from __future__ import annotations

from uuid import UUID

import httpx

from services.orders.config import Settings
from services.orders.partner.schemas import PartnerCustomer
from shared.service_client import ServiceClient

__all__ = ["CustomerNotResolved", "CustomerResolver", "CustomerServiceUnavailable"]

_SCOPES = frozenset({"customers:read", "customers:write"})


class CustomerNotResolved(Exception):
    """customer360 refused the identity keys (the partner's data is at fault)."""


class CustomerServiceUnavailable(ConnectionError):
    """customer360 could not answer; try again later."""


class CustomerResolver(ServiceClient):
    """One HTTP client for the life of the app (opened on first use, closed at shutdown).

    ``transport`` routes the calls elsewhere (tests run customer360 in-process)."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(
            settings.customer360_url,
            settings.internal_token_secret,
            timeout_s=settings.customer360_timeout_s,
            transport=transport,
        )

    async def resolve(self, source: str, customer: PartnerCustomer) -> UUID:
        """The customer owning the shop's customer id, e-mail or phone (a new prospect if
        nobody does)."""
        body: dict[str, object] = {}
        if customer.email:
            body["email"] = customer.email
        if customer.phone:
            body["phone"] = customer.phone
        if customer.id:
            body["external_id"] = {"system": source, "id": customer.id}
        if customer.name:
            body["display_name"] = customer.name
        try:
            response = await self._http().post(
                f"{self.base_url}/customers:resolve",
                json=body,
                headers=self._auth(f"orders:partner:{source}", _SCOPES),
            )
        except httpx.TransportError as exc:
            raise CustomerServiceUnavailable(
                f"customer360 unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code in (200, 201):
            try:
                return UUID(str(response.json()["customer_id"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise CustomerServiceUnavailable(
                    f"customer360 answered {response.status_code} without a valid customer_id"
                ) from exc
        if response.status_code in (400, 404, 422):
            try:
                detail = response.json().get("detail") or response.text
            except ValueError:
                detail = response.text
            raise CustomerNotResolved(f"customer360 refused the customer: {detail}"[:500])
        raise CustomerServiceUnavailable(f"customer360 answered {response.status_code}")
