from typing import Annotated
from uuid import UUID

from fastapi import Depends

from services.segmentation.models import Segment
from services.segmentation.segments.repository import SegmentRepository
from shared.db import SessionDep
from shared.errors import NotFound


async def get_segment_or_404(segment_id: UUID, session: SessionDep) -> Segment:
    segment = await SegmentRepository(session).get(segment_id)
    if segment is None:
        raise NotFound(f"segment {segment_id} does not exist")
    return segment


async def lock_segment_or_404(segment_id: UUID, session: SessionDep) -> Segment:
    """The segment, row-locked until the request commits: concurrent edits serialise."""
    segment = await SegmentRepository(session).get(segment_id, lock=True)
    if segment is None:
        raise NotFound(f"segment {segment_id} does not exist")
    return segment


SegmentDep = Annotated[Segment, Depends(get_segment_or_404)]
LockedSegmentDep = Annotated[Segment, Depends(lock_segment_or_404)]
