"""The git branch checked out in a repository, read from ``.git/HEAD`` (no git needed:
Neon Local mounts only that file into its container)."""

from __future__ import annotations

from pathlib import Path

from argon.errors import InvalidInput


def head_file(git_dir: Path) -> Path:
    """``git_dir`` may be the work tree, its ``.git`` directory or the HEAD file itself."""
    if git_dir.is_file() or git_dir.name == "HEAD":    # a mounted HEAD, maybe not there yet
        return git_dir
    if (git_dir / ".git" / "HEAD").exists():
        return git_dir / ".git" / "HEAD"
    return git_dir / "HEAD"


def current_branch(head: Path) -> str:
    """The branch name HEAD points at; a detached HEAD is refused (no name to map)."""
    try:
        text = head.read_text().strip()
    except OSError as e:
        raise InvalidInput(f"cannot read the git HEAD at {head}: {e.strerror}") from None
    prefix = "ref: refs/heads/"
    if not text.startswith(prefix):
        raise InvalidInput(f"the git HEAD at {head} is detached ({text[:12]}); check out "
                           "a branch so that it can be mapped to a database branch")
    return text[len(prefix):]
