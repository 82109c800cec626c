#!/usr/bin/env bash
# A PgBouncer with protocol-level prepared statements (>= 1.21, `max_prepared_statements`)
# for Argon's -pooler hosts. Debian 12 ships 1.18, so where no new enough PgBouncer exists
# this builds Debian 13's (trixie) source package, Debian's security patches included,
# on this machine and installs it into its own prefix, leaving Debian's pgbouncer package
# (binary, config, service) alone.
#
# Idempotent: does nothing when $prefix/bin/pgbouncer or /usr/sbin/pgbouncer is already
# new enough. Needs root (apt) only when it has to build. Progress goes to stderr; the
# path of the PgBouncer to use is the only thing printed on stdout.
#   scripts/pgbouncer.sh [--rebuild]   --rebuild: build again even if one is new enough
#                                      (to pick up a newer trixie security upload)
#   ARGON_PGBOUNCER_PREFIX  install prefix (default /opt/argon/pgbouncer)
#   ARGON_PGBOUNCER_CACHE   downloaded source and build tree (default /var/cache/argon/pgbouncer)
set -euo pipefail

min_version=1.21
prefix=${ARGON_PGBOUNCER_PREFIX:-/opt/argon/pgbouncer}
cache=${ARGON_PGBOUNCER_CACHE:-/var/cache/argon/pgbouncer}
sources_file=/etc/apt/sources.list.d/argon-trixie-src.sources
# What PgBouncer's configure really needs, from bookworm (not `apt-get build-dep`: Debian's
# build-deps add pandoc, debhelper, PAM, systemd and a test suite that wants trixie-only
# tzdata-legacy; Argon runs PgBouncer as a plain child process and needs none of that).
build_deps=(build-essential pkgconf libevent-dev libssl-dev libc-ares-dev)

say() { echo "pgbouncer: $*" >&2; }

# "PgBouncer 1.24.1" (first line of --version) -> 1.24.1; empty if it does not run.
version_of() {
  "$1" --version 2>/dev/null | awk 'NR == 1 { for (i = 1; i <= NF; i++)
    if ($i ~ /^[0-9]+\.[0-9]+/) { print $i; exit } }' || true
}

# Prints the first PgBouncer that is new enough, in the order Argon should look them up.
find_current() {
  local bin v
  for bin in "$prefix/bin/pgbouncer" /usr/sbin/pgbouncer; do
    [ -x "$bin" ] || continue
    v=$(version_of "$bin")
    if [ -n "$v" ] && dpkg --compare-versions "$v" ge "$min_version"; then
      say "using $bin ($v, >= $min_version)"
      echo "$bin"
      return 0
    fi
  done
  return 1
}

rebuild=false
case "${1:-}" in
  "") ;;
  --rebuild) rebuild=true ;;
  *) say "usage: $0 [--rebuild]"; exit 2 ;;
esac

if ! $rebuild; then find_current && exit 0; fi

if [ "$(id -u)" != 0 ]; then
  say "no PgBouncer >= $min_version found; run this script as root to build one into $prefix"
  exit 1
fi

started=$SECONDS
mkdir -p "$cache"
# One build at a time (parallel CI jobs, a second terminal); re-check after waiting.
exec 9>"$cache/.lock"
flock 9
if ! $rebuild; then find_current && exit 0; fi

# deb-src only: no trixie binary package can ever be installed from this entry.
sources_text="# Written by Argon's scripts/pgbouncer.sh: trixie *source* packages only, to build
# a current PgBouncer on Debian 12. Harmless to delete; the script writes it when needed.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
if [ ! -f "$sources_file" ] || [ "$(cat "$sources_file")" != "$sources_text" ]; then
  say "adding trixie deb-src entries ($sources_file)"
  printf '%s\n' "$sources_text" >"$sources_file"
fi

say "apt-get update"
apt-get update -qq >"$cache/apt.log" 2>&1 || { tail -n 30 "$cache/apt.log" >&2; exit 1; }

missing=()
for pkg in "${build_deps[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' \
    || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing build dependencies from bookworm: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >>"$cache/apt.log" 2>&1 || { tail -n 30 "$cache/apt.log" >&2; exit 1; }
fi

# The newest pgbouncer source apt knows (trixie, trixie-updates or trixie-security).
dsc=$(apt-get source --print-uris -qq pgbouncer | awk '$2 ~ /\.dsc$/ { print $2 }')
[ -n "$dsc" ] || { say "apt has no pgbouncer source package (is $sources_file read?)"; exit 1; }
debian_version=${dsc#pgbouncer_}
debian_version=${debian_version%.dsc}
upstream=${debian_version%%-*}
upstream=${upstream#*:}
if ! dpkg --compare-versions "$upstream" ge "$min_version"; then
  say "the newest source apt offers is $debian_version, older than $min_version"
  exit 1
fi
say "building $upstream from Debian trixie source ($debian_version) into $prefix ..."

# Downloads are kept (apt skips files it already has); the unpacked tree is fresh each time.
# The download dir belongs to _apt so apt can fetch inside its sandbox.
src_dir="$cache/src"
mkdir -p "$src_dir"
chown _apt:root "$src_dir" 2>/dev/null || true
rm -rf "$src_dir/pgbouncer-$upstream"
(cd "$src_dir" && apt-get source -qq pgbouncer="$debian_version" >/dev/null)

stage="$cache/stage"
rm -rf "$stage"
(
  cd "$src_dir/pgbouncer-$upstream"
  # Debian configures --with-cares --with-pam --with-systemd; PAM and sd_notify are of no
  # use to Argon, c-ares keeps DNS lookups asynchronous.
  ./configure --prefix="$prefix" --with-cares=yes >"$cache/configure.log" 2>&1 \
    || { tail -n 30 "$cache/configure.log" >&2; exit 1; }
  make -j"$(nproc)" >"$cache/make.log" 2>&1 || { tail -n 30 "$cache/make.log" >&2; exit 1; }
  make install DESTDIR="$stage" >>"$cache/make.log" 2>&1
)

built="$stage$prefix/bin/pgbouncer"
v=$(version_of "$built")
if [ -z "$v" ] || ! dpkg --compare-versions "$v" ge "$min_version"; then
  say "the built $built reports version '${v:-?}', expected >= $min_version"
  exit 1
fi

# Copy beside the prefix (same filesystem), then swap the whole prefix in with renames,
# so an interrupted run never leaves half an install behind.
mkdir -p "$(dirname "$prefix")"
rm -rf "$prefix.new" "$prefix.old"
cp -a "$stage$prefix" "$prefix.new"
[ ! -e "$prefix" ] || mv "$prefix" "$prefix.old"
mv "$prefix.new" "$prefix"
rm -rf "$prefix.old" "$stage" "$src_dir/pgbouncer-$upstream"

say "built PgBouncer $v in $((SECONDS - started)) s: $prefix/bin/pgbouncer"
find_current
