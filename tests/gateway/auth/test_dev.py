"""``mint_dev_token``: the token ``rapport token --role …`` prints for trying the API."""

from __future__ import annotations

import jwt
import pytest

from gateway.auth import DevTokenRefused, mint_dev_token
from tests.gateway.auth.conftest import AUDIENCE, ISSUER, jwt_settings


def test_a_dev_token_carries_the_issuer_audience_type_and_role_the_gateway_expects():
    settings = jwt_settings()
    token = mint_dev_token(
        settings, role="support", subject="sam", team="tier-1", scope_mode="team", ttl_s=600
    )
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "at+jwt"}
    claims = jwt.decode(
        token, settings.dev_jwt_secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER
    )
    assert claims["sub"] == "sam"
    assert claims["roles"] == ["support"]
    assert (claims["team"], claims["scope_mode"]) == ("tier-1", "team")
    assert claims["exp"] - claims["iat"] == 600


def test_a_dotted_roles_claim_is_written_as_nested_objects():
    settings = jwt_settings(roles_claim="realm_access.roles")
    token = mint_dev_token(settings, role="analyst")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["realm_access"] == {"roles": ["analyst"]}


def test_refuses_to_mint_in_production():
    production = jwt_settings(
        environment="production",
        dev_jwt_secret="",
        internal_token_secret="x" * 40,
        outbound_secret_key="A" * 43 + "=",  # a well-formed Fernet key
    )
    with pytest.raises(DevTokenRefused, match="production"):
        mint_dev_token(production, role="admin")
    # Even if a dev secret slipped into production settings.
    leaked = jwt_settings().model_copy(update={"environment": "production"})
    with pytest.raises(DevTokenRefused, match="production"):
        mint_dev_token(leaked, role="admin")


def test_refuses_to_mint_without_a_dev_secret():
    with pytest.raises(DevTokenRefused, match="empty"):
        mint_dev_token(jwt_settings(dev_jwt_secret=""), role="admin")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"role": "root"}, "unknown role"), ({"role": "sales", "scope_mode": "world"}, "scope mode")],
)
def test_refuses_unknown_roles_and_scope_modes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mint_dev_token(jwt_settings(), **kwargs)
