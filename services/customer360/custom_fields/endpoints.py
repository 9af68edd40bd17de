from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from services.customer360.custom_fields.repository import definitions
from services.customer360.custom_fields.schemas import (
    KEY_PATTERN,
    CustomFieldCreate,
    CustomFieldPatch,
    CustomFieldRead,
)
from services.customer360.models import CustomFieldDefinition
from shared.auth import require_scopes
from shared.db import SessionDep
from shared.errors import Conflict, NotFound, UnprocessableEntity, problem_responses

router = APIRouter(prefix="/custom-fields", tags=["custom fields"])

KeyPath = Annotated[str, Path(pattern=KEY_PATTERN)]


async def _get(session: SessionDep, key: str) -> CustomFieldDefinition:
    definition = await session.get(CustomFieldDefinition, key)
    if definition is None:
        raise NotFound(f"custom field {key!r} does not exist")
    return definition


@router.get(
    "",
    summary="List custom fields",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(401, 403),
)
async def list_custom_fields(session: SessionDep) -> list[CustomFieldRead]:
    """The custom fields profiles may carry, with their types: what forms should render."""
    return [CustomFieldRead.model_validate(d) for d in (await definitions(session)).values()]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Define a custom field",
    dependencies=[Depends(require_scopes("admin"))],
    responses=problem_responses(401, 403, 409, 422),
)
async def create_custom_field(body: CustomFieldCreate, session: SessionDep) -> CustomFieldRead:
    """Admins only. Values are validated against the definition on every profile write; a
    `required` field applies to profiles created from now on — except prospects made by
    `POST /customers:resolve` (a partner's order or message names only an e-mail, phone or
    shop id), which must give it once their custom fields are edited."""
    if await session.get(CustomFieldDefinition, body.key) is not None:
        raise Conflict(f"custom field {body.key!r} exists")
    definition = CustomFieldDefinition(**body.model_dump())
    session.add(definition)
    await session.flush()
    await session.refresh(definition)
    return CustomFieldRead.model_validate(definition)


@router.patch(
    "/{key}",
    summary="Change a custom field",
    dependencies=[Depends(require_scopes("admin"))],
    responses=problem_responses(401, 403, 404, 422),
)
async def update_custom_field(
    key: KeyPath, body: CustomFieldPatch, session: SessionDep
) -> CustomFieldRead:
    """Change the label, description or `required`, or add enum options (removing one would
    leave stored values invalid, so it is refused)."""
    definition = await _get(session, key)
    changes = body.model_dump(exclude_unset=True)
    if "options" in changes:
        options = changes["options"] or []
        if definition.type != "enum":
            raise UnprocessableEntity(
                "only enum fields have options",
                errors=[{"pointer": "/options", "detail": "not enum"}],
            )
        removed = set(definition.options) - set(options)
        if removed:
            raise UnprocessableEntity(
                f"options cannot be removed: {', '.join(sorted(removed))}",
                errors=[{"pointer": "/options", "detail": "options removed"}],
            )
        changes["options"] = list(dict.fromkeys(options))
    if changes.get("label", "") is None or changes.get("required", False) is None:
        raise UnprocessableEntity("label and required cannot be null")
    for field, value in changes.items():
        setattr(definition, field, value)
    definition.updated_at = datetime.now(UTC)
    await session.flush()
    return CustomFieldRead.model_validate(definition)


@router.delete(
    "/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a custom field",
    dependencies=[Depends(require_scopes("admin"))],
    responses=problem_responses(401, 403, 404),
)
async def delete_custom_field(key: KeyPath, session: SessionDep) -> None:
    """Profiles keep their stored values (visible in exports and the audit) but no longer
    validate or accept new ones for this key."""
    await session.delete(await _get(session, key))
    await session.flush()
