"""Alembic migrations of the Krowoc schema."""
