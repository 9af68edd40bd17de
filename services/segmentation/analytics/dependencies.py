from typing import Annotated

from fastapi import Depends, Request

from services.segmentation.analytics.scoring import ScoringPolicy
from services.segmentation.analytics.service import Clock, policy_from, utcnow


def get_clock() -> Clock:
    """The analytics' notion of "now" (tests override this dependency with a fixed clock)."""
    return utcnow


def get_policy(request: Request) -> ScoringPolicy:
    return policy_from(request.app.state.settings)


ClockDep = Annotated[Clock, Depends(get_clock)]
PolicyDep = Annotated[ScoringPolicy, Depends(get_policy)]
