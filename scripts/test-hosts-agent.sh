#!/usr/bin/env bash
# Open MPI's plm_rsh_agent for the test hosts (scripts/test-hosts.sh): called as ssh would be,
# `agent [ssh options] HOST COMMAND...`, it runs COMMAND inside HOST's network namespace.
set -euo pipefail
while [[ "${1:-}" == -* ]]; do
  shift
done
host="${1:?host}"
shift
# ssh hands the command to a shell as one string; do the same.
exec "$(dirname "$0")/test-hosts.sh" exec "$host" sh -c "$*"
