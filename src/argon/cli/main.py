"""The ``argon`` command: start the platform, show its status, manage it like neonctl."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from argon.cli.client import ApiClient, api_path
from argon.cli.output import console, emit, err_console
from argon.errors import ArgonError
from argon.settings import (DEFAULT_API_PORT, DEFAULT_HTTP_PORT, DEFAULT_PG_PORT,
                            NEON_STYLE_DOMAIN, Settings, default_home)

app = typer.Typer(help="Argon: self-hosted, Neon-compatible serverless Postgres.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
projects_app = typer.Typer(help="Manage projects.", no_args_is_help=True)
branches_app = typer.Typer(help="Manage branches.", no_args_is_help=True)
endpoints_app = typer.Typer(help="Manage compute endpoints.", no_args_is_help=True)
app.add_typer(projects_app, name="projects")
app.add_typer(branches_app, name="branches")
app.add_typer(endpoints_app, name="endpoints")

HomeOpt = Annotated[Path, typer.Option("--home", envvar="ARGON_HOME",
                                       help="Argon's data home.", default_factory=default_home)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ApiUrlOpt = Annotated[str | None, typer.Option("--api-url", envvar="ARGON_API_URL",
                                               help="API base URL (default: from the home).")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="ARGON_API_KEY",
                                               help="API key (default: the home's bootstrap key).")]
ProjectOpt = Annotated[str | None, typer.Option("--project-id", help="Project id (default: "
                                                "the only project).")]


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _client(home: Path, api_url: str | None, api_key: str | None) -> ApiClient:
    return ApiClient(home, api_url, api_key)


# -- start / status ----------------------------------------------------------------------

@app.command()
def start(
    home: HomeOpt,
    api_port: Annotated[int, typer.Option(help="Port of the API (and its docs).")] = DEFAULT_API_PORT,
    pg_port: Annotated[int, typer.Option(help="Postgres port of the proxy.")] = DEFAULT_PG_PORT,
    http_port: Annotated[int, typer.Option(help="Port for /sql and WebSocket.")] = DEFAULT_HTTP_PORT,
    listen_host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    domain: Annotated[str | None, typer.Option(help="Domain with wildcard DNS for endpoint "
                                               "hosts (ep-x.<domain>); default: loopback ports.")] = None,
    neon_style: Annotated[bool, typer.Option(help="Neon-style hosts under argon.localhost "
                                             "(--domain argon.localhost) for Neon's tools "
                                             "unchanged.")] = False,
    https_port: Annotated[int | None, typer.Option(help="HTTPS port for /sql and WebSocket "
                                                   "(0: off; default 443 with a domain "
                                                   "when Argon may bind it).")] = None,
    clone_driver: Annotated[str, typer.Option(help="auto, reflink or copy.")] = "auto",
    storage_pool: Annotated[str, typer.Option(
        envvar="ARGON_STORAGE_POOL",
        help="Timelines in an XFS (reflink) image in the home when its filesystem has no "
             "reflinks: auto (when root with loop devices and xfsprogs), xfs-image "
             "(insist) or off (full copies).")] = "auto",
    log_level: Annotated[str, typer.Option(help="debug, info, warning.")] = "info",
    monitoring_interval: Annotated[float, typer.Option(help="Seconds between the monitoring "
                                                       "figures kept per endpoint (0: off).")] = 10.0,
    object_store: Annotated[str | None, typer.Option(
        "--object-store", envvar="ARGON_OBJECT_STORE",
        help="s3://bucket/prefix: archive every timeline's WAL to this S3-compatible bucket "
             "too (endpoint, region, credentials from AWS_ENDPOINT_URL, AWS_REGION, "
             "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).")] = None,
    metadata_url: Annotated[str | None, typer.Option(
        envvar="ARGON_METADATA_URL", show_envvar=True,
        help="Metadata on Postgres (postgresql://user:password@host:port/db) instead of "
             "SQLite in the home.")] = None,
    keep_direct_backends: Annotated[bool, typer.Option(
        envvar="ARGON_KEEP_DIRECT_BACKENDS",
        help="Let a direct session that ended cleanly leave its Postgres backend, after "
             "DISCARD ALL, to the next client of the same role (as PgBouncer's session "
             "mode). --no-keep-direct-backends: a new backend per direct connection, as on "
             "Neon.")] = True,
) -> None:
    """Start Argon in the foreground; Ctrl-C or SIGTERM stops everything cleanly."""
    from argon.home import set_private_umask  # noqa: PLC0415
    from argon.logs import setup_logging  # noqa: PLC0415
    from argon.server import Platform  # noqa: PLC0415

    for name, port in (("--api-port", api_port), ("--pg-port", pg_port), ("--http-port", http_port)):
        if not 1 <= port <= 65535:
            fail(f"{name} must be a port number from 1 to 65535, not {port}")
    from argon.storage.drivers import check_driver_choice  # noqa: PLC0415
    try:
        check_driver_choice(clone_driver)
    except ArgonError as e:
        fail(f"--clone-driver: {e.message}")
    if storage_pool not in ("off", "auto", "xfs-image"):
        fail("--storage-pool must be off, auto or xfs-image")
    if https_port is not None and not 0 <= https_port <= 65535:
        fail(f"--https-port must be 0 (off) or a port number up to 65535, not {https_port}")
    if neon_style and domain is None:
        domain = NEON_STYLE_DOMAIN
    home.mkdir(parents=True, exist_ok=True)  # its parents with the usual modes
    set_private_umask()  # then private, before the first file: Argon's log
    setup_logging(log_level, home)
    settings = Settings(home=home.resolve(), listen_host=listen_host, api_port=api_port,
                        pg_port=pg_port, http_port=http_port, domain=domain,
                        https_port=https_port, clone_driver=clone_driver,
                        storage_pool=storage_pool, monitoring_interval=monitoring_interval,
                        object_store_url=object_store or None,
                        metadata_url=metadata_url or None,
                        keep_direct_backends=keep_direct_backends)
    platform = Platform(settings)
    try:
        with console.status("preparing the home, metadata and default project..."):
            report = platform.prepare()
    except ArgonError as exc:
        platform.shutdown()
        fail(exc.message)
    for line in report.repairs:
        console.print(f"[yellow]repaired:[/yellow] {line}")

    def ready() -> None:
        console.print(f"[bold green]Argon is running[/bold green] (home {home})")
        console.print(f"  API          {report.api_url}")
        console.print(f"  API docs     {report.docs_url}")
        console.print(f"  Console      {report.api_url.removesuffix('/api/v2')}/console/")
        console.print(f"  Postgres     127.0.0.1:{report.pg_port} (proxy)")
        console.print(f"  SQL over HTTP / WebSocket  http://127.0.0.1:{report.http_port}/sql")
        console.print(f"  clone driver {report.clone_driver}")
        console.print(f"  metadata     {report.metadata}")
        if report.storage_pool is not None:
            pool = report.storage_pool
            console.print(f"  storage pool {pool.line()}", markup=False, highlight=False)
            if pool.note and pool.image is not None:   # a pool home started with off
                console.print(f"  {pool.note}", markup=False, highlight=False)
        if settings.object_store_url:
            from argon.storage.objectstore.bucket import bucket_endpoint  # noqa: PLC0415
            console.print(f"  WAL archive  {settings.object_store_url} at {bucket_endpoint()} "
                          "(each timeline's wal/ is kept as a local cache)")
        console.print(f"  API key      {report.api_key}   (also in {home}/secrets/bootstrap_api_key)")
        if report.default_connection_uri:
            console.print(f"  default project: {report.default_connection_uri}")
        for line in platform.startup_notes():
            console.print(line, markup=False, highlight=False)
        console.print("Press Ctrl-C to stop.")
        sys.stdout.flush()

    try:
        _run(platform.serve(ready))
    except ArgonError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
    finally:
        stopped = platform.shutdown()
        console.print(f"Argon stopped ({stopped} compute(s) shut down"
                      f"{platform.pool.stop_note()}).")


def _run(coro: Any) -> None:
    """Run on uvloop (the proxy's hot path relies on it)."""
    import uvloop  # noqa: PLC0415
    uvloop.run(coro)


@app.command()
def doctor(home: HomeOpt, as_json: JsonOpt = False) -> None:
    """Try what clients try: resolve the Neon-style names, open the ports, verify TLS."""
    from argon.doctor import as_json as render_json  # noqa: PLC0415
    from argon.doctor import render, run_checks  # noqa: PLC0415
    checks = run_checks(home)
    print(render_json(checks) if as_json else render(checks))
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@app.command()
def status(home: HomeOpt, as_json: JsonOpt = False, api_url: ApiUrlOpt = None,
           api_key: ApiKeyOpt = None) -> None:
    """What runs: URLs, ports, clone driver, Postgres, projects, branches, endpoints."""
    from argon.home import BOOTSTRAP_KEY_FILE  # noqa: PLC0415
    try:
        data = _client(home, api_url, api_key).call("GET", "/argon/status")
    except ArgonError as exc:
        if as_json:
            print(json.dumps({"running": False, "home": str(home), "error": exc.message}))
            raise typer.Exit(1) from None
        fail(exc.message)
    data["running"] = True
    key_file = home / BOOTSTRAP_KEY_FILE
    data["api_key"] = key_file.read_text().strip() if key_file.exists() else None
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console.print(f"[bold green]running[/bold green]  home {data['home']}")
    for k in ("api_url", "docs_url", "postgres_port", "http_port", "domain", "clone_driver",
              "api_key"):
        console.print(f"  {k:<14}{data.get(k)}")
    if pool := data.get("storage_pool"):
        console.print(f"  {'storage_pool':<14}{pool['line']}", markup=False, highlight=False)
    for inst in data["postgres"]:
        console.print(f"  postgres      {inst['version']} ({inst['source']}) {inst['bindir']}")
    if up := data.get("snapshot_upload"):
        state = "in sync" if up["in_sync"] else (up["last_error"] or "uploading")
        console.print(f"  snapshots     bucket: {state}, backlog {up['backlog']}, "
                      f"{up['snapshots_uploaded']} uploaded since start")
    for p in data["projects"]:
        console.print(f"  project {p['id']} ({p['name']}, pg {p['pg_version']})")
        for b in p["branches"]:
            mark = "*" if b["default"] else " "
            eps = ", ".join(f"{e['id']}={e['state']}" for e in b["endpoints"]) or "no endpoint"
            console.print(f"    {mark} {b['name']:<24} {b['id']}  {b['state']}  {eps}")


# -- projects ----------------------------------------------------------------------------

@projects_app.command("list")
def projects_list(home: HomeOpt, as_json: JsonOpt = False, api_url: ApiUrlOpt = None,
                  api_key: ApiKeyOpt = None) -> None:
    """List projects."""
    data = _client(home, api_url, api_key).call("GET", "/projects", params={"limit": 400})
    emit(data["projects"], as_json, ["id", "name", "pg_version", "region_id", "created_at"])


@projects_app.command("create")
def projects_create(home: HomeOpt, name: Annotated[str | None, typer.Option(help="Name.")] = None,
                    pg_version: Annotated[int | None, typer.Option(help="Postgres major version.")] = None,
                    as_json: JsonOpt = False, api_url: ApiUrlOpt = None,
                    api_key: ApiKeyOpt = None) -> None:
    """Create a project (branch main, database neondb, role neondb_owner, one endpoint)."""
    body: dict[str, Any] = {"project": {}}
    if name is not None:
        body["project"]["name"] = name
    if pg_version is not None:
        body["project"]["pg_version"] = pg_version
    with console.status("creating project..."):
        data = _client(home, api_url, api_key).call("POST", "/projects", json=body)
    if as_json:
        emit(data, True)
        return
    p = data["project"]
    console.print(f"created project {p['id']} ({p['name']})")
    for uri in data.get("connection_uris", []):
        console.print(f"  {uri['connection_uri']}")


@projects_app.command("delete")
def projects_delete(project_id: str, home: HomeOpt, as_json: JsonOpt = False,
                    api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Delete a project, its branches and computes."""
    data = _client(home, api_url, api_key).call("DELETE", api_path("projects", project_id))
    emit(data, True) if as_json else console.print(f"deleted project {project_id}")


# -- branches ----------------------------------------------------------------------------

def _project(c: ApiClient, project_id: str | None) -> str:
    return project_id or c.default_project()


@branches_app.command("list")
def branches_list(home: HomeOpt, project_id: ProjectOpt = None, as_json: JsonOpt = False,
                  api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """List branches of a project."""
    c = _client(home, api_url, api_key)
    data = c.call("GET", api_path("projects", _project(c, project_id), "branches"))
    emit(data["branches"], as_json,
         ["id", "name", "default", "current_state", "parent_id", "parent_lsn", "created_at"])


def split_point(text: str) -> tuple[str, dict[str, str]]:
    """neonctl's ``branch@point``: ``main@0/1A2B3C`` (LSN) or ``main@2026-11-25T10:00:00Z``
    (timestamp); returns the branch and ``{"lsn": ...}`` / ``{"timestamp": ...}`` / {}."""
    ref, sep, point = text.rpartition("@")
    if not sep:
        return text, {}
    if not ref or not point:
        fail(f"{text!r}: use branch@<lsn> or branch@<timestamp>, e.g. main@0/1A2B3C or "
             "main@2026-11-25T10:00:00Z")
    # An LSN has a slash and no time has one; the API checks the value either way.
    if "/" in point:
        return ref, {"lsn": point.upper()}
    return ref, {"timestamp": point}


@branches_app.command("create")
def branches_create(home: HomeOpt, name: Annotated[str | None, typer.Option(help="Branch name.")] = None,
                    parent: Annotated[str | None, typer.Option(help="Parent branch id or name, "
                                      "optionally at a point: main@0/1A2B3C or "
                                      "main@2026-11-25T10:00:00Z.")] = None,
                    no_compute: Annotated[bool, typer.Option(help="Do not add an endpoint.")] = False,
                    schema_only: Annotated[bool, typer.Option(help="Copy the parent's schema "
                                           "without its rows.")] = False,
                    expires_at: Annotated[str | None, typer.Option(help="Delete the branch at "
                                          "this time (ISO 8601 with time zone).")] = None,
                    protected: Annotated[bool, typer.Option(help="Refuse delete, reset and "
                                         "restore.")] = False,
                    project_id: ProjectOpt = None, as_json: JsonOpt = False,
                    api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Create a branch (copy-on-write) with a read_write endpoint."""
    c = _client(home, api_url, api_key)
    pid = _project(c, project_id)
    branch: dict[str, Any] = {}
    if name:
        branch["name"] = name
    if parent:
        ref, point = split_point(parent)
        branch["parent_id"] = c.branch(pid, ref)["id"]
        if "lsn" in point:
            branch["parent_lsn"] = point["lsn"]
        if "timestamp" in point:
            branch["parent_timestamp"] = point["timestamp"]
    if schema_only:
        branch["init_source"] = "schema-only"
    if expires_at:
        branch["expires_at"] = expires_at
    if protected:
        branch["protected"] = True
    body = {"branch": branch, "endpoints": [] if no_compute else [{"type": "read_write"}]}
    with console.status("creating branch..."):
        data = c.call("POST", api_path("projects", pid, "branches"), json=body)
    if as_json:
        emit(data, True)
        return
    b = data["branch"]
    at = b.get("parent_lsn") or b.get("parent_timestamp")
    console.print(f"created branch {b['name']} ({b['id']}) at {at}")
    for uri in data.get("connection_uris", []):
        console.print(f"  {uri['connection_uri']}")


def _branch_call(method: str, action: str | None, ref: str, home: Path,
                 project_id: str | None, api_url: str | None, api_key: str | None,
                 **kw: Any) -> Any:
    c = _client(home, api_url, api_key)
    pid = _project(c, project_id)
    bid = c.branch(pid, ref)["id"]
    path = api_path("projects", pid, "branches", bid, *([action] if action else []))
    return c.call(method, path, **kw)


@branches_app.command("delete")
def branches_delete(branch: str, home: HomeOpt, project_id: ProjectOpt = None,
                    as_json: JsonOpt = False, api_url: ApiUrlOpt = None,
                    api_key: ApiKeyOpt = None) -> None:
    """Delete a branch (refused for the default branch and for a branch with children)."""
    data = _branch_call("DELETE", None, branch, home, project_id, api_url, api_key)
    emit(data, True) if as_json else console.print(f"deleted branch {branch}")


@branches_app.command("rename")
def branches_rename(branch: str, new_name: str, home: HomeOpt, project_id: ProjectOpt = None,
                    as_json: JsonOpt = False, api_url: ApiUrlOpt = None,
                    api_key: ApiKeyOpt = None) -> None:
    """Rename a branch."""
    data = _branch_call("PATCH", None, branch, home, project_id, api_url, api_key,
                        json={"branch": {"name": new_name}})
    emit(data, True) if as_json else console.print(f"renamed branch {branch} to {new_name}")


@branches_app.command("set-default")
def branches_set_default(branch: str, home: HomeOpt, project_id: ProjectOpt = None,
                         as_json: JsonOpt = False, api_url: ApiUrlOpt = None,
                         api_key: ApiKeyOpt = None) -> None:
    """Make a branch the project's default branch."""
    data = _branch_call("POST", "set_as_default", branch, home, project_id, api_url, api_key)
    emit(data, True) if as_json else console.print(f"{branch} is now the default branch")


PreserveOpt = Annotated[str | None, typer.Option("--preserve-under-name",
                        help="Keep the current state as a branch of this name.")]


def _restore(c: ApiClient, pid: str, target: str, source: str, point: dict[str, str],
             preserve: str | None) -> Any:
    bid = c.branch(pid, target)["id"]
    body: dict[str, Any] = {"source_branch_id": c.branch(pid, source)["id"]}
    if "lsn" in point:
        body["source_lsn"] = point["lsn"]
    if "timestamp" in point:
        body["source_timestamp"] = point["timestamp"]
    if preserve:
        body["preserve_under_name"] = preserve
    with console.status("restoring branch..."):
        return c.call("POST", api_path("projects", pid, "branches", bid, "restore"), json=body)


@branches_app.command("restore")
def branches_restore(target: str, source: str, home: HomeOpt, preserve_under_name: PreserveOpt = None,
                     project_id: ProjectOpt = None, as_json: JsonOpt = False,
                     api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Restore TARGET to SOURCE's state: ``^self@<lsn|time>`` (its own past),
    ``^parent``, or ``other-branch[@<lsn|time>]``.  Id, name and hosts stay."""
    c = _client(home, api_url, api_key)
    pid = _project(c, project_id)
    ref, point = split_point(source)
    if ref == "^self":
        ref = target
    elif ref == "^parent":
        parent_id = c.branch(pid, target).get("parent_id")
        if not parent_id:
            fail(f"branch {target} has no parent")
        ref = parent_id
    data = _restore(c, pid, target, ref, point, preserve_under_name)
    emit(data, True) if as_json else console.print(
        f"restored {target} from {source}" +
        (f"; old state kept as {preserve_under_name}" if preserve_under_name else ""))


@branches_app.command("reset")
def branches_reset(branch: str, home: HomeOpt,
                   parent: Annotated[bool, typer.Option("--parent", help="Reset to the "
                                     "parent's latest state (required).")] = False,
                   preserve_under_name: PreserveOpt = None, project_id: ProjectOpt = None,
                   as_json: JsonOpt = False, api_url: ApiUrlOpt = None,
                   api_key: ApiKeyOpt = None) -> None:
    """Reset a branch to its parent's latest state (``--parent``), as neonctl does."""
    if not parent:
        fail("say where to reset from: --parent (the parent's latest state)")
    c = _client(home, api_url, api_key)
    pid = _project(c, project_id)
    parent_id = c.branch(pid, branch).get("parent_id")
    if not parent_id:
        fail(f"branch {branch} has no parent to reset from")
    data = _restore(c, pid, branch, parent_id, {}, preserve_under_name)
    emit(data, True) if as_json else console.print(f"reset {branch} to its parent's head")


@branches_app.command("schema-diff")
def branches_schema_diff(home: HomeOpt,
                         base: Annotated[str | None, typer.Argument(help="Base branch "
                                         "(default: the compare branch's parent).")] = None,
                         compare: Annotated[str | None, typer.Argument(help="Branch to compare, "
                                            "optionally @<lsn|time> (default: the default "
                                            "branch).")] = None,
                         database: Annotated[str, typer.Option("--database", "--db",
                                             help="Database name.")] = "neondb",
                         project_id: ProjectOpt = None, as_json: JsonOpt = False,
                         api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Print a unified diff of two branches' schemas (``pg_dump --schema-only``)."""
    c = _client(home, api_url, api_key)
    pid = _project(c, project_id)
    base_ref, base_point = split_point(base) if base else (None, {})
    if compare is None:
        branches = c.call("GET", api_path("projects", pid, "branches"))["branches"]
        default = next((b for b in branches if b.get("default")), None)
        if default is None:
            fail("the project has no default branch; name the branch to compare")
        compare = default["id"]
    cmp_ref, cmp_point = split_point(compare)
    bid = c.branch(pid, cmp_ref)["id"]
    params: dict[str, str] = {"db_name": database}
    if base_ref:
        params["base_branch_id"] = c.branch(pid, base_ref)["id"]
    params.update(cmp_point)
    params.update({f"base_{k}": v for k, v in base_point.items()})
    data = c.call("GET", api_path("projects", pid, "branches", bid, "compare_schema"),
                  params=params)
    if as_json:
        emit(data, True)
        return
    sys.stdout.write(data.get("diff") or "")



# -- endpoints ---------------------------------------------------------------------------

@endpoints_app.command("list")
def endpoints_list(home: HomeOpt, project_id: ProjectOpt = None, as_json: JsonOpt = False,
                   api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """List endpoints of a project."""
    c = _client(home, api_url, api_key)
    data = c.call("GET", api_path("projects", _project(c, project_id), "endpoints"))
    emit(data["endpoints"], as_json, ["id", "branch_id", "type", "current_state", "host"])


def _endpoint_action(action: str, endpoint_id: str, home: Path, project_id: str | None,
                     as_json: bool, api_url: str | None, api_key: str | None) -> None:
    c = _client(home, api_url, api_key)
    data = c.call("POST", api_path("projects", _project(c, project_id), "endpoints",
                                    endpoint_id, action))
    emit(data, True) if as_json else console.print(
        f"{endpoint_id}: {data['endpoint']['current_state']}")


@endpoints_app.command("start")
def endpoints_start(endpoint_id: str, home: HomeOpt, project_id: ProjectOpt = None,
                    as_json: JsonOpt = False, api_url: ApiUrlOpt = None,
                    api_key: ApiKeyOpt = None) -> None:
    """Start an endpoint's compute."""
    _endpoint_action("start", endpoint_id, home, project_id, as_json, api_url, api_key)


@endpoints_app.command("suspend")
def endpoints_suspend(endpoint_id: str, home: HomeOpt, project_id: ProjectOpt = None,
                      as_json: JsonOpt = False, api_url: ApiUrlOpt = None,
                      api_key: ApiKeyOpt = None) -> None:
    """Suspend an endpoint's compute (it wakes on the next connection)."""
    _endpoint_action("suspend", endpoint_id, home, project_id, as_json, api_url, api_key)


# -- connection strings ------------------------------------------------------------------

def _connection_uri(c: ApiClient, pid: str, branch: str | None, pooled: bool,
                    database: str | None, role: str | None) -> str:
    b = c.branch(pid, branch)
    dbs = c.call("GET", api_path("projects", pid, "branches", b["id"], "databases"))["databases"]
    if not dbs and database is None:
        raise ArgonError(f"branch {b['name']} has no database")
    db = database or dbs[0]["name"]
    owner = role or next((d["owner_name"] for d in dbs if d["name"] == db), None)
    if owner is None:
        raise ArgonError(f"database {db!r} not found on branch {b['name']}")
    data = c.call("GET", api_path("projects", pid, "connection_uri"),
                  params={"branch_id": b["id"], "database_name": db, "role_name": owner,
                          "pooled": str(pooled).lower()})
    return str(data["uri"])


@app.command("cs")
def connection_string(home: HomeOpt,
                      branch: Annotated[str | None, typer.Argument(help="Branch (default: the default branch).")] = None,
                      pooled: Annotated[bool, typer.Option(help="Pooled (PgBouncer) host.")] = False,
                      database: Annotated[str | None, typer.Option("--database-name")] = None,
                      role: Annotated[str | None, typer.Option("--role-name")] = None,
                      project_id: ProjectOpt = None, as_json: JsonOpt = False,
                      api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Print a branch's connection string."""
    c = _client(home, api_url, api_key)
    uri = _connection_uri(c, _project(c, project_id), branch, pooled, database, role)
    print(json.dumps({"connection_string": uri}) if as_json else uri)


@app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context, home: HomeOpt,
         branch: Annotated[str | None, typer.Argument(help="Branch (default: the default branch).")] = None,
         project_id: ProjectOpt = None,
         api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Open psql on a branch (extra arguments go to psql, e.g. -- -c 'select 1')."""
    c = _client(home, api_url, api_key)
    uri = _connection_uri(c, _project(c, project_id), branch, False, None, None)
    binary = shutil.which("psql")
    if binary is None:
        from argon.pg import choose_install  # noqa: PLC0415
        binary = choose_install().bin("psql")
    os.execv(binary, [binary, uri, *ctx.args])


@app.command("mcp")
def mcp_stdio(home: HomeOpt,
              read_only: Annotated[bool, typer.Option("--read-only", help="Hide and refuse "
                                                      "the tools that change anything.")] = False,
              api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Argon's MCP server on stdio (for Claude, Cursor, VS Code): a bridge to the running
    Argon's /mcp endpoint, local (this home) or remote (--api-url and --api-key)."""
    from argon.mcp.bridge import StdioBridge, mcp_url  # noqa: PLC0415 - keeps --help fast

    c = _client(home, api_url, api_key)
    key = c._http.headers["Authorization"].partition(" ")[2]
    StdioBridge(mcp_url(c.base), key, read_only=read_only,
                ca_file=home / "tls" / "ca.crt").serve()


@app.command("connect-repo")
def connect_repo_cmd(
    home: HomeOpt, project_id: ProjectOpt = None,
    repo: Annotated[str | None, typer.Option("--repo", help="owner/name of the repository "
                                             "(names the key; shown in the gh hints).")] = None,
    key_name: Annotated[str | None, typer.Option("--key-name", help="API key name.")] = None,
    as_json: JsonOpt = False, api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None,
) -> None:
    """Connect a repository to a project (Neon's GitHub integration step): mint an API key
    for that project only and print NEON_API_KEY / NEON_PROJECT_ID for its CI secrets."""
    from argon.cli.connect_repo import connect_repo, render  # noqa: PLC0415

    c = _client(home, api_url, api_key)
    result = connect_repo(c, _project(c, project_id), key_name, repo)
    print(json.dumps(result, indent=2) if as_json else render(result, repo))


@app.command("import")
def import_database(
    home: HomeOpt,
    source: Annotated[str | None, typer.Argument(help="The database to copy: "
                                                 "postgresql://user:pw@host/db")] = None,
    project_id: Annotated[str | None, typer.Option("--project-id", help="Import into a new branch "
                                                   "of this project (default: a new project).")] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="Name of the new branch "
                                              "(--status, --cutover: the synced one).")] = None,
    parent: Annotated[str | None, typer.Option("--parent", help="Parent of the new branch.")] = None,
    project_name: Annotated[str | None, typer.Option("--project-name", help="Name of the new project.")] = None,
    database: Annotated[str | None, typer.Option("--database", help="Target database "
                                                 "(default: the source's name).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Parallel pg_restore jobs.")] = 2,
    sync: Annotated[bool, typer.Option("--sync", help="Copy the schema, then keep the branch "
                                       "in step by logical replication until --cutover.")] = False,
    publication: Annotated[str | None, typer.Option("--publication", help="With --sync: the "
                                                    "source's publication (default: Argon makes one).")] = None,
    status: Annotated[bool, typer.Option("--status", help="Progress and lag of the sync into "
                                         "--branch of --project-id.")] = False,
    cutover: Annotated[bool, typer.Option("--cutover", help="Wait for the sync into --branch to "
                                          "catch up, advance sequences, end it.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="--cutover: seconds to wait "
                                           "for the branch to catch up.")] = 300,
    as_json: JsonOpt = False, api_url: ApiUrlOpt = None, api_key: ApiKeyOpt = None,
) -> None:
    """Copy an existing Postgres into Argon (pg_dump | pg_restore), rows counted on both
    sides; a failed import leaves no project or branch behind. --sync copies the schema and
    streams the rows by logical replication until --cutover."""
    c = _client(home, api_url, api_key)
    if status or cutover:
        if not project_id or not branch or source:
            fail("--status and --cutover take --project-id and --branch (no source)")
        _import_sync(c, project_id, branch, cutover, timeout, as_json)
        return
    if not source:
        fail("the source connection string is missing")
    body: dict[str, Any] = {"source": {"connection_uri": source}, "jobs": jobs,
                            "database_name": database, "sync": sync,
                            "publication": publication}
    if project_id:
        body["branch"] = {"name": branch, "parent_id": parent}
        path = api_path("projects", project_id, "import")
    else:
        body["project"] = {"name": project_name}
        path = "/projects/import"
    import httpx  # noqa: PLC0415

    result: dict[str, Any] | None = None
    try:
        with c._http.stream("POST", path, json=body,
                            headers={"Accept": "application/x-ndjson"}) as resp:
            if resp.status_code >= 400:
                resp.read()
                fail(resp.json().get("message", resp.text) if resp.content
                     else str(resp.status_code))
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if "error" in item:
                    fail(item["error"]["message"])
                if "result" in item:
                    result = item["result"]
                elif not as_json:
                    err_console.print(f"[dim]{item['phase']}:[/dim] {item['message']}")
    except httpx.TransportError as e:
        fail(f"cannot reach the Argon API at {c.base}: {e}")
    if result is None:
        fail("the import ended without a result")
    if as_json:
        emit(result, True)
        return
    console.print(f"imported into project {result['project_id']}, branch {result['branch_id']}, "
                  f"database {result['database_name']} ({result['dump_bytes']} bytes, "
                  f"{result['seconds']} s)")
    for t in result["tables"]:
        console.print(f"  {t['schema']}.{t['table']}: {t['target_rows']} rows")
    for s in result["skipped"]:
        console.print(f"  skipped: {s}")
    if result.get("sync"):
        console.print(f"syncing by logical replication (subscription {result['sync']['subscription']}, "
                      f"publication {result['sync']['publication']}); the subscriber needs no "
                      "enable_logical_replication: project setting unchanged, no compute restarted.\n"
                      f"  progress: argon import --status --project-id {result['project_id']} "
                      f"--branch {result['branch_id']}\n"
                      f"  when writes to the source have stopped: argon import --cutover "
                      f"--project-id {result['project_id']} --branch {result['branch_id']}")


def _import_sync(c: Any, project_id: str, branch: str, cutover: bool, timeout: float,
                 as_json: bool) -> None:
    base = api_path("projects", project_id, "branches", branch, "import")
    if cutover:
        out = c.call("POST", base + "/cutover", json={"timeout_seconds": timeout},
                     timeout=timeout + 60)
    else:
        out = c.call("GET", base)
    if as_json:
        emit(out, True)
        return
    if not cutover:
        console.print(f"{out['subscription']}: {out['state']}, {out['tables_ready']} tables "
                      f"ready, {out['tables_copying']} copying; source at {out['source_lsn']}, "
                      f"applied {out['applied_lsn']}, confirmed {out['confirmed_flush_lsn']}, "
                      f"lag {out['lag_bytes']} bytes")
        return
    console.print(f"cut over at the source's {out['source_lsn']}: subscription dropped"
                  + (", Argon's publication dropped" if out["publication_dropped"] else "")
                  + f"; {len(out['sequences'])} sequences advanced")
    for t in out["tables"]:
        console.print(f"  {t['schema']}.{t['table']}: source {t['source_rows']}, "
                      f"branch {t['target_rows']} rows")
    if out["mismatched"]:
        fail("row counts differ (writes after the cutover began?): " + ", ".join(out["mismatched"]))


@app.command("local")
def local_door(
    home: HomeOpt,
    api_url: ApiUrlOpt = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar=["NEON_API_KEY", "ARGON_API_KEY"],
                                                help="API key (default: the home's bootstrap key).")] = None,
    project_id: Annotated[str | None, typer.Option("--project-id", envvar="NEON_PROJECT_ID",
                                                   help="Project (default: the only one).")] = None,
    branch_id: Annotated[str | None, typer.Option("--branch-id", envvar="BRANCH_ID",
                                                  help="Use this existing branch; delete nothing.")] = None,
    parent_branch_id: Annotated[str | None, typer.Option("--parent-branch-id", envvar="PARENT_BRANCH_ID",
                                                         help="Parent of the branch made (default: the default branch).")] = None,
    delete_branch: Annotated[str | None, typer.Option("--delete-branch", envvar="DELETE_BRANCH",
                                                      help="true (default): an ephemeral branch deleted on stop; "
                                                      "false: kept, one per git branch with a git HEAD.")] = None,
    git_dir: Annotated[Path | None, typer.Option("--git-dir", help="Repository (or its .git/HEAD) whose "
                                                 "branch picks the database branch (default: ./.git).")] = None,
    state_dir: Annotated[Path, typer.Option("--state-dir", help="Where the door keeps its state.")] = Path(".neon_local"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on (localhost: "
                                      "127.0.0.1 and ::1).")] = "localhost",
    port: Annotated[int | None, typer.Option("--port", help="Port (default: 5432 when free).")] = None,
    sql_url: Annotated[str | None, typer.Option("--sql-url", envvar="ARGON_SQL_URL",
                                                help="Argon's POST /sql URL (default: the "
                                                "local Argon's).")] = None,
    no_tls: Annotated[bool, typer.Option("--no-tls", help="Refuse TLS (sslmode=disable only).")] = False,
) -> None:
    """A Neon Local-style door: postgres://neon:npg@localhost:<port>/<db>, /sql and the
    WebSocket on one port, routed to a fixed, ephemeral or per-git-branch database branch."""
    from argon.local.launch import LocalArgs, default_git_dir, env_bool, run  # noqa: PLC0415

    run(LocalArgs(home, api_url, api_key, project_id, branch_id, parent_branch_id,
                  env_bool(delete_branch, True), git_dir or default_git_dir(), state_dir,
                  host, port, sql_url, not no_tls))


from argon.cli.recover import recover as _recover  # noqa: E402 - beside its siblings

app.command("recover")(_recover)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        app()
    except ArgonError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        sys.exit(1)


if __name__ == "__main__":
    main()
