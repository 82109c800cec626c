"""``argon recover``: a thin shell over ``control.disaster_recovery.recover_home``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from argon.cli.output import console, err_console
from argon.errors import ArgonError


class _RichProgress:
    def __init__(self, progress: Progress) -> None:
        self.p = progress
        self.task = progress.add_task("reading the bucket", total=None)

    def planned(self, timelines: int, total_bytes: int) -> None:
        self.p.update(self.task, description=f"{timelines} timeline(s)", total=total_bytes)

    def timeline(self, timeline_id: str, branch: str) -> None:
        self.p.update(self.task, description=f"{branch} ({timeline_id})")

    def bytes(self, n: int) -> None:
        self.p.advance(self.task, n)


def recover(
    home: Annotated[Path, typer.Option("--home", help="The new, empty home to rebuild.")],
    object_store: Annotated[str, typer.Option(
        "--object-store", envvar="ARGON_OBJECT_STORE",
        help="The bucket the lost home archived to (s3://bucket/prefix; endpoint and "
             "credentials from the usual AWS variables).")],
    metadata_url: Annotated[str | None, typer.Option(
        "--metadata-url", envvar="ARGON_METADATA_URL",
        help="The lost home's metadata database (Postgres, or an SQLite file that was not "
             "on the lost disk); default: the copy of the home's SQLite metadata that "
             "Argon kept in the bucket.")] = None,
    clone_driver: Annotated[str, typer.Option(help="auto, reflink or copy.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Rebuild every project's branches on this host from the bucket (disaster recovery).

    Then run `argon start` with the same --home, --metadata-url and --object-store:
    each branch's first start replays its WAL from the bucket."""
    from argon.control.disaster_recovery import recover_home, summary_line  # noqa: PLC0415
    from argon.home import set_private_umask  # noqa: PLC0415
    from argon.settings import Settings  # noqa: PLC0415
    from argon.storage.objectstore.bucket import Bucket  # noqa: PLC0415

    set_private_umask()
    try:
        store = Bucket(object_store)
        store.check()
        settings = Settings(home=home.resolve(), metadata_url=metadata_url,
                            clone_driver=clone_driver)
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True,
                      disable=as_json) as progress:
            summary = recover_home(settings, store, object_store, _RichProgress(progress))
    except ArgonError as exc:
        if as_json:
            print(json.dumps({"recovered": False, "error": exc.message}))
        else:
            err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps({"recovered": True, **summary.to_json()}, indent=2))
        return
    console.print(f"[bold green]{summary_line(summary)}[/bold green]")
    for tl in summary.timelines:
        console.print(f"  {tl['branch']:<40} {tl['snapshots']} snapshot(s), replays to "
                      f"{tl['target']}")
    for line in summary.missing:
        console.print(f"  [yellow]not in the bucket:[/yellow] {line}")
    console.print(f"Next: argon start --home {home} --object-store {object_store}"
                  + (" --metadata-url ..." if metadata_url else ""))
