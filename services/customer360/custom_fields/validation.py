"""Checking custom-field values against their definitions (pure: no database)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from services.customer360.models import CustomFieldDefinition

__all__ = ["check_custom_fields"]


def _check_value(definition: CustomFieldDefinition, value: Any) -> tuple[Any, str | None]:
    """The stored form of ``value``, or an error message."""
    kind = definition.type
    if kind == "string":
        if not isinstance(value, str):
            return None, "must be a string"
        if len(value) > 2000:
            return None, "must be at most 2000 characters"
        return value, None
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, "must be an integer"
        return value, None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "must be a number"
        return value, None
    if kind == "boolean":
        if not isinstance(value, bool):
            return None, "must be true or false"
        return value, None
    if kind == "date":
        if not isinstance(value, str):
            return None, "must be a date (YYYY-MM-DD)"
        try:
            return date.fromisoformat(value).isoformat(), None
        except ValueError:
            return None, "must be a date (YYYY-MM-DD)"
    if value not in definition.options:  # enum
        return None, f"must be one of {', '.join(definition.options)}"
    return value, None


def check_custom_fields(
    definitions: Mapping[str, CustomFieldDefinition],
    values: Mapping[str, Any],
    *,
    pointer: str = "/custom_fields",
    require: bool = True,
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Validate the complete set of a profile's values; returns (stored values, errors).

    Errors name the value by JSON pointer: an unknown field, a wrong type, a value outside an
    enum, a missing required field (unless ``require`` is false). ``null`` is never stored
    (it means "no value").
    """
    stored: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None:
            errors.append({"pointer": f"{pointer}/{key}", "detail": "unknown custom field"})
            continue
        if value is None:
            continue
        checked, error = _check_value(definition, value)
        if error is not None:
            errors.append({"pointer": f"{pointer}/{key}", "detail": error})
        else:
            stored[key] = checked
    failed = {e["pointer"] for e in errors}
    for key, definition in definitions.items():
        if (
            require
            and definition.required
            and key not in stored
            and f"{pointer}/{key}" not in failed
        ):
            errors.append({"pointer": f"{pointer}/{key}", "detail": "required"})
    return stored, errors
