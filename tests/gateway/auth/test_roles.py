"""Roles → scopes and data scope, end to end: a dev token (or an API key) of each role, as the
gateway turns it into a Principal, is allowed or denied each endpoint family exactly as the
table below says."""

from __future__ import annotations

import pytest

from gateway.auth import (
    ALL_SCOPES,
    DEFAULT_DATA_SCOPE,
    ROLE_SCOPES,
    ROLES,
    mint_dev_token,
    principal_for_api_key,
)
from gateway.models import ApiKey
from tests.gateway.auth.conftest import jwt_settings

asyncio = pytest.mark.asyncio(loop_scope="session")

# The endpoint families and the scope each one requires; Y = allowed, - = denied.
MATRIX = """
endpoint family       scope                admin sales marketing support analyst partner
customers read        customers:read         Y     Y       Y        Y       Y       Y
customers write       customers:write        Y     Y       -        Y       -       Y
customers pii         customers:pii          Y     Y       -        Y       -       Y
orders read           orders:read            Y     Y       Y        Y       Y       Y
orders write          orders:write           Y     Y       -        -       -       Y
interactions read     interactions:read      Y     Y       Y        Y       Y       Y
interactions write    interactions:write     Y     Y       Y        Y       -       Y
segments read         segments:read          Y     Y       Y        -       Y       Y
segments write        segments:write         Y     -       Y        -       -       -
webhooks read         webhooks:read          Y     -       -        -       -       -
webhooks write        webhooks:write         Y     -       -        -       -       -
webhooks subscribe    webhooks:subscribe     Y     -       -        -       -       Y
admin (api keys)      admin                  Y     -       -        -       -       -
"""


def _cells() -> list[tuple[str, str, str, bool]]:
    header, *rows = MATRIX.strip().splitlines()
    roles = header.split()[3:]
    cells = []
    for row in rows:
        words = row.split()
        family = " ".join(words[: -(len(roles) + 1)])
        scope = words[-(len(roles) + 1)]
        for role, mark in zip(roles, words[-len(roles) :], strict=True):
            cells.append((role, family, scope, mark == "Y"))
    return cells


CELLS = _cells()
SETTINGS = jwt_settings()


def test_the_table_covers_every_role_and_scope():
    assert {c[0] for c in CELLS} == set(ROLES)
    assert {c[2] for c in CELLS} == ALL_SCOPES
    assert set(ROLE_SCOPES) == set(ROLES) == set(DEFAULT_DATA_SCOPE)


@pytest.mark.parametrize(
    ("role", "family", "scope", "allowed"),
    CELLS,
    ids=[f"{r}-{f.replace(' ', '_')}-{'allowed' if a else 'denied'}" for r, f, _, a in CELLS],
)
@asyncio
async def test_a_user_token_of_each_role_is_allowed_exactly_what_the_table_says(
    offline_authenticator, role, family, scope, allowed
):
    token = mint_dev_token(SETTINGS, role=role)
    principal = await offline_authenticator.authenticate({"authorization": f"Bearer {token}"})
    assert principal.has(scope) is allowed, f"{role} on {family}"


@pytest.mark.parametrize(
    ("role", "family", "scope", "allowed"),
    CELLS,
    ids=[f"{r}-{f.replace(' ', '_')}-{'allowed' if a else 'denied'}" for r, f, _, a in CELLS],
)
def test_an_api_key_of_each_role_is_allowed_exactly_what_the_table_says(
    role, family, scope, allowed
):
    key = ApiKey(key_id="K" * 12, name="k", role=role, scopes=sorted(ALL_SCOPES))
    assert principal_for_api_key(key).has(scope) is allowed, f"{role} key on {family}"


DATA_SCOPE = """
role        default   with a team   scope_mode=own   scope_mode=team   scope_mode=all
admin       all       all           own              team              all
sales       own       team          own              team              team
marketing   all       all           own              team              all
support     all       all           own              team              all
analyst     all       all           own              team              all
partner     all       all           own              team              all
"""


@pytest.mark.parametrize("row", DATA_SCOPE.strip().splitlines()[1:])
@asyncio
async def test_data_scope_defaults_per_role_and_what_a_token_may_narrow(offline_authenticator, row):
    role, no_team, with_team, own, team, all_ = row.split()

    async def mode(**kwargs):
        token = mint_dev_token(SETTINGS, role=role, **kwargs)
        principal = await offline_authenticator.authenticate({"authorization": f"Bearer {token}"})
        return principal.scope_mode

    assert await mode() == no_team
    assert await mode(team="emea") == with_team
    assert await mode(team="emea", scope_mode="own") == own
    assert await mode(team="emea", scope_mode="team") == team
    assert await mode(team="emea", scope_mode="all") == all_


def test_several_roles_get_the_union_of_scopes_and_the_widest_data_scope():
    from gateway.auth import data_scope_for_roles, scopes_for_roles

    assert (
        scopes_for_roles(["analyst", "support"]) == ROLE_SCOPES["analyst"] | ROLE_SCOPES["support"]
    )
    assert data_scope_for_roles(["sales", "support"]) == "all"
    assert scopes_for_roles(["nobody"]) == frozenset()
