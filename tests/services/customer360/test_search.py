"""GET /customers:search — pg_trgm over the generated search text."""

from __future__ import annotations

from uuid import UUID

import pytest
import pytest_asyncio
from sqlalchemy import insert

from services.customer360.config import Settings
from services.customer360.main import create_app
from services.customer360.models import Customer
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

PII = bearer("customers:read", "customers:pii")
READ = bearer("customers:read")
PROBLEM = "application/problem+json"

ZHANG = UUID("00000000-0000-4000-8000-000000000001")
LI = UUID("00000000-0000-4000-8000-000000000002")
SMITH = UUID("00000000-0000-4000-8000-000000000003")
OTHER_TEAM = UUID("00000000-0000-4000-8000-000000000004")
MERGED = UUID("00000000-0000-4000-8000-000000000005")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        async with app.state.database.session() as session:
            rows = [
                {
                    "id": ZHANG,
                    "display_name": "张伟 Wei Zhang",
                    "emails": ["zhang@example.com"],
                    "phones": ["+8613812345678"],
                    "team_id": "team-a",
                },
                {
                    "id": LI,
                    "display_name": "李娜",
                    "emails": ["li.na@example.cn"],
                    "phones": ["+8613900001111"],
                    "team_id": "team-a",
                },
                {
                    "id": SMITH,
                    "display_name": "John Smith",
                    "emails": ["john.smith@acme.test"],
                    "phones": ["+14155552671"],
                    "team_id": "team-a",
                },
                {
                    "id": OTHER_TEAM,
                    "display_name": "张伟 Zhang Wei",
                    "emails": ["zw@other.test"],
                    "phones": [],
                    "team_id": "team-b",
                },
                {
                    "id": MERGED,
                    "display_name": "张伟",
                    "emails": [],
                    "phones": [],
                    "team_id": "team-a",
                    "status": "merged",
                    "merged_into": ZHANG,
                },
            ]
            await session.execute(
                insert(Customer), [{"kind": "person", "tags": [], **r} for r in rows]
            )
            await session.commit()
        yield c


async def ids(client, q, headers=PII, **params):
    response = await client.get("/customers:search", params={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return [UUID(hit["customer"]["id"]) for hit in response.json()["items"]]


class TestSearchCustomers:
    async def test_finds_a_chinese_name(self, client):
        found = await ids(client, "张伟")
        assert set(found[:2]) == {ZHANG, OTHER_TEAM}
        assert LI not in found
        assert SMITH not in found

    async def test_finds_mixed_chinese_and_latin(self, client):
        assert (await ids(client, "张 wei"))[0] in {ZHANG, OTHER_TEAM}

    async def test_finds_reordered_latin_words(self, client):
        found = await ids(client, "wei zhang")
        assert ZHANG in found
        assert SMITH not in found

    async def test_tolerates_a_typo(self, client):
        assert ZHANG in await ids(client, "Zhnag Wei")
        assert (await ids(client, "Jonh Smith"))[0] == SMITH

    async def test_finds_an_email_prefix(self, client):
        assert (await ids(client, "zhang@exa"))[0] == ZHANG

    async def test_finds_the_last_digits_of_a_phone(self, client):
        assert await ids(client, "5678") == [ZHANG]

    async def test_finds_a_national_phone_number_written_with_spaces(self, client):
        assert await ids(client, "138 1234 5678") == [ZHANG]

    async def test_ranks_by_score_best_first(self, client):
        response = await client.get("/customers:search", params={"q": "john smith"}, headers=PII)
        items = response.json()["items"]
        assert items[0]["customer"]["id"] == str(SMITH)
        assert items[0]["score"] >= 1.0
        scores = [i["score"] for i in items]
        assert scores == sorted(scores, reverse=True)

    async def test_never_returns_merged_customers(self, client):
        assert MERGED not in await ids(client, "张伟")

    async def test_keeps_a_team_rep_within_their_team(self, client):
        rep = bearer("customers:read", scope_mode="team", team="team-a")
        found = await ids(client, "张伟", headers=rep)
        assert ZHANG in found
        assert OTHER_TEAM not in found

    async def test_masks_personal_data_without_the_pii_scope(self, client):
        response = await client.get("/customers:search", params={"q": "5678"}, headers=READ)
        customer = response.json()["items"][0]["customer"]
        assert customer["emails"] == ["z***@example.com"]
        assert customer["phones"] == ["+86*******5678"]

    async def test_honours_the_limit(self, client):
        assert len(await ids(client, "example", limit=1)) == 1

    async def test_finds_nothing_for_an_unrelated_query(self, client):
        assert await ids(client, "qqqxxxzzz") == []

    async def test_treats_like_metacharacters_literally(self, client):
        assert await ids(client, "%_%") == []

    async def test_answers_a_blank_query_with_422(self, client):
        response = await client.get("/customers:search", params={"q": "  "}, headers=PII)
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM

    async def test_answers_a_missing_query_with_422(self, client):
        response = await client.get("/customers:search", headers=PII)
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM

    async def test_refuses_a_caller_without_the_read_scope(self, client):
        response = await client.get(
            "/customers:search", params={"q": "x"}, headers=bearer("orders:read")
        )
        assert response.status_code == 403
