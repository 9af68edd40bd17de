"""Reading an uploaded import file: file-level checks on upload, rows one at a time after.

File-level problems (not UTF-8, no header, required columns missing, mixed delimiters, a
first line that is not a JSON object) refuse the upload with a 400 before a job exists.
Row-level problems (a bad e-mail, an unknown custom field, an unparseable NDJSON line further
down) become row errors of the job and never stop the good rows.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

from services.customer360.customer.normalize import (
    InvalidValue,
    display_name_of,
    identity_keys,
    normalize_email,
    normalize_phone,
)
from services.customer360.models import CustomFieldDefinition
from shared.errors import BadRequest

__all__ = [
    "IDENTITY_COLUMNS",
    "FieldSpec",
    "ImportRow",
    "RowError",
    "read_rows",
    "spool_upload",
]

IDENTITY_COLUMNS = ("email", "phone", "external_id")
KNOWN_COLUMNS = {
    "display_name",
    "given_name",
    "family_name",
    "email",
    "phone",
    "external_system",
    "external_id",
    "tags",
    "owner_id",
    "team_id",
}
_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


class FieldSpec(NamedTuple):
    """What a row needs of a custom field's definition (plain data: it crosses processes)."""

    type: str
    options: list[Any]

    @classmethod
    def of(cls, definition: CustomFieldDefinition) -> FieldSpec:
        return cls(definition.type, list(definition.options or []))


class InvalidImportFile(BadRequest):
    slug = "invalid-import-file"


@dataclass
class ImportRow:
    number: int
    display_name: str
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    external_ids: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    owner_id: str | None = None
    team_id: str | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    #: The identity keys, worked out once by the parser (the writer reads them several times).
    keys: list[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = identity_keys(self.emails, self.phones, self.external_ids)


@dataclass
class RowError:
    number: int
    field: str | None
    reason: str


def _write(handle: Any, data: bytes) -> None:
    handle.write(data)


async def spool_upload(chunks: AsyncIterator[bytes], fmt: str) -> tuple[Path, str]:
    """Write the streamed body to a temporary file, checking it is UTF-8 as it arrives.

    Returns the file and the CSV delimiter (``""`` for NDJSON). Never holds the body in memory.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    handle = await asyncio.to_thread(
        tempfile.NamedTemporaryFile, prefix="rapport-import-", suffix=f".{fmt}", delete=False
    )
    path = Path(handle.name)
    offset = 0
    first_line = ""
    try:
        with handle:
            async for chunk in chunks:
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise InvalidImportFile(
                        f"the file is not UTF-8: byte {offset + exc.start} is invalid",
                        errors=[{"pointer": "/body", "detail": "not UTF-8"}],
                    ) from None
                if len(first_line) < 65536 and "\n" not in first_line:
                    first_line += text
                offset += len(chunk)
                await asyncio.to_thread(_write, handle, chunk)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise InvalidImportFile("the file is not UTF-8: it ends mid-character") from None
        header = first_line.split("\n", 1)[0].strip("\r\ufeff")
        return path, _check_header(header, fmt)
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise


def _check_header(header: str, fmt: str) -> str:
    if not header.strip():
        raise InvalidImportFile("the file is empty or its first line is blank")
    if fmt == "ndjson":
        try:
            first = json.loads(header)
        except json.JSONDecodeError as exc:
            raise InvalidImportFile(
                f"line 1 is not JSON: {exc.msg} at column {exc.colno}"
            ) from None
        if not isinstance(first, dict):
            raise InvalidImportFile("line 1 is not a JSON object")
        return ""
    used = [d for d in _DELIMITERS if d in header]
    if len(used) > 1:
        raise InvalidImportFile(
            "the header mixes delimiters (" + ", ".join(_DELIMITERS[d] for d in used) + ")"
        )
    delimiter = used[0] if used else ","
    columns = [c.strip() for c in next(csv.reader([header], delimiter=delimiter))]
    missing = []
    if not {"display_name", "given_name", "family_name"} & set(columns):
        missing.append("display_name")
    if not set(IDENTITY_COLUMNS) & set(columns):
        missing.append("one of email, phone, external_id")
    if missing:
        raise InvalidImportFile(
            "the header lacks required columns: " + "; ".join(missing),
            errors=[{"pointer": "/header", "detail": m} for m in missing],
            columns=columns,
        )
    return delimiter


def _records(path: Path, fmt: str, delimiter: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(row number, record or why it is unreadable)``; row numbers are 1-based data rows."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        if fmt == "ndjson":
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"not JSON: {exc.msg} at column {exc.colno}"
                    continue
                yield number, record if isinstance(record, dict) else "not a JSON object"
            return
        reader = csv.reader(f, delimiter=delimiter)
        columns = [c.strip() for c in next(reader)]
        for number, values in enumerate(reader, start=1):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(columns):
                yield number, f"has {len(values)} fields, the header has {len(columns)}"
                continue
            parsed: dict[str, Any] = {}
            custom: dict[str, Any] = {}
            for column, value in zip(columns, values, strict=True):
                if not value.strip():
                    continue
                if column.startswith("custom."):
                    custom[column.removeprefix("custom.")] = value.strip()
                elif column == "tags":
                    parsed["tags"] = [t.strip() for t in value.split("|") if t.strip()]
                else:
                    parsed[column] = value.strip()
            if custom:
                parsed["custom_fields"] = custom
            yield number, parsed


def _custom_value(definition: FieldSpec, value: Any, from_text: bool) -> Any:
    kind = definition.type
    try:
        if kind == "string":
            return str(value)
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError
            return int(value)
        if kind == "number":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if from_text and str(value).lower() in ("true", "false", "1", "0", "yes", "no"):
                return str(value).lower() in ("true", "1", "yes")
            raise ValueError
        if kind == "date":
            return date.fromisoformat(str(value)).isoformat()
        if kind == "enum":
            if value not in definition.options:
                raise ValueError
            return value
    except (ValueError, TypeError):
        pass
    raise InvalidValue(
        f"must be a {kind}" + (f" of {definition.options}" if kind == "enum" else "")
    )


def _row(
    number: int,
    record: dict[str, Any],
    fields: dict[str, FieldSpec],
    from_text: bool,
    default_region: str | None,
) -> ImportRow | list[RowError]:
    errors: list[RowError] = []

    def text(name: str, limit: int) -> str | None:
        value = record.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            errors.append(RowError(number, name, "must be a string"))
            return None
        if len(value) > limit:
            errors.append(RowError(number, name, f"longer than {limit} characters"))
            return None
        return value.strip() or None

    unknown = set(record) - KNOWN_COLUMNS - {"emails", "phones", "external_ids", "custom_fields"}
    errors += [RowError(number, name, "unknown field") for name in sorted(unknown)]
    name = text("display_name", 300) or display_name_of(
        text("given_name", 150), text("family_name", 150)
    )
    if not name:
        errors.append(RowError(number, "display_name", "required"))
    emails: list[str] = []
    raw_emails = record.get("emails", [record["email"]] if "email" in record else [])
    for raw in raw_emails if isinstance(raw_emails, list) else [raw_emails]:
        try:
            emails.append(normalize_email(str(raw)))
        except InvalidValue as exc:
            errors.append(RowError(number, "email", str(exc)))
    phones: list[str] = []
    raw_phones = record.get("phones", [record["phone"]] if "phone" in record else [])
    for raw in raw_phones if isinstance(raw_phones, list) else [raw_phones]:
        try:
            phones.append(normalize_phone(str(raw), default_region))
        except InvalidValue as exc:
            errors.append(RowError(number, "phone", str(exc)))
    external: dict[str, str] = {}
    if "external_ids" in record:
        ids = record["external_ids"]
        if isinstance(ids, dict) and all(isinstance(v, str) for v in ids.values()):
            external = {str(k): v for k, v in ids.items()}
        else:
            errors.append(RowError(number, "external_ids", "must map system names to ids"))
    elif "external_id" in record:
        external = {str(record.get("external_system") or "import"): str(record["external_id"])}
    tags = record.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and len(t) <= 100 for t in tags):
        errors.append(RowError(number, "tags", "must be a list of strings of ≤ 100 characters"))
        tags = []
    custom: dict[str, Any] = {}
    raw_custom = record.get("custom_fields", {})
    if not isinstance(raw_custom, dict):
        errors.append(RowError(number, "custom_fields", "must be an object"))
        raw_custom = {}
    for key, value in raw_custom.items():
        definition = fields.get(key)
        if definition is None:
            errors.append(RowError(number, f"custom.{key}", "unknown custom field"))
            continue
        try:
            custom[key] = _custom_value(definition, value, from_text)
        except InvalidValue as exc:
            errors.append(RowError(number, f"custom.{key}", str(exc)))
    if not errors and not identity_keys(emails, phones, external):
        errors.append(RowError(number, None, "no identity key (email, phone or external_id)"))
    owner_id, team_id = text("owner_id", 200), text("team_id", 100)
    if errors or name is None:
        return errors
    return ImportRow(
        number=number,
        display_name=name,
        emails=list(dict.fromkeys(emails)),
        phones=list(dict.fromkeys(phones)),
        external_ids=external,
        tags=list(dict.fromkeys(tags)),
        owner_id=owner_id,
        team_id=team_id,
        custom_fields=custom,
    )


def read_rows(
    path: Path,
    fmt: str,
    delimiter: str,
    fields: dict[str, FieldSpec],
    default_region: str | None = None,
) -> Iterator[ImportRow | list[RowError]]:
    """Each data row, normalised, or why it cannot be imported.

    Phones without a country code are read in ``default_region`` (as the API does).
    """
    for number, record in _records(path, fmt, delimiter):
        if isinstance(record, str):
            yield [RowError(number, None, record)]
        else:
            yield _row(number, record, fields, fmt == "csv", default_region)
