# shellcheck shell=bash
# shellcheck disable=SC2034 # SUITE is read by servers.sh
# Suite "latency" (not run by default: BENCH_SUITES=latency): where the
# time of a journal's write and flush goes. fio writes 4 KiB at QD1 and
# flushes after each (as suite mirror's journal), through:
#
#   raw             fio libaio, O_DIRECT, fdatasync after each write, on a
#                   file (baseline: the disk alone)
#   nbdkit-memory   nbdkit's memory plugin over fio's nbd engine: the NBD
#                   round trips with no disk, what any server pays (info)
#   netraid         one node on one member file (subject)
#   netraid-mirror  a pair on loopback (info)
#
# The netraid daemons run with their per-stage histograms on
# (NETRAID_LAT=1: internal/lat, written to $WORK/NAME.lat every second);
# each run's stages (the histograms after the run less those before)
# are printed per daemon, with the count per fio write: how many times a
# write and its flush passed through each stage. Where perf is
# installed, each run also counts the daemons' context switches, system
# calls, wake-ups and CPU time per write and flush (probe lines): figures
# that do not depend on how busy the machine is, unlike the times.
#
# Sourced after lib.sh and servers.sh; bench.sh calls suite_latency.

LAT_TARGETS=()
declare -A L_PID=() L_FILES=() L_ENGINE=() L_NAMES=()

# lat_target NAME ROLE DESCRIPTION PIDS NAMES FILES ENGINE_ARGS: add a
# column; NAMES are the netraid daemons' names ("-" for none).
lat_target() {
	record kind=target suite=latency target="$1" role="$2" desc="$3"
	LAT_TARGETS+=("$1")
	L_PID[$1]=$4
	L_NAMES[$1]=$5
	L_FILES[$1]=$6
	L_ENGINE[$1]=$7
}

# lat_snap NAMES TAG: copy each daemon's histogram file once it has been
# written again (every second), as $WORK/lat/NAME.TAG.json.
lat_snap() {
	local n
	local -a names
	IFS=, read -ra names <<<"$1"
	sleep 1.2
	for n in "${names[@]}"; do
		cp "$WORK/$n.lat" "$WORK/lat/$n.$2.json" 2>/dev/null || log "latency: no histograms from $n yet"
	done
}

# lat_run TARGET ROUND: one measured run, with the stages and counts.
lat_run() {
	local t=$1 round=$2 n ops perf="$WORK/lat/$1.$2.perf" fio_out sync
	local -a files engine names
	read -ra files <<<"${L_FILES[$t]}"
	read -ra engine <<<"${L_ENGINE[$t]}"
	IFS=, read -ra names <<<"${L_NAMES[$t]}"
	drop_cache "${files[@]}"
	[ "${L_NAMES[$t]}" = - ] || lat_snap "${L_NAMES[$t]}" "$round.before"
	if [ "${L_PID[$t]}" != - ] && command -v perf >/dev/null; then
		timeout --kill-after=5 $((RUNTIME + RAMP + 5)) perf stat -x, -o "$perf" \
			-e task-clock,context-switches,raw_syscalls:sys_enter,sched:sched_wakeup \
			-p "${L_PID[$t]}" -- sleep $((RUNTIME + RAMP)) 2>/dev/null &
		PIDS+=("$!")
	fi
	log_run latency journal "$t" "$round"
	# A flush is NBD_CMD_FLUSH through a server, fdatasync on a file.
	sync=--fsync=1
	[ "$t" = raw ] && sync=--fdatasync=1
	run_fio latency "$t" journal "$round" "${L_PID[$t]}" --rw=write --bs=4k --iodepth=1 "$sync" "${engine[@]}"
	fio_out="$WORK/fio/latency-$t-journal-$round.json"
	# fio counts the writes of the measured time; the daemons' stages and
	# counts also saw the ramp's: scale to both.
	ops=$(python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
print(round(j["write"]["total_ios"] * (int(sys.argv[2]) + int(sys.argv[3])) / int(sys.argv[2])))' \
		"$fio_out" "$RUNTIME" "$RAMP" 2>/dev/null || echo 0)
	if [ -f "$perf" ]; then
		wait "${PIDS[-1]}" 2>/dev/null || true
		forget_pid "${PIDS[-1]}"
		lat_perf "$t" "$round" "$perf" "$ops"
	fi
	[ "${L_NAMES[$t]}" = - ] && return 0
	lat_snap "${L_NAMES[$t]}" "$round.after"
	for n in "${names[@]}"; do
		# shellcheck disable=SC2154 # here: bench.sh's scripts/bench directory
		python3 "$here/latency.py" --ops "$ops" --json "$WORK/lat/$n.$round.stages.json" \
			"$WORK/lat/$n.$round.before.json" "$WORK/lat/$n.$round.after.json" "$n" >/dev/null 2>&1 &&
			record kind=stages suite=latency target="$t" daemon="$n" round="$round" ops="$ops" \
				stages_json="$WORK/lat/$n.$round.stages.json"
	done
}

# lat_perf TARGET ROUND FILE OPS: the perf counts of a run (ramp and
# runtime), per fio write and its flush (OPS, over the same time), as a
# probe.
lat_perf() {
	local args
	args=$(awk -F, -v ops="$4" '
		$3 == "task-clock" { printf "cpu_us_per_op=%.1f ", $1 * 1000 / ops }
		$3 == "context-switches" { printf "cswitches_per_op=%.2f ", $1 / ops }
		$3 == "raw_syscalls:sys_enter" { printf "syscalls_per_op=%.2f ", $1 / ops }
		$3 == "sched:sched_wakeup" { printf "wakeups_per_op=%.2f ", $1 / ops }' "$3")
	[ "$4" -gt 0 ] && [ -n "$args" ] || return 0
	# shellcheck disable=SC2086 # split on purpose
	record kind=probe suite=latency target="$1" round="$2" what="daemon counts per write+flush (perf)" $args
}

suite_latency() {
	local file="$WORK/lat-raw.img" a="$WORK/lat-mirror-a.img" b="$WORK/lat-mirror-b.img" single="$WORK/lat-single.img"
	local r j n f t
	SUITE=latency
	mkdir -p "$WORK/lat"
	record kind=suite suite=latency subject=netraid min_ratio_peer=1.0 \
		title="a journal's write and flush (4 KiB at QD1, flush after each): where the time goes"
	record kind=workload suite=latency workload=journal desc="journal: sequential write 4 KiB, QD1, flush after each" \
		metric=kIOPS informative=1
	log "latency: filling four $(numfmt --to=iec "$SIZE") files"
	for f in "$file" "$a" "$b" "$single"; do
		make_backing "$f" "$SIZE"
	done
	lat_target raw baseline "fio libaio, O_DIRECT, fdatasync after each write${RAW_IOMEM[*]:+, buffers in huge pages}" \
		- - "$file" "--ioengine=libaio --direct=1 --filename=$file --size=$SIZE ${RAW_IOMEM[*]}"
	if start_nbdkit_memory lat-nbdkit-memory "$SIZE"; then
		lat_target nbdkit-memory info "nbdkit memory plugin: the NBD round trips, no disk" "$SERVER_PID" - "" \
			"--ioengine=nbd --uri=$SERVER_URI"
	fi
	if [ -n "$NETRAID" ]; then
		NETRAID_LAT=1
		create_netraid lat-single "$single"
		start_netraid lat-single "$single"
		lat_target netraid subject "netraid, one member file; stages on" "$SERVER_PID" lat-single "$single" \
			"--ioengine=nbd --uri=$SERVER_URI"
		create_netraid lat-a "$a"
		create_netraid lat-b "$b"
		start_netraid_pair lat-a lat-b "$a" "$b"
		wait_in_sync lat-a 120
		lat_target netraid-mirror info "netraid pair on 127.0.0.1, one member file each; stages on; CPU: both" \
			"$PAIR_PIDS" lat-a,lat-b "$a $b" "--ioengine=nbd --uri=$SERVER_URI"
		NETRAID_LAT=0
		prefill latency netraid --ioengine=nbd "--uri=$(nbd_uri "$(status_address "$WORK/lat-single.ctl")" bench)"
		prefill latency netraid-mirror --ioengine=nbd --uri="$SERVER_URI"
		wait_in_sync lat-a 120
	fi
	n=${#LAT_TARGETS[@]}
	for ((r = 0; r < ROUNDS; r++)); do
		for ((j = 0; j < n; j++)); do
			lat_run "${LAT_TARGETS[(r + j) % n]}" $((r + 1))
		done
	done
	for t in "${LAT_TARGETS[@]}"; do
		[ "${L_PID[$t]}" = - ] && continue
		if [ "${L_NAMES[$t]}" = - ]; then
			stop_server "$t" "${L_PID[$t]}"
		else
			stop_target latency "$t" "${L_PID[$t]}" "${L_NAMES[$t]}"
		fi
	done
}
