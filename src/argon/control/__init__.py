"""The control plane: domain rules and operations.  Interfaces call ``Services``."""

from __future__ import annotations

from typing import Any

__all__ = ["Services", "build_services"]


def __getattr__(name: str) -> Any:
    # Imported lazily: the container pulls in every room, which the CLI's client
    # commands and the pure modules of this package do not need.
    if name in __all__:
        from argon.control import services  # noqa: PLC0415
        return getattr(services, name)
    raise AttributeError(name)
