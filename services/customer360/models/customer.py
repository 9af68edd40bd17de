from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.customer360.models.base import Base

#: ``active`` profiles are served; ``merged`` ones point at their survivor; ``erased`` ones
#: keep only their id (so references elsewhere stay valid) and no personal data.
CUSTOMER_STATUSES = ("active", "merged", "erased")
_EMPTY_LIST = text("'[]'::jsonb")
_EMPTY_OBJECT = text("'{}'::jsonb")


class Customer(Base):
    """A customer profile: a person or a company (a person may belong to a company)."""

    __tablename__ = "customer"
    __table_args__ = (
        CheckConstraint("kind IN ('person', 'company')", name="kind"),
        CheckConstraint("status IN ('active', 'merged', 'erased')", name="status"),
        CheckConstraint("(status = 'merged') = (merged_into IS NOT NULL)", name="merged_into"),
        Index("ix_customer_tags", "tags", postgresql_using="gin"),
        Index("ix_customer_custom_fields", "custom_fields", postgresql_using="gin"),
        Index("ix_customer_created", "created_at", "id"),
        Index("ix_customer_updated", "updated_at", "id"),
        # Search (see services/customer360/search): kept by a trigger on every write path.
        Index(
            "ix_customer_search_latin",
            "search_latin",
            postgresql_using="gin",
            postgresql_ops={"search_latin": "gin_trgm_ops"},
        ),
        Index(
            "ix_customer_phone_digits",
            "phone_digits",
            postgresql_using="gin",
            postgresql_ops={"phone_digits": "gin_trgm_ops"},
        ),
        Index("ix_customer_search_cjk", "search_cjk", postgresql_using="gin"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    kind: Mapped[str] = mapped_column(String(16), default="person")
    status: Mapped[str] = mapped_column(
        String(16), default="active", server_default=text("'active'"), index=True
    )
    merged_into: Mapped[UUID | None] = mapped_column(ForeignKey("customer.id"))
    company_id: Mapped[UUID | None] = mapped_column(ForeignKey("customer.id"), index=True)

    display_name: Mapped[str] = mapped_column(String(300))
    given_name: Mapped[str | None] = mapped_column(String(150))
    family_name: Mapped[str | None] = mapped_column(String(150))
    emails: Mapped[list[str]] = mapped_column(ARRAY(String(320)), default=list)
    #: E.164 (``+8613812345678``), normalised on the way in.
    phones: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    #: ``[{"kind": "home", "line1": …, "city": …, "postal_code": …, "country": "CN"}]``
    addresses: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=_EMPTY_LIST
    )
    birthday: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(32))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    acquisition_source: Mapped[str | None] = mapped_column(String(100))
    acquisition_channel: Mapped[str | None] = mapped_column(String(50))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(30), index=True)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    #: ``{"email": {"granted": true, "at": "…", "source": "signup-form"}, "sms": …}``
    consent: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=_EMPTY_OBJECT
    )
    #: ``{"shopify": "cus_123", "erp": "A-77"}``
    external_ids: Mapped[dict[str, str]] = mapped_column(
        JSONB, default=dict, server_default=_EMPTY_OBJECT
    )
    #: Values of the admin-defined custom fields, validated against their definitions.
    custom_fields: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=_EMPTY_OBJECT
    )

    #: The sales rep who owns the customer, and their team: the data scope of reps.
    owner_id: Mapped[str | None] = mapped_column(String(200), index=True)
    team_id: Mapped[str | None] = mapped_column(String(100), index=True)

    #: Bumped by every change; the ``ETag``.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    #: Maintained by the ``customer_search_terms`` trigger, never written by the application:
    #: names and e-mails lower-cased without CJK characters (for trigram search); CJK
    #: characters of the names as single characters and bigrams (pg_trgm ignores them under
    #: the C locale); phone digits.
    search_latin: Mapped[str | None] = mapped_column(Text, deferred=True)
    search_cjk: Mapped[list[str] | None] = mapped_column(ARRAY(Text), deferred=True)
    phone_digits: Mapped[str | None] = mapped_column(Text, deferred=True)

    __mapper_args__ = {"version_id_col": version}


class CustomerIdentity(Base):
    """One identity key (a normalised e-mail, an E.164 phone, or ``system:external-id``).

    The primary key makes a key belong to at most one customer: creates and imports can
    never make an exact duplicate, and resolution is one index look-up.
    """

    __tablename__ = "customer_identity"
    __table_args__ = (CheckConstraint("kind IN ('email', 'phone', 'external')", name="kind"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(400), primary_key=True)
    customer_id: Mapped[UUID] = mapped_column(ForeignKey("customer.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CustomFieldDefinition(Base):
    """A custom field an admin defined; profile values are validated against it."""

    __tablename__ = "custom_field"
    __table_args__ = (
        CheckConstraint(
            "type IN ('string', 'integer', 'number', 'boolean', 'date', 'enum')", name="type"
        ),
    )

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    options: Mapped[list[str]] = mapped_column(ARRAY(String(200)), default=list)
    required: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditEntry(Base):
    """Who changed what on a customer, and when: ``changes`` maps field → before/after."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_customer", "customer_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    customer_id: Mapped[UUID] = mapped_column()
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    #: ``{"display_name": {"before": "Wei", "after": "张伟"}}``
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
