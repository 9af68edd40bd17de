"""The AsyncAPI 3.0 document, generated from the registered event models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from shared.events.base import TOPICS, registered_events

__all__ = ["asyncapi_document"]

#: Which part publishes to each topic.
PRODUCERS = {
    "rapport.customer.v1": "customer360",
    "rapport.interaction.v1": "interactions",
    "rapport.order.v1": "orders",
    "rapport.segment.v1": "segmentation",
    "rapport.webhook.v1": "gateway",
    "rapport.webhook.status.v1": "the service that consumed the webhook",
}

_CE_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 binary content mode: context attributes as Kafka headers.",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "format": "uuid", "description": "Unique; dedupe key."},
        "ce_source": {"type": "string", "examples": ["/rapport/orders"]},
        "ce_type": {"type": "string"},
        "ce_subject": {"type": "string", "description": "The customer id (also the key)."},
        "ce_time": {"type": "string", "format": "date-time"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context, if any."},
    },
}


def _message_name(event_type: str) -> str:
    return event_type.replace("rapport.", "").replace(".", "_")


def asyncapi_document(version: str = "0.1.0") -> dict[str, Any]:
    events = registered_events()
    _, schema = models_json_schema(
        [(e, "serialization") for e in events], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = schema.get("$defs", {})
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in TOPICS:
        channel_id = topic.replace(".", "_")
        refs: dict[str, Any] = {}
        for e in (e for e in events if e.topic == topic):
            name = _message_name(e.event_type)
            messages[name] = {
                "name": e.__name__,
                "title": e.event_type,
                "summary": (e.__doc__ or "").strip().splitlines()[0] if e.__doc__ else "",
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
                "payload": {"$ref": f"#/components/schemas/{e.__name__}"},
                "correlationId": {"location": "$message.header#/ce_id"},
            }
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        channels[channel_id] = {
            "address": topic,
            "description": "Kafka topic; key = customer id, so one customer's events keep order.",
            "messages": refs,
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Published by {PRODUCERS[topic]} through its transactional outbox.",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in refs],
        }
    schemas["CloudEventHeaders"] = _CE_HEADERS
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Rapport events",
            "version": version,
            "description": "Events Rapport's parts publish on Kafka (CloudEvents 1.0, binary "
            "mode). Delivery is at least once; consumers dedupe on ce_id.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {"host": "localhost:9092", "protocol": "kafka", "description": "Dev broker"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
