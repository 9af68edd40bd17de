"""Fixtures of interactions' campaign tests."""

from collections.abc import Iterator

import pytest

from tests.services.interactions.campaign_support import SmtpServer


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on localhost, one per test module; its inbox keeps what arrived."""
    with SmtpServer() as server:
        yield server
