"""Where campaign messages go: e-mail over SMTP (aiosmtplib), SMS and partner channels as a
signed HTTP POST to a provider. Both sort failures into temporary (retried with backoff) and
permanent (the message is ``failed``), and a token bucket paces each provider.

Failure classes::

    DeliveryError
    ├── TemporaryFailure   SMTP 4xx, connection errors and timeouts, HTTP 429 / 5xx
    └── PermanentFailure   SMTP 5xx, HTTP 4xx, no provider configured
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib
import httpx

from services.interactions.config import Settings
from shared import standard_webhooks

__all__ = [
    "DeliveryError",
    "EmailProvider",
    "HttpProvider",
    "Outgoing",
    "PermanentFailure",
    "TemporaryFailure",
    "TokenBucket",
]


class DeliveryError(Exception):
    pass


class TemporaryFailure(DeliveryError):
    pass


class PermanentFailure(DeliveryError):
    pass


@dataclass(frozen=True)
class Outgoing:
    id: uuid.UUID
    campaign_id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    address: str
    subject: str
    body: str
    html: str | None = None
    unsubscribe_url: str = ""


class TokenBucket:
    """At most ``rate`` takes per second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def _is_temporary(code: int) -> bool:
    return 400 <= code < 500


class EmailProvider:
    """One SMTP connection per sending task, kept open between messages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        _, address = parseaddr(settings.smtp_from)
        self.domain = address.rpartition("@")[2] or "rapport.invalid"

    def client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            timeout=s.smtp_timeout_s,
        )

    def message_id(self, message_id: uuid.UUID) -> str:
        """Stable per campaign message: a retried message is recognisably the same one."""
        return f"<{message_id}@{self.domain}>"

    def build(self, out: Outgoing) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.settings.smtp_from
        mail["To"] = out.address
        mail["Subject"] = out.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = self.message_id(out.id)
        mail["X-Rapport-Campaign"] = str(out.campaign_id)
        if out.unsubscribe_url:
            # RFC 2369 and RFC 8058 one-click: mail clients offer "unsubscribe" themselves.
            mail["List-Unsubscribe"] = f"<{out.unsubscribe_url}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(out.body)
        if out.html is not None:
            mail.add_alternative(out.html, subtype="html")
        return mail

    async def send(self, smtp: aiosmtplib.SMTP, out: Outgoing) -> None:
        try:
            if not smtp.is_connected:
                await smtp.connect()
            await smtp.send_message(self.build(out))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            error = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            if all(_is_temporary(c) for c in codes):
                raise TemporaryFailure(error) from None
            raise PermanentFailure(error) from None
        except aiosmtplib.SMTPResponseException as exc:
            await _close(smtp)
            if _is_temporary(exc.code):
                raise TemporaryFailure(f"{exc.code} {exc.message}") from None
            raise PermanentFailure(f"{exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await _close(smtp)
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from None


async def _close(smtp: aiosmtplib.SMTP) -> None:
    if smtp.is_connected:
        with contextlib.suppress(Exception):  # the connection is being dropped anyway
            smtp.close()


class HttpProvider:
    """SMS and partner channels: ``POST`` the rendered message as JSON to the provider,
    signed with Standard Webhooks headers (``webhook-id`` = the campaign message id, so the
    provider can drop a repeat)."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.url = settings.campaign_provider_url
        self.secret = settings.campaign_provider_secret
        self.client = client

    async def send(self, out: Outgoing) -> None:
        if not self.url:
            raise PermanentFailure("no provider configured (INTERACTIONS_CAMPAIGN_PROVIDER_URL)")
        body = json.dumps(
            {
                "id": str(out.id),
                "campaign_id": str(out.campaign_id),
                "customer_id": str(out.customer_id),
                "channel": out.channel,
                "to": out.address,
                "subject": out.subject,
                "body": out.body,
            },
            separators=(",", ":"),
        ).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": str(out.id),
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_webhooks.sign(self.secret, str(out.id), timestamp, body),
        }
        try:
            response = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TemporaryFailure(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentFailure(f"HTTP {response.status_code}: {response.text[:200]}")
