"""How the Authenticator reads credentials from headers (no database involved: the one used
here is unreachable, so any query would fail the test)."""

from __future__ import annotations

import pytest

from gateway.auth import generate_api_key, mint_dev_token
from gateway.auth.roles import ROLE_SCOPES
from tests.gateway.auth.conftest import FakeIdp, jwt_settings, refusal, rsa_key

pytestmark = pytest.mark.asyncio(loop_scope="session")


class TestCredentialsInHeaders:
    async def test_no_credentials_get_a_bare_bearer_challenge(self, offline_authenticator):
        error = await refusal(offline_authenticator, {})
        assert error.challenge == 'Bearer realm="rapport"'
        assert "X-API-Key" in error.detail

    @pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token abc"])
    async def test_a_header_that_is_not_bearer_is_an_invalid_request(
        self, offline_authenticator, value
    ):
        error = await refusal(offline_authenticator, {"authorization": value})
        assert 'error="invalid_request"' in error.challenge

    async def test_sending_a_token_and_an_api_key_at_once_is_refused(self, offline_authenticator):
        token = mint_dev_token(jwt_settings(), role="admin")
        headers = {"authorization": f"Bearer {token}", "x-api-key": generate_api_key().key}
        error = await refusal(offline_authenticator, headers)
        assert "not both" in error.detail

    async def test_the_scheme_name_is_case_insensitive(self, offline_authenticator):
        token = FakeIdp.token(rsa_key("rsa-a"), roles=["analyst"])
        principal = await offline_authenticator.authenticate({"authorization": f"bearer {token}"})
        assert principal.scopes == ROLE_SCOPES["analyst"]


class TestApiKeysRefusedWithoutTheDatabase:
    @pytest.mark.parametrize("header", ["x-api-key", "authorization"])
    async def test_a_mistyped_key_fails_its_checksum(self, offline_authenticator, header):
        key = generate_api_key().key
        typo = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
        value = typo if header == "x-api-key" else f"Bearer {typo}"
        error = await refusal(offline_authenticator, {header: value})
        assert "checksum" in error.detail
        assert 'error="invalid_token"' in error.challenge

    async def test_a_truncated_key_is_malformed(self, offline_authenticator):
        error = await refusal(offline_authenticator, {"x-api-key": generate_api_key().key[:-1]})
        assert "malformed API key" in error.detail

    @pytest.mark.parametrize(
        "value",
        ["rpk_", "rpk_short_secret", "rpk_ÄÖÜäöüÄÖÜäöü_" + "a" * 38, "rpk_" + "a" * 51 + " x"],
    )
    async def test_garbage_with_the_prefix_is_malformed(self, offline_authenticator, value):
        error = await refusal(offline_authenticator, {"x-api-key": value})
        assert "malformed" in error.detail
