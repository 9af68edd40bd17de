import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from services.orders.config import Settings
from services.orders.main import create_app
from shared.errors import PROBLEM_JSON
from tests.support import api_client, bearer


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(make_settings(Settings))) as c:
        yield c


def writer() -> dict[str, str]:
    return bearer("orders:write")


def reader() -> dict[str, str]:
    return bearer("orders:read")


def a_mug(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": f"MUG-{uuid.uuid4().hex[:12]}",
        "name": "Blue mug, 350 ml",
        "category": "kitchen",
        "price": "12.90",
        "currency": "EUR",
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/products", json=body, headers=writer())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def list_all(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/products", params={"limit": "200", **params}, headers=reader())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def pointers(response: httpx.Response) -> set[str]:
    return {e["pointer"] for e in response.json()["errors"]}


class TestCreateProduct:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_creates_a_product_with_an_exact_price(self, client: httpx.AsyncClient) -> None:
        body = a_mug(price="12345678901234.1234", currency="JPY")

        created = await create(client, body)

        assert created["sku"] == body["sku"]
        assert created["name"] == "Blue mug, 350 ml"
        assert created["category"] == "kitchen"
        assert created["price"] == "12345678901234.1234"
        assert created["currency"] == "JPY"
        assert created["active"] is True
        assert uuid.UUID(created["id"])

    @pytest.mark.asyncio(loop_scope="session")
    async def test_returns_the_price_as_a_string_with_four_decimal_places(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await create(client, a_mug(price="12.9"))

        assert created["price"] == "12.9000"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_accepts_a_whole_number_price(self, client: httpx.AsyncClient) -> None:
        created = await create(client, a_mug(price=20))

        assert created["price"] == "20.0000"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_answers_409_to_a_sku_that_is_taken(self, client: httpx.AsyncClient) -> None:
        first = await create(client, a_mug(sku="MUG-TAKEN"))

        response = await client.post(
            "/products", json=a_mug(sku="MUG-TAKEN", name="Impostor"), headers=writer()
        )

        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM_JSON
        problem = response.json()
        assert problem["type"] == "/problems/product-sku-taken"
        assert problem["status"] == 409
        assert pointers(response) == {"/body/sku"}
        kept = await client.get(f"/products/{first['id']}", headers=reader())
        assert kept.json()["name"] == "Blue mug, 350 ml"
        assert [p["sku"] for p in await list_all(client) if p["sku"] == "MUG-TAKEN"] == [
            "MUG-TAKEN"
        ]

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_price_sent_as_a_json_number_with_decimals(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/products", json=a_mug(price=12.9), headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {"/body/price"}

    @pytest.mark.asyncio(loop_scope="session")
    @pytest.mark.parametrize("price", ["1.00001", "-1.00", "123456789012345", "NaN", "a lot"])
    async def test_refuses_a_price_out_of_range_or_precision(
        self, client: httpx.AsyncClient, price: str
    ) -> None:
        response = await client.post("/products", json=a_mug(price=price), headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {"/body/price"}

    @pytest.mark.asyncio(loop_scope="session")
    @pytest.mark.parametrize("currency", ["eur", "EURO", "ABC", "XAU"])
    async def test_refuses_a_currency_that_is_not_an_iso_4217_code(
        self, client: httpx.AsyncClient, currency: str
    ) -> None:
        response = await client.post("/products", json=a_mug(currency=currency), headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {"/body/currency"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_points_at_each_field_of_the_wrong_type(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/products", json=a_mug(sku=5, name=["mug"], active="maybe"), headers=writer()
        )

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert pointers(response) == {"/body/sku", "/body/name", "/body/active"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_unknown_fields(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/products", json=a_mug(colour="blue"), headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {"/body/colour"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_answers_400_to_a_body_that_is_not_json(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/products",
            content=b"{'sku': 'single quotes'}",
            headers={**writer(), "content-type": "application/json"},
        )

        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/malformed-body"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_request_without_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/products", json=a_mug())

        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/unauthorized"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_token_without_the_write_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/products", json=a_mug(), headers=reader())

        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["missing_scopes"] == ["orders:write"]


class TestGetProduct:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_returns_a_product_by_id(self, client: httpx.AsyncClient) -> None:
        created = await create(client, a_mug(price="0.5"))

        response = await client.get(f"/products/{created['id']}", headers=reader())

        assert response.status_code == 200
        assert response.json() == created

    @pytest.mark.asyncio(loop_scope="session")
    async def test_answers_404_for_an_unknown_id(self, client: httpx.AsyncClient) -> None:
        unknown = uuid.uuid4()

        response = await client.get(f"/products/{unknown}", headers=reader())

        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON
        problem = response.json()
        assert problem["type"] == "/problems/not-found"
        assert problem["detail"] == f"product {unknown} does not exist"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_points_at_a_malformed_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/products/42", headers=reader())

        assert response.status_code == 422
        assert pointers(response) == {"/path/product_id"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_token_without_the_read_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/products/{uuid.uuid4()}", headers=bearer("customers:read"))

        assert response.status_code == 403
        assert response.json()["missing_scopes"] == ["orders:read"]


class TestListProducts:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_lists_products_in_sku_order(self, client: httpx.AsyncClient) -> None:
        prefix = f"LST-{uuid.uuid4().hex[:8]}"
        for suffix in ("C", "A", "B"):
            await create(client, a_mug(sku=f"{prefix}-{suffix}"))

        skus = [p["sku"] for p in await list_all(client) if p["sku"].startswith(prefix)]

        assert skus == [f"{prefix}-A", f"{prefix}-B", f"{prefix}-C"]

    @pytest.mark.asyncio(loop_scope="session")
    async def test_filters_by_active(self, client: httpx.AsyncClient) -> None:
        sellable = await create(client, a_mug())
        retired = await create(client, a_mug(active=False))

        active_ids = {p["id"] for p in await list_all(client, active="true")}
        inactive_ids = {p["id"] for p in await list_all(client, active="false")}

        assert sellable["id"] in active_ids
        assert retired["id"] not in active_ids
        assert retired["id"] in inactive_ids
        assert sellable["id"] not in inactive_ids

    @pytest.mark.asyncio(loop_scope="session")
    async def test_pages_through_with_the_cursor(self, client: httpx.AsyncClient) -> None:
        prefix = f"PG-{uuid.uuid4().hex[:8]}"
        for n in range(5):
            await create(client, a_mug(sku=f"{prefix}-{n}"))

        seen: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            response = await client.get("/products", params=params, headers=reader())
            assert response.status_code == 200
            page = response.json()
            assert len(page["items"]) <= 2
            seen += [p["sku"] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break

        assert [s for s in seen if s.startswith(prefix)] == [f"{prefix}-{n}" for n in range(5)]
        assert len(seen) == len(set(seen))

    @pytest.mark.asyncio(loop_scope="session")
    async def test_points_at_an_active_filter_that_is_not_a_boolean(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/products", params={"active": "perhaps"}, headers=reader())

        assert response.status_code == 422
        assert pointers(response) == {"/query/active"}
