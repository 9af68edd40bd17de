"""OWASP API7:2023 — Server Side Request Forgery.

Outbound webhook URLs are chosen by partners, and the gateway that calls them sits inside the
network. Through the gateway, an endpoint whose URL names a private, loopback, link-local,
shared (CGNAT), unspecified or cloud-metadata address is refused with a ``422`` pointing at
``/body/url`` — whatever spelling hides it (decimal, hex, short IPv4; IPv4-mapped,
-compatible, NAT64, 6to4 and SIIT IPv6 forms), on create and on update. At delivery time the
same policy is applied to the address actually connected to, and redirects are recorded,
never followed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings
from gateway.main import create_app
from gateway.outbound.safety import AddressPolicy, GuardedResolver, UnsafeAddress
from shared.events import CustomerCreated, Envelope
from tests.security.conftest import PROBLEM, Stack
from tests.support import api_client

pytestmark = pytest.mark.asyncio(loop_scope="session")

UNSAFE = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",  # 127.0.0.1 in decimal
    "http://0x7f000001/hook",  # in hex
    "http://0.0.0.0/hook",
    "http://localhost:8001/customers",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # shared address space (CGNAT)
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "http://[::ffff:169.254.169.254]/hook",
    "http://[::127.0.0.1]/hook",  # IPv4-compatible
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "http://[64:ff9b::a00:5]/hook",  # NAT64 of 10.0.0.5
    "http://[64:ff9b:1::a00:5]/hook",  # local-use NAT64
    "http://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
    "http://[::ffff:0:a9fe:a9fe]/hook",  # SIIT of 169.254.169.254
    "http://[fe80::1]/hook",
    "http://user:pw@93.184.216.34/hook",  # credentials in the URL
    "http://93.184.216.34@127.0.0.1/hook",  # the host is the part after "@"
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://93.184.216.34/x",
]

PUBLIC = "https://93.184.216.34/hooks"


async def create(stack: Stack, url: str) -> Any:
    return await stack.client.post(
        "/api/v1/webhook-endpoints",
        json={"url": url, "event_types": ["rapport.customer.*"]},
        headers=stack.auth("admin"),
    )


class TestEndpointUrls:
    async def test_a_public_address_is_accepted(self, stack: Stack):
        response = await create(stack, PUBLIC)
        assert response.status_code == 201, response.text
        assert response.json()["url"] == PUBLIC
        await stack.client.delete(
            f"/api/v1/webhook-endpoints/{response.json()['id']}", headers=stack.auth("admin")
        )

    @pytest.mark.parametrize("url", UNSAFE)
    async def test_an_internal_address_is_refused(self, stack: Stack, url: str):
        response = await create(stack, url)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["errors"][0]["pointer"] == "/body/url"

    async def test_an_endpoint_cannot_be_moved_to_an_internal_address(self, stack: Stack):
        admin = stack.auth("admin")
        created = await create(stack, PUBLIC)
        endpoint = created.json()["id"]
        try:
            for url in ("http://169.254.169.254/latest", "http://[64:ff9b::a9fe:a9fe]/x"):
                moved = await stack.client.patch(
                    f"/api/v1/webhook-endpoints/{endpoint}", json={"url": url}, headers=admin
                )
                assert moved.status_code == 422, moved.text
            kept = await stack.client.get(f"/api/v1/webhook-endpoints/{endpoint}", headers=admin)
            assert kept.json()["url"] == PUBLIC
        finally:
            await stack.client.delete(f"/api/v1/webhook-endpoints/{endpoint}", headers=admin)


class TestAtConnectionTime:
    async def test_a_name_resolving_to_loopback_is_refused_by_the_resolver(self):
        resolver = GuardedResolver(AddressPolicy())
        try:
            with pytest.raises(UnsafeAddress):
                await resolver.resolve("localhost", 80)
        finally:
            await resolver.close()

    async def test_the_operator_allow_list_is_the_only_way_in(self):
        resolver = GuardedResolver(AddressPolicy(["127.0.0.0/8"]))
        try:
            results = await resolver.resolve("localhost", 80)
            assert {r["host"] for r in results} >= {"127.0.0.1"}
        finally:
            await resolver.close()


# --- redirects: a real delivery to a receiver that redirects to an internal target ----------


async def _site(handler: Callable[[web.Request], Any]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture(loop_scope="session")
async def redirecting() -> AsyncIterator[tuple[str, list[str]]]:
    """A receiver answering 307 to an internal target, and what the target received."""
    target_hits: list[str] = []

    async def target(request: web.Request) -> web.Response:
        target_hits.append(request.path)
        return web.Response(status=204)

    target_runner, target_url = await _site(target)

    async def redirect(request: web.Request) -> web.Response:
        await request.read()
        raise web.HTTPTemporaryRedirect(f"{target_url}/internal-admin")

    redirect_runner, redirect_url = await _site(redirect)
    try:
        yield redirect_url, target_hits
    finally:
        await redirect_runner.cleanup()
        await target_runner.cleanup()


async def test_redirects_are_recorded_and_not_followed(
    make_settings: Callable[..., Settings], redirecting: tuple[str, list[str]]
):
    redirect_url, target_hits = redirecting
    settings = make_settings(
        Settings,
        outbound_enabled=True,
        outbound_allowed=["127.0.0.0/8"],  # the receiver is local in this test
        outbound_retry_schedule_s=[0, 60],
        outbound_timeout_s=2.0,
        outbound_poll_s=0.05,
        rate_limit_enabled=False,
    )
    app = create_app(settings)
    admin = {"Authorization": f"Bearer {mint_dev_token(settings, role='admin', subject='ssrf')}"}
    async with api_client(app, rollback=False) as client:
        created = await client.post(
            "/api/v1/webhook-endpoints",
            json={"url": f"{redirect_url}/hook", "event_types": ["rapport.customer.*"]},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()["id"]
        try:
            event = CustomerCreated(
                customer_id=uuid.uuid4(), display_name="Ssrf", created_at=datetime.now(UTC)
            )
            await app.state.gateway.outbound.fanout.apply([Envelope.wrap(event, source="/t")])
            deadline = time.monotonic() + 15
            attempts: list[dict[str, Any]] = []
            while not attempts and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                page = await client.get(
                    f"/api/v1/webhook-endpoints/{endpoint}/attempts", headers=admin
                )
                attempts = page.json()["items"]
            assert len(attempts) == 1
            attempt = attempts[0]
            assert attempt["outcome"] == "failed"
            assert attempt["status_code"] == 307
            assert "not followed" in attempt["error"]
            assert target_hits == []
        finally:
            await client.delete(f"/api/v1/webhook-endpoints/{endpoint}", headers=admin)
