"""Fixtures for the operations tests: databases of their own, so a backup, a restore or an
outbox count sees only what the test wrote."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from shared.migrate import upgrade_all
from shared.parts import PARTS
from tests.conftest import Infra


@pytest.fixture
def new_database(infra: Infra) -> Iterator[Callable[..., str]]:
    """Creates empty (or, with ``migrated=True``, migrated) databases, dropped afterwards."""
    made: list[str] = []

    def make(*, migrated: bool = False) -> str:
        name = f"rapport_ops_{uuid.uuid4().hex[:8]}"
        url = infra.create_database(name)
        made.append(name)
        if migrated:
            upgrade_all({p.name: url for p in PARTS})
        return url

    yield make
    for name in made:
        infra.drop_database(name)
