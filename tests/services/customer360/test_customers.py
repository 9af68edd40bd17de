"""The customer360 skeleton endpoints."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import text

from services.customer360.config import Settings
from services.customer360.main import create_app
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("customers:read", "customers:write", "customers:pii")
READ = bearer("customers:read")
PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings, max_body_bytes=4096))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


class TestCreateCustomer:
    async def test_creates_a_profile_and_queues_its_event_in_the_same_transaction(
        self, client, app
    ):
        response = await client.post(
            "/customers",
            json={"display_name": "张伟", "emails": ["Wei@Example.com"], "tags": ["vip", "vip"]},
            headers=WRITE,
        )
        assert response.status_code == 201
        body = response.json()
        assert body["display_name"] == "张伟"
        assert body["emails"] == ["wei@example.com"]
        assert body["tags"] == ["vip"]
        assert response.headers["x-request-id"]
        async with app.state.database.session() as session:
            rows = (
                await session.execute(
                    text("SELECT key, headers, payload FROM customer360.outbox WHERE key = :k"),
                    {"k": body["id"]},
                )
            ).all()
        assert len(rows) == 1
        headers = dict(rows[0].headers)
        assert headers["ce_type"] == "rapport.customer.created.v1"
        assert json.loads(rows[0].payload)["display_name"] == "张伟"

    async def test_refuses_a_caller_without_a_token(self, client):
        response = await client.post("/customers", json={"display_name": "x"})
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "/problems/unauthorized"

    async def test_refuses_a_forged_token(self, client):
        headers = bearer("customers:write", secret="not-the-secret-" * 3)
        response = await client.post("/customers", json={"display_name": "x"}, headers=headers)
        assert response.status_code == 401
        assert "signature" in response.json()["detail"].lower()

    async def test_refuses_a_caller_without_the_write_scope(self, client):
        response = await client.post("/customers", json={"display_name": "x"}, headers=READ)
        assert response.status_code == 403
        assert response.json()["missing_scopes"] == ["customers:write"]

    async def test_answers_malformed_json_with_400(self, client):
        response = await client.post(
            "/customers",
            content=b'{"display_name": ',
            headers={**WRITE, "content-type": "application/json"},
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "/problems/malformed-body"

    async def test_answers_wrong_types_with_422_pointing_at_the_field(self, client):
        response = await client.post(
            "/customers", json={"display_name": 42, "emails": ["nope"]}, headers=WRITE
        )
        assert response.status_code == 422
        pointers = {e["pointer"] for e in response.json()["errors"]}
        assert pointers == {"/body/display_name", "/body/emails/0"}

    async def test_answers_a_huge_body_with_413(self, client):
        response = await client.post(
            "/customers", json={"display_name": "x" * 10_000}, headers=WRITE
        )
        assert response.status_code == 413
        assert response.json()["type"] == "/problems/payload-too-large"

    async def test_answers_a_huge_chunked_body_with_413(self, client):
        async def chunks():
            yield b'{"display_name": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        response = await client.post(
            "/customers",
            content=chunks(),
            headers={**WRITE, "content-type": "application/json"},
        )
        assert response.status_code == 413


class TestGetCustomer:
    async def test_returns_the_profile(self, client):
        created = (
            await client.post("/customers", json={"display_name": "Ada"}, headers=WRITE)
        ).json()
        response = await client.get(f"/customers/{created['id']}", headers=READ)
        assert response.status_code == 200
        assert response.json() == created

    async def test_answers_an_unknown_id_with_404(self, client):
        missing = uuid4()
        response = await client.get(f"/customers/{missing}", headers=READ)
        assert response.status_code == 404
        assert response.json()["detail"] == f"customer {missing} does not exist"

    async def test_answers_a_malformed_id_with_422(self, client):
        response = await client.get("/customers/not-a-uuid", headers=READ)
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/path/customer_id"


class TestListCustomers:
    async def test_walks_every_page_once_in_creation_order(self, client):
        tag = f"t{uuid4().hex[:8]}"
        created = [
            (
                await client.post(
                    "/customers", json={"display_name": f"c{i}", "tags": [tag]}, headers=WRITE
                )
            ).json()
            for i in range(5)
        ]
        seen: list[str] = []
        cursor = None
        while True:
            params = {"tag": tag, "limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/customers", params=params, headers=READ)).json()
            assert len(page["items"]) <= 2
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        # Ordered by (created_at, id); in this test's single transaction created_at is equal.
        expected = sorted(created, key=lambda c: (c["created_at"], c["id"]))
        assert seen == [c["id"] for c in expected]

    async def test_answers_a_bad_cursor_with_400(self, client):
        response = await client.get("/customers", params={"cursor": "%%%"}, headers=READ)
        assert response.status_code == 400
        assert response.json()["type"] == "/problems/bad-request"

    async def test_answers_an_out_of_range_limit_with_422(self, client):
        response = await client.get("/customers", params={"limit": 0}, headers=READ)
        assert response.status_code == 422


class TestDataScope:
    """A sales rep of team A never sees team B's customers."""

    async def test_reps_see_their_own_their_teams_or_all_customers_as_their_scope_says(
        self, client
    ):
        tag = f"t{uuid4().hex[:8]}"
        writer = bearer("customers:write", "customers:read")
        rows = [("ann", "north"), ("bob", "north"), ("cid", "south")]
        ids = {}
        for owner, team in rows:
            created = await client.post(
                "/customers",
                json={"display_name": owner, "tags": [tag], "owner_id": owner, "team_id": team},
                headers=writer,
            )
            ids[owner] = created.json()["id"]

        async def visible(**token) -> set[str]:
            headers = bearer("customers:read", **token)
            page = await client.get("/customers", params={"tag": tag}, headers=headers)
            return {c["display_name"] for c in page.json()["items"]}

        assert await visible(subject="ann", scope_mode="own") == {"ann"}
        assert await visible(subject="ann", scope_mode="team", team="north") == {"ann", "bob"}
        assert await visible(subject="zed", scope_mode="team", team="south") == {"cid"}
        assert await visible(subject="boss", scope_mode="all") == {"ann", "bob", "cid"}
        assert await visible(subject="ann", scope_mode="team") == set()  # no team claim

        outsider = bearer("customers:read", subject="cid", scope_mode="team", team="south")
        response = await client.get(f"/customers/{ids['ann']}", headers=outsider)
        assert response.status_code == 404
        own = bearer("customers:read", subject="ann", scope_mode="own")
        assert (await client.get(f"/customers/{ids['ann']}", headers=own)).status_code == 200

    async def test_a_rep_who_creates_a_customer_owns_it(self, client):
        headers = bearer(
            "customers:write", "customers:read", subject="dee", scope_mode="own", team="east"
        )
        created = await client.post("/customers", json={"display_name": "Mine"}, headers=headers)
        assert created.json()["owner_id"] == "dee"
        assert created.json()["team_id"] == "east"


class TestPersonalData:
    async def test_emails_and_phones_are_masked_without_the_pii_scope(self, client):
        created = await client.post(
            "/customers",
            json={
                "display_name": "Wei",
                "emails": ["wei.zhang@example.com"],
                "phones": ["+8613812345678"],
            },
            headers=WRITE,
        )
        customer_id = created.json()["id"]
        masked = (await client.get(f"/customers/{customer_id}", headers=READ)).json()
        assert masked["emails"] == ["w***@example.com"]
        assert masked["phones"] == ["+86*******5678"]
        full = bearer("customers:read", "customers:pii")
        clear = (await client.get(f"/customers/{customer_id}", headers=full)).json()
        assert clear["emails"] == ["wei.zhang@example.com"]
        assert clear["phones"] == ["+8613812345678"]
