"""Signed tracking links of campaign messages: the open pixel, click redirects and the
unsubscribe link.

A link is ``<base>/<token>``; the token is ``base64url(message id (16 bytes) ‖ kind (1 byte)
‖ link index (2 bytes) ‖ HMAC-SHA256(secret, those 19 bytes)[:16])`` — nothing to store,
nothing to guess: a forged or altered token fails the HMAC. A click token names the
*position* of a URL among the URLs written in the campaign's body template, never the URL
itself, so the redirect can only go where the template pointed (no open redirect).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
import uuid
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BadLink",
    "Link",
    "Tracker",
    "template_urls",
]

Kind = Literal["open", "click", "unsubscribe"]
_CODES: dict[Kind, bytes] = {"open": b"o", "click": b"c", "unsubscribe": b"u"}
_KINDS: dict[bytes, Kind] = {v: k for k, v in _CODES.items()}
_MAC_BYTES = 16
_PAYLOAD_BYTES = 19

#: http(s) URLs in text; template expressions (``{{``) end a URL.
_URL = re.compile(r"https?://[^\s<>\"'{}]+[^\s<>\"'{}.,;:!?)]")

#: A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class BadLink(ValueError):
    """Not a token this service signed."""


@dataclass(frozen=True)
class Link:
    message_id: uuid.UUID
    kind: Kind
    index: int = 0


def template_urls(body_template: str) -> list[str]:
    """The distinct URLs written in a body template, in order: what clicks may go to."""
    return list(dict.fromkeys(_URL.findall(body_template)))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Tracker:
    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = secret.encode()

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)

    def token(self, link: Link) -> str:
        payload = link.message_id.bytes + _CODES[link.kind] + link.index.to_bytes(2, "big")
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return _b64(payload + mac)

    def url(self, link: Link) -> str:
        return f"{self.base_url}/{self.token(link)}"

    def verify(self, token: str) -> Link:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise BadLink(token) from None
        if len(raw) != _PAYLOAD_BYTES + _MAC_BYTES:
            raise BadLink(token)
        payload, mac = raw[:_PAYLOAD_BYTES], raw[_PAYLOAD_BYTES:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, expected) or payload[16:17] not in _KINDS:
            raise BadLink(token)
        return Link(
            uuid.UUID(bytes=payload[:16]),
            _KINDS[payload[16:17]],
            int.from_bytes(payload[17:19], "big"),
        )

    def unsubscribe_url(self, message_id: uuid.UUID) -> str:
        return self.url(Link(message_id, "unsubscribe")) if self.enabled else ""

    def decorate(
        self, message_id: uuid.UUID, body_template: str, body: str, *, html_part: bool
    ) -> tuple[str, str | None]:
        """The rendered ``body`` with its template's URLs turned into click links, and (for
        e-mail) an HTML alternative carrying the open pixel. Unchanged when tracking is off."""
        if not self.enabled:
            return body, None
        urls = template_urls(body_template)
        positions = {url: i for i, url in enumerate(urls)}

        def click(match: re.Match[str]) -> str:
            index = positions.get(match.group(0))
            if index is None:  # personalised or not from the template: left alone
                return match.group(0)
            return self.url(Link(message_id, "click", index))

        text = _URL.sub(click, body)
        if not html_part:
            return text, None
        linked = _URL.sub(
            lambda m: f'<a href="{html.escape(m.group(0))}">{html.escape(m.group(0))}</a>',
            html.escape(text, quote=False),
        )
        pixel = self.url(Link(message_id, "open"))
        page = (
            '<html><body><div style="white-space: pre-wrap">'
            + linked
            + f'</div><img src="{pixel}" width="1" height="1" alt=""></body></html>'
        )
        return text, page
