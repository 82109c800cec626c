# Sourced by ./argon and scripts/test: make sure .venv exists with Argon installed.
# Re-installs when pyproject.toml is newer than the last install.
argon_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
argon_venv="$argon_root/.venv"
argon_stamp="$argon_venv/.installed"
argon_python="${ARGON_PYTHON:-python3}"

argon_bootstrap() {
  if ! "$argon_python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "argon: Python 3.11 or newer is needed (set ARGON_PYTHON to its path)" >&2
    return 1
  fi
  if [ ! -x "$argon_venv/bin/python" ] || [ "$argon_root/pyproject.toml" -nt "$argon_stamp" ]; then
    echo "argon: installing Argon and its pinned dependencies into $argon_venv ..." >&2
    "$argon_python" -m venv "$argon_venv"
    "$argon_venv/bin/pip" install --quiet --disable-pip-version-check -e "$argon_root[test]"
    touch "$argon_stamp"
  fi
  # Argon's preload library (pgext/argon) for each Postgres install; fast when up to date.
  # Without it computes start without its features (privileged extensions, FILECACHE).
  "$argon_root/scripts/build-pgext.sh" \
    || echo "argon: scripts/build-pgext.sh failed; computes start without pgext/argon" >&2
}

# Pooled (-pooler) hosts need PgBouncer >= 1.21; as root, build Debian 13's source once
# where the system's is older (Debian 12 ships 1.18). Fast when one is there already.
argon_pgbouncer() {
  if [ "$(id -u)" = 0 ]; then
    "$argon_root/scripts/pgbouncer.sh" >/dev/null \
      || echo "argon: no PgBouncer >= 1.21; pooled hosts are unavailable" >&2
  else
    "$argon_root/scripts/pgbouncer.sh" >/dev/null 2>&1 \
      || echo "argon: no PgBouncer >= 1.21 (run scripts/pgbouncer.sh as root); pooled hosts are unavailable" >&2
  fi
}
