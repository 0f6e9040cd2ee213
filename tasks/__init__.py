"""Celery tasks only: thin wrappers that look up ids and call services."""
