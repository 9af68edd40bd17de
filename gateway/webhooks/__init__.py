"""The webhook front door: partners post signed webhooks; the raw body is stored durably
before ``202``, then published on ``rapport.webhook.v1`` through the outbox."""
