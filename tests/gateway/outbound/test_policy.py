"""Retry schedule, Retry-After, event-type patterns and the address policy (no I/O)."""

from __future__ import annotations

import ipaddress
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.outbound.policy import (
    SVIX_SCHEDULE_S,
    matches,
    next_delay,
    parse_retry_after,
    valid_pattern,
)
from gateway.outbound.safety import AddressPolicy, UnsafeAddress


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("rapport.order.placed.v1", True),
        ("rapport.order.*", True),
        ("*", True),
        ("rapport.*.placed", False),
        ("rapport.order*", False),
        ("rapport..order", False),
        ("", False),
    ],
)
def test_valid_patterns(pattern: str, ok: bool) -> None:
    assert valid_pattern(pattern) is ok


def test_a_trailing_star_matches_the_rest_of_the_type() -> None:
    assert matches(["rapport.order.*"], "rapport.order.placed.v1")
    assert matches(["*"], "rapport.customer.created.v1")
    assert not matches(["rapport.order.*"], "rapport.customer.created.v1")
    assert not matches(["rapport.order.placed.v1"], "rapport.order.placed.v2")


def test_the_default_schedule_is_svix_s_and_ends() -> None:
    assert SVIX_SCHEDULE_S == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    delays = [next_delay(n, SVIX_SCHEDULE_S, jitter=0) for n in range(1, 9)]
    assert delays[:-1] == [timedelta(seconds=s) for s in SVIX_SCHEDULE_S[1:]]
    assert delays[-1] is None  # eight attempts made: give up


def test_jitter_spreads_each_delay_by_at_most_a_fifth() -> None:
    rng = random.Random(3)
    delays = {next_delay(2, SVIX_SCHEDULE_S, rng=rng) for _ in range(200)}
    seconds = sorted(d.total_seconds() for d in delays if d is not None)
    assert 240 <= seconds[0] < 260
    assert 340 < seconds[-1] <= 360
    assert len(seconds) > 150


def test_retry_after_lengthens_but_never_shortens_and_is_capped() -> None:
    assert next_delay(1, SVIX_SCHEDULE_S, retry_after_s=60, jitter=0) == timedelta(seconds=60)
    assert next_delay(2, SVIX_SCHEDULE_S, retry_after_s=1, jitter=0) == timedelta(seconds=300)
    capped = next_delay(1, SVIX_SCHEDULE_S, retry_after_s=10**9, jitter=0)
    assert capped == timedelta(days=1)


def test_retry_after_parsing() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("Mon, 23 Nov 2026 12:01:30 GMT", now) == 90
    assert parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://192.168.0.10/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_loopback_and_link_local_literals_are_refused(url: str) -> None:
    with pytest.raises(UnsafeAddress):
        AddressPolicy().check_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http"),
        ("https://user:pw@example.com/x", "credentials"),
        ("https:///x", "no host"),
        ("https://example.com:99999/x", "port"),
    ],
)
def test_malformed_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        AddressPolicy().check_url(url)


@pytest.mark.asyncio(loop_scope="session")
async def test_names_resolving_to_loopback_are_refused_unless_allow_listed() -> None:
    with pytest.raises(UnsafeAddress, match="localhost"):
        await AddressPolicy().check_resolves("http://localhost:9/hook")
    await AddressPolicy(["localhost"]).check_resolves("http://localhost:9/hook")
    await AddressPolicy(["127.0.0.0/8"]).check_resolves("http://127.0.0.1:9/hook")
    AddressPolicy().check_url("https://93.184.215.14/hook")  # a public literal passes
    # not resolvable (yet): accepted now, checked again at each connection
    await AddressPolicy().check_resolves("https://no-such-host.invalid/hook")


def test_allow_listed_networks_are_allowed() -> None:
    policy = AddressPolicy(["10.0.0.0/8"])
    assert policy.address_allowed(ipaddress.ip_address("10.9.8.7"))
    assert not policy.address_allowed(ipaddress.ip_address("192.168.1.1"))


def test_production_needs_a_key_for_endpoint_secrets() -> None:
    from cryptography.fernet import Fernet
    from pydantic import ValidationError

    from gateway.config import Settings
    from gateway.outbound.service import SecretBox

    base: dict[str, Any] = {
        "environment": "production",
        "dev_jwt_secret": "",
        "jwks_url": "https://idp.example.com/jwks",
        "internal_token_secret": "x" * 40,
    }
    with pytest.raises(ValidationError, match="GATEWAY_OUTBOUND_SECRET_KEY"):
        Settings(**base)
    key = Fernet.generate_key().decode()
    box = SecretBox(Settings(**base, outbound_secret_key=key).outbound_secret_key, "")
    sealed = box.seal("whsec_abc")
    assert b"whsec_abc" not in sealed
    assert box.open(sealed) == "whsec_abc"
