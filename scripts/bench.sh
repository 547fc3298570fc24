#!/usr/bin/env bash
# make bench: fio against netraid and against the servers people would use
# instead, on the same backing storage, in one run; prints a table of each
# target's figures and netraid's ratios to the best peer and to raw I/O, and
# writes the results to bench-results.json in the working directory.
#
# Suites (BENCH_SUITES, space-separated; each is scripts/bench/suite_NAME.sh
# defining suite_NAME; scripts/bench/README.md says more):
#   single   one node: raw libaio, nbdkit, qemu-nbd, netraid on one file
#   mirror   writes through a primary whose peer is a second netraid node on
#            this machine (loopback), beside a single node and beside raw
#            fio writing two files at once (per copy)
#   resync   resync of a secondary that was down, beside a raw direct-I/O
#            copy of the same bytes
#   broker   ActiveMQ and Redis (every write synced) on ext4 on a loop
#            device, nbdkit, qemu-nbd, netraid (one file, a stripe, a
#            mirrored pair): messages per second and receipt latency
#   failover automatic failover through etcd: the primary's death to the
#            first message ActiveMQ acknowledges on the survivor; a
#            journal's writes with --etcd against without
# The mirror suite measures TLS beside plaintext (mirror_tls).
#
# Environment:
#   BENCH_SUITES     suites to run (default: single mirror resync broker
#                    failover)
#   BENCH_SIZE       backing file size (default 1G; IEC suffixes)
#   BENCH_RUNTIME    seconds measured per run (default 10)
#   BENCH_RAMP       seconds of warm-up per run, not measured (default 2)
#   BENCH_ROUNDS     times every run is repeated; the median is reported
#                    (default 1; 3 for figures worth quoting)
#   BENCH_TRANSPORT  unix (default) or tcp (127.0.0.1)
#   BENCH_DIR        where the scratch directory goes (default /var/tmp);
#                    it must be a disk filesystem that allows O_DIRECT
#   BENCH_KEEP=1     keep the scratch directory (fio output, server logs,
#                    backing files); after a failure the logs are kept
#   BENCH_OUT        result file (default ./bench-results.json)
#   NETRAID_BIN      netraid binary (default bin/netraid of this checkout)
#   NETRAID_CHUNK    stripe chunk (default 64KiB)
#   NBDKIT_THREADS   nbdkit worker threads (default 32)
#   BENCH_SERVER_MEM memory cgroup limit of every server, page cache
#                    included (default 256M, netraid's RSS budget)
#   BENCH_BROKER_SIZE  the broker suite's filesystems (default 512M)
#   BENCH_BROKER_WINDOW  its throughput load, CONNSxDEPTH (default 1x50)
#   BENCH_BROKER_MSG   its message size in bytes (default 1024)
#   STORELOAD_BIN    the broker suite's load generator (default
#                    bin/storeload; make bench builds it)
#   BENCH_FAILOVER_ROUNDS  the failover suite's rounds (default 3, at most 10)
#   FAILOVER_BIN     its failover timer (default bin/failovertime; make
#                    bench builds it)
# Exits 0 when every run completed, whether or not the targets were met; 3
# when a run failed (the table and the JSON are still written); 1 when the
# benchmark could not be set up.
set -Eeuo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here="$root/scripts/bench"

SUITES=${BENCH_SUITES:-single mirror resync broker failover}
SIZE=$(numfmt --from=iec "${BENCH_SIZE:-1G}")
RUNTIME=${BENCH_RUNTIME:-10}
RAMP=${BENCH_RAMP:-2}
ROUNDS=${BENCH_ROUNDS:-1}
TRANSPORT=${BENCH_TRANSPORT:-unix}
OUT=${BENCH_OUT:-$PWD/bench-results.json}
NETRAID_CHUNK=${NETRAID_CHUNK:-64KiB}
CLK_TCK=$(getconf CLK_TCK)

# shellcheck source=scripts/bench/lib.sh
. "$here/lib.sh"
# shellcheck source=scripts/bench/servers.sh
. "$here/servers.sh"
# shellcheck source=scripts/bench/fs.sh
. "$here/fs.sh"

for tool in fio nbdkit qemu-nbd nbdinfo python3 fallocate numfmt timeout dd; do
	command -v "$tool" >/dev/null || die "$tool is missing (make deps)"
done
[[ $RUNTIME =~ ^[1-9][0-9]*$ && $RAMP =~ ^[0-9]+$ ]] || die "BENCH_RUNTIME and BENCH_RAMP are whole seconds"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS is a positive whole number"
[ "$SIZE" -ge $((64 << 20)) ] || die "BENCH_SIZE must be at least 64M"
case $TRANSPORT in unix | tcp) ;; *) die "BENCH_TRANSPORT is unix or tcp" ;; esac

NETRAID=${NETRAID_BIN:-$root/bin/netraid}
NETRAID_MISSING=
if [ ! -x "$NETRAID" ]; then
	NETRAID_MISSING="$NETRAID is not built (make build)"
	log "warning: $NETRAID_MISSING; measuring the other targets only"
	NETRAID=
fi

WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/netraid-bench.XXXXXX")
RESULTS="$WORK/results.jsonl"
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	fs_teardown_all
	stop_all
	memcg_teardown
	raw_iomem_teardown
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		log "scratch directory kept: $WORK"
	elif [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ]; then
		rm -f "$WORK"/*.img
		log "failed; logs kept in $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "failed: ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

fstype=$(findmnt -n -o FSTYPE -T "$WORK")
case $fstype in tmpfs | ramfs | overlay) die "$WORK is on $fstype; set BENCH_DIR to a disk filesystem" ;; esac

raw_iomem_setup
if [ ${#RAW_IOMEM[@]} -gt 0 ]; then
	record kind=meta raw_iomem=hugetlbfs
else
	log "warning: raw fio runs with ordinary buffers: $RAW_IOMEM_WHY"
	record kind=meta raw_iomem_why="$RAW_IOMEM_WHY"
fi
memcg_setup
if [ -n "$MEMCG_BASE" ]; then
	record kind=meta server_mem_mib=$((SERVER_MEM >> 20))
else
	log "warning: servers run without a memory limit: $MEMCG_WHY"
	record kind=meta server_mem_why="$MEMCG_WHY"
fi

for s in $SUITES; do
	[ -f "$here/suite_$s.sh" ] || die "no suite $s (scripts/bench/suite_$s.sh)"
	# shellcheck source=/dev/null
	. "$here/suite_$s.sh"
done

record kind=meta date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" host="$(uname -n)" kernel="$(uname -r)" \
	cpus="$(nproc)" cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
	mem_mib="$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)" \
	fs="$fstype on $(findmnt -n -o SOURCE -T "$WORK")" size_bytes="$SIZE" \
	runtime_s="$RUNTIME" ramp_s="$RAMP" rounds="$ROUNDS" transport="$TRANSPORT" \
	fio="$(fio --version)" nbdkit="$(nbdkit --version)" \
	qemu_nbd="$(qemu-nbd --version | head -n 1)" \
	netraid="${NETRAID:+$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)}" \
	load_start="$(cut -d' ' -f1 /proc/loadavg)" clk_tck="$CLK_TCK"

# What else ran on the machine meanwhile: the CPU time all processes used
# (/proc/stat) less what this script and its children (fio, the servers)
# used, over the run.
cpu_start=$(head -n 1 /proc/stat)
t_start=$(date +%s%N)
for s in $SUITES; do
	"suite_$s"
done
times >"$WORK/times" # in this shell: a subshell would report its own
record kind=meta cpu_stat_start="$cpu_start" cpu_stat_end="$(head -n 1 /proc/stat)" \
	elapsed_s="$(millis $((($(date +%s%N) - t_start) / 1000000)))" \
	own_cpu_s="$(awk '{ for (i = 1; i <= NF; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] } }
		END { printf "%.3f", s }' "$WORK/times")"
python3 "$here/report.py" "$RESULTS" "$OUT"
