"""Bulk customer import: ``POST /imports/customers`` (CSV or NDJSON), jobs and row errors."""
