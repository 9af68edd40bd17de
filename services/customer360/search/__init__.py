"""Customer search: ``GET /customers:search`` ranked by pg_trgm similarity."""
