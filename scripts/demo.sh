#!/usr/bin/env bash
# make demo: builds netraid and the demo, then runs the whole story on this
# machine (as root): two network-namespace "machines" with loop-device
# disks, netraid on both, ext4 over nbdfuse on machine a with ActiveMQ's
# KahaDB on it; messages, a failed disk, the death of machine a, b takes
# over; it prints an account and exits non-zero if a message was lost.
#
# Flags are passed to the demo (scripts/demo.sh --help lists them).
# Environment: GO (default go), NETRAID_BIN (default bin/netraid, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
go=${GO:-go}
if [ -z "${NETRAID_BIN:-}" ]; then
	$go build -o bin/netraid ./cmd/netraid
	export NETRAID_BIN=$PWD/bin/netraid
fi
$go build -o bin/netraid-demo ./tests/demo
exec bin/netraid-demo "$@"
