#!/usr/bin/env bash
# Installs the Debian packages safehold's tests (or, with "bench", its benchmark) need, only when missing.
set -euo pipefail
want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need mariadb-dump mariadb-client
need pg_dump postgresql-client
need redis-server redis-server
need redis-cli redis-tools
need sqlite3 sqlite3
need git git
need supervisord supervisor   # the supervisor health check runs against a private supervisord
need /usr/sbin/nginx nginx-light   # drills run "nginx -t" on restored configurations
need /usr/sbin/sshd openssh-server
need ssh-keygen openssh-client
if [ "${1:-}" = "bench" ]; then
  need restic restic
  need borg borgbackup
  need zstd zstd
  need myloader mydumper      # dbbench's restore anchor
  need npm npm                # the real corpus (benchmarks/corpus.py)
  need dpkg-source dpkg-dev
fi
if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "missing packages: ${want[*]} (run as root or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi
