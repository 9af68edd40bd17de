from typing import Annotated
from uuid import UUID

from fastapi import Depends

from services.interactions.models import Ticket
from services.interactions.ticket.repository import TicketRepository
from shared.auth import PrincipalDep
from shared.db import SessionDep
from shared.errors import NotFound


async def get_ticket_or_404(
    ticket_id: UUID, session: SessionDep, principal: PrincipalDep
) -> Ticket:
    """The ticket, if it exists within the caller's data scope (else 404, not 403: a ticket
    outside the scope is not disclosed)."""
    ticket = await TicketRepository(session).get(ticket_id, principal)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} does not exist")
    return ticket


async def lock_ticket_or_404(
    ticket_id: UUID, session: SessionDep, principal: PrincipalDep
) -> Ticket:
    """Like :func:`get_ticket_or_404`, holding the row lock until the request commits so
    concurrent changes serialise instead of overwriting each other."""
    ticket = await TicketRepository(session).get(ticket_id, principal, lock=True)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} does not exist")
    return ticket


TicketDep = Annotated[Ticket, Depends(get_ticket_or_404)]
LockedTicketDep = Annotated[Ticket, Depends(lock_ticket_or_404)]
