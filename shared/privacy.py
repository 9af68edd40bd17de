"""Personal data: masking for callers without ``customers:pii``, and the data scope.

Every service that returns customer data masks e-mails and phones (and other personal
fields) unless the principal holds ``customers:pii``, and restricts rows to the principal's
data scope (own / team / all) inside its queries — never by filtering after the fact.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, true
from sqlalchemy.orm import QueryableAttribute

from shared.auth import Principal

__all__ = ["PII_SCOPE", "data_scope", "mask_email", "mask_phone"]

PII_SCOPE = "customers:pii"


def mask_email(email: str) -> str:
    """``wei.zhang@example.com`` → ``w***@example.com``."""
    local, at, domain = email.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    """``+8613812345678`` → ``+86*******5678`` (country code and last four kept)."""
    digits = phone.lstrip("+")
    if len(digits) <= 6:
        return "*" * len(phone)
    head = "+" + digits[:2] if phone.startswith("+") else digits[:2]
    return head + "*" * (len(digits) - 6) + digits[-4:]


def data_scope(
    principal: Principal,
    owner: QueryableAttribute[Any] | ColumnElement[Any],
    team: QueryableAttribute[Any] | ColumnElement[Any],
) -> ColumnElement[bool]:
    """The WHERE clause limiting rows to what ``principal`` may see."""
    if principal.scope_mode == "all":
        return true()
    if principal.scope_mode == "team":
        return team == principal.team if principal.team else false()
    return owner == principal.subject
