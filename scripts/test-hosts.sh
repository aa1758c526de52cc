#!/usr/bin/env bash
# Test hosts: N "hosts" on one machine, each a network namespace with its own address, joined by
# a bridge, sharing the file system (as hosts share an NFS mount). Nothing is added to the
# machine's own network namespace: the bridge lives in a namespace of its own.
#
#   scripts/test-hosts.sh up N            N hosts: tbhost1..tbhostN at 10.231.0.1..N (runs `down` first)
#   scripts/test-hosts.sh exec HOST CMD   runs CMD on HOST (a name or an address)
#   scripts/test-hosts.sh rsh-agent       prints the path of the launcher Open MPI's plm_rsh_agent takes
#   scripts/test-hosts.sh down            removes every namespace, link and address `up` made
#
# Needs root (ip netns). Under mpirun, start mpirun itself on a test host, so that the ranks it
# starts elsewhere can reach it:
#   scripts/test-hosts.sh exec tbhost1 mpirun --host 10.231.0.1:1,10.231.0.2:1 \
#     --mca plm_rsh_agent "$(scripts/test-hosts.sh rsh-agent)" --mca btl tcp,self \
#     --mca btl_tcp_if_include 10.231.0.0/24 --mca oob_tcp_if_include 10.231.0.0/24 -np 2 CMD
set -euo pipefail

SUBNET=10.231.0
SWITCH=tbswitch
PREFIX=tbhost

host_of() { # a name or an address -> the namespace
  case "$1" in
    "$SUBNET".*) echo "$PREFIX${1##*.}" ;;
    *) echo "$1" ;;
  esac
}

down() {
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^($PREFIX[0-9]+|$SWITCH)$" || true); do
    ip netns delete "$ns"
  done
}

up() {
  local n="$1"
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 && "$n" -le 250 ]] || { echo "up needs a number of hosts, 1 to 250" >&2; exit 2; }
  down
  ip netns add "$SWITCH"
  ip -n "$SWITCH" link add br0 type bridge
  ip -n "$SWITCH" link set br0 up
  for i in $(seq 1 "$n"); do
    local ns="$PREFIX$i"
    ip netns add "$ns"
    # One veth pair per host, made inside the switch: its host end moves into the host.
    ip -n "$SWITCH" link add "port$i" type veth peer name eth0 netns "$ns"
    ip -n "$SWITCH" link set "port$i" master br0 up
    ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done
}

case "${1:-}" in
  up) up "${2:?up N}" ;;
  down) down ;;
  exec)
    host=$(host_of "${2:?exec HOST CMD...}")
    shift 2
    exec ip netns exec "$host" "$@"
    ;;
  rsh-agent) echo "$(cd "$(dirname "$0")" && pwd)/test-hosts-agent.sh" ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; [[ "${1:-}" == -h || "${1:-}" == --help ]] || exit 2 ;;
esac
