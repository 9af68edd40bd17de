"""Authentication and authorization at the gateway.

* :class:`Authenticator` — who is calling: JWT bearer tokens (JWKS keys, or the HS256 dev
  secret in development) and API keys (``rpk_…``), with the hot path cached.
* :mod:`.roles` — roles → scopes, and each role's default data scope.
* :func:`get_gateway_principal` / :data:`GatewayPrincipalDep` /
  :func:`require_gateway_scopes` — dependencies for the gateway's own endpoints.
* :data:`admin_router` — ``/api/v1/admin/api-keys``: create, list, read, revoke API keys.
* :func:`mint_dev_token` — a token for trying the API locally (``rapport token``).
"""

from gateway.auth.admin import router as admin_router
from gateway.auth.api_keys import (
    API_KEY_PATTERN,
    generate_api_key,
    parse_api_key,
    principal_for_api_key,
)
from gateway.auth.authenticator import DEFAULT_API_KEY_CACHE_S, Authenticator
from gateway.auth.dependencies import (
    GatewayPrincipalDep,
    get_gateway_principal,
    require_gateway_scopes,
)
from gateway.auth.dev import DevTokenRefused, mint_dev_token
from gateway.auth.jwt import JwksCache, JwksKey, JwtVerifier
from gateway.auth.roles import (
    ALL_SCOPES,
    DEFAULT_DATA_SCOPE,
    ROLE_SCOPES,
    ROLES,
    SCOPE_MODES,
    Role,
    ScopeMode,
    data_scope_for_roles,
    narrow_scopes,
    scopes_for_roles,
)

__all__ = [
    "ALL_SCOPES",
    "API_KEY_PATTERN",
    "DEFAULT_API_KEY_CACHE_S",
    "DEFAULT_DATA_SCOPE",
    "ROLES",
    "ROLE_SCOPES",
    "SCOPE_MODES",
    "Authenticator",
    "DevTokenRefused",
    "GatewayPrincipalDep",
    "JwksCache",
    "JwksKey",
    "JwtVerifier",
    "Role",
    "ScopeMode",
    "admin_router",
    "data_scope_for_roles",
    "generate_api_key",
    "get_gateway_principal",
    "mint_dev_token",
    "narrow_scopes",
    "parse_api_key",
    "principal_for_api_key",
    "require_gateway_scopes",
    "scopes_for_roles",
]
