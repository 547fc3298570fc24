# shellcheck shell=bash
# shellcheck disable=SC2034 # SUITE is read by servers.sh
# Suite "single": one node, no mirror. fio on one backing file through
# raw O_DIRECT libaio (the baseline), nbdkit's file plugin and qemu-nbd (the
# peers), and netraid with that same file as its only member disk (the
# subject), each NBD server reached by fio's nbd engine on loopback.
# netraid over two member files on the same filesystem (a real stripe) is
# measured too, for information.
#
# Fairness: every target works on the same blocks. netraid keeps its
# superblocks and bitmaps in front of its data area, so raw fio and the
# peers are confined to that data area of the file (fio --offset/--size,
# nbdkit's offset filter, qemu-nbd's raw offset/size) and never touch
# netraid's metadata. That lets all servers run side by side, so each
# workload is measured on every target in turn, within a minute, rather
# than one target after another: load from elsewhere on the machine then
# skews the comparison much less. Each run starts with the backing files
# written back and out of the page cache.
#
# Targets: netraid >= 1.0x the best peer on every workload; peak RSS under
# 256 MiB.
#
# Sourced after lib.sh and servers.sh; bench.sh calls suite_single.

SINGLE_WORKLOADS=(seq-read rand-read seq-write rand-write)
declare -A SINGLE_DESC=(
	[seq-read]="sequential read, 1 MiB, QD8"
	[rand-read]="random read, 4 KiB, QD32"
	[seq-write]="sequential write, 1 MiB, QD8"
	[rand-write]="random write, 4 KiB, QD32"
)
declare -A SINGLE_FIO=(
	[seq-read]="--rw=read --bs=1M --iodepth=8"
	[rand-read]="--rw=randread --bs=4k --iodepth=32 --norandommap"
	[seq-write]="--rw=write --bs=1M --iodepth=8"
	[rand-write]="--rw=randwrite --bs=4k --iodepth=32 --norandommap"
)
declare -A SINGLE_METRIC=([seq-read]=MiB/s [rand-read]=kIOPS [seq-write]=MiB/s [rand-write]=kIOPS)

# Per target: server pid ("-" for raw), backing files (space-separated),
# fio engine arguments (space-separated; no spaces inside one).
SINGLE_TARGETS=()
declare -A T_PID=() T_FILES=() T_ENGINE=()

# single_target NAME ROLE DESCRIPTION PID FILES ENGINE_ARGS: add a column.
single_target() {
	record kind=target suite=single target="$1" role="$2" desc="$3"
	SINGLE_TARGETS+=("$1")
	T_PID[$1]=$4
	T_FILES[$1]=$5
	T_ENGINE[$1]=$6
}

# single_nbd_target NAME ROLE DESCRIPTION FILES: add the NBD server just
# started as a column.
single_nbd_target() {
	single_target "$1" "$2" "$3" "$SERVER_PID" "$4" "--ioengine=nbd --uri=$SERVER_URI"
}

# fio_iodepth ARGS...: the --iodepth among fio arguments.
fio_iodepth() {
	local a
	for a in "$@"; do
		[[ $a == --iodepth=* ]] && echo "${a#--iodepth=}"
	done
	return 0
}

# single_depth_probe FILE OFFSET SIZE: check that fio's nbd engine really
# opens one connection per job and keeps the whole iodepth in flight on
# it, by counting the requests nbdkit's log filter sees between their
# start and their end. Reads only.
single_depth_probe() {
	local w conns inflight
	local -a wl
	for w in rand-read seq-read; do
		read -ra wl <<<"${SINGLE_FIO[$w]}"
		rm -f "$WORK/probe.reqlog"
		start_nbdkit probe "$1" "$2" "$3" --filter=log logfile="$WORK/probe.reqlog"
		bounded 30 fio --name=probe --ioengine=nbd --uri="$SERVER_URI" \
			--numjobs=1 --time_based --runtime=1s "${wl[@]}" --output="$WORK/probe.fio" >/dev/null 2>&1 ||
			die "fio depth probe failed: $(cat "$WORK/probe.fio")"
		stop_server probe "$SERVER_PID"
		read -r conns inflight < <(awk '
			/ connection=[0-9]+ (Read|Write) id=/ {
				split($3, c, "="); used[c[2]] = 1
				if (++n > max) max = n
			}
			/ connection=[0-9]+ \.\.\.(Read|Write) id=/ { n-- }
			END { print length(used), max + 0 }' "$WORK/probe.reqlog")
		log "single: fio nbd engine, $w (${SINGLE_DESC[$w]}, 1 job): $conns connection(s) carried I/O, up to $inflight requests in flight at the server"
		record kind=probe suite=single workload="$w" connections="$conns" max_in_flight="$inflight" \
			iodepth="$(fio_iodepth "${wl[@]}")" server="nbdkit --threads $NBDKIT_THREADS, log filter"
	done
}

# single_prefill TARGET: write the whole export once through the server,
# unmeasured, so the volume has written every block itself before the
# read runs (whatever it may track about blocks it never wrote).
single_prefill() {
	local -a engine
	read -ra engine <<<"${T_ENGINE[$1]}"
	prefill single "$1" "${engine[@]}"
}

# single_run TARGET WORKLOAD ROUND: one measured run.
single_run() {
	local -a files wl engine
	read -ra files <<<"${T_FILES[$1]}"
	read -ra wl <<<"${SINGLE_FIO[$2]}"
	read -ra engine <<<"${T_ENGINE[$1]}"
	drop_cache "${files[@]}"
	log_run single "$2" "$1" "$3"
	run_fio single "$1" "$2" "$3" "${T_PID[$1]}" --numjobs=1 "${wl[@]}" "${engine[@]}"
	single_cached "$1" "$2" "${files[@]}"
}

# single_cached TARGET WORKLOAD FILES...: after a read run, note how much
# of the backing files sits in the page cache. Every run starts with them
# out of it, and O_DIRECT readers leave them out; a server that reads
# through the page cache (nbdkit's file plugin does even with cache=none,
# which only evicts what it writes) serves a 1 GiB file from memory after
# its first pass, so its read figure measures memory, not the disk.
single_cached() {
	local target=$1 workload=$2 f res total=0 size=0
	shift 2
	[[ $workload == *read ]] && command -v fincore >/dev/null || return 0
	for f in "$@"; do
		res=$(fincore --bytes --noheadings --output RES "$f" 2>/dev/null) || return 0
		total=$((total + res))
		size=$((size + $(stat -c %s "$f")))
	done
	[ $((total * 4)) -ge "$size" ] || return 0
	record kind=note suite=single target="$target" \
		text="$workload: $((total * 100 / size))% of the backing file was in the page cache after the run; the figure is served from memory, not the disk"
}

suite_single() {
	local file="$WORK/single.img" s0="$WORK/stripe0.img" s1="$WORK/stripe1.img"
	local off=0 len=$SIZE area w t r i j n
	SUITE=single
	record kind=suite suite=single title="one node, the same backing file through each server" \
		min_ratio_peer=1.0 rss_limit_mib=256 subject=netraid
	for w in "${SINGLE_WORKLOADS[@]}"; do
		record kind=workload suite=single workload="$w" desc="${SINGLE_DESC[$w]}" metric="${SINGLE_METRIC[$w]}"
	done

	log "single: filling a $(numfmt --to=iec "$SIZE") backing file"
	make_backing "$file" "$SIZE"
	if [ -n "$NETRAID" ]; then
		create_netraid netraid "$file"
		area=$(netraid_data_area "$file") || die "netraid dump-meta --json $file failed"
		read -r off len <<<"$area"
		[[ $off =~ ^[0-9]+$ && $len =~ ^[1-9][0-9]*$ ]] || die "netraid dump-meta: no data area in '$area'"
		log "single: netraid's data area is $(numfmt --to=iec "$len") at $(numfmt --to=iec "$off"); every target uses it"
		log "single: filling two $(numfmt --to=iec $((SIZE / 2))) member files"
		make_backing "$s0" $((SIZE / 2))
		make_backing "$s1" $((SIZE / 2))
		create_netraid netraid-2disk "$s0" "$s1"
	else
		record kind=note suite=single text="netraid not measured: $NETRAID_MISSING"
	fi
	record kind=meta data_offset="$off" data_bytes="$len"
	single_depth_probe "$file" "$off" "$len"

	single_target raw baseline "fio libaio, O_DIRECT, on the file${RAW_IOMEM[*]:+, buffers in huge pages}" - "$file" \
		"--ioengine=libaio --direct=1 --filename=$file --offset=$off --size=$len ${RAW_IOMEM[*]}"
	start_nbdkit nbdkit "$file" "$off" "$len"
	single_nbd_target nbdkit peer "nbdkit file plugin, cache=none, $NBDKIT_THREADS threads" "$file"
	start_qemu_nbd qemu-nbd "$file" "$off" "$len"
	single_nbd_target qemu-nbd peer "qemu-nbd --cache=none --aio=native --persistent" "$file"
	if [ -n "$NETRAID" ]; then
		start_netraid netraid "$file"
		single_nbd_target netraid subject "netraid, the same file as its one member disk" "$file"
		start_netraid netraid-2disk "$s0" "$s1"
		single_nbd_target netraid-2disk info \
			"netraid, two member files on the same filesystem (stripe, chunk $NETRAID_CHUNK)" "$s0 $s1"
		single_prefill netraid
		single_prefill netraid-2disk
	fi

	# Each workload starts with another target, so that whatever one run
	# leaves behind (writeback below the guest, say) does not always fall
	# on the same target's next run.
	n=${#SINGLE_TARGETS[@]}
	for ((r = 0; r < ROUNDS; r++)); do
		for ((i = 0; i < ${#SINGLE_WORKLOADS[@]}; i++)); do
			for ((j = 0; j < n; j++)); do
				single_run "${SINGLE_TARGETS[(i + r + j) % n]}" "${SINGLE_WORKLOADS[i]}" $((r + 1))
			done
		done
	done

	for t in "${SINGLE_TARGETS[@]}"; do
		[ "${T_PID[$t]}" = - ] && continue
		if kill -0 "${T_PID[$t]}" 2>/dev/null; then
			record kind=rss suite=single target="$t" peak_rss_kib="$(peak_rss_kib "${T_PID[$t]}")"
		else
			record kind=note suite=single target="$t" text="died before its peak RSS was read"
		fi
		stop_server "$t" "${T_PID[$t]}"
	done
}
