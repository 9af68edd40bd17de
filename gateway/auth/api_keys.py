"""API keys for partners and scripts: their format, and creating, checking and revoking them.

Format (55 characters, all ASCII)::

    rpk_<key_id>_<secret><checksum>
    rpk_4fXk2Qp9LmZa_EXAMPLEexampleEXAMPLEexample00003oy2Ja

* ``rpk_`` — fixed prefix, so secret scanners (and people) recognise a Rapport key;
* ``key_id`` — 12 random base62 characters (~71 bits): public, stored in clear, finds the row;
* ``_`` — separator;
* ``secret`` — 32 random base62 characters (~190 bits, from :mod:`secrets`);
* ``checksum`` — 6 base62 characters: CRC32 of ``rpk_<key_id>_<secret>`` (everything before
  it, ASCII) written in base62, most significant digit first, left-padded with ``0``.

Base62 is ``0-9A-Za-z`` (digits, then upper case, then lower case), so a key is one "word"
for double-click selection. The checksum (as in GitHub's tokens) lets a scanner tell a real
key from random text offline and rejects typos without a database round-trip; it is no
secret and no signature.

Only ``SHA-256(secret)`` is stored (``ApiKey.secret_hash``), compared with
:func:`hmac.compare_digest`. The secret is random with ~190 bits, so a fast unsalted hash is
the right tool (a password hash would only slow down every request). The full key is shown
once, in the response to its creation.

Checking a key verifies the secret first, and only then reports ``revoked`` or ``expired``,
so a caller learns a key's state only by holding the key. ``last_used_at`` is written at
most once a minute per key (a conditional ``UPDATE``), never once per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.errors import invalid_token
from gateway.auth.repository import ApiKeyRepository
from gateway.auth.roles import ROLE_SCOPES, data_scope_for_roles
from gateway.auth.schemas import ApiKeyCreate
from gateway.models import ApiKey
from shared.auth import Principal

__all__ = [
    "API_KEY_PATTERN",
    "API_KEY_PREFIX",
    "LAST_USED_INTERVAL",
    "GeneratedApiKey",
    "ParsedApiKey",
    "authenticate_api_key",
    "create_api_key",
    "generate_api_key",
    "hash_secret",
    "parse_api_key",
    "principal_for_api_key",
    "revoke_api_key",
]

API_KEY_PREFIX = "rpk_"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
#: What a Rapport API key looks like (for secret scanners, too).
API_KEY_PATTERN = re.compile(
    rf"^rpk_([0-9A-Za-z]{{{KEY_ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})"
    rf"([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})$"
)
#: ``last_used_at`` is updated at most this often per key.
LAST_USED_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ParsedApiKey:
    key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class GeneratedApiKey:
    key: str
    key_id: str
    secret_hash: bytes


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def checksum(body: str) -> str:
    """The 6 base62 characters of CRC32 over ``body`` (``rpk_<key_id>_<secret>``)."""
    value = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def generate_api_key() -> GeneratedApiKey:
    key_id = _random_base62(KEY_ID_LENGTH)
    secret = _random_base62(SECRET_LENGTH)
    body = f"{API_KEY_PREFIX}{key_id}_{secret}"
    return GeneratedApiKey(
        key=body + checksum(body), key_id=key_id, secret_hash=hash_secret(secret)
    )


def looks_like_api_key(credential: str) -> bool:
    """Whether ``credential`` is meant as an API key (it may still be malformed)."""
    return credential.startswith(API_KEY_PREFIX)


def parse_api_key(raw: str) -> ParsedApiKey:
    """Split a key into its parts; a 401 for anything malformed or with a wrong checksum.

    Needs no database: a typo or a random string is refused here."""
    match = API_KEY_PATTERN.match(raw)
    if match is None:
        raise invalid_token("malformed API key (expected rpk_<key id>_<secret>)")
    key_id, secret, given = match.groups()
    if not hmac.compare_digest(given, checksum(raw[:-CHECKSUM_LENGTH])):
        raise invalid_token("API key checksum mismatch (the key was mistyped or truncated)")
    return ParsedApiKey(key_id=key_id, secret=secret)


def principal_for_api_key(api_key: ApiKey) -> Principal:
    """The caller an API key acts as.

    Scopes are the key's stored scopes *within the role's current scopes*: taking a scope
    away from a role takes it away from existing keys too. Data scope is the role's default
    (keys carry no team)."""
    scopes = frozenset(api_key.scopes) & ROLE_SCOPES.get(api_key.role, frozenset())
    return Principal(
        subject=f"api_key:{api_key.key_id}",
        kind="api_key",
        scopes=scopes,
        roles=(api_key.role,),
        name=api_key.name,
        scope_mode=data_scope_for_roles([api_key.role]),
        team=None,
    )


async def create_api_key(
    session: AsyncSession, data: ApiKeyCreate, *, created_by: str
) -> tuple[ApiKey, str]:
    """Store a new key; returns the row and the full key (to show once)."""
    generated = generate_api_key()
    scopes = data.scopes if data.scopes is not None else sorted(ROLE_SCOPES[data.role])
    api_key = await ApiKeyRepository(session).add(
        ApiKey(
            key_id=generated.key_id,
            secret_hash=generated.secret_hash,
            name=data.name,
            role=data.role,
            scopes=scopes,
            created_by=created_by,
            expires_at=data.expires_at,
        )
    )
    return api_key, generated.key


async def revoke_api_key(session: AsyncSession, api_key: ApiKey, *, revoked_by: str) -> ApiKey:
    """Revoke ``api_key``; revoking a revoked key changes nothing (keeps the first record)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = datetime.now(UTC)
        api_key.revoked_by = revoked_by
        await session.flush()
    return api_key


async def authenticate_api_key(
    session: AsyncSession, parsed: ParsedApiKey, *, now: datetime
) -> ApiKey:
    """The active key ``parsed`` names, with its ``last_used_at`` refreshed (at most once a
    minute); a 401 problem for an unknown, wrong, revoked or expired key."""
    repository = ApiKeyRepository(session)
    api_key = await repository.get_by_key_id(parsed.key_id)
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_secret(parsed.secret)):
        raise invalid_token("invalid API key")
    if api_key.revoked_at is not None:
        raise invalid_token(f"API key revoked at {api_key.revoked_at.isoformat()}")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise invalid_token(f"API key expired at {api_key.expires_at.isoformat()}")
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_INTERVAL:
        await repository.touch(api_key.id, now=now, min_interval=LAST_USED_INTERVAL)
    return api_key
