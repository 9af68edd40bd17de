"""Outbound webhooks: partners subscribe endpoints to Rapport's events; the gateway fans each
event out to per-endpoint queues (:mod:`.fanout`) and sends them signed, retried and logged
(:mod:`.dispatcher`)."""
