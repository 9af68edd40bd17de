"""Whether segmentation knows a segment, through its public API.

A campaign's ``segment_id`` is checked when the campaign is created or replaced: this
service only learns about segments from membership events, so an *empty* segment and an
*unknown* one look the same here (no members). segmentation publishes no event when a
segment is defined, so rather than guess, interactions asks ``GET /segments/{id}`` with a
short-lived internal token (as the resolver asks customer360). When segmentation cannot
answer, the write is refused with a 503: never accepted unchecked.

Errors::

    UnprocessableEntity
    └── UnknownSegment            422 unknown-segment: segmentation answered 404
    ServiceUnavailable
    └── SegmentationUnavailable   503: down, timing out, or answering 5xx
"""

from __future__ import annotations

import logging
from uuid import UUID

import httpx

from shared.errors import ServiceUnavailable, UnprocessableEntity
from shared.service_client import ServiceClient

__all__ = ["SegmentDirectory", "SegmentationUnavailable", "UnknownSegment"]

logger = logging.getLogger(__name__)

_SCOPES = frozenset({"segments:read"})


class UnknownSegment(UnprocessableEntity):
    slug = "unknown-segment"


class SegmentationUnavailable(ServiceUnavailable):
    """segmentation could not say whether the segment exists."""


class SegmentDirectory(ServiceClient):
    async def check(self, segment_id: UUID) -> None:
        """Returns if segmentation knows ``segment_id``; raises :class:`UnknownSegment` if
        it does not, :class:`SegmentationUnavailable` if it cannot tell."""
        try:
            response = await self._http().get(
                f"{self.base_url}/segments/{segment_id}",
                headers=self._auth("interactions-campaigns", _SCOPES),
            )
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                return
            if response.status_code == 404:
                raise UnknownSegment(
                    f"segment {segment_id} does not exist",
                    errors=[{"pointer": "/body/segment_id", "detail": "unknown segment"}],
                )
            problem = f"segmentation answered {response.status_code}"
        logger.warning("checking segment %s failed: %s", segment_id, problem)
        raise SegmentationUnavailable(
            "segmentation cannot confirm the segment right now; try again",
            headers={"Retry-After": "5"},
        )
