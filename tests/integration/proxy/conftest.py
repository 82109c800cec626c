"""Proxy fixtures (until the lead registers tests.fixtures.proxy as a plugin)."""

from tests.fixtures.proxy import proxy_backend, proxy_env, proxy_loop, proxy_tls  # noqa: F401
