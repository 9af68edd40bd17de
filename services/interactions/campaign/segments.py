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

from shared.auth import Principal, mint_internal_token
from shared.errors import ServiceUnavailable, UnprocessableEntity

__all__ = ["SegmentDirectory", "SegmentationUnavailable", "UnknownSegment"]

logger = logging.getLogger(__name__)

_SCOPES = frozenset({"segments:read"})


class UnknownSegment(UnprocessableEntity):
    slug = "unknown-segment"


class SegmentationUnavailable(ServiceUnavailable):
    """segmentation could not say whether the segment exists."""


class SegmentDirectory:
    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self._timeout = httpx.Timeout(timeout_s)
        #: Tests put an ``httpx.MockTransport`` (or segmentation in-process) here.
        self.transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, transport=self.transport)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def check(self, segment_id: UUID) -> None:
        """Returns if segmentation knows ``segment_id``; raises :class:`UnknownSegment` if
        it does not, :class:`SegmentationUnavailable` if it cannot tell."""
        token = mint_internal_token(
            Principal(subject="interactions-campaigns", kind="service", scopes=_SCOPES),
            self._secret,
        )
        try:
            response = await self._http().get(
                f"{self.base_url}/segments/{segment_id}",
                headers={"Authorization": f"Bearer {token}"},
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
