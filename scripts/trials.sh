#!/usr/bin/env bash
# make trials: randomized fault trials on a netraid pair (as root). Each
# trial injects one fault at a random moment of a diskchecker workload on
# ext4 over the volume — kill -9 of the primary or the secondary, a link
# cut, a failing disk, a slow link; and, on a pair that fails over by
# itself through a witness (etcd), a partition of the link, either node
# cut from etcd, the primary isolated, the primary stopped with SIGSTOP
# past its lease — recovers, and checks that every acknowledged write is
# there, e2fsck is clean and both copies are identical. Prints a table;
# exits non-zero on any loss or failure.
#
# Usage: scripts/trials.sh [N] [flags]   (N trials, default $TRIALS or one
# of each fault; flags go to the trials program: --seed S reruns a
# schedule, --faults LIST picks faults, --witness only those with a
# witness, -v shows each trial's log; --help lists them.)
# Environment: GO (default go), NETRAID_BIN (default bin/netraid, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
go=${GO:-go}
n=${TRIALS:-0} # 0: one trial of each fault picked
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
	n=$1
	shift
fi
if [ -z "${NETRAID_BIN:-}" ]; then
	$go build -o bin/netraid ./cmd/netraid
	export NETRAID_BIN=$PWD/bin/netraid
fi
$go build -o bin/netraid-trials ./tests/trials
exec bin/netraid-trials --trials "$n" "$@"
