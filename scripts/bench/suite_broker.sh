# shellcheck shell=bash
# shellcheck disable=SC2034 # SUITE is read by servers.sh
# Suite "broker": the program netraid exists for. Debian's ActiveMQ
# (KahaDB, which syncs its journal before it acknowledges a persistent
# message; the package's configuration changed only in its data directory
# and STOMP connector: tests/broker) and Redis (appendfsync always: its
# append-only file is fsynced before a write is answered), each on ext4
# on every target in turn:
#
#   loop           a loop device (direct I/O) over a file on BENCH_DIR's
#                  disk: the local-disk baseline, no NBD, no FUSE
#   loop-ram       the same over a file in memory (tmpfs): the stores'
#                  own time, no disk (informative)
#   nbdkit         nbdkit's file plugin on a file (peer)
#   qemu-nbd       qemu-nbd on a file (peer)
#   nbdkit-memory  nbdkit's memory plugin: what the FUSE and NBD hops
#                  cost every NBD server, with no disk (informative)
#   netraid        netraid on one member file, as the peers (subject)
#   netraid-2disk  netraid on a stripe of two member files (informative)
#   netraid-mirror a primary mirroring to a secondary on 127.0.0.1, one
#                  member file each (judged against netraid)
#
# An NBD export becomes a filesystem as README says where the kernel has
# no NBD client: nbdfuse presents it as a file, a loop device with direct
# I/O makes that a block device, and ext4 goes on it (fs.sh). Each store
# runs on a fresh directory of the filesystem per round (storeload
# starts it, drives it and stops it) under two loads: one write in flight
# (latency) and a window of BENCH_BROKER_WINDOW (CONNSxDEPTH: that many
# connections, each with DEPTH writes in flight; throughput). The rows:
# writes per second, the median and p99 of the time from a write's frame
# to its receipt (its reply), and the servers' CPU over the measured time.
#
# Targets: ActiveMQ on netraid >= 1.0x the best peer at both loads, and
# on netraid-mirror >= 0.8x netraid; Redis rows and the ratio to the loop
# baseline (the goal there is 0.8x) informative; peak RSS of every netraid
# daemon under 256 MiB. The report also splits each load's time per
# message: the store's own (loop-ram), the disk (loop less loop-ram), the
# FUSE and NBD hops every server pays (nbdkit-memory less loop-ram), and
# what is left to each server.
#
# Sourced after lib.sh, servers.sh and fs.sh; bench.sh calls suite_broker.

BROKER_WINDOW=${BENCH_BROKER_WINDOW:-1x50}
BROKER_SIZE=$(numfmt --from=iec "${BENCH_BROKER_SIZE:-512M}")
BROKER_MSG=${BENCH_BROKER_MSG:-1024}
STORELOAD=${STORELOAD_BIN:-$root/bin/storeload}

BROKER_WORKLOADS=(amq-latency amq-window redis-latency redis-window)
declare -A BROKER_DESC=(
	[amq-latency]="ActiveMQ, 1 message in flight"
	[amq-window]="ActiveMQ, $BROKER_WINDOW in flight"
	[redis-latency]="Redis, 1 SET in flight"
	[redis-window]="Redis, $BROKER_WINDOW in flight"
)

# Per target: the filesystem's name (fs.sh), the servers' pids (","; "-"
# for none), their names (the pair's primary first), the role.
BROKER_TARGETS=()
declare -A B_PIDS=() B_NAMES=() B_SINCE=()

# broker_target NAME ROLE DESCRIPTION PIDS NAMES [KEY=VALUE...]: add a
# column whose filesystem is FS_MNT[NAME].
broker_target() {
	record kind=target suite=broker target="$1" role="$2" desc="$3" "${@:6}"
	BROKER_TARGETS+=("$1")
	B_PIDS[$1]=$4
	B_NAMES[$1]=$5
}

# broker_check TARGET: RUN_CHECK for the pair: its link stayed up.
broker_check() {
	[ -n "${B_SINCE[$1]:-}" ] || return 0
	pair_state "${B_NAMES[$1]%%,*}" "${B_SINCE[$1]}" || echo "could not read the primary's status"
}

# broker_run TARGET STORE ROUND: start STORE (amq or redis) on TARGET's
# filesystem, run both loads, record them.
broker_run() {
	local t=$1 st=$2 round=$3 data out err why status=ok line w prog=redis
	local -a pids=()
	data="${FS_MNT[$t]}/$st-$round"
	out="$WORK/storeload/$t-$st-$round.jsonl"
	err="$WORK/storeload/$t-$st-$round.err"
	mkdir -p "$WORK/storeload"
	[ "${B_PIDS[$t]}" = - ] || pids=(--cpu-pids "${B_PIDS[$t]}")
	[ "$st" = amq ] && prog=activemq
	log_run broker "$prog" "$t" "$round"
	if ! bounded $((2 * (RUNTIME + RAMP) + 300)) "$STORELOAD" "$prog" --data "$data" --work "$WORK/storeload/$t-$st-$round" \
		--loads "$st-latency=1x1,$st-window=$BROKER_WINDOW" --warmup "${RAMP}s" --duration "${RUNTIME}s" \
		--size "$BROKER_MSG" "${pids[@]}" >"$out" 2>"$err"; then
		status=failed
		log "broker/$t/$st failed: $(tail -n 3 "$err" | tr '\n' ' ')"
	fi
	if [ -n "$RUN_CHECK" ] && why=$("$RUN_CHECK" "$t") && [ -n "$why" ]; then
		status=failed
		echo "after the run: $why" >>"$err"
		log "broker/$t/$st failed: $why"
	fi
	rm -rf "$data"
	for w in "$st-latency" "$st-window"; do
		if [ "$status" = ok ] && line=$(grep "\"load\":\"$w\"" "$out"); then
			record kind=run suite=broker target="$t" workload="$w" round="$round" status=ok error_log="$err" \
				$(python3 -c 'import json, sys
r = json.loads(sys.argv[1])
print("value=%.1f lat_p50_us=%.0f lat_p99_us=%.0f lat_mean_us=%.0f msgs=%d wall_s=%.3f server_cpu_s=%.3f" % (
    r["msgs_per_s"], r["lat_p50_us"], r["lat_p99_us"], r["lat_mean_us"], r["msgs"], r["seconds"],
    r.get("server_cpu_s", 0)))' "$line")
		else
			record kind=run suite=broker target="$t" workload="$w" round="$round" status=failed error_log="$err"
		fi
	done
}

# broker_fill NAME...: backing files of BROKER_SIZE bytes, written once.
broker_fill() {
	local f
	for f in "$@"; do
		make_backing "$WORK/$f.img" "$BROKER_SIZE"
	done
}

# broker_targets: make every target's filesystem and add its column.
broker_targets() {
	local a b
	log "broker: backing files of $(numfmt --to=iec "$BROKER_SIZE") and filesystems on each target"
	broker_fill broker-loop broker-nbdkit broker-qemu
	fs_on_file loop "$WORK/broker-loop.img"
	broker_target loop baseline "loop device (direct I/O) over a file: the local disk, no NBD" - -
	fs_on_ram loop-ram "$BROKER_SIZE"
	broker_target loop-ram info "loop device over a file in tmpfs: no disk, no NBD (the stores' own time)" - -
	start_nbdkit broker-nbdkit "$WORK/broker-nbdkit.img" 0 "$BROKER_SIZE"
	fs_on_nbd nbdkit "$SERVER_URI"
	broker_target nbdkit peer "nbdkit file plugin, cache=none, $NBDKIT_THREADS threads" "$SERVER_PID" broker-nbdkit
	start_qemu_nbd broker-qemu "$WORK/broker-qemu.img" 0 "$BROKER_SIZE"
	fs_on_nbd qemu-nbd "$SERVER_URI"
	broker_target qemu-nbd peer "qemu-nbd --cache=none --aio=native --persistent" "$SERVER_PID" broker-qemu
	broker_nbdkit_memory
	[ -n "$NETRAID" ] || {
		record kind=note suite=broker text="netraid not measured: $NETRAID_MISSING"
		return 0
	}
	broker_fill broker-netraid broker-mirror-a broker-mirror-b
	make_backing "$WORK/broker-2disk.0.img" $((BROKER_SIZE / 2))
	make_backing "$WORK/broker-2disk.1.img" $((BROKER_SIZE / 2))
	create_netraid broker-netraid "$WORK/broker-netraid.img"
	start_netraid broker-netraid "$WORK/broker-netraid.img"
	fs_on_nbd netraid "$SERVER_URI"
	broker_target netraid subject "netraid, one member file (as the peers)" "$SERVER_PID" broker-netraid
	create_netraid broker-2disk "$WORK/broker-2disk.0.img" "$WORK/broker-2disk.1.img"
	start_netraid broker-2disk "$WORK/broker-2disk.0.img" "$WORK/broker-2disk.1.img"
	fs_on_nbd netraid-2disk "$SERVER_URI"
	broker_target netraid-2disk info "netraid, a stripe of two member files (chunk $NETRAID_CHUNK)" "$SERVER_PID" broker-2disk
	a="$WORK/broker-mirror-a.img" b="$WORK/broker-mirror-b.img"
	create_netraid broker-mirror-a "$a"
	create_netraid broker-mirror-b "$b"
	start_netraid_pair broker-mirror-a broker-mirror-b "$a" "$b"
	wait_in_sync broker-mirror-a 120
	fs_on_nbd netraid-mirror "$SERVER_URI"
	broker_target netraid-mirror info \
		"netraid primary mirroring to a secondary on 127.0.0.1, one member file each; CPU: both" \
		"$PAIR_PIDS" broker-mirror-a,broker-mirror-b versus=netraid versus_min_ratio=amq-latency:0.8,amq-window:0.8
	wait_in_sync broker-mirror-a 120
	B_SINCE[netraid-mirror]=$(peer_since broker-mirror-a)
}

# broker_nbdkit_memory: the nbdkit-memory target, if nbdkit has the
# memory plugin.
broker_nbdkit_memory() {
	if ! start_nbdkit_memory broker-nbdkit-memory "$BROKER_SIZE"; then
		record kind=note suite=broker text="nbdkit-memory not measured: nbdkit has no memory plugin"
		return 0
	fi
	fs_on_nbd nbdkit-memory "$SERVER_URI"
	broker_target nbdkit-memory info "nbdkit memory plugin: the FUSE and NBD hops, no disk" "$SERVER_PID" broker-nbdkit-memory
}

# broker_stop: the filesystems go first; then the peak RSS of every
# server, and the servers.
broker_stop() {
	local t
	fs_teardown_all
	for t in "${BROKER_TARGETS[@]}"; do
		[ "${B_PIDS[$t]}" = - ] || stop_target broker "$t" "${B_PIDS[$t]}" "${B_NAMES[$t]}"
	done
}

suite_broker() {
	local w r j n st
	SUITE=broker
	BROKER_TARGETS=()
	[ -x "$STORELOAD" ] || die "$STORELOAD is not built (make bench builds it: go build -o bin/storeload ./tests/broker/cmd/storeload)"
	for st in mkfs.ext4 losetup nbdfuse fusermount3 redis-server java; do
		command -v "$st" >/dev/null || die "$st is missing (make deps)"
	done
	record kind=suite suite=broker subject=netraid min_ratio_peer=1.0 rss_limit_mib=256 \
		breakdown="ram=loop-ram disk=loop hops=nbdkit-memory" \
		title="stores that sync every write, on ext4 on each target ($BROKER_MSG-byte messages)"
	for w in "${BROKER_WORKLOADS[@]}"; do
		case $w in
		amq-*) record kind=workload suite=broker workload="$w" desc="${BROKER_DESC[$w]}" metric=msgs/s ;;
		*) record kind=workload suite=broker workload="$w" desc="${BROKER_DESC[$w]}" metric=msgs/s informative=1 ;;
		esac
	done
	broker_targets
	RUN_CHECK=broker_check

	# Each round starts with another target, as in the other suites.
	n=${#BROKER_TARGETS[@]}
	for ((r = 0; r < ROUNDS; r++)); do
		for ((j = 0; j < n; j++)); do
			for st in amq redis; do
				broker_run "${BROKER_TARGETS[(r + j) % n]}" "$st" $((r + 1))
			done
		done
	done
	RUN_CHECK=
	broker_stop
}
