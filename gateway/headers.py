"""Security response headers on everything the gateway answers (OWASP REST Security).

* ``X-Content-Type-Options: nosniff`` — a browser never guesses a JSON answer (or a problem
  echoing a caller's input) to be HTML or script;
* ``X-Frame-Options: DENY`` and ``Content-Security-Policy: frame-ancestors 'none'`` — no page
  frames the API or its docs (clickjacking);
* ``Cache-Control: no-store`` on ``/api/v1`` answers that set no caching policy of their own —
  they carry personal data for one principal, which no shared or browser cache should keep.

A header the answer already carries (from a service, or a route) is left as it is.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.routes import PUBLIC_PREFIX

__all__ = ["SecurityHeadersMiddleware"]

_ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
_NO_STORE = (b"cache-control", b"no-store")
_API = PUBLIC_PREFIX + "/"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith(_API)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _ALWAYS if h[0] not in present)
                if api and _NO_STORE[0] not in present:
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
