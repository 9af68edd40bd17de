"""Rapport's kit: what every part needs and nothing domain-specific.

Settings, database sessions, event contracts and the CloudEvents envelope, the outbox and
consumer runner, internal auth, problem details, pagination, logging and metrics. It imports
no service and no gateway code.
"""
