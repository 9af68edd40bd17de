"""The 401 problem of the gateway's authentication, with its RFC 6750 challenge."""

from __future__ import annotations

from shared.errors import Unauthorized

__all__ = ["header_safe", "invalid_token"]


def header_safe(text: str) -> str:
    """``text`` made safe for a quoted-string in ``WWW-Authenticate``."""
    return "".join(c for c in text if c not in '"\\' and 32 <= ord(c) < 127)


def invalid_token(detail: str, *, error: str = "invalid_token") -> Unauthorized:
    """A 401 problem whose ``WWW-Authenticate`` challenge says why (RFC 6750 §3):
    ``invalid_token`` for a bad credential, ``invalid_request`` for a malformed header."""
    challenge = (
        f'Bearer realm="rapport", error="{error}", error_description="{header_safe(detail)}"'
    )
    return Unauthorized(detail, headers={"WWW-Authenticate": challenge})
