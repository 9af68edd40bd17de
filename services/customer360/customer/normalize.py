"""Normalising identity data on the way in: one spelling per e-mail, phone and name.

Identity keys are compared exactly (``customer_identity``), so everything that can be written
two ways is brought to one form first: e-mails lower-cased and IDNA-normalised, phones parsed
with Google's libphonenumber (``phonenumbers``) and stored as E.164, external ids as
``system:id``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

__all__ = [
    "InvalidValue",
    "display_name_of",
    "external_key",
    "identity_keys",
    "normalize_email",
    "normalize_phone",
]


class InvalidValue(ValueError):
    """A value that cannot be normalised; the message says why, for a problem's ``detail``."""


# The everyday shape of an address — ASCII dot-atom local part, ASCII host names, an
# alphabetic top-level domain — which email_validator accepts unchanged but lower-cased.
# Anything else (quoted or Unicode parts, IDNA, "--", odd lengths) goes to email_validator.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]{1,64}(?:\.[a-z0-9_+-]{1,64})*@"
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}"
)


def _plain_email(text: str) -> str | None:
    lowered = text.lower()
    if len(lowered) > 254 or not _PLAIN_EMAIL.fullmatch(lowered):
        return None
    local, domain = lowered.rsplit("@", 1)
    if len(local) > 64 or len(domain) > 253 or "--" in domain:
        return None
    if any(domain == d or domain.endswith("." + d) for d in SPECIAL_USE_DOMAIN_NAMES):
        return None
    return lowered


def normalize_email(value: str) -> str:
    """``Wei.Zhang@Example.COM`` → ``wei.zhang@example.com`` (syntax checked, no DNS).

    Plain ASCII addresses take a fast path that gives exactly email_validator's answer
    (a property test holds the two together); bulk imports spend most of their parsing time
    here otherwise.
    """
    plain = _plain_email(value.strip())
    if plain is not None:
        return plain
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidValue(str(exc)) from None
    return result.normalized.lower()


def normalize_phone(value: str, default_region: str | None = None) -> str:
    """Any written form of a phone number → E.164 (``+8613812345678``).

    Without a leading ``+`` (or ``00``) the number is read in ``default_region`` (an ISO 3166
    country code); with no region it must be international.
    """
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        if default_region is None and not text.startswith("+"):
            raise InvalidValue(
                "phone number must be international (start with + and the country code)"
            ) from None
        raise InvalidValue(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        raise InvalidValue("not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def external_key(system: str, external_id: str) -> str:
    """The identity value of an id in a partner system: ``shopify:cus_123``."""
    return f"{system}:{external_id}"


def identity_keys(
    emails: Iterable[str], phones: Iterable[str], external_ids: dict[str, str]
) -> list[tuple[str, str]]:
    """The ``(kind, value)`` identity keys of already normalised values, without repeats."""
    keys = [("email", e) for e in emails] + [("phone", p) for p in phones]
    keys += [("external", external_key(s, i)) for s, i in external_ids.items()]
    return list(dict.fromkeys(keys))


def _is_cjk(text: str) -> bool:
    return any(
        unicodedata.name(ch, "").startswith(("CJK", "HANGUL", "HIRAGANA", "KATAKANA"))
        for ch in text
    )


def display_name_of(given: str | None, family: str | None) -> str | None:
    """How a person's name is shown: ``张伟`` (family name first, no space, for CJK names),
    ``Wei Zhang`` otherwise."""
    parts = [p.strip() for p in (family, given) if p and p.strip()]
    if not parts:
        return None
    if _is_cjk("".join(parts)):
        return "".join(parts)
    return " ".join(reversed(parts))
