"""Roles, the scopes they grant, and the data scope they default to.

Authorization has two axes:

* **Scopes** say *what* a caller may do (``customers:write``). A role grants a fixed set of
  scopes (:data:`ROLE_SCOPES`); a principal with several roles gets their union. A token's
  ``scope`` claim or an API key's stored scopes can only narrow that set, never widen it.
* **Data scope** says *which customers* a caller sees: its own (``owner_id`` equals the
  subject), its team's (``team_id`` equals ``team``) or all. Each role has a default
  (:data:`DEFAULT_DATA_SCOPE`); a principal with several roles gets the widest; a token may
  narrow it with the ``scope_mode`` claim. ``team`` without a team name falls back to ``own``:
  a caller whose team is unknown sees only what it owns.

Role → scopes (``✓`` granted)::

    scope               admin sales marketing support analyst partner
    customers:read        ✓     ✓      ✓         ✓       ✓       ✓
    customers:write       ✓     ✓                ✓               ✓
    customers:pii         ✓     ✓                ✓               ✓
    orders:read           ✓     ✓      ✓         ✓       ✓       ✓
    orders:write          ✓     ✓                                ✓
    interactions:read     ✓     ✓      ✓         ✓       ✓       ✓
    interactions:write    ✓     ✓      ✓         ✓               ✓
    segments:read         ✓     ✓      ✓                 ✓       ✓
    segments:write        ✓            ✓
    webhooks:read         ✓
    webhooks:write        ✓
    webhooks:subscribe    ✓                                      ✓
    admin                 ✓

Why: sales works its accounts end to end (contact details included) and reads segments to
find leads; marketing builds segments and campaigns on pseudonymous profiles — contactable
audiences leave through consent-aware exports, not raw PII reads; support edits contact
details and works tickets but has no business in orders' write side or segments; analysts
read everything except PII; partners (shops, e-mail/chat platforms, ERPs) sync customers,
orders and interactions both ways and may pull segment membership — give each partner key
only the scopes it needs (keys are narrowed at creation). Webhook administration and API
keys (``admin``) are for admins only; partners subscribe their own endpoints to Rapport's
events (``webhooks:subscribe``) and see only those.

Data-scope defaults: ``sales`` → ``team`` (a rep without a ``team`` claim, or with
``scope_mode=own``, sees only the customers it owns); every other role → ``all`` (support
must find any customer who calls in; marketing, analysts and partners work across the base).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

__all__ = [
    "ALL_SCOPES",
    "DEFAULT_DATA_SCOPE",
    "ROLES",
    "ROLE_SCOPES",
    "SCOPE_MODES",
    "Role",
    "ScopeMode",
    "data_scope_for_roles",
    "narrow_scopes",
    "scopes_for_roles",
]

Role = Literal["admin", "sales", "marketing", "support", "analyst", "partner"]
ScopeMode = Literal["own", "team", "all"]

ROLES: tuple[Role, ...] = get_args(Role)
SCOPE_MODES: tuple[ScopeMode, ...] = get_args(ScopeMode)

ALL_SCOPES: frozenset[str] = frozenset(
    {
        "customers:read",
        "customers:write",
        "customers:pii",
        "orders:read",
        "orders:write",
        "interactions:read",
        "interactions:write",
        "segments:read",
        "segments:write",
        "webhooks:read",
        "webhooks:write",
        "webhooks:subscribe",
        "admin",
    }
)

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": ALL_SCOPES,
    "sales": frozenset(
        {
            "customers:read",
            "customers:write",
            "customers:pii",
            "orders:read",
            "orders:write",
            "interactions:read",
            "interactions:write",
            "segments:read",
        }
    ),
    "marketing": frozenset(
        {
            "customers:read",
            "orders:read",
            "interactions:read",
            "interactions:write",
            "segments:read",
            "segments:write",
        }
    ),
    "support": frozenset(
        {
            "customers:read",
            "customers:write",
            "customers:pii",
            "orders:read",
            "interactions:read",
            "interactions:write",
        }
    ),
    "analyst": frozenset({"customers:read", "orders:read", "interactions:read", "segments:read"}),
    "partner": frozenset(
        {
            "customers:read",
            "customers:write",
            "customers:pii",
            "orders:read",
            "orders:write",
            "interactions:read",
            "interactions:write",
            "segments:read",
            "webhooks:subscribe",
        }
    ),
}

DEFAULT_DATA_SCOPE: dict[str, ScopeMode] = {
    "admin": "all",
    "sales": "team",
    "marketing": "all",
    "support": "all",
    "analyst": "all",
    "partner": "all",
}

_BREADTH: dict[str, int] = {"own": 0, "team": 1, "all": 2}


def scopes_for_roles(roles: Iterable[str]) -> frozenset[str]:
    """The union of the scopes of ``roles``; unknown role names grant nothing."""
    granted: frozenset[str] = frozenset()
    for role in roles:
        granted |= ROLE_SCOPES.get(role, frozenset())
    return granted


def narrow_scopes(granted: frozenset[str], requested: Iterable[str]) -> frozenset[str]:
    """``granted`` narrowed to ``requested`` (a token's ``scope`` claim, an API key's scopes).

    Only Rapport scopes in ``requested`` count (``openid``, ``profile``… are ignored), and
    ``resource:*`` / ``*`` select every granted scope they cover. The result is always a
    subset of ``granted``: a request can narrow, never widen. A request naming no Rapport
    scope at all does not narrow (an OIDC token whose ``scope`` is ``"openid profile"`` still
    carries its roles' scopes).
    """
    wanted: set[str] = set()
    relevant = False
    for item in requested:
        if item == "*":
            return granted
        if item.endswith(":*"):
            prefix = item[:-1]
            covered = {s for s in granted if s.startswith(prefix)}
            relevant = relevant or any(s.startswith(prefix) for s in ALL_SCOPES)
            wanted |= covered
        elif item in ALL_SCOPES:
            relevant = True
            wanted.add(item)
    if not relevant:
        return granted
    return granted & frozenset(wanted)


def data_scope_for_roles(
    roles: Iterable[str], *, claimed_mode: str | None = None, team: str | None = None
) -> ScopeMode:
    """The data scope of a principal with ``roles``.

    The widest default of the known roles (``own`` when none is known), narrowed by
    ``claimed_mode`` when that is narrower (a wider claim is ignored, never honoured);
    ``team`` without a team name becomes ``own``. Raises :class:`ValueError` for a
    ``claimed_mode`` that is not ``own``, ``team`` or ``all``.
    """
    if claimed_mode is not None and claimed_mode not in _BREADTH:
        raise ValueError(f"scope_mode must be one of {', '.join(SCOPE_MODES)}")
    mode: ScopeMode = "own"
    for role in roles:
        default = DEFAULT_DATA_SCOPE.get(role)
        if default is not None and _BREADTH[default] > _BREADTH[mode]:
            mode = default
    if claimed_mode is not None and _BREADTH[claimed_mode] < _BREADTH[mode]:
        mode = "own" if claimed_mode == "own" else "team"
    if mode == "team" and not team:
        mode = "own"
    return mode
