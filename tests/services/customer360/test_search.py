"""Search: Chinese names, mixed text, typos, partial e-mails and phones, data scope."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from services.customer360.config import Settings
from services.customer360.main import create_app
from services.customer360.search.query import parse
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

PII = bearer("customers:read", "customers:write", "customers:pii")


async def test_queries_are_read_as_phone_digits_cjk_grams_and_latin_text():
    assert parse("+86 138-1234") == parse("861381234")
    assert parse("5678").digits == "5678"
    mixed = parse("张伟明 Wei")
    assert mixed.cjk == ("张伟", "伟明")
    assert mixed.latin == "wei"
    assert parse("张").cjk == ("张",)
    assert parse("12").digits is None  # too short for a phone: text


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_settings):
    async with api_client(create_app(make_settings(Settings))) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="session")
async def people(client):
    marker = uuid.uuid4().hex[:6]
    rows = {
        "zhang": {
            "family_name": "张",
            "given_name": "伟",
            "display_name": f"张伟 Wei Zhang {marker}",
            "emails": [f"wei.zhang.{marker}@example.com"],
            "phones": [f"+86138{uuid.uuid4().int % 10**8:08d}"],
        },
        "zhangming": {"display_name": f"张伟明 {marker}"},
        "li": {"display_name": f"李娜 Li Na {marker}", "emails": [f"li.na.{marker}@example.org"]},
        "ada": {
            "display_name": f"Ada Lovelace {marker}",
            "owner_id": "rep-b",
            "team_id": "team-b",
        },
    }
    ids = {}
    for key, body in rows.items():
        response = await client.post("/customers", json=body, headers=PII)
        assert response.status_code == 201, response.text
        ids[key] = response.json()["id"]
    ids["marker"] = marker
    ids["phone"] = str(rows["zhang"]["phones"][0])  # type: ignore[index]
    return ids


async def found(client, q: str, headers=PII) -> list[str]:  # type: ignore[no-untyped-def]
    response = await client.get("/customers:search", params={"q": q}, headers=headers)
    assert response.status_code == 200, response.text
    return [hit["customer"]["id"] for hit in response.json()["items"]]


class TestSearch:
    async def test_chinese_names_match_by_characters(self, client, people):
        assert set(await found(client, "张伟")) >= {people["zhang"], people["zhangming"]}
        assert people["zhangming"] in await found(client, "伟明")
        assert people["zhang"] not in await found(client, "伟明")
        assert people["li"] in await found(client, "李娜")

    async def test_mixed_chinese_and_latin_needs_both_and_ranks_the_closest_first(
        self, client, people
    ):
        hits = await found(client, f"张 zhang {people['marker']}")
        assert hits[0] == people["zhang"]
        assert people["li"] not in hits  # no 张

    async def test_typos_still_find_the_name_best_first(self, client, people):
        hits = await found(client, f"Zhnag Wei {people['marker']}")
        assert hits[0] == people["zhang"]
        assert (await found(client, f"Lovelase {people['marker']}"))[0] == people["ada"]

    async def test_partial_email_and_phone(self, client, people):
        assert (await found(client, f"li.na.{people['marker']}@exa"))[0] == people["li"]
        assert await found(client, people["phone"][-6:]) == [people["zhang"]]
        assert await found(client, people["phone"]) == [people["zhang"]]

    async def test_data_scope_and_masking_apply(self, client, people):
        rep = bearer("customers:read", subject="rep-a", scope_mode="team", team="team-a")
        assert people["ada"] not in await found(client, f"Ada Lovelace {people['marker']}", rep)
        response = await client.get(
            "/customers:search",
            params={"q": f"li na {people['marker']}"},
            headers=bearer("customers:read"),
        )
        assert response.json()["items"][0]["customer"]["emails"][0].startswith("l***@")

    async def test_bad_queries(self, client):
        assert (await client.get("/customers:search", headers=PII)).status_code == 422
        long = await client.get("/customers:search", params={"q": "x" * 101}, headers=PII)
        assert long.status_code == 422
        weird = await client.get("/customers:search", params={"q": "%_\\"}, headers=PII)
        assert weird.status_code == 200
