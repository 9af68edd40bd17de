"""Per-principal rate limits: a token bucket per caller, advertised with the IETF headers.

Why a token bucket: it allows the bursts a UI makes when a page opens (up to the whole
minute's quota at once) while holding the long-run rate to the role's limit, and it needs two
floats per caller and no timers. The limit is requests per minute by role
(``settings.rate_limits``); a principal with several roles gets the highest, one without a
listed role gets ``default``.

Every answer to an authenticated ``/api/v1`` request carries the fields of
draft-ietf-httpapi-ratelimit-headers (structured fields, RFC 9651)::

    RateLimit-Policy: "sales";q=1200;w=60
    RateLimit: "sales";r=1199;t=0

``q`` is the quota per window ``w`` (seconds), ``r`` the requests left now, ``t`` the
seconds until more quota is available: 0 while ``r`` > 0 (the bucket refills continuously),
else the wait for the next request (draft -10 wording). A 429 also carries ``Retry-After``.

The buckets live in this process. With N gateway replicas each keeps its own, so a caller
spread evenly by the load balancer may make up to N times its limit: configure the per-replica
limit as limit / N, or move the buckets to a shared store (Redis) when that matters. Idle
buckets are dropped once they have refilled, which is indistinguishable from keeping them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Decision", "Policy", "RateLimiter"]

#: Every quota is per minute.
WINDOW_S = 60
#: How often (at most) idle, refilled buckets are dropped.
_SWEEP_EVERY_S = 60.0

Header = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Policy:
    """A quota: ``quota`` requests per ``window_s`` seconds, named after the role."""

    name: str
    quota: int
    window_s: int = WINDOW_S

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.quota / self.window_s

    @property
    def header(self) -> Header:
        return (b"ratelimit-policy", f'"{self.name}";q={self.quota};w={self.window_s}'.encode())


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    #: Seconds until more quota is available (the ``t`` parameter).
    reset_s: int
    #: Seconds a refused caller should wait (``Retry-After``); 0 when allowed.
    retry_after_s: int
    #: ``RateLimit-Policy`` and ``RateLimit`` (and ``Retry-After`` when refused).
    headers: list[Header]

    def as_dict(self) -> dict[str, str]:
        return {name.decode(): value.decode() for name, value in self.headers}


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """Token buckets keyed by principal; ``limits`` maps role → requests per minute."""

    def __init__(
        self,
        limits: Mapping[str, int],
        *,
        default_role: str = "default",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if default_role not in limits:
            raise ValueError(f"rate_limits needs a {default_role!r} entry")
        self._policies = {role: Policy(role, quota) for role, quota in limits.items()}
        self._default = self._policies[default_role]
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._next_sweep = clock() + _SWEEP_EVERY_S

    def policy_for(self, roles: Iterable[str]) -> Policy:
        """The highest quota among ``roles`` that have one; ``default`` otherwise."""
        best: Policy | None = None
        for role in roles:
            policy = self._policies.get(role)
            if policy is not None and (best is None or policy.quota > best.quota):
                best = policy
        return best or self._default

    def acquire(self, key: str, policy: Policy) -> Decision:
        """Take one token from ``key``'s bucket (created full) and say whether that worked."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        capacity = float(policy.quota)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * policy.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            remaining = int(bucket.tokens)
            reset_s = 0 if remaining > 0 else math.ceil((1.0 - bucket.tokens) / policy.rate)
            state = f'"{policy.name}";r={remaining};t={reset_s}'.encode()
            return Decision(True, remaining, reset_s, 0, [policy.header, (b"ratelimit", state)])
        wait = max(1, math.ceil((1.0 - bucket.tokens) / policy.rate))
        state = f'"{policy.name}";r=0;t={wait}'.encode()
        headers = [policy.header, (b"ratelimit", state), (b"retry-after", str(wait).encode())]
        return Decision(False, 0, wait, wait, headers)

    def _sweep(self, now: float) -> None:
        # A bucket refills from empty in one window (rate = quota / window), and a full
        # bucket is the same as no bucket: drop those idle that long, to bound memory.
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < WINDOW_S}
        self._next_sweep = now + _SWEEP_EVERY_S

    def __len__(self) -> int:
        return len(self._buckets)
