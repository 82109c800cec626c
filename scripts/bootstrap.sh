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
}
