"""The Standard Webhooks signature scheme (https://www.standardwebhooks.com/), both ways.

A message is signed as ``v1,<base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))>`` where
``key`` is the base64 part of a ``whsec_…`` secret; the ``webhook-signature`` header may carry
several space-separated signatures (one per valid secret during a rotation). Receivers refuse
timestamps more than a tolerance away from now, which with the unique ``webhook-id`` stops
replays. Used by the gateway's front door (verify) and outbound webhooks (sign).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

__all__ = [
    "SECRET_PREFIX",
    "SignatureError",
    "generate_secret",
    "sign",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


class SignatureError(ValueError):
    """The message is not signed by any of the secrets, or is stale."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secrets_: Iterable[str],
    msg_id: str,
    timestamp: str,
    signature_header: str,
    body: bytes,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless one signature matches one secret, in time."""
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not a Unix time in seconds") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise SignatureError(f"webhook-timestamp is more than {tolerance_s}s from now")
    offered = [
        part.split(",", 1)[1].encode()
        for part in signature_header.split()
        if part.startswith("v1,") and "," in part
    ]
    if not offered:
        raise SignatureError("webhook-signature carries no v1 signature")
    for secret in secrets_:
        expected = sign(secret, msg_id, ts, body).split(",", 1)[1].encode()
        # Compare against every offered signature: constant time per comparison.
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise SignatureError("no signature matches")
