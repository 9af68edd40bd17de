"""Proxying through a real gateway to real upstreams: values, headers, limits, failures,
streaming."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

import httpx
import pytest
from prometheus_client import REGISTRY

from shared.auth import verify_internal_token
from tests.gateway.edge.conftest import MAX_BODY, UPSTREAM_TIMEOUT_S, Gateway
from tests.gateway.edge.servers import EchoLog, RawServer

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBLEM = "application/problem+json"


def header_values(response: httpx.Response, name: str) -> list[str]:
    return response.headers.get_list(name)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class TestProxiedCustomer:
    async def test_a_created_customer_reads_back_through_the_gateway(self, lab: Gateway):
        email = f"wei.{uuid.uuid4().hex[:8]}@example.com"
        created = await lab.client.post(
            "/api/v1/customers",
            json={"display_name": "张伟", "emails": [email], "tags": ["vip"]},
            headers=lab.auth("admin"),
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["display_name"] == "张伟"
        assert body["emails"] == [email]

        assert created.headers["location"] == f"/api/v1/customers/{body['id']}"

        fetched = await lab.client.get(f"/api/v1/customers/{body['id']}", headers=lab.auth())
        assert fetched.status_code == 200
        assert fetched.json() == body
        assert fetched.headers["content-type"] == "application/json"
        assert fetched.headers["etag"] == created.headers["etag"]

    async def test_if_match_reaches_the_service_and_a_stale_write_is_a_412(self, lab: Gateway):
        created = await lab.client.post(
            "/api/v1/customers", json={"display_name": "Etag"}, headers=lab.auth("admin")
        )
        url = f"/api/v1/customers/{created.json()['id']}"
        etag = created.headers["etag"]
        first = await lab.client.patch(
            url, json={"tags": ["a"]}, headers={**lab.auth("admin"), "If-Match": etag}
        )
        assert first.status_code == 200
        stale = await lab.client.patch(
            url, json={"tags": ["b"]}, headers={**lab.auth("admin"), "If-Match": etag}
        )
        assert stale.status_code == 412
        assert stale.headers["content-type"] == PROBLEM

    async def test_a_missing_customer_is_the_services_own_404_problem(self, lab: Gateway):
        response = await lab.client.get(f"/api/v1/customers/{uuid.uuid4()}", headers=lab.auth())
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "/problems/not-found"

    async def test_the_services_scope_check_sees_the_callers_role(self, lab: Gateway):
        # marketing may read customers but not write them (gateway.auth.roles).
        response = await lab.client.post(
            "/api/v1/customers", json={"display_name": "x"}, headers=lab.auth("marketing")
        )
        assert response.status_code == 403
        assert "customers:write" in response.json()["detail"]


class TestForwardedHeaders:
    async def test_request_id_and_traceparent_reach_the_upstream_unchanged(self, lab: Gateway):
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        response = await lab.client.get(
            "/api/v1/interactions/anything?b=2&a=%C3%A9",
            headers={
                **lab.auth("support", subject="agent-7"),
                "X-Request-ID": "req-edge-1",
                "traceparent": traceparent,
                "tracestate": "rojo=00f067aa0ba902b7",
                "X-API-Key": "rpk_should_not_travel",
            },
        )
        # Both credentials at once are refused by the Authenticator...
        assert response.status_code == 401
        response = await lab.client.get(
            "/api/v1/interactions/anything?b=2&a=%C3%A9",
            headers={
                **lab.auth("support", subject="agent-7"),
                "X-Request-ID": "req-edge-1",
                "traceparent": traceparent,
                "tracestate": "rojo=00f067aa0ba902b7",
            },
        )
        assert response.status_code == 200
        seen = response.json()
        headers = dict(seen["headers"])
        assert seen["path"] == "/interactions/anything"
        assert seen["query"] == "b=2&a=%C3%A9"
        assert headers["x-request-id"] == "req-edge-1"
        assert headers["traceparent"] == traceparent
        assert headers["tracestate"] == "rojo=00f067aa0ba902b7"
        assert headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-forwarded-host"] == lab.url.removeprefix("http://")
        assert "x-api-key" not in headers
        # ...and the caller's token is replaced by an internal one naming the principal.
        scheme, token = headers["authorization"].split(" ")
        assert scheme == "Bearer"
        principal = verify_internal_token(token, lab.settings.internal_token_secret)
        assert principal.subject == "agent-7"
        assert principal.roles == ("support",)
        assert principal.has("interactions:write")
        # The answer carries the request id once, and none of the upstream's hop-by-hop or
        # server fields.
        assert header_values(response, "x-request-id") == ["req-edge-1"]
        assert response.headers["x-upstream"] == "echo"
        assert header_values(response, "server") == ["uvicorn"]

    async def test_a_request_id_is_generated_when_the_client_sends_none(self, lab: Gateway):
        response = await lab.client.get("/api/v1/interactions/x", headers=lab.auth())
        sent = dict(response.json()["headers"])["x-request-id"]
        assert len(sent) == 32
        assert response.headers["x-request-id"] == sent

    async def test_the_raw_path_is_forwarded_still_encoded(self, lab: Gateway):
        response = await lab.client.get("/api/v1/interactions/a%2Fb%20c", headers=lab.auth())
        assert response.json()["raw_path"] == "/interactions/a%2Fb%20c"

    async def test_post_bodies_and_methods_are_relayed(self, lab: Gateway):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = await lab.client.request(
                method,
                "/api/v1/interactions/notes",
                content=b'{"text": "hello"}',
                headers={**lab.auth(), "Content-Type": "application/json"},
            )
            seen = response.json()
            assert (seen["method"], seen["body"]) == (method, '{"text": "hello"}')
            headers = dict(seen["headers"])
            assert headers["content-length"] == "17"
            assert headers["content-type"] == "application/json"

    async def test_dot_segments_are_refused(self, lab: Gateway):
        # httpx normalises dot segments itself, so write the request by hand.
        host, port = lab.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        token = lab.token()
        writer.write(
            b"GET /api/v1/interactions/../../health HTTP/1.1\r\nHost: gw\r\n"
            + f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 400 Bad Request"
        assert b"content-type: application/problem+json" in rest


class TestBodyLimit:
    async def test_a_declared_oversized_body_is_refused_with_413(self, lab: Gateway):
        response = await lab.client.post(
            "/api/v1/interactions/upload", content=b"x" * (MAX_BODY + 1), headers=lab.auth()
        )
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM

    async def test_an_oversized_chunked_body_is_refused_and_the_upstream_never_completes_it(
        self, lab: Gateway, echo_log: EchoLog
    ):
        before = len(echo_log.uploads)

        async def body():
            for _ in range(40):
                yield b"y" * 65536  # 2.5 MiB, no Content-Length

        response = await lab.client.post(
            "/api/v1/interactions/upload", content=body(), headers=lab.auth()
        )
        assert response.status_code == 413
        assert response.json()["type"] == "/problems/payload-too-large"
        await asyncio.sleep(0.1)
        assert len(echo_log.uploads) == before  # the truncated body was never taken whole


class TestStreaming:
    async def test_a_chunked_upload_streams_through_without_being_buffered(
        self, lab: Gateway, echo_log: EchoLog
    ):
        echo_log.first_chunk_received = asyncio.Event()
        digest = hashlib.sha256()

        async def body():
            chunk = b"u" * 65536
            digest.update(chunk)
            yield chunk
            # The rest only once the upstream has the first chunk: a gateway that buffered
            # the whole body would wait forever here.
            async with asyncio.timeout(5):
                await echo_log.first_chunk_received.wait()
            for i in range(14):
                chunk = bytes([65 + i]) * 65536
                digest.update(chunk)
                yield chunk

        response = await lab.client.post(
            "/api/v1/interactions/upload", content=body(), headers=lab.auth()
        )
        assert response.status_code == 200, response.text
        record = response.json()
        assert record["size"] == 15 * 65536
        assert record["sha256"] == digest.hexdigest()
        assert record["transfer_encoding"] == "chunked"
        assert record["content_length"] is None
        assert record["chunks"] > 1

    async def test_a_known_length_upload_keeps_its_content_length(self, lab: Gateway):
        response = await lab.client.put(
            "/api/v1/interactions/upload", content=b"z" * 200_000, headers=lab.auth()
        )
        record = response.json()
        assert (record["size"], record["content_length"]) == (200_000, "200000")
        assert record["transfer_encoding"] is None

    async def test_a_download_streams_chunk_by_chunk(self, lab: Gateway, echo_log: EchoLog):
        echo_log.client_got_first_chunk = asyncio.Event()
        received = 0
        async with lab.client.stream(
            "GET", "/api/v1/interactions/download?n=16&size=65536", headers=lab.auth()
        ) as response:
            assert response.status_code == 200
            assert response.headers["transfer-encoding"] == "chunked"
            assert "content-length" not in response.headers
            async for chunk in response.aiter_raw():
                received += len(chunk)
                # The upstream sends the rest only after this: a gateway that buffered the
                # whole answer would never have relayed the first chunk.
                echo_log.client_got_first_chunk.set()
        assert received == 16 * 65536


class TestUpstreamFailures:
    async def test_a_down_upstream_is_a_503_problem_and_a_get_was_retried_once(self, lab: Gateway):
        retries = "rapport_gateway_upstream_retries_total"
        get_before = sample(retries, upstream="segmentation", method="GET")
        response = await lab.client.get(
            f"/api/v1/customers/{uuid.uuid4()}/features", headers=lab.auth()
        )
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["type"] == "/problems/upstream-unavailable"
        assert problem["upstream"] == "segmentation"
        assert problem["request_id"] == response.headers["x-request-id"]
        assert response.headers["retry-after"] == "1"
        assert sample(retries, upstream="segmentation", method="GET") == get_before + 1

    async def test_a_post_to_a_down_upstream_is_never_retried(self, lab: Gateway):
        retries = "rapport_gateway_upstream_retries_total"
        errors = "rapport_gateway_upstream_errors_total"
        post_before = sample(retries, upstream="segmentation", method="POST")
        errors_before = sample(errors, upstream="segmentation", kind="connect")
        response = await lab.client.post(
            "/api/v1/segments", json={"name": "vip"}, headers=lab.auth()
        )
        assert response.status_code == 503
        assert sample(retries, upstream="segmentation", method="POST") == post_before
        assert sample(errors, upstream="segmentation", kind="connect") == errors_before + 1

    async def test_a_slow_upstream_is_a_504_problem_within_the_timeout(self, lab: Gateway):
        started = time.perf_counter()
        response = await lab.client.get("/api/v1/interactions/slow?s=5", headers=lab.auth())
        elapsed = time.perf_counter() - started
        assert response.status_code == 504
        assert response.json()["type"] == "/problems/upstream-timeout"
        assert UPSTREAM_TIMEOUT_S <= elapsed < UPSTREAM_TIMEOUT_S + 1.0

    async def test_a_reset_before_the_response_head_is_a_502_problem(
        self, lab: Gateway, raw_server: tuple[RawServer, str]
    ):
        server, _ = raw_server
        path = f"/products/reset-before-head-{uuid.uuid4().hex}"
        response = await lab.client.post(f"/api/v1{path}", json={}, headers=lab.auth())
        assert response.status_code == 502
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "/problems/bad-gateway"
        assert server.requests.count(path) == 1  # a POST is sent once, whatever happens

    async def test_a_reset_mid_body_aborts_the_client_connection(self, lab: Gateway):
        with pytest.raises(httpx.RemoteProtocolError):
            async with lab.client.stream(
                "GET", "/api/v1/products/reset-mid-body", headers=lab.auth()
            ) as response:
                assert response.status_code == 200
                await response.aread()


class TestUploads:
    async def test_an_import_may_exceed_the_body_limit_that_other_requests_keep(self, lab: Gateway):
        # Few rows, each too long to import: the body is large, the job's work is small.
        tag = uuid.uuid4().hex[:8]
        rows = "".join(f"{'x' * 2000},up{i}.{tag}@example.com\n" for i in range(600))
        body = ("display_name,email\n" + rows).encode()
        assert len(body) > MAX_BODY
        response = await lab.client.post(
            "/api/v1/imports/customers",
            content=body,
            headers={**lab.auth("admin"), "content-type": "text/csv"},
        )
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/api/v1/imports/{response.json()['id']}"
        refused = await lab.client.post(
            "/api/v1/customers",
            content=b'{"display_name": "' + b"x" * MAX_BODY + b'"}',
            headers={**lab.auth("admin"), "content-type": "application/json"},
        )
        assert refused.status_code == 413
