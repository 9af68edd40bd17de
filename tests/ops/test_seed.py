"""``rapport seed --demo`` against a running stack: the gateway and the four services as
real processes (``rapport serve``), on a database of their own."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import httpx
import pytest

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings
from shared.cli import main
from shared.devstack import free_port
from shared.parts import PARTS
from shared.stack import PartProcess, wiring_env
from tests.conftest import Infra


@pytest.fixture
def stack(infra: Infra, new_database, tmp_path: Path):
    url = new_database(migrated=True)
    ports = {p.name: free_port() for p in PARTS}
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "RAPPORT_KAFKA_IDEMPOTENT_PRODUCER": str(infra.supports_idempotence).lower(),
        "RAPPORT_ENVIRONMENT": "development",
        "RAPPORT_LOG_LEVEL": "WARNING",
        # Only the API is under test: events stay in the outboxes.
        "RAPPORT_CONSUMERS_ENABLED": "false",
        "RAPPORT_OUTBOX_RELAY_ENABLED": "false",
        "RAPPORT_KAFKA_CREATE_TOPICS": "false",
        **wiring_env(ports),
    }
    processes = [
        PartProcess(dataclasses.replace(p, port=ports[p.name]), tmp_path / "logs", env)
        for p in PARTS
    ]
    try:
        for process in processes:
            process.start()
        yield f"http://127.0.0.1:{ports['gateway']}", url
    finally:
        for process in reversed(processes):
            process.stop()


def test_seed_demo_fills_the_stack_once_through_the_gateway(stack, capsys) -> None:
    base, _ = stack
    started = time.monotonic()
    assert main(["seed", "--demo", "--url", base]) == 0
    first = capsys.readouterr().out
    seconds = time.monotonic() - started
    assert "customers       40 created    0 existed" in first
    assert "products        16 created    0 existed" in first

    # Idempotent: a second run finds everything and creates nothing.
    assert main(["seed", "--demo", "--url", base]) == 0
    second = capsys.readouterr().out
    for kind in ("customers", "products", "orders", "interactions", "tickets"):
        line = next(x for x in second.splitlines() if x.strip().startswith(kind))
        assert line.split()[1] == "0", second

    headers = {"Authorization": f"Bearer {mint_dev_token(Settings(), role='admin')}"}
    with httpx.Client(base_url=f"{base}/api/v1", headers=headers) as client:
        found = client.get("/customers:search", params={"q": "张伟"})
        assert found.status_code == 200, found.text
        assert [h["customer"]["display_name"] for h in found.json()["items"]][:1] == ["张伟"]
        customers = client.get("/customers", params={"limit": 200}).json()["items"]
        assert len(customers) == 40
        names = {c["display_name"] for c in customers}
        assert {"张伟", "林雅婷", "Zoë Müller", "Liam O'Connor"} <= names
        orders = client.get("/orders", params={"limit": 200}).json()["items"]
        assert len(orders) >= 40
        assert {o["currency"] for o in orders} == {"CNY", "EUR"}
        tickets = client.get("/tickets", params={"limit": 200}).json()["items"]
        assert len(tickets) == 12
        assert any(t["title"] == "发票抬头需要修改" for t in tickets)
    assert seconds < 120
