"""The store shared by clinician review and live A/B: one SQLAlchemy schema (db) on
SQLite or PostgreSQL, and its errors."""
