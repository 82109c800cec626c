"""Fixtures for the real-client compatibility tests.

Every request the clients make goes through a recording proxy in front of a real Argon
(``argon_env``); each test's answers are checked against Neon's published schema when the
test ends, so the contract is proven by what the clients actually received.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.compat.neon_spec import SPEC_PATH, neon_spec
from tests.compat.recording import Recorder, RecordingProxy
from tests.fixtures.argon_env import ArgonEnv

COMPAT_DIR = Path(__file__).resolve().parent
NODE_MODULES = COMPAT_DIR / "node_modules"


def need_node(package: str = "@neondatabase/api-client") -> None:
    """Skip, saying why, unless node and the npm ``package`` are installed."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed; the npm clients cannot run")
    if not (NODE_MODULES / package).is_dir() or not SPEC_PATH.exists():
        pytest.skip(f"npm packages missing: run 'npm ci' in {COMPAT_DIR}")


@dataclass
class RecordedApi:
    """Argon's API as the clients see it: through the recording proxy."""

    env: ArgonEnv
    proxy: RecordingProxy
    recorder: Recorder

    @property
    def api_url(self) -> str:
        return self.proxy.base + "/api/v2"

    @property
    def api_key(self) -> str:
        return self.env.api_key


@pytest.fixture(scope="session")
def _recording_proxy(argon_env: ArgonEnv) -> Iterator[tuple[RecordingProxy, Recorder]]:
    need_node()
    origin = urlsplit(argon_env.api_url)
    recorder = Recorder()
    with RecordingProxy(f"{origin.scheme}://{origin.netloc}", recorder) as proxy:
        yield proxy, recorder


@pytest.fixture
def neon_api(argon_env: ArgonEnv,
             _recording_proxy: tuple[RecordingProxy, Recorder]) -> Iterator[RecordedApi]:
    """The API behind the recorder; the test's answers must match Neon's schema."""
    proxy, recorder = _recording_proxy
    start = len(recorder.exchanges)
    yield RecordedApi(argon_env, proxy, recorder)
    mine = Recorder(exchanges=recorder.exchanges[start:])
    mine.check(neon_spec())


@dataclass
class NodeResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Neonctl:
    """The real ``neonctl`` from npm, pointed at Argon."""

    def __init__(self, api: RecordedApi, config_dir: Path) -> None:
        self.api = api
        self.config_dir = config_dir
        self.bin = NODE_MODULES / ".bin" / "neonctl"

    def run(self, *args: str, check: bool = True) -> NodeResult:
        env = {**os.environ, "NEON_API_HOST": self.api.api_url, "NO_COLOR": "1",
               "CI": "true"}
        env.pop("NEON_API_KEY", None)
        cmd = [str(self.bin), *args, "--api-key", self.api.api_key, "--no-analytics",
               "--config-dir", str(self.config_dir)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300,
                             stdin=subprocess.DEVNULL)
        out = NodeResult(res.returncode, res.stdout, res.stderr)
        if check and res.returncode != 0:
            raise AssertionError(f"neonctl {' '.join(args)} exited {res.returncode}:\n"
                                 f"{res.stderr}\n{res.stdout}")
        return out

    def json(self, *args: str) -> Any:
        return self.run(*args, "-o", "json").json()


@pytest.fixture
def neonctl(neon_api: RecordedApi, argon_tmp: Path) -> Neonctl:
    config = argon_tmp / "neonctl-config"
    config.mkdir()
    return Neonctl(neon_api, config)


def run_node_script(script: str, env: dict[str, str], timeout: float = 300) -> NodeResult:
    """Run one of ``tests/compat/js/*.mjs``; it prints one JSON document on success."""
    res = subprocess.run(["node", str(COMPAT_DIR / "js" / script)], capture_output=True,
                         text=True, env={**os.environ, **env}, timeout=timeout,
                         cwd=COMPAT_DIR, stdin=subprocess.DEVNULL)
    return NodeResult(res.returncode, res.stdout, res.stderr)
