from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class ImportJobRead(BaseModel):
    """An import's progress: counts grow chunk by chunk while it is ``running``."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "6f1c2b9e-7c1d-4a8e-9a51-2f0d7c3e4b10",
                    "status": "done",
                    "format": "csv",
                    "total": 3,
                    "created": 1,
                    "updated": 1,
                    "failed": 1,
                    "created_by": "user-1",
                    "error": None,
                    "created_at": "2026-11-23T13:00:00Z",
                    "started_at": "2026-11-23T13:00:00Z",
                    "finished_at": "2026-11-23T13:00:01Z",
                }
            ]
        },
    )

    id: UUID
    status: str
    format: str
    total: int
    created: int
    updated: int
    failed: int
    created_by: str
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ImportRowErrorRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{"row_number": 2, "field": "email", "reason": "..."}]},
    )

    row_number: int
    field: str | None
    reason: str
