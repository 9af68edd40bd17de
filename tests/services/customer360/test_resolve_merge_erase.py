"""Identity resolution, merging duplicates, and erasure in customer360."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from services.customer360.config import Settings
from services.customer360.main import create_app
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("customers:read", "customers:write", "customers:pii", subject="agent-7")
NO_PII = bearer("customers:read", "customers:write")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


def email() -> str:
    return f"r{uuid.uuid4().hex[:10]}@example.com"


def phone() -> str:
    return f"+86 139 {uuid.uuid4().int % 10**8:08d}"


async def create(client, **body) -> dict[str, Any]:
    response = await client.post("/customers", json={"display_name": "X", **body}, headers=WRITE)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def outbox(app, key: str) -> list[tuple[str, dict[str, Any]]]:
    async with app.state.database.session() as session:
        rows = await session.execute(
            text("SELECT headers, payload FROM customer360.outbox WHERE key = :k ORDER BY id"),
            {"k": key},
        )
        return [(dict(r.headers)["ce_type"], json.loads(r.payload)) for r in rows]


class TestResolve:
    async def test_a_known_key_resolves_and_an_unknown_one_makes_a_prospect(self, client):
        known = await create(client, emails=[email()], phones=[phone()])
        found = await client.post(
            "/customers:resolve", json={"phone": known["phones"][0]}, headers=WRITE
        )
        assert found.status_code == 200
        assert found.json()["customer_id"] == known["id"]
        assert found.json()["matched_by"] == ["phone"]
        assert found.json()["customer"]["id"] == known["id"]

        new_email = email()
        created = await client.post(
            "/customers:resolve",
            json={"email": new_email.upper(), "external_id": {"system": "shop", "id": "c-1"}},
            headers=WRITE,
        )
        assert created.status_code == 201
        prospect = created.json()
        assert prospect["created"] is True
        assert prospect["customer"]["lifecycle_stage"] == "prospect"
        assert prospect["customer"]["emails"] == [new_email]
        again = await client.post(
            "/customers:resolve",
            json={"external_id": {"system": "shop", "id": "c-1"}},
            headers=WRITE,
        )
        assert again.status_code == 200
        assert again.json()["customer_id"] == prospect["customer_id"]

    async def test_keys_of_two_customers_name_the_other_as_a_likely_duplicate(self, client):
        a = await create(client, emails=[email()])
        b = await create(client, phones=[phone()])
        response = await client.post(
            "/customers:resolve",
            json={"email": a["emails"][0], "phone": b["phones"][0]},
            headers=WRITE,
        )
        assert response.json()["customer_id"] == a["id"]
        assert response.json()["other_customers"] == [b["id"]]

    async def test_bad_requests(self, client):
        empty = await client.post("/customers:resolve", json={}, headers=WRITE)
        assert empty.status_code == 422
        bad_phone = await client.post("/customers:resolve", json={"phone": "12"}, headers=WRITE)
        assert bad_phone.status_code == 422
        assert bad_phone.json()["errors"][0]["pointer"] == "/body/phone"
        absent = await client.post(
            "/customers:resolve", json={"email": email(), "create": False}, headers=WRITE
        )
        assert absent.status_code == 404

    async def test_racing_resolves_of_a_new_email_make_one_customer(self, app):
        address = email()
        async with api_client(app, rollback=False) as real:
            answers = await asyncio.gather(
                *(
                    real.post("/customers:resolve", json={"email": address}, headers=WRITE)
                    for _ in range(6)
                )
            )
        ids = {a.json().get("customer_id") or a.json().get("existing_customer_id") for a in answers}
        assert len(ids) == 1
        assert sum(a.status_code == 201 for a in answers) == 1


class TestMerge:
    async def test_survivorship_identity_moves_and_events(self, client, app):
        survivor = await create(
            client,
            display_name="Wei Zhang",
            emails=[email()],
            tags=["vip"],
            consent={"email": {"granted": True, "source": "form"}},
            external_ids={"shop": "s-1"},
        )
        duplicate = await create(
            client,
            display_name="W. Zhang",
            emails=[email()],
            phones=[phone()],
            tags=["wholesale"],
            birthday="1990-05-17",
            consent={"email": {"granted": False, "source": "unsubscribe"}},
            external_ids={"shop": "s-2", "erp": "E-9"},
        )
        response = await client.post(
            f"/customers/{survivor['id']}:merge",
            json={"merged_ids": [duplicate["id"]]},
            headers=WRITE,
        )
        assert response.status_code == 200, response.text
        merged = response.json()
        assert merged["display_name"] == "Wei Zhang"  # the survivor's value wins
        assert merged["birthday"] == "1990-05-17"  # an empty field is filled
        assert merged["emails"] == survivor["emails"] + duplicate["emails"]
        assert merged["phones"] == duplicate["phones"]
        assert merged["tags"] == ["vip", "wholesale"]
        assert merged["external_ids"] == {"shop": "s-1", "erp": "E-9"}
        assert merged["consent"]["email"]["granted"] is False  # the latest decision wins

        # the duplicate's keys and id now lead to the survivor
        by_phone = await client.post(
            "/customers:resolve", json={"phone": duplicate["phones"][0]}, headers=WRITE
        )
        assert by_phone.json()["customer_id"] == survivor["id"]
        old = await client.get(f"/customers/{duplicate['id']}", headers=WRITE)
        assert old.json()["id"] == survivor["id"]

        types = [t for t, _ in await outbox(app, survivor["id"])]
        assert types[-2:] == ["rapport.customer.updated.v1", "rapport.customer.merged.v1"]
        _, merged_event = (await outbox(app, survivor["id"]))[-1]
        assert merged_event["merged_id"] == duplicate["id"]
        assert merged_event["merged_by"] == "agent-7"
        audit = (await client.get(f"/customers/{survivor['id']}/audit", headers=WRITE)).json()
        assert audit["items"][0]["action"] == "merged"
        assert audit["items"][0]["changes"]["merged_ids"]["after"] == [duplicate["id"]]

    async def test_refusals(self, client):
        a = await create(client)
        b = await create(client)
        itself = await client.post(
            f"/customers/{a['id']}:merge", json={"merged_ids": [a["id"]]}, headers=WRITE
        )
        assert itself.status_code == 422
        unknown = await client.post(
            f"/customers/{a['id']}:merge", json={"merged_ids": [str(uuid.uuid4())]}, headers=WRITE
        )
        assert unknown.status_code == 404
        ok = await client.post(
            f"/customers/{a['id']}:merge", json={"merged_ids": [b["id"]]}, headers=WRITE
        )
        assert ok.status_code == 200
        twice = await client.post(
            f"/customers/{a['id']}:merge", json={"merged_ids": [b["id"]]}, headers=WRITE
        )
        assert twice.status_code == 409
        c = await create(client)
        assert (await client.delete(f"/customers/{c['id']}", headers=WRITE)).status_code == 204
        into_erased = await client.post(
            f"/customers/{c['id']}:merge", json={"merged_ids": [a["id"]]}, headers=WRITE
        )
        assert into_erased.status_code == 410
        erased_into = await client.post(
            f"/customers/{a['id']}:merge", json={"merged_ids": [c["id"]]}, headers=WRITE
        )
        assert erased_into.status_code == 409

    async def test_a_rep_cannot_merge_a_customer_outside_their_scope(self, client):
        mine = await create(client, owner_id="rep-a")
        theirs = await create(client, owner_id="rep-b")
        rep = bearer("customers:read", "customers:write", subject="rep-a", scope_mode="own")
        response = await client.post(
            f"/customers/{mine['id']}:merge", json={"merged_ids": [theirs["id"]]}, headers=rep
        )
        assert response.status_code == 404


class TestErase:
    async def test_erase_empties_the_profile_frees_its_keys_and_publishes(self, client, app):
        address, number = email(), phone()
        person = await create(
            client,
            display_name="Erase Me",
            emails=[address],
            phones=[number],
            birthday="1980-01-01",
        )
        await client.patch(f"/customers/{person['id']}", json={"tags": ["x"]}, headers=WRITE)
        assert (
            await client.delete(f"/customers/{person['id']}", headers=NO_PII)
        ).status_code == 403
        assert (await client.delete(f"/customers/{person['id']}", headers=WRITE)).status_code == 204
        assert (await client.get(f"/customers/{person['id']}", headers=WRITE)).status_code == 410
        assert (await client.delete(f"/customers/{person['id']}", headers=WRITE)).status_code == 410
        async with app.state.database.session() as session:
            row = (
                await session.execute(
                    text("SELECT * FROM customer360.customer WHERE id = :i"), {"i": person["id"]}
                )
            ).one()
            audit = await session.scalar(
                text(
                    "SELECT string_agg(changes::text, ' ') FROM customer360.audit_entry "
                    "WHERE customer_id = :i"
                ),
                {"i": person["id"]},
            )
        assert row.status == "erased"
        assert row.emails == [] and row.phones == [] and row.birthday is None  # noqa: PT018
        assert "Erase Me" not in str(tuple(row))
        assert address not in (audit or "")
        # the e-mail is free again
        assert (
            await client.post(
                "/customers", json={"display_name": "New", "emails": [address]}, headers=WRITE
            )
        ).status_code == 201
        events = [t for t, _ in await outbox(app, person["id"])]
        assert events[-1] == "rapport.customer.erased.v1"


class TestDuplicates:
    async def test_likely_duplicates_come_with_reasons_and_a_score(self, client):
        marker = uuid.uuid4().hex[:6]
        number = phone()
        local = f"wei.zhang.{marker}"
        person = await create(
            client,
            display_name=f"张伟 Wei Zhang {marker}",
            emails=[f"{local}@example.com"],
            phones=[number],
            birthday="1990-05-17",
        )
        same_everything = await create(
            client,
            display_name=f"张伟 Wei Zhang {marker}",
            emails=[f"{local}@corp.example.cn"],
            birthday="1990-05-17",
        )
        similar = await create(client, display_name=f"Wei Zhnag {marker}")
        chinese_only = await create(client, display_name=f"张伟明 {marker}x")
        unrelated = await create(client, display_name=f"Ada Lovelace {marker}")
        response = await client.get(f"/customers/{person['id']}/duplicates", headers=WRITE)
        assert response.status_code == 200, response.text
        items = {i["customer"]["id"]: i for i in response.json()["items"]}
        best = response.json()["items"][0]
        assert best["customer"]["id"] == same_everything["id"]
        assert best["reasons"] == ["same_name", "same_email_local_part", "same_birthday"]
        assert best["score"] == round(1 - 0.4 * 0.55 * 0.65, 3)
        assert "similar_name" in items[similar["id"]]["reasons"]
        assert "similar_name" in items[chinese_only["id"]]["reasons"]
        assert unrelated["id"] not in items
        assert person["id"] not in items

    async def test_a_merged_or_erased_profile_is_never_suggested(self, client):
        name = f"Dup Candidate {uuid.uuid4().hex[:6]}"
        a = await create(client, display_name=name)
        b = await create(client, display_name=name)
        c = await create(client, display_name=name)
        await client.post(
            f"/customers/{a['id']}:merge", json={"merged_ids": [b["id"]]}, headers=WRITE
        )
        await client.delete(f"/customers/{c['id']}", headers=WRITE)
        response = await client.get(f"/customers/{a['id']}/duplicates", headers=WRITE)
        assert response.json()["items"] == []
