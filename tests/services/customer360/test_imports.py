"""POST /imports/customers, GET /imports/{id}, GET /imports/{id}/errors."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from services.customer360.config import Settings
from services.customer360.imports import reader
from services.customer360.imports.cli import run_import
from services.customer360.imports.parsing import ImportRow, read_rows
from services.customer360.imports.service import fail_interrupted
from services.customer360.main import create_app
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("customers:read", "customers:write", "customers:pii")
READ_OTHER = bearer("customers:read", subject="user-2", scope_mode="own")
PROBLEM = "application/problem+json"
CSV = {"Content-Type": "text/csv", **WRITE}
NDJSON = {"Content-Type": "application/x-ndjson", **WRITE}


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        async with app.state.database.session() as session:
            await session.execute(
                text(
                    "INSERT INTO customer360.custom_field (key, label, type, options, required)"
                    " VALUES ('tier', 'Tier', 'enum', ARRAY['gold','silver'], false),"
                    " ('score', 'Score', 'integer', ARRAY[]::varchar[], false)"
                )
            )
        yield c


async def upload(client, body, headers=CSV):
    response = await client.post("/imports/customers", content=body, headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.headers["location"] == f"/imports/{job_id}"
    job = (await client.get(f"/imports/{job_id}", headers=WRITE)).json()
    return job


async def errors_of(client, job_id):
    response = await client.get(f"/imports/{job_id}/errors", headers=WRITE)
    assert response.status_code == 200
    return [(e["row_number"], e["field"], e["reason"]) for e in response.json()["items"]]


async def customers_with(app, email):
    async with app.state.database.session() as session:
        return (
            await session.execute(
                text(
                    "SELECT id, display_name, emails, phones, tags, custom_fields, version"
                    " FROM customer360.customer WHERE :e = ANY(emails)"
                ),
                {"e": email},
            )
        ).all()


class TestImportCustomers:
    async def test_imports_good_rows_and_reports_bad_ones(self, client, app):
        body = (
            "display_name,email,phone,tags,custom.tier,custom.score\n"
            "张伟,Wei@Example.com,+8613812345678,vip|newsletter,gold,7\n"
            "Bad Mail,not-an-email,,,,\n"
            "Bad Phone,ok@example.com,12,,,\n"
            "Bad Tier,tier@example.com,,,platinum,\n"
            "Bad Score,score@example.com,,,,seven\n"
            "John Smith,john@acme.com,,,silver,\n"
        ).encode()
        job = await upload(client, body)
        assert job["status"] == "done"
        assert (job["total"], job["created"], job["updated"], job["failed"]) == (6, 2, 0, 4)
        errors = await errors_of(client, job["id"])
        assert [(n, f) for n, f, _ in errors] == [
            (2, "email"),
            (3, "phone"),
            (4, "custom.tier"),
            (5, "custom.score"),
        ]
        [row] = await customers_with(app, "wei@example.com")
        assert row.display_name == "张伟"
        assert row.phones == ["+8613812345678"]
        assert row.tags == ["vip", "newsletter"]
        assert row.custom_fields == {"tier": "gold", "score": 7}

    async def test_updates_the_customer_owning_a_key_instead_of_duplicating(self, client, app):
        first = await upload(client, b"display_name,email\nAnna Lee,anna@example.com\n")
        assert first["created"] == 1
        again = await upload(
            client, b"display_name,email,phone\nAnna Lee-Park,ANNA@example.com,+14155552671\n"
        )
        assert (again["created"], again["updated"], again["failed"]) == (0, 1, 0)
        [row] = await customers_with(app, "anna@example.com")
        assert row.display_name == "Anna Lee-Park"
        assert row.phones == ["+14155552671"]
        assert row.version == 2
        async with app.state.database.session() as session:
            audit = (
                await session.execute(
                    text(
                        "SELECT action, changes FROM customer360.audit_entry"
                        " WHERE customer_id = :c ORDER BY id"
                    ),
                    {"c": row.id},
                )
            ).all()
            events = (
                await session.execute(
                    text("SELECT headers FROM customer360.outbox WHERE key = :k ORDER BY id"),
                    {"k": str(row.id)},
                )
            ).all()
        assert [a.action for a in audit] == ["imported", "imported"]
        assert audit[1].changes["display_name"] == {"before": "Anna Lee", "after": "Anna Lee-Park"}
        assert [dict(e.headers)["ce_type"] for e in events] == [
            "rapport.customer.created.v1",
            "rapport.customer.updated.v1",
        ]

    async def test_two_rows_with_one_key_in_a_file_make_one_customer(self, client, app):
        job = await upload(
            client, b"display_name,email\nSam One,sam@example.com\nSam Two,sam@example.com\n"
        )
        assert (job["created"], job["updated"]) == (1, 1)
        [row] = await customers_with(app, "sam@example.com")
        assert row.display_name == "Sam Two"

    async def test_imports_ndjson_and_reports_unparseable_lines(self, client, app):
        lines = [
            json.dumps({"display_name": "Nd One", "emails": ["nd1@example.com"]}),
            "{not json",
            json.dumps({"display_name": "Nd Two", "emails": ["nd2@example.com"], "x": 1}),
            json.dumps(
                {
                    "display_name": "Nd Three",
                    "custom_fields": {"nope": 1},
                    "emails": ["nd3@example.com"],
                }
            ),
            json.dumps({"display_name": "Nd Four"}),
        ]
        job = await upload(client, ("\n".join(lines) + "\n").encode(), headers=NDJSON)
        assert (job["total"], job["created"], job["failed"]) == (5, 1, 4)
        errors = await errors_of(client, job["id"])
        assert [(n, f) for n, f, _ in errors] == [
            (2, None),
            (3, "x"),
            (4, "custom.nope"),
            (5, None),
        ]
        assert errors[0][2].startswith("not JSON")
        assert "identity key" in errors[3][2]
        assert len(await customers_with(app, "nd1@example.com")) == 1

    async def test_imported_customers_are_searchable(self, client):
        job = await upload(client, "display_name,email\n欧阳娜娜,ouyang@example.com\n".encode())
        assert job["created"] == 1
        response = await client.get("/customers:search", params={"q": "欧阳"}, headers=WRITE)
        assert response.status_code == 200
        names = [h["customer"]["display_name"] for h in response.json()["items"]]
        assert names[0] == "欧阳娜娜"

    async def test_accepts_semicolons(self, client, app):
        job = await upload(client, b"display_name;email\nSemi Colon;semi@example.com\n")
        assert job["created"] == 1

    async def test_refuses_a_file_that_is_not_utf8(self, client):
        body = "display_name,email\nJosé,jose@example.com\n".encode("latin-1")
        response = await client.post("/imports/customers", content=body, headers=CSV)
        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "/problems/invalid-import-file"
        assert "byte 22" in response.json()["detail"]

    async def test_refuses_a_header_without_required_columns(self, client):
        response = await client.post(
            "/imports/customers", content=b"name,mail\nA,a@example.com\n", headers=CSV
        )
        assert response.status_code == 400
        assert "display_name" in response.json()["detail"]
        assert "one of email, phone, external_id" in response.json()["detail"]

    async def test_refuses_mixed_delimiters(self, client):
        response = await client.post(
            "/imports/customers", content=b"display_name,email;phone\n", headers=CSV
        )
        assert response.status_code == 400
        assert "mixes delimiters (comma, semicolon)" in response.json()["detail"]

    async def test_refuses_an_empty_file(self, client):
        response = await client.post("/imports/customers", content=b"", headers=CSV)
        assert response.status_code == 400
        assert "empty" in response.json()["detail"]

    async def test_refuses_ndjson_whose_first_line_is_not_json(self, client):
        response = await client.post("/imports/customers", content=b"a,b\n", headers=NDJSON)
        assert response.status_code == 400
        assert response.json()["detail"].startswith("line 1 is not JSON")

    async def test_refuses_other_media_types(self, client):
        headers = {"Content-Type": "application/json", **WRITE}
        response = await client.post("/imports/customers", content=b"{}", headers=headers)
        assert response.status_code == 415
        assert response.headers["content-type"] == PROBLEM

    async def test_refuses_a_caller_without_the_write_scope(self, client):
        headers = {"Content-Type": "text/csv", **bearer("customers:read")}
        response = await client.post("/imports/customers", content=b"x", headers=headers)
        assert response.status_code == 403


class TestGetImport:
    async def test_hides_someone_elses_import(self, client):
        job = await upload(client, b"display_name,email\nHid Den,hidden@example.com\n")
        response = await client.get(f"/imports/{job['id']}", headers=READ_OTHER)
        assert response.status_code == 404
        response = await client.get(f"/imports/{job['id']}/errors", headers=READ_OTHER)
        assert response.status_code == 404

    async def test_answers_an_unknown_import_with_404(self, client):
        response = await client.get("/imports/00000000-0000-4000-8000-000000000000", headers=WRITE)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM


class TestListImportErrors:
    async def test_pages_with_a_cursor(self, client):
        body = "display_name,email\n" + "".join(f"Bad {i},bad{i}\n" for i in range(5))
        job = await upload(client, body.encode())
        page = await client.get(f"/imports/{job['id']}/errors?limit=3", headers=WRITE)
        first = page.json()
        assert [e["row_number"] for e in first["items"]] == [1, 2, 3]
        page = await client.get(
            f"/imports/{job['id']}/errors?limit=3&cursor={first['next_cursor']}", headers=WRITE
        )
        assert [e["row_number"] for e in page.json()["items"]] == [4, 5]
        assert page.json()["next_cursor"] is None


class TestInterruptedImports:
    async def test_marks_only_stale_unfinished_jobs_failed_at_start_up(self, client, app):
        async with app.state.database.session() as session:
            await session.execute(
                text(
                    "INSERT INTO customer360.import_job (id, status, format, created_by,"
                    " created_at, heartbeat_at) VALUES"
                    " ('00000000-0000-4000-8000-0000000000a1', 'running', 'csv', 'u',"
                    "  now() - interval '1 hour', now() - interval '10 minutes'),"
                    " ('00000000-0000-4000-8000-0000000000a2', 'running', 'csv', 'u',"
                    "  now() - interval '1 hour', now()),"
                    " ('00000000-0000-4000-8000-0000000000a3', 'done', 'csv', 'u',"
                    "  now() - interval '1 hour', now() - interval '1 hour')"
                )
            )
            assert await fail_interrupted(session) == 1
            rows = (
                await session.execute(
                    text(
                        "SELECT status, error FROM customer360.import_job"
                        " WHERE created_by = 'u' ORDER BY id"
                    )
                )
            ).all()
        assert [r.status for r in rows] == ["failed", "running", "done"]
        assert rows[0].error == "interrupted: the service stopped"


class TestImportCommand:
    async def test_uploads_a_file_and_reports_the_outcome(self, client, app, tmp_path):
        path = tmp_path / "customers.csv"
        path.write_text("display_name,email\nCli User,cli@example.com\nBad,nope\n")
        out = io.StringIO()
        token = WRITE["Authorization"].removeprefix("Bearer ")
        job = await run_import(
            path,
            base_url="http://test",
            token=token,
            transport=httpx.ASGITransport(app=app),
            out=out,
        )
        assert (job["status"], job["created"], job["failed"]) == ("done", 1, 1)
        assert "1 created" in out.getvalue()
        assert "row 2: email:" in out.getvalue()
        assert len(await customers_with(app, "cli@example.com")) == 1


async def test_uploads_may_exceed_the_request_body_limit_other_requests_may_not(make_settings):
    app = create_app(make_settings(Settings, max_body_bytes=2048, max_upload_bytes=1_000_000))
    rows = "".join(f"Person {i},p{i}.{uuid.uuid4().hex[:6]}@example.com\n" for i in range(200))
    body = ("display_name,email\n" + rows).encode()
    assert len(body) > 2048
    async with api_client(app) as client:
        job = await upload(client, body)
        assert job["status"] in ("queued", "running", "done")
        too_big = await client.post("/customers", json={"display_name": "x" * 3000}, headers=WRITE)
        assert too_big.status_code == 413
        huge = await client.post("/imports/customers", content=body * 200, headers=CSV)
        assert huge.status_code == 413


async def test_racing_imports_of_the_same_new_people_make_each_person_once(make_settings):
    app = create_app(make_settings(Settings))
    tag = uuid.uuid4().hex[:8]
    rows = "".join(f"Racer {i},racer{i}.{tag}@example.com\n" for i in range(300))
    body = ("display_name,email\n" + rows).encode()
    async with api_client(app, rollback=False) as client:
        jobs = await asyncio.gather(*(upload(client, body) for _ in range(3)))

        async def finished() -> list[dict]:  # type: ignore[type-arg]
            states = [(await client.get(f"/imports/{j['id']}", headers=WRITE)).json() for j in jobs]
            return states if all(s["status"] in ("done", "failed") for s in states) else []

        async with asyncio.timeout(60):
            while not (states := await finished()):
                await asyncio.sleep(0.1)
    assert [s["status"] for s in states] == ["done"] * 3
    async with app.state.database.session() as session:
        per_email = await session.execute(
            text(
                "SELECT e, count(*) FROM customer360.customer, unnest(emails) AS e "
                "WHERE e LIKE :pattern GROUP BY e"
            ),
            {"pattern": f"%.{tag}@example.com"},
        )
        counts = dict(per_email.all())
    assert len(counts) == 300
    assert set(counts.values()) == {1}


async def test_a_big_file_is_parsed_in_a_child_process_with_the_same_result(
    client, app, monkeypatch
):
    modes: list[bool] = []
    enter = reader.ChunkReader.__aenter__

    async def record_mode(self: reader.ChunkReader) -> reader.ChunkReader:
        modes.append(self.in_process)
        return await enter(self)

    monkeypatch.setattr(reader, "PROCESS_FROM_BYTES", 0)
    monkeypatch.setattr(reader.ChunkReader, "__aenter__", record_mode)
    tag = uuid.uuid4().hex[:8]
    body = (
        "display_name,email,phone\n"
        f"Process One,one.{tag}@example.com,+8613812340001\n"
        "Bad Mail,not-an-email,\n"
        f"Process Two,two.{tag}@example.com,\n"
    ).encode()
    job = await upload(client, body)
    assert modes == [True]
    assert (job["status"], job["created"], job["failed"]) == ("done", 2, 1)
    assert [(n, f) for n, f, _ in await errors_of(client, job["id"])] == [(2, "email")]
    [row] = await customers_with(app, f"one.{tag}@example.com")
    assert (row.display_name, row.phones) == ("Process One", ["+8613812340001"])


async def test_phones_without_a_country_code_are_read_in_the_default_region(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("display_name,phone\nWang Fang,138 1234 5678\n", encoding="utf-8")
    [local] = read_rows(path, "csv", ",", {}, default_region="CN")
    assert isinstance(local, ImportRow)
    assert local.phones == ["+8613812345678"]
    [refused] = read_rows(path, "csv", ",", {})
    assert isinstance(refused, list)
    assert refused[0].field == "phone"
