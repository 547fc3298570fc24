# shellcheck shell=bash
# shellcheck disable=SC2034 # SUITE is read by servers.sh
# Suite "mirror": writes through a primary whose peer is a second netraid
# node on this machine, beside the same writes through a single node and
# beside raw fio writing two files at once.
#
# The pair runs on loopback: node A (mirror-a) and node B (mirror-b) each
# have one member file, both on the filesystem of BENCH_DIR, so both
# copies of every write land on this machine's one disk. The limit of a
# mirrored write here is therefore what the disk gives two writers at
# once, per writer: the baseline is fio with two jobs, each writing its own
# file at the workload's block size and queue depth, reported per copy
# (the total over both jobs divided by two). The two files are the pair's
# own member files, and the jobs write only their data areas, the blocks
# the mirror writes, as in suite "single"; the daemons keep running
# meanwhile (their metadata is not touched; the data they hold is
# overwritten, which this benchmark never reads back).
#
# netraid on one file of its own, standalone, is measured too, for
# information: the cost of the mirror over a single node.
#
# A mirror run counts only if the peer link stayed up and both legs stayed
# up to date over it (RUN_CHECK): otherwise it measured a degraded primary.
#
# Targets: mirrored sequential write >= 0.8x the baseline per copy; random
# write informative; peak RSS of both daemons under 256 MiB.
#
# Sourced after lib.sh and servers.sh; bench.sh calls suite_mirror.

MIRROR_WORKLOADS=(seq-write rand-write)
declare -A MIRROR_DESC=(
	[seq-write]="sequential write, 1 MiB, QD8"
	[rand-write]="random write, 4 KiB, QD32"
)
declare -A MIRROR_FIO=(
	[seq-write]="--rw=write --bs=1M --iodepth=8"
	[rand-write]="--rw=randwrite --bs=4k --iodepth=32 --norandommap"
)
declare -A MIRROR_METRIC=([seq-write]=MiB/s [rand-write]=kIOPS)
# Minimum ratio to the baseline; none: informative.
declare -A MIRROR_NEED=([seq-write]=0.8 [rand-write]=none)

# Per target: pids whose CPU counts ("-" for raw), backing files, fio
# engine arguments (space-separated; no spaces inside one).
MIRROR_TARGETS=()
declare -A M_PID=() M_FILES=() M_ENGINE=()
# Per netraid target: the servers' names (their logs are $WORK/NAME.log),
# in the order of M_PID.
declare -A M_NAMES=()
MIRROR_SINCE= # when the pair's link came up, once in sync

# mirror_target NAME ROLE DESCRIPTION PIDS FILES ENGINE_ARGS [KEY=VALUE...]:
# add a column.
mirror_target() {
	record kind=target suite=mirror target="$1" role="$2" desc="$3" "${@:7}"
	MIRROR_TARGETS+=("$1")
	M_PID[$1]=$4
	M_FILES[$1]=$5
	M_ENGINE[$1]=$6
}

# mirror_check TARGET: RUN_CHECK for this suite.
mirror_check() {
	[ "$1" = netraid-mirror ] || return 0
	pair_state mirror-a "$MIRROR_SINCE" || echo "could not read the primary's status"
}

# mirror_prefill TARGET: write the whole export once, unmeasured, so that
# no run is the first write to a block.
mirror_prefill() {
	local -a engine
	read -ra engine <<<"${M_ENGINE[$1]}"
	log "mirror: writing $1's whole volume once"
	bounded 600 fio --name=prefill "${engine[@]}" --rw=write --bs=1M --iodepth=8 \
		--output="$WORK/$1.prefill" >/dev/null 2>&1 ||
		die "prefill through $1 failed: $(cat "$WORK/$1.prefill")"
}

# mirror_run TARGET WORKLOAD ROUND: one measured run.
mirror_run() {
	local -a files wl engine
	read -ra files <<<"${M_FILES[$1]}"
	read -ra wl <<<"${MIRROR_FIO[$2]}"
	read -ra engine <<<"${M_ENGINE[$1]}"
	drop_cache "${files[@]}"
	if [ "$ROUNDS" -gt 1 ]; then
		log "mirror: $2 on $1, round $3 of $ROUNDS"
	else
		log "mirror: $2 on $1"
	fi
	run_fio mirror "$1" "$2" "$3" "${M_PID[$1]}" "${wl[@]}" "${engine[@]}"
}

# mirror_tls: the hook for a TLS-versus-plaintext row pair (the
# replication link and the export with TLS, beside this suite's plaintext
# netraid-mirror). Not measured yet: when this was written 'netraid serve'
# had no --tls-dir. To add it: make a CA and node certificates with
# 'netraid certs init DIR' / 'netraid certs issue NODE --dir DIR', start a
# second pair with --tls-dir, reach its export with fio's nbd engine at an
# nbds+unix:// (or nbds://) URI with tls-certificates=DIR, and add it as
# target netraid-mirror-tls (role info, or subject with its own ratio to
# netraid-mirror) with a pair_state RUN_CHECK like netraid-mirror's.
mirror_tls() {
	if "$NETRAID" serve --help 2>&1 | grep -q -- '--tls-dir'; then
		log "mirror: netraid serve has --tls-dir, but this benchmark does not measure TLS yet (mirror_tls in suite_mirror.sh)"
		record kind=note suite=mirror text="TLS not measured: netraid serve has --tls-dir, but the TLS rows are not written yet (hook: mirror_tls in scripts/bench/suite_mirror.sh)"
	else
		record kind=note suite=mirror text="TLS not measured: netraid serve has no --tls-dir yet (hook: mirror_tls in scripts/bench/suite_mirror.sh)"
	fi
}

# mirror_volumes DISK_A DISK_B SINGLE: fill the member files and make the
# volumes; leaves in MIRROR_AREA the data area, "OFFSET SIZE", which the
# pair's two members must share.
MIRROR_AREA=
mirror_volumes() {
	local f other
	for f in "$@"; do
		make_backing "$f" "$SIZE"
	done
	create_netraid mirror-a "$1"
	create_netraid mirror-b "$2"
	create_netraid mirror-single "$3"
	MIRROR_AREA=$(netraid_data_area "$1") || die "netraid dump-meta --json $1 failed"
	other=$(netraid_data_area "$2") || die "netraid dump-meta --json $2 failed"
	[ "$MIRROR_AREA" = "$other" ] || die "the pair's members differ in data area: $MIRROR_AREA and $other"
	[[ $MIRROR_AREA =~ ^[0-9]+\ [1-9][0-9]*$ ]] || die "netraid dump-meta: no data area in '$MIRROR_AREA'"
}

# mirror_pair DISK_A DISK_B: start node A and node B, make A primary and
# wait until they are in sync; adds the netraid-mirror target.
mirror_pair() {
	local pa pb a b
	read -r pa pb <<<"$(free_ports2)"
	start_netraid_node mirror-a "127.0.0.1:$pa" "127.0.0.1:$pb" "$1"
	a=$SERVER_PID
	start_netraid_node mirror-b "127.0.0.1:$pb" "127.0.0.1:$pa" "$2"
	b=$SERVER_PID
	promote_netraid mirror-a "$a"
	wait_in_sync mirror-a 120
	mirror_target netraid-mirror subject \
		"netraid primary (A) mirroring to a secondary (B) on 127.0.0.1; CPU: A+B; RSS: A/B" \
		"$a,$b" "$1 $2" "--numjobs=1 --ioengine=nbd --uri=$SERVER_URI"
	M_NAMES[netraid-mirror]=mirror-a,mirror-b
}

# mirror_stop: record each daemon's peak RSS and stop the daemons.
mirror_stop() {
	local t p
	local -a pids names who
	for t in "${MIRROR_TARGETS[@]}"; do
		[ "${M_PID[$t]}" = - ] && continue
		IFS=, read -ra pids <<<"${M_PID[$t]}"
		IFS=, read -ra names <<<"${M_NAMES[$t]}"
		who=()
		[ "${#pids[@]}" -gt 1 ] && who=(daemon=primary daemon=secondary)
		for ((p = 0; p < ${#pids[@]}; p++)); do
			if kill -0 "${pids[p]}" 2>/dev/null; then
				record kind=rss suite=mirror target="$t" peak_rss_kib="$(peak_rss_kib "${pids[p]}")" ${who[p]:+"${who[p]}"}
			else
				record kind=note suite=mirror target="$t" text="pid ${pids[p]} died before its peak RSS was read"
			fi
		done
		# The primary first, so that it does not see its secondary go.
		for ((p = 0; p < ${#pids[@]}; p++)); do
			stop_server "${names[p]}" "${pids[p]}"
		done
	done
}

suite_mirror() {
	local a="$WORK/mirror.0.img" b="$WORK/mirror.1.img" single="$WORK/mirror-single.img"
	local off=0 len=$SIZE w r i j n
	SUITE=mirror
	MIRROR_TARGETS=()
	record kind=suite suite=mirror reference=baseline min_ratio_peer=0.8 rss_limit_mib=256 subject=netraid-mirror \
		title="mirrored writes: a primary and its secondary on this machine, both copies on its one disk"
	for w in "${MIRROR_WORKLOADS[@]}"; do
		if [ "${MIRROR_NEED[$w]}" = none ]; then
			record kind=workload suite=mirror workload="$w" desc="${MIRROR_DESC[$w]}" metric="${MIRROR_METRIC[$w]}" informative=1
		else
			record kind=workload suite=mirror workload="$w" desc="${MIRROR_DESC[$w]}" metric="${MIRROR_METRIC[$w]}" \
				min_ratio="${MIRROR_NEED[$w]}"
		fi
	done

	if [ -n "$NETRAID" ]; then
		log "mirror: filling three $(numfmt --to=iec "$SIZE") member files"
		mirror_volumes "$a" "$b" "$single"
		read -r off len <<<"$MIRROR_AREA"
		log "mirror: netraid's data area is $(numfmt --to=iec "$len") at $(numfmt --to=iec "$off"); raw fio uses it"
	else
		log "mirror: filling two $(numfmt --to=iec "$SIZE") files"
		make_backing "$a" "$SIZE"
		make_backing "$b" "$SIZE"
		record kind=note suite=mirror text="netraid not measured: $NETRAID_MISSING"
	fi

	# Global fio options go before the first job; run_fio names the job
	# first, so the two writers are one job run twice (numjobs), each on
	# its own file (filename_format), reported as one (group_reporting).
	# shellcheck disable=SC2016 # $jobnum is fio's, not the shell's
	mirror_target raw-2files baseline "fio libaio, O_DIRECT, two jobs at once, each on one of the pair's files; per copy" \
		- "$a $b" "--numjobs=2 --group_reporting --ioengine=libaio --direct=1 --filename_format=$WORK/mirror."'$jobnum'".img --offset=$off --size=$len" \
		copies=2
	if [ -n "$NETRAID" ]; then
		mirror_pair "$a" "$b"
		start_netraid mirror-single "$single"
		mirror_target netraid-single info "netraid, standalone, one member file of its own" \
			"$SERVER_PID" "$single" "--numjobs=1 --ioengine=nbd --uri=$SERVER_URI"
		M_NAMES[netraid-single]=mirror-single
		mirror_prefill netraid-mirror
		mirror_prefill netraid-single
		wait_in_sync mirror-a 120
		MIRROR_SINCE=$(peer_since mirror-a)
		RUN_CHECK=mirror_check
	fi

	n=${#MIRROR_TARGETS[@]}
	for ((r = 0; r < ROUNDS; r++)); do
		for ((i = 0; i < ${#MIRROR_WORKLOADS[@]}; i++)); do
			for ((j = 0; j < n; j++)); do
				mirror_run "${MIRROR_TARGETS[(i + r + j) % n]}" "${MIRROR_WORKLOADS[i]}" $((r + 1))
			done
		done
	done
	RUN_CHECK=

	mirror_stop
	[ -z "$NETRAID" ] || mirror_tls
}
