"""Marketing campaigns, their messages (one per audience member), and the recipient
projection they need (from customer360's events, never its tables)."""

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.interactions.models.base import Base

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "completed", "cancelled")
CHANNELS = ("email", "sms", "webhook")
MESSAGE_STATUSES = ("queued", "deferred", "sending", "sent", "failed", "skipped", "unconfirmed")
SKIP_REASONS = ("no-consent", "no-address", "frequency-cap", "cancelled", "erased", "merged")
TRIGGERS = ("segment_entered", "order_placed", "task_due")


class Campaign(Base):
    """A message to an audience (a segment, or a static list of customers) on one channel."""

    __tablename__ = "campaign"
    __table_args__ = (
        CheckConstraint(
            "status IN ('draft', 'scheduled', 'sending', 'completed', 'cancelled')",
            name="status_known",
        ),
        CheckConstraint("channel IN ('email', 'sms', 'webhook')", name="channel_known"),
        CheckConstraint("(segment_id IS NULL) <> (customer_ids IS NULL)", name="one_audience"),
        CheckConstraint(
            "trigger IS NULL OR (trigger = 'segment_entered' AND segment_id IS NOT NULL)"
            " OR trigger IN ('order_placed', 'task_due')",
            name="trigger_known",
        ),
        CheckConstraint(
            "(delay_days IS NOT NULL) = coalesce(trigger = 'order_placed', false)"
            " AND (delay_days IS NULL OR delay_days BETWEEN 1 AND 365)",
            name="delay_days_known",
        ),
        CheckConstraint("rule_type IS NULL OR trigger = 'task_due'", name="rule_type_known"),
        CheckConstraint(
            "every_days IS NULL OR (every_days BETWEEN 1 AND 366 AND trigger IS NULL)",
            name="every_days_known",
        ),
        CheckConstraint(
            "repeat_until IS NULL OR every_days IS NOT NULL", name="repeat_until_recurring"
        ),
        Index("ix_campaign_status_scheduled_at", "status", "scheduled_at"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), server_default="draft")
    channel: Mapped[str] = mapped_column(String(16))
    segment_id: Mapped[UUID | None]
    customer_ids: Mapped[list[UUID] | None] = mapped_column(ARRAY(Uuid))
    subject_template: Mapped[str | None] = mapped_column(Text)
    body_template: Mapped[str] = mapped_column(Text)
    #: ``segment_entered``: once started, each customer entering the segment gets the
    #: message (once per campaign); ``order_placed``: ``delay_days`` after each order of an
    #: audience member (once per order); ``task_due``: when a care-plan task of an audience
    #: member falls due (once per task, optionally only for ``rule_type``); null: one send
    #: to the audience (or one per run of a recurring campaign).
    trigger: Mapped[str | None] = mapped_column(String(20))
    delay_days: Mapped[int | None] = mapped_column(Integer)
    rule_type: Mapped[str | None] = mapped_column(String(40))
    #: Send at this time (null with status ``scheduled``: never; ``POST …:start`` sends now).
    #: A recurring campaign keeps its *next* run here (moved on as each run starts).
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Recurring: a run every this many days from the first ``scheduled_at``, while the run
    #: time is not after ``repeat_until``.
    every_days: Mapped[int | None] = mapped_column(Integer)
    repeat_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    @property
    def recurrence(self) -> dict[str, Any] | None:
        """The API's ``recurrence`` (``every_days``, ``until``) of a recurring campaign."""
        if self.every_days is None:
            return None
        return {"every_days": self.every_days, "until": self.repeat_until}


class CampaignMessage(Base):
    """One audience member of a started campaign. Its id is the e-mail's ``Message-ID``.

    ``queued``/``deferred`` wait for ``not_before``; ``sending`` is claimed (committed before
    the provider is called) until ``lease_until``; ``sent``/``failed`` are final; a lease
    that expired while ``sending`` becomes ``unconfirmed`` (possibly delivered: never
    resent); ``skipped`` carries its ``skip_reason``. Tracking facts are timestamps."""

    __tablename__ = "campaign_message"
    __table_args__ = (
        # One message per campaign, customer and occurrence (see ``occurrence``).
        UniqueConstraint("campaign_id", "customer_id", "occurrence"),
        CheckConstraint(
            "status IN ('queued', 'deferred', 'sending', 'sent', 'failed', 'skipped', "
            "'unconfirmed')",
            name="status_known",
        ),
        CheckConstraint(
            "skip_reason IS NULL OR skip_reason IN ('no-consent', 'no-address', 'frequency-cap',"
            " 'cancelled', 'erased', 'merged')",
            name="skip_reason_known",
        ),
        # The sender's queue: only the rows still to send are in this index.
        Index(
            "ix_campaign_message_due",
            "not_before",
            postgresql_where=text("status IN ('queued', 'deferred')"),
        ),
        Index(
            "ix_campaign_message_lease_until",
            "lease_until",
            postgresql_where=text("status = 'sending'"),
        ),
        # Unsubscribes customer360 has not taken yet (retried by the sender).
        Index(
            "ix_campaign_message_unsynced_unsubscribe",
            "unsubscribed_at",
            postgresql_where=text("unsubscribed_at IS NOT NULL AND consent_synced_at IS NULL"),
        ),
        # Frequency caps count a customer's recent messages across campaigns.
        Index("ix_campaign_message_customer_id_sent_at", "customer_id", "sent_at"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    campaign_id: Mapped[UUID] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    customer_id: Mapped[UUID]
    #: What this message is the customer's one message *of*: ``''`` for a one-off send or
    #: a ``segment_entered`` greeting, ``order:<order id>``, ``task:<task id>``, or the run
    #: time of a recurring campaign (ISO 8601).
    occurrence: Mapped[str] = mapped_column(String(80), server_default="")
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(String(16))
    #: The e-mail address or phone number it goes to (as known when the campaign started).
    address: Mapped[str | None] = mapped_column(String(320))
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    interaction_id: Mapped[UUID | None]
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bounced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    clicked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When customer360 took the unsubscribe (null while it is still to be told).
    consent_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CampaignRecipient(Base):
    """What campaigns need of a customer profile, from customer360's events: addresses,
    marketing consent per channel, and the fields templates may use."""

    __tablename__ = "campaign_recipient"

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    consent_email: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    consent_sms: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: The profile's ``phone`` consent: what partner messaging-app (``webhook``) campaigns
    #: need.
    consent_phone: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: IANA name, checked when stored (null: unknown, quiet hours use UTC).
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(30))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
