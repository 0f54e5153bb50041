"""Targets, the async engine, connection sessions, rate limits and the fingerprint."""
