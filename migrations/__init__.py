"""Versioned SQL migrations and their runner (sql backend)."""
