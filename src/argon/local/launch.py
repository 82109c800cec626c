"""``argon local``'s settings from flags and Neon Local's variables, then the door."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from argon.errors import InvalidInput, Unavailable
from argon.home import BOOTSTRAP_KEY_FILE, read_state
from argon.local.api import ArgonApi
from argon.local.branches import BranchSelector, LocalConfig
from argon.local.door import DEFAULT_PORT, DoorOptions, port_is_free, run_door
from argon.local.git_head import head_file
from argon.proxy.tls import TlsConfig

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_bool(text: str | None, default: bool) -> bool:
    if text is None or text == "":
        return default
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise InvalidInput(f"DELETE_BRANCH must be true or false, not {text!r}")


@dataclass(frozen=True)
class LocalArgs:
    home: Path
    api_url: str | None
    api_key: str | None
    project_id: str | None
    branch_id: str | None
    parent_branch_id: str | None
    delete_branch: bool
    git_dir: Path | None
    state_dir: Path
    host: str
    port: int | None
    sql_url: str | None
    tls: bool


def resolve(args: LocalArgs) -> tuple[ArgonApi, LocalConfig, DoorOptions]:
    """API URL/key and ``/sql`` URL: flags first, then the local Argon's state file and
    bootstrap key (as the CLI finds them)."""
    if args.branch_id and args.parent_branch_id:
        raise InvalidInput("BRANCH_ID and PARENT_BRANCH_ID are mutually exclusive")
    state = read_state(args.home)
    api_url, api_key, sql_url = args.api_url, args.api_key, args.sql_url
    ca_file: Path | None = None
    if api_url is None:
        if state is None:
            raise Unavailable(f"Argon is not running on home {args.home}: start it with "
                              "'argon start', or pass --api-url and NEON_API_KEY")
        api_url = str(state["api_url"])
        ca = args.home / "tls" / "ca.crt"
        ca_file = ca if ca.exists() else None
        if sql_url is None:
            sql_url = f"http://{state.get('listen_host', '127.0.0.1')}:{state['http_port']}/sql"
    if api_key is None:
        try:
            api_key = (args.home / BOOTSTRAP_KEY_FILE).read_text().strip()
        except OSError:
            raise Unavailable("no API key: set NEON_API_KEY or pass --api-key") from None
    if sql_url is None:
        raise InvalidInput("pass --sql-url (the remote Argon's POST /sql address, e.g. "
                           "https://api.argon.example/sql)")
    port = args.port
    if port is None:
        if not port_is_free(args.host, DEFAULT_PORT):
            raise InvalidInput(f"port {DEFAULT_PORT} is in use on {args.host}: pass --port")
        port = DEFAULT_PORT
    git_head = head_file(args.git_dir) if args.git_dir else None
    config = LocalConfig(args.project_id, args.branch_id, args.parent_branch_id,
                         args.delete_branch, git_head, args.state_dir)
    return (ArgonApi(api_url, api_key), config,
            DoorOptions(args.host, port, sql_url, ca_file))


def run(args: LocalArgs) -> None:
    api, config, options = resolve(args)
    tls = TlsConfig.ensure(args.state_dir / "tls", None).server_context() if args.tls else None
    asyncio.run(run_door(BranchSelector(api, config), options, tls))


def default_git_dir() -> Path | None:
    """Neon Local's container reads ``/tmp/.git/HEAD``; here the working directory's."""
    for candidate in (Path.cwd() / ".git" / "HEAD", Path("/tmp/.git/HEAD")):
        if candidate.exists():
            return candidate
    return None


def env(name: str) -> str | None:
    return os.environ.get(name) or None
