"""What a running gateway holds for outbound webhooks."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Settings
from gateway.outbound.dispatcher import Dispatcher
from gateway.outbound.fanout import Fanout
from gateway.outbound.safety import AddressPolicy
from gateway.outbound.service import SecretBox
from shared.db import Database

__all__ = ["Outbound"]


@dataclass(slots=True)
class Outbound:
    box: SecretBox
    policy: AddressPolicy
    fanout: Fanout
    #: ``None`` when this process does not send (``outbound_enabled`` off).
    dispatcher: Dispatcher | None = None

    @classmethod
    def open(cls, settings: Settings, database: Database) -> Outbound:
        box = SecretBox(settings.outbound_secret_key, settings.dev_jwt_secret)
        policy = AddressPolicy(settings.outbound_allowed)
        dispatcher = (
            Dispatcher(database, settings, box, policy) if settings.outbound_enabled else None
        )
        fanout = Fanout(
            database,
            settings.kafka_bootstrap_servers,
            on_queued=dispatcher.wake if dispatcher else lambda: None,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
        )
        if dispatcher is not None:
            dispatcher.start()
            if settings.consumers_enabled:
                fanout.start()
        return cls(box=box, policy=policy, fanout=fanout, dispatcher=dispatcher)

    def endpoints_changed(self) -> None:
        self.fanout.invalidate()

    def wake(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    async def close(self) -> None:
        await self.fanout.stop()
        if self.dispatcher is not None:
            await self.dispatcher.close()
