"""The e-mail fast path agrees with email_validator on every address it accepts."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from services.customer360.customer.normalize import InvalidValue, _plain_email, normalize_email

_LABEL = st.text(alphabet="abcxyzAZ019-_+.", min_size=0, max_size=70)
_TLD = st.sampled_from(["com", "COM", "cn", "io", "test", "local", "x", "1a", "onion", "museum"])
_ADDRESSES = st.one_of(
    st.builds(lambda local, host, tld: f"{local}@{host}.{tld}", _LABEL, _LABEL, _TLD),
    st.text(alphabet='ab.@-_+"é 张xn', max_size=30),
)


def _library(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


@settings(max_examples=3000, deadline=None)
@given(_ADDRESSES)
def test_fast_path_never_disagrees_with_email_validator(address: str) -> None:
    fast = _plain_email(address)
    if fast is not None:
        assert fast == _library(address)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("Wei.Zhang@Example.COM", "wei.zhang@example.com"),
        ("  li+crm@mail.example.cn ", "li+crm@mail.example.cn"),
        ("张伟@例子.中国", "张伟@例子.中国"),  # not plain: email_validator decides
    ],
)
def test_normalize_email(address: str, expected: str) -> None:
    assert normalize_email(address) == expected


@pytest.mark.parametrize(
    "address", ["a..b@example.com", ".a@example.com", "a@localhost", "a@b.test", "a@-x.com"]
)
def test_invalid_addresses_are_refused_on_either_path(address: str) -> None:
    assert _plain_email(address) is None
    with pytest.raises(InvalidValue):
        normalize_email(address)
