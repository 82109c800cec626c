"""Neon API v2 over HTTP: routes and wire schemas only; the rules live in ``control``."""

from argon.api.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]
