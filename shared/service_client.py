"""Calling another part's public API: one lazily opened HTTP client, short-lived tokens.

Parts talk through events; the few synchronous calls (resolving a partner's customer,
withdrawing consent, checking a segment exists) go to the other part's public API with an
internal token minted per call, naming the caller and only the scopes the call needs.
"""

from __future__ import annotations

import httpx

from shared.auth import Principal, mint_internal_token

__all__ = ["ServiceClient"]


class ServiceClient:
    """Base of a client of one part. The ``httpx`` client opens on first use (in the running
    loop) and :meth:`close` ends it at shutdown; tests route calls elsewhere by setting
    ``transport`` (one handler) or ``mounts`` (URL prefix → transport) before the first."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self._timeout = httpx.Timeout(timeout_s)
        self.transport = transport
        self.mounts = mounts
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, transport=self.transport, mounts=self.mounts
            )
        return self._client

    def _auth(self, subject: str, scopes: frozenset[str]) -> dict[str, str]:
        """The ``Authorization`` header of one call, as service ``subject`` with ``scopes``."""
        token = mint_internal_token(
            Principal(subject=subject, kind="service", scopes=scopes), self._secret
        )
        return {"Authorization": f"Bearer {token}"}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
