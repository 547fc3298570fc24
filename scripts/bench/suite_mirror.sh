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
# TLS (mirror_tls): a second pair like A and B, on two files of its own,
# serving with --tls-dir, so that the replication link is mutual TLS and
# the export offers STARTTLS (client certificate required). Two targets,
# measured in the same rotation as the others and compared with
# netraid-mirror, the same pair in plaintext: netraid-mirror-tls, fio at
# an nbds:// URI, so that both the export and the link are encrypted (see
# libnbd-tls.sh for how fio gets its client certificate); and
# netraid-mirror-tls-link, fio at the plaintext URI of the same pair, so
# that only the link is: the reference deployment, where the client
# mounts the export on the primary's loopback.
#
# A mirror run counts only if the peer link stayed up and both legs stayed
# up to date over it (RUN_CHECK): otherwise it measured a degraded primary.
#
# Targets: mirrored sequential write >= 0.8x the baseline per copy in
# every round; the journal's pattern mirrored >= 0.7x netraid-single's
# (against the baseline, two raw writers each writing and fdatasyncing
# 4 KiB at QD1, informative); random write informative; peak RSS of every daemon under 256 MiB; over TLS on
# the export and the link, sequential write >= 0.85x the plaintext pair's
# (TLS costs at most 15%), random write informative; TLS on the link
# only, informative.
#
# Sourced after lib.sh and servers.sh; bench.sh calls suite_mirror.

# journal is a journal's pattern (a broker's, a database's log): one
# small write at a time, each made durable before the next; it measures
# the latency a synchronous mirror adds, where the others measure
# throughput.
MIRROR_WORKLOADS=(seq-write rand-write journal)
declare -A MIRROR_DESC=(
	[seq-write]="sequential write, 1 MiB, QD8"
	[rand-write]="random write, 4 KiB, QD32"
	[journal]="journal: sequential write 4 KiB, QD1, flush after each"
)
declare -A MIRROR_FIO=(
	[seq-write]="--rw=write --bs=1M --iodepth=8"
	[rand-write]="--rw=randwrite --bs=4k --iodepth=32 --norandommap"
	[journal]="--rw=write --bs=4k --iodepth=1 --fsync=1"
)
declare -A MIRROR_METRIC=([seq-write]=MiB/s [rand-write]=kIOPS [journal]=kIOPS)
# Minimum ratio to the baseline; none: informative.
declare -A MIRROR_NEED=([seq-write]=0.8 [rand-write]=none [journal]=none)
# Minimum ratio of the TLS pair to the plaintext pair ("workload:ratio",
# comma-separated; the workloads not named are informative).
MIRROR_TLS_NEED=seq-write:0.85
# Minimum ratio of the pair to one node (netraid-single), likewise: a
# journal's writes and flushes wait for both machines, and may cost at
# most 30% over one.
MIRROR_SINGLE_NEED=journal:0.7

# Per target: pids whose CPU counts ("-" for raw), backing files, fio
# engine arguments (space-separated; no spaces inside one).
MIRROR_TARGETS=()
declare -A M_PID=() M_FILES=() M_ENGINE=()
# Per netraid target: the servers' names (their logs are $WORK/NAME.log),
# in the order of M_PID (a pair's primary first).
declare -A M_NAMES=()
# Per pair target: when its link came up, once in sync (RUN_CHECK).
declare -A M_SINCE=()
# Per target that needs one: the command fio runs under (FIO_WRAP;
# space-separated).
declare -A M_WRAP=()

# mirror_target NAME ROLE DESCRIPTION PIDS FILES ENGINE_ARGS [KEY=VALUE...]:
# add a column.
mirror_target() {
	record kind=target suite=mirror target="$1" role="$2" desc="$3" "${@:7}"
	MIRROR_TARGETS+=("$1")
	M_PID[$1]=$4
	M_FILES[$1]=$5
	M_ENGINE[$1]=$6
}

# mirror_check TARGET: RUN_CHECK for this suite: a pair's link must have
# stayed up, both legs up to date.
mirror_check() {
	[ -n "${M_SINCE[$1]:-}" ] || return 0
	pair_state "${M_NAMES[$1]%%,*}" "${M_SINCE[$1]}" || echo "could not read the primary's status"
}

# mirror_wrap TARGET: set FIO_WRAP for fio runs on TARGET.
mirror_wrap() {
	FIO_WRAP=()
	[ -z "${M_WRAP[$1]:-}" ] || read -ra FIO_WRAP <<<"${M_WRAP[$1]}"
}

# mirror_prefill TARGET: write the whole export once, unmeasured, so that
# no run is the first write to a block.
mirror_prefill() {
	local -a engine
	read -ra engine <<<"${M_ENGINE[$1]}"
	mirror_wrap "$1"
	prefill mirror "$1" "${engine[@]}"
	FIO_WRAP=()
}

# mirror_run TARGET WORKLOAD ROUND: one measured run.
mirror_run() {
	local -a files wl engine
	read -ra files <<<"${M_FILES[$1]}"
	read -ra wl <<<"${MIRROR_FIO[$2]}"
	read -ra engine <<<"${M_ENGINE[$1]}"
	drop_cache "${files[@]}"
	log_run mirror "$2" "$1" "$3"
	mirror_wrap "$1"
	# A flush is NBD_CMD_FLUSH through a server; on a file, fdatasync
	# (fsync would also write the inode's new mtime every few writes).
	[ "${M_PID[$1]}" = - ] && wl=("${wl[@]/#--fsync=1/--fdatasync=1}")
	run_fio mirror "$1" "$2" "$3" "${M_PID[$1]}" "${wl[@]}" "${engine[@]}"
	FIO_WRAP=()
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
	start_netraid_pair mirror-a mirror-b "$1" "$2"
	wait_in_sync mirror-a 120
	mirror_target netraid-mirror subject \
		"netraid primary (A) mirroring to a secondary (B) on 127.0.0.1; CPU: A+B; RSS: A/B" \
		"$PAIR_PIDS" "$1 $2" "--numjobs=1 --ioengine=nbd --uri=$SERVER_URI" \
		versus=netraid-single versus_min_ratio="$MIRROR_SINGLE_NEED"
	M_NAMES[netraid-mirror]=mirror-a,mirror-b
}

# mirror_tls DISK_A DISK_B: the TLS rows. Two more member files filled
# and made volumes as the plaintext pair's were (the same data area); a
# certificate authority for the volume, a certificate for each node and
# one for fio; then a second pair (mirror-tls-a primary, mirror-tls-b) on
# DISK_A and DISK_B with TLS on the link and offered on the export, in
# sync. Adds target netraid-mirror-tls-link (fio in plaintext; compared
# with netraid-mirror, informative) and, when fio can get its client
# certificate to libnbd here, netraid-mirror-tls (fio over TLS; judged
# against netraid-mirror, MIRROR_TLS_NEED); a note says why when either
# cannot be measured.
mirror_tls() {
	local ca="$WORK/tls-ca" f
	if ! "$NETRAID" serve --help 2>&1 | grep -q -- '--tls-dir'; then
		record kind=note suite=mirror text="TLS not measured: netraid serve has no --tls-dir"
		return 0
	fi
	log "mirror: filling two more $(numfmt --to=iec "$SIZE") member files, for a TLS pair"
	for f in "$@"; do
		make_backing "$f" "$SIZE"
	done
	create_netraid mirror-tls-a "$1"
	create_netraid mirror-tls-b "$2"
	for f in "$@"; do
		[ "$(netraid_data_area "$f")" = "$MIRROR_AREA" ] || die "$f's data area is not the plaintext pair's ($MIRROR_AREA)"
	done
	log "mirror: a CA and certificates for the TLS pair"
	{
		"$NETRAID" certs init --volume bench --ca "$ca" &&
			"$NETRAID" certs issue mirror-tls-a --ca "$ca" &&
			"$NETRAID" certs issue mirror-tls-b --ca "$ca" &&
			"$NETRAID" certs client bench --ca "$ca"
	} >"$WORK/tls-certs.log" 2>&1 || die "netraid certs failed: $(tail -n 3 "$WORK/tls-certs.log")"
	start_netraid_pair mirror-tls-a mirror-tls-b "$1" "$2" "$ca"
	wait_in_sync mirror-tls-a 120
	mirror_tls_export "$@"
	# After netraid-mirror-tls, so that the pair's peak RSS is recorded
	# under that target (mirror_stop).
	mirror_target netraid-mirror-tls-link info \
		"netraid-mirror-tls's pair with fio in plaintext: TLS on the link only; CPU: A+B" \
		"$PAIR_PIDS" "$1 $2" "--numjobs=1 --ioengine=nbd --uri=$(nbd_uri "$SERVER_ADDR" bench)" \
		versus=netraid-mirror
	M_NAMES[netraid-mirror-tls-link]=mirror-tls-a,mirror-tls-b
}

# mirror_tls_export DISK_A DISK_B: target netraid-mirror-tls, fio over TLS
# to the TLS pair just started, if a libnbd client gets its certificate
# here; else a note.
mirror_tls_export() {
	local ca="$WORK/tls-ca" wrap uri
	# shellcheck disable=SC2154 # here: bench.sh's scripts/bench directory
	wrap="$here/libnbd-tls.sh $ca/clients/bench $WORK/tls-client"
	uri=$(nbd_uri "$SERVER_ADDR" bench -)
	# fio's engine takes libnbd's default certificates (libnbd-tls.sh):
	# check that a libnbd client gets through that way before relying on it.
	# shellcheck disable=SC2086 # wrap is a command line
	if ! bounded 30 $wrap nbdinfo --size "$uri" >"$WORK/tls-probe.log" 2>&1; then
		log "mirror: TLS not measured: nbdinfo could not reach the TLS export through libnbd-tls.sh: $(tail -n 2 "$WORK/tls-probe.log")"
		record kind=note suite=mirror target=netraid-mirror-tls \
			text="TLS not measured: fio's nbd engine cannot take a URI's tls-certificates, and libnbd-tls.sh could not give libnbd its default certificate directory here: $(tail -n 2 "$WORK/tls-probe.log")"
		return 0
	fi
	mirror_target netraid-mirror-tls info \
		"netraid-mirror's pair with TLS on the export and the link (another pair, files of its own); CPU: A+B; RSS: A/B" \
		"$PAIR_PIDS" "$1 $2" "--numjobs=1 --ioengine=nbd --uri=$uri" \
		versus=netraid-mirror versus_min_ratio="$MIRROR_TLS_NEED"
	M_NAMES[netraid-mirror-tls]=mirror-tls-a,mirror-tls-b
	M_WRAP[netraid-mirror-tls]=$wrap
}

# mirror_tls_probe: after the runs, what the TLS pair's logs say: that
# fio's connections and the replication link presented their certificates
# (both sides refuse anything else; this shows it happened).
mirror_tls_probe() {
	local exp=no link=no
	grep 'tls_client=bench' "$WORK/mirror-tls-a.log" | grep -q 'export=bench' && exp=yes
	grep 'tls_client=mirror-tls-a' "$WORK/mirror-tls-b.log" | grep -q 'export=netraid-peer' && link=yes
	record kind=probe suite=mirror target=netraid-mirror-tls export_client_cert_seen="$exp" link_peer_cert_seen="$link"
}

# mirror_stop: record each daemon's peak RSS and stop the daemons; a
# pair that serves two targets, under the first of them.
mirror_stop() {
	local t
	local -A stopped=()
	for t in "${MIRROR_TARGETS[@]}"; do
		[ "${M_PID[$t]}" = - ] && continue
		[ -n "${stopped[${M_PID[$t]}]:-}" ] && continue
		stopped[${M_PID[$t]}]=1
		stop_target mirror "$t" "${M_PID[$t]}" "${M_NAMES[$t]}"
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
			# Judged round by round: every round must meet it.
			record kind=workload suite=mirror workload="$w" desc="${MIRROR_DESC[$w]}" metric="${MIRROR_METRIC[$w]}" \
				min_ratio="${MIRROR_NEED[$w]}" each_round=1
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
	mirror_target raw-2files baseline "fio libaio, O_DIRECT, two jobs at once, each on one of the pair's files${RAW_IOMEM[*]:+, buffers in huge pages}; per copy" \
		- "$a $b" "--numjobs=2 --group_reporting --ioengine=libaio --direct=1 --filename_format=$WORK/mirror."'$jobnum'".img --offset=$off --size=$len ${RAW_IOMEM[*]}" \
		copies=2
	if [ -n "$NETRAID" ]; then
		mirror_pair "$a" "$b"
		start_netraid mirror-single "$single"
		mirror_target netraid-single info "netraid, standalone, one member file of its own" \
			"$SERVER_PID" "$single" "--numjobs=1 --ioengine=nbd --uri=$SERVER_URI"
		M_NAMES[netraid-single]=mirror-single
		mirror_tls "$WORK/mirror-tls.0.img" "$WORK/mirror-tls.1.img"
		mirror_prefill netraid-mirror
		mirror_prefill netraid-single
		wait_in_sync mirror-a 120
		M_SINCE[netraid-mirror]=$(peer_since mirror-a)
		if [ -n "${M_NAMES[netraid-mirror-tls-link]:-}" ]; then
			mirror_prefill netraid-mirror-tls-link
			wait_in_sync mirror-tls-a 120
			M_SINCE[netraid-mirror-tls-link]=$(peer_since mirror-tls-a)
		fi
		if [ -n "${M_NAMES[netraid-mirror-tls]:-}" ]; then
			M_SINCE[netraid-mirror-tls]=${M_SINCE[netraid-mirror-tls-link]}
		fi
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

	[ -z "${M_NAMES[netraid-mirror-tls]:-}" ] || mirror_tls_probe
	mirror_stop
}
