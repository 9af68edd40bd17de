"""customer360 profiles: normalisation, identity keys, idempotency, ETags, custom fields,
filters, audit."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import pytest_asyncio
from sqlalchemy import text

from services.customer360.config import Settings
from services.customer360.main import create_app
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("customers:read", "customers:write", "customers:pii")
READ = bearer("customers:read")
ADMIN = bearer("admin", "customers:read", "customers:write", "customers:pii", subject="admin-1")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


def unique_email() -> str:
    return f"p{uuid.uuid4().hex[:10]}@example.com"


async def outbox_types(app, customer_id: str) -> list[str]:
    async with app.state.database.session() as session:
        rows = await session.execute(
            text("SELECT headers FROM customer360.outbox WHERE key = :k ORDER BY id"),
            {"k": customer_id},
        )
        return [dict(r.headers)["ce_type"] for r in rows]


async def define(client, **field) -> None:
    response = await client.post("/custom-fields", json=field, headers=ADMIN)
    assert response.status_code == 201, response.text


class TestCreate:
    async def test_normalises_identity_and_derives_a_chinese_name(self, client, app):
        email = unique_email()
        response = await client.post(
            "/customers",
            json={
                "family_name": "张",
                "given_name": "伟",
                "emails": [email.upper()],
                "phones": ["+86 138 1234 5678", "0086-138-1234-5678"],
                "timezone": "Asia/Shanghai",
                "addresses": [{"line1": "1 Century Ave", "city": "Shanghai", "country": "CN"}],
                "consent": {"email": {"granted": True, "source": "signup-form"}},
                "external_ids": {"shopify": f"cus_{uuid.uuid4().hex[:6]}"},
            },
            headers=WRITE,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["display_name"] == "张伟"
        assert body["emails"] == [email]
        assert body["phones"] == ["+8613812345678"]
        assert body["consent"]["email"]["granted"] is True
        assert body["consent"]["email"]["source"] == "signup-form"
        assert body["status"] == "active"
        assert response.headers["etag"] == f'"{body["version"]}"'
        assert response.headers["location"].endswith(f"/customers/{body['id']}")
        assert await outbox_types(app, body["id"]) == [
            "rapport.customer.created.v1",
            "rapport.customer.consent_changed.v1",
        ]

    async def test_western_names_read_given_name_first(self, client):
        response = await client.post(
            "/customers", json={"given_name": "Ada", "family_name": "Lovelace"}, headers=WRITE
        )
        assert response.json()["display_name"] == "Ada Lovelace"

    @pytest.mark.parametrize(
        ("body", "pointer"),
        [
            ({"display_name": "x", "phones": ["12345"]}, "/body/phones/0"),
            ({"display_name": "x", "phones": ["+86 1"]}, "/body/phones/0"),
            ({"display_name": "x", "emails": ["not-an-email"]}, "/body/emails/0"),
            ({"display_name": "x", "timezone": "Mars/Olympus"}, "/body/timezone"),
            ({"display_name": "x", "birthday": "2999-01-01"}, "/body/birthday"),
            ({"display_name": "x", "consent": {"fax": {"granted": True}}}, "/body/consent/fax"),
            ({"display_name": "x", "custom_fields": {"nope": 1}}, "/body/custom_fields/nope"),
            ({"given_name": " "}, "/body/display_name"),
            ({"display_name": "x", "company_id": str(uuid.uuid4())}, "/body/company_id"),
        ],
    )
    async def test_bad_values_answer_422_pointing_at_them_and_store_nothing(
        self, client, app, body, pointer
    ):
        async with app.state.database.session() as session:
            before = await session.scalar(text("SELECT count(*) FROM customer360.customer"))
        response = await client.post("/customers", json=body, headers=WRITE)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert pointer in {e["pointer"] for e in response.json()["errors"]}
        async with app.state.database.session() as session:
            after = await session.scalar(text("SELECT count(*) FROM customer360.customer"))
        assert after == before

    async def test_a_known_email_answers_409_with_the_existing_customer(self, client, app):
        email = unique_email()
        first = await client.post(
            "/customers", json={"display_name": "A", "emails": [email]}, headers=WRITE
        )
        second = await client.post(
            "/customers", json={"display_name": "B", "emails": [email.upper()]}, headers=WRITE
        )
        assert second.status_code == 409
        problem = second.json()
        assert problem["type"] == "/problems/duplicate-identity"
        assert problem["existing_customer_id"] == first.json()["id"]
        async with app.state.database.session() as session:
            count = await session.scalar(
                text("SELECT count(*) FROM customer360.customer WHERE :e = ANY(emails)"),
                {"e": email},
            )
        assert count == 1

    async def test_on_conflict_update_upserts_the_existing_customer(self, client):
        phone = f"+4930{uuid.uuid4().int % 10**7:07d}"
        first = await client.post(
            "/customers", json={"display_name": "A", "phones": [phone]}, headers=WRITE
        )
        second = await client.post(
            "/customers?on_conflict=update",
            json={"display_name": "A. Person", "phones": [phone], "tags": ["wholesale"]},
            headers=WRITE,
        )
        assert second.status_code == 200
        assert second.json()["id"] == first.json()["id"]
        assert second.json()["display_name"] == "A. Person"
        assert second.json()["tags"] == ["wholesale"]

    async def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer(self, client):
        key = str(uuid.uuid4())
        body = {"display_name": "Retry", "emails": [unique_email()]}
        headers = {**WRITE, "Idempotency-Key": key}
        first = await client.post("/customers", json=body, headers=headers)
        second = await client.post("/customers", json=body, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second.headers["idempotent-replayed"] == "true"
        reused = await client.post(
            "/customers", json={**body, "display_name": "Other"}, headers=headers
        )
        assert reused.status_code == 422
        assert reused.json()["errors"][0]["pointer"] == "/headers/idempotency-key"


class TestUpdate:
    async def test_merge_patch_with_if_match_and_a_stale_write_refused(self, client, app):
        created = await client.post(
            "/customers",
            json={"display_name": "Wei", "tags": ["a"], "locale": "zh-CN"},
            headers=WRITE,
        )
        customer_id, etag = created.json()["id"], created.headers["etag"]
        patched = await client.patch(
            f"/customers/{customer_id}",
            json={"tags": ["a", "b"], "locale": None, "consent": {"sms": {"granted": False}}},
            headers={**WRITE, "If-Match": etag},
        )
        assert patched.status_code == 200, patched.text
        body = patched.json()
        assert body["tags"] == ["a", "b"]
        assert body["locale"] is None
        assert body["display_name"] == "Wei"
        assert body["consent"]["sms"]["granted"] is False
        assert patched.headers["etag"] != etag
        stale = await client.patch(
            f"/customers/{customer_id}",
            json={"display_name": "Lost"},
            headers={**WRITE, "If-Match": etag},
        )
        assert stale.status_code == 412
        assert stale.json()["current_etag"] == patched.headers["etag"]
        current = await client.get(f"/customers/{customer_id}", headers=WRITE)
        assert current.json()["display_name"] == "Wei"
        assert await outbox_types(app, customer_id) == [
            "rapport.customer.created.v1",
            "rapport.customer.updated.v1",
            "rapport.customer.consent_changed.v1",
        ]

    async def test_changing_an_email_frees_the_old_one_and_a_taken_one_is_refused(self, client):
        old, new = unique_email(), unique_email()
        a = (
            await client.post(
                "/customers", json={"display_name": "A", "emails": [old]}, headers=WRITE
            )
        ).json()
        b = (
            await client.post(
                "/customers", json={"display_name": "B", "emails": [new]}, headers=WRITE
            )
        ).json()
        taken = await client.patch(f"/customers/{a['id']}", json={"emails": [new]}, headers=WRITE)
        assert taken.status_code == 409
        assert taken.json()["existing_customer_id"] == b["id"]
        moved = await client.patch(
            f"/customers/{a['id']}", json={"emails": [unique_email()]}, headers=WRITE
        )
        assert moved.status_code == 200
        reuse = await client.post(
            "/customers", json={"display_name": "C", "emails": [old]}, headers=WRITE
        )
        assert reuse.status_code == 201

    async def test_an_unchanged_patch_keeps_the_version(self, client):
        created = await client.post("/customers", json={"display_name": "Same"}, headers=WRITE)
        patched = await client.patch(
            f"/customers/{created.json()['id']}", json={"display_name": "Same"}, headers=WRITE
        )
        assert patched.headers["etag"] == created.headers["etag"]

    async def test_null_display_name_is_refused(self, client):
        created = await client.post("/customers", json={"display_name": "N"}, headers=WRITE)
        response = await client.patch(
            f"/customers/{created.json()['id']}", json={"display_name": None}, headers=WRITE
        )
        assert response.status_code == 422


class TestCustomFields:
    async def test_values_are_validated_against_definitions(self, client):
        suffix = uuid.uuid4().hex[:6]
        level, since = f"level_{suffix}", f"since_{suffix}"
        await define(client, key=level, label="Level", type="enum", options=["silver", "gold"])
        await define(client, key=since, label="Member since", type="date")
        good = await client.post(
            "/customers",
            json={"display_name": "CF", "custom_fields": {level: "gold", since: "2020-02-29"}},
            headers=WRITE,
        )
        assert good.status_code == 201
        assert good.json()["custom_fields"] == {level: "gold", since: "2020-02-29"}
        bad = await client.post(
            "/customers",
            json={"display_name": "CF", "custom_fields": {level: "bronze", since: 2020}},
            headers=WRITE,
        )
        assert bad.status_code == 422
        pointers = {e["pointer"] for e in bad.json()["errors"]}
        assert pointers == {f"/body/custom_fields/{level}", f"/body/custom_fields/{since}"}
        cleared = await client.patch(
            f"/customers/{good.json()['id']}", json={"custom_fields": {since: None}}, headers=WRITE
        )
        assert cleared.json()["custom_fields"] == {level: "gold"}
        listed = await client.get(f"/customers?custom_field={level}:gold", headers=READ)
        assert [c["id"] for c in listed.json()["items"]] == [good.json()["id"]]

    async def test_a_required_field_must_be_given_on_create_but_not_by_a_prospect(self, client):
        key = f"region_{uuid.uuid4().hex[:6]}"
        await define(client, key=key, label="Region", type="string", required=True)
        try:
            response = await client.post("/customers", json={"display_name": "R"}, headers=WRITE)
            assert response.status_code == 422
            assert response.json()["errors"][0]["pointer"] == f"/body/custom_fields/{key}"
            # A partner's order names only an e-mail: the prospect it makes cannot say.
            prospect = await client.post(
                "/customers:resolve",
                json={"email": f"p{uuid.uuid4().hex[:8]}@example.com"},
                headers=WRITE,
            )
            assert prospect.status_code == 201, prospect.text
            assert prospect.json()["customer"]["custom_fields"] == {}
            # Completing the profile's custom fields later asks for the required one.
            incomplete = await client.patch(
                f"/customers/{prospect.json()['customer_id']}",
                json={"custom_fields": {}},
                headers=WRITE,
            )
            assert incomplete.status_code == 422
            completed = await client.patch(
                f"/customers/{prospect.json()['customer_id']}",
                json={"custom_fields": {key: "EMEA"}},
                headers=WRITE,
            )
            assert completed.json()["custom_fields"] == {key: "EMEA"}
        finally:
            assert (await client.delete(f"/custom-fields/{key}", headers=ADMIN)).status_code == 204

    async def test_only_admins_define_fields_and_definitions_are_checked(self, client):
        key = f"score_{uuid.uuid4().hex[:6]}"
        field = {"key": key, "label": "Score", "type": "integer"}
        assert (await client.post("/custom-fields", json=field, headers=WRITE)).status_code == 403
        await define(client, **field)
        assert (await client.post("/custom-fields", json=field, headers=ADMIN)).status_code == 409
        enum = {"key": f"e_{key}", "label": "E", "type": "enum"}
        assert (await client.post("/custom-fields", json=enum, headers=ADMIN)).status_code == 422
        await define(client, **{**enum, "options": ["a", "b"]})
        shrink = await client.patch(
            f"/custom-fields/e_{key}", json={"options": ["a"]}, headers=ADMIN
        )
        assert shrink.status_code == 422
        grow = await client.patch(
            f"/custom-fields/e_{key}", json={"options": ["a", "b", "c"]}, headers=ADMIN
        )
        assert grow.json()["options"] == ["a", "b", "c"]
        keys = [f["key"] for f in (await client.get("/custom-fields", headers=READ)).json()]
        assert {key, f"e_{key}"} <= set(keys)


class TestListAndAudit:
    async def test_filters_and_sorting(self, client):
        tag = f"t{uuid.uuid4().hex[:8]}"
        names = ["Charlie", "alice", "Bob"]
        ids = []
        for i, name in enumerate(names):
            response = await client.post(
                "/customers",
                json={
                    "display_name": name,
                    "tags": [tag, "even" if i % 2 == 0 else "odd"],
                    "lifecycle_stage": "lead" if i else "customer",
                },
                headers=WRITE,
            )
            ids.append(response.json()["id"])
        newest_first = await client.get(f"/customers?tag={tag}&sort=-created_at", headers=READ)
        items = newest_first.json()["items"]
        assert sorted(c["id"] for c in items) == sorted(ids)
        # One test transaction gives every row the same created_at; the id breaks the tie.
        assert items == sorted(items, key=lambda c: (c["created_at"], c["id"]), reverse=True)
        by_name = await client.get(f"/customers?tag={tag}&sort=display_name", headers=READ)
        assert [c["display_name"] for c in by_name.json()["items"]] == sorted(names)
        both = await client.get(f"/customers?tag={tag}&tag=even&lifecycle_stage=lead", headers=READ)
        assert [c["display_name"] for c in both.json()["items"]] == ["Bob"]
        created = items[0]["created_at"]
        since = await client.get(
            "/customers", params={"tag": tag, "created_after": created}, headers=READ
        )
        assert len(since.json()["items"]) == 3
        before = await client.get(
            "/customers", params={"tag": tag, "created_before": created}, headers=READ
        )
        assert before.json()["items"] == []
        paged = await client.get(f"/customers?tag={tag}&sort=-display_name&limit=2", headers=READ)
        query = {"tag": tag, "sort": "-display_name", "limit": 2}
        rest = await client.get(
            "/customers", params={**query, "cursor": paged.json()["next_cursor"]}, headers=READ
        )
        other_sort = await client.get(
            "/customers", params={"cursor": paged.json()["next_cursor"]}, headers=READ
        )
        assert other_sort.status_code == 400
        walked = [c["display_name"] for c in paged.json()["items"] + rest.json()["items"]]
        assert walked == sorted(names, reverse=True)

    async def test_bad_filters_answer_problems(self, client):
        assert (await client.get("/customers?sort=emails", headers=READ)).status_code == 422
        assert (
            await client.get("/customers?custom_field=novalue", headers=READ)
        ).status_code == 400
        assert (
            await client.get("/customers?created_after=yesterday", headers=READ)
        ).status_code == 422

    async def test_audit_records_who_changed_what_and_masks_pii(self, client):
        email = unique_email()
        created = await client.post(
            "/customers", json={"display_name": "Audited", "emails": [email]}, headers=WRITE
        )
        customer_id = created.json()["id"]
        await client.patch(
            f"/customers/{customer_id}",
            json={"display_name": "Audited Twice"},
            headers=bearer("customers:read", "customers:write", subject="rep-9"),
        )
        full = (await client.get(f"/customers/{customer_id}/audit", headers=WRITE)).json()
        assert [e["action"] for e in full["items"]] == ["updated", "created"]
        assert full["items"][0]["actor"] == "rep-9"
        assert full["items"][0]["changes"] == {
            "display_name": {"before": "Audited", "after": "Audited Twice"}
        }
        assert full["items"][1]["changes"]["emails"] == {"before": None, "after": [email]}
        masked = (await client.get(f"/customers/{customer_id}/audit", headers=READ)).json()
        assert masked["items"][1]["changes"]["emails"]["after"] == [f"{email[0]}***@example.com"]


class TestMergedAndErased:
    async def test_a_merged_id_answers_with_its_survivor_and_an_erased_one_410(self, client, app):
        survivor = (
            await client.post("/customers", json={"display_name": "S"}, headers=WRITE)
        ).json()
        merged = (await client.post("/customers", json={"display_name": "M"}, headers=WRITE)).json()
        erased = (await client.post("/customers", json={"display_name": "E"}, headers=WRITE)).json()
        async with app.state.database.session() as session:
            await session.execute(
                text(
                    "UPDATE customer360.customer SET status = 'merged', merged_into = :s "
                    "WHERE id = :m"
                ),
                {"s": survivor["id"], "m": merged["id"]},
            )
            await session.execute(
                text("UPDATE customer360.customer SET status = 'erased' WHERE id = :e"),
                {"e": erased["id"]},
            )
        response = await client.get(f"/customers/{merged['id']}", headers=READ)
        assert response.status_code == 200
        assert response.json()["id"] == survivor["id"]
        assert response.headers["content-location"] == f"/customers/{survivor['id']}"
        gone = await client.get(f"/customers/{erased['id']}", headers=READ)
        assert gone.status_code == 410
        listed = await client.get("/customers?limit=200&sort=-created_at", headers=READ)
        assert merged["id"] not in {c["id"] for c in listed.json()["items"]}
        assert json.loads(gone.text)["type"] == "/problems/customer-erased"


class TestConcurrency:
    async def test_racing_creates_of_one_email_make_exactly_one_customer(self, app):
        email = unique_email()
        async with api_client(app, rollback=False) as real:
            answers = await asyncio.gather(
                *(
                    real.post(
                        "/customers",
                        json={"display_name": f"R{i}", "emails": [email]},
                        headers=WRITE,
                    )
                    for i in range(8)
                )
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [201] + [409] * 7
            winner = next(a for a in answers if a.status_code == 201).json()["id"]
            assert {a.json()["existing_customer_id"] for a in answers if a.status_code == 409} == {
                winner
            }

    async def test_racing_patches_with_the_same_etag_let_one_win(self, app):
        async with api_client(app, rollback=False) as real:
            created = await real.post("/customers", json={"display_name": "Race"}, headers=WRITE)
            url, etag = f"/customers/{created.json()['id']}", created.headers["etag"]
            answers = await asyncio.gather(
                *(
                    real.patch(url, json={"tags": [f"t{i}"]}, headers={**WRITE, "If-Match": etag})
                    for i in range(6)
                )
            )
            assert sorted(a.status_code for a in answers) == [200] + [412] * 5
            final = (await real.get(url, headers=WRITE)).json()
            assert final["version"] == 2


async def test_a_body_that_is_not_json_answers_415(client):
    response = await client.post(
        "/customers",
        content="display_name=x",
        headers={**WRITE, "content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert response.json()["type"] == "/problems/unsupported-media-type"
