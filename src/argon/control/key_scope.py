"""What an API key may touch, decided in one place for the API, the console and MCP.

Neon's three kinds of key: personal and organization keys reach every project of this
install; a project-scoped key (an organization key created with ``project_id``) reaches
that one project and nothing account-wide.  Another project is answered as one that does
not exist (404, so a key cannot probe which ids exist); account-wide actions (creating or
deleting projects, managing API keys) are refused with 403.

The key of the current request is held in a context variable set by the entry points
(``argon.api.deps.authenticate`` for the API and the console, the MCP server's tool call);
worker threads started with ``run_in_threadpool``/``anyio.to_thread`` inherit it.  The
entry points check the project a request names; control checks it again where a project
is looked up (``lookup.require_project``, ``ProjectService``) and filters project lists,
so a path that names a project some other way (MCP's ``fetch``, a migration id) is held
to the same rule.  Without a bound key (internal callers, the reconciler) nothing is
restricted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from argon.control.models import ApiKey
from argon.errors import Forbidden, NotFound

_current: ContextVar[ApiKey | None] = ContextVar("argon_api_key", default=None)


def bind(key: ApiKey | None) -> None:
    """The key of the request being served (``None``: a trusted internal caller)."""
    _current.set(key)


def current() -> ApiKey | None:
    return _current.get()


@contextmanager
def unrestricted() -> Iterator[None]:
    """Housekeeping a request triggers for every project (expired migrations)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def scoped_project(key: ApiKey | None = None) -> str | None:
    """The only project a key may touch, or ``None`` for a key that reaches them all."""
    key = key if key is not None else _current.get()
    return key.project_id if key is not None else None


def check_project(project_id: str | None, key: ApiKey | None = None) -> None:
    """Raise Neon's 404 when a project-scoped key names another project."""
    only = scoped_project(key)
    if only is not None and project_id is not None and project_id != only:
        raise NotFound(f"project {project_id!r} not found")


def check_account_wide(action: str, key: ApiKey | None = None) -> None:
    """Raise 403 when a project-scoped key tries an account-wide action."""
    only = scoped_project(key)
    if only is not None:
        raise Forbidden(f"{action} is not allowed with a project-scoped API key "
                        f"(this key can access project {only} only)")
