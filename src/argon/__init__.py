"""Argon: a self-hosted, Neon-compatible serverless Postgres platform."""

__version__ = "0.1.0"
