# shellcheck shell=bash
# shellcheck disable=SC2034 # SUITE is read by servers.sh
# Suite "resync": how fast a primary brings a secondary that was down back
# in sync, beside a raw direct-I/O copy of the same bytes.
#
# A pair on loopback as in suite "mirror" (resync-a primary, resync-b
# secondary, one member file each on this machine's one disk). Each round:
#   1. stop B (SIGTERM);
#   2. write the whole volume through A's export (fio, 1 MiB, QD8), so
#      every region is out of sync: the bytes to copy are A's
#      out_of_sync_bytes then;
#   3. the baseline: dd copies those bytes from A's data area onto B's
#      (1 MiB blocks, O_DIRECT on both sides, fdatasync at the end), the
#      same blocks in the same direction as the resync, with B stopped;
#   4. start B again and poll A's status until the pair is in sync.
# The subject's rate is those bytes over the time from B's start to in
# sync: what an operator waits for, with B's start-up and A's redial of the
# link in it. The rate from the moment A's status first showed the link up
# is reported beside it for information (the copy alone, near enough: the
# polls are 20 ms apart).
#
# Targets: the resync >= 0.7x the raw copy; peak RSS of both daemons
# (B's: the largest over its runs) under 256 MiB.
#
# Sourced after lib.sh and servers.sh; bench.sh calls suite_resync.

RESYNC_A= # pid of the primary
RESYNC_B= # pid of the secondary, empty while it is stopped
RESYNC_B_HWM=0
RESYNC_PORTS= # "A B": the nodes' replication ports
RESYNC_URI=   # the primary's export
RESYNC_OFF=0
RESYNC_LEN=0

# resync_start_b DISK: start the secondary, without waiting for it.
resync_start_b() {
	local pa pb
	read -r pa pb <<<"$RESYNC_PORTS"
	# shellcheck disable=SC2046 # link_args is words
	netraid_serve resync-b "$(netraid_listen resync-b)" --listen-peer "127.0.0.1:$pb" --peer "127.0.0.1:$pa" $(link_args resync-b resync-a) "$1"
	RESYNC_B=$SERVER_PID
}

# resync_stop_b: note the secondary's peak RSS and stop it.
resync_stop_b() {
	local kib
	[ -n "$RESYNC_B" ] || return 0
	if kib=$(peak_rss_kib "$RESYNC_B") && [ -n "$kib" ] && [ "$kib" -gt "$RESYNC_B_HWM" ]; then
		RESYNC_B_HWM=$kib
	fi
	stop_server resync-b "$RESYNC_B"
	RESYNC_B=
}

# resync_dirty: the primary's out_of_sync_bytes.
resync_dirty() {
	"$NETRAID" status --control "$WORK/resync-a.ctl" --json | python3 -c '
import json, sys
print(json.load(sys.stdin)["out_of_sync_bytes"])'
}

# resync_copy ROUND FROM TO BYTES: the baseline, a raw copy of BYTES of the
# data area.
resync_copy() {
	local round=$1 from=$2 to=$3 bytes=$4 t0 t1 status=ok err="$WORK/resync-dd-$1.err"
	drop_cache "$from" "$to"
	log "resync: raw copy of $(numfmt --to=iec "$bytes") with dd"
	t0=$(date +%s%N)
	bounded 600 dd if="$from" of="$to" bs=1M iflag=direct,skip_bytes,count_bytes oflag=direct,seek_bytes \
		conv=notrunc,fdatasync skip="$RESYNC_OFF" seek="$RESYNC_OFF" count="$bytes" status=none 2>"$err" ||
		status=failed
	t1=$(date +%s%N)
	resync_record raw-copy "$round" "$status" "$bytes" $((t1 - t0)) 0 "$err"
}

# resync_record TARGET ROUND STATUS BYTES NANOSECONDS CPU_TICKS ERRLOG: a
# run measured here rather than by fio.
resync_record() {
	local ms=$(($5 / 1000000))
	[ "$ms" -gt 0 ] || ms=1
	record kind=run suite=resync target="$1" workload=resync round="$2" status="$3" \
		value="$(awk -v b="$4" -v ms="$ms" 'BEGIN { printf "%.3f", b / 1048576 / (ms / 1000) }')" \
		wall_s="$(millis "$ms")" server_cpu_s="$(millis $(($6 * 1000 / CLK_TCK)))" error_log="$7"
}

# resync_field KEY [SCALE]: a number from the last insync.py report, times
# SCALE (default 1), as a whole number; 0 when null.
resync_field() {
	python3 -c '
import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
print(round((v or 0) * float(sys.argv[3])))' "$WORK/resync-a.insync.json" "$1" "${2:-1}"
}

# resync_round ROUND DISK_A DISK_B: one round (see the top of this file).
resync_round() {
	local round=$1 a=$2 b=$3 bytes t0 c0 c1 cb insync link total err="$WORK/resync-$1.err"
	resync_stop_b
	log "resync: round $round: writing the whole volume through the primary, secondary stopped"
	bounded 600 fio --name=dirty --ioengine=nbd --uri="$RESYNC_URI" --rw=write --bs=1M --iodepth=8 \
		--output="$WORK/resync-dirty.fio" >/dev/null 2>&1 ||
		die "writing through resync-a failed: $(cat "$WORK/resync-dirty.fio")"
	bytes=$(resync_dirty)
	[ "$bytes" -gt 0 ] || die "nothing out of sync after writing the whole volume with the secondary down"
	[ "$bytes" -eq "$RESYNC_LEN" ] ||
		record kind=note suite=resync text="round $round: $bytes bytes out of sync, not the whole data area ($RESYNC_LEN)"

	resync_copy "$round" "$a" "$b" "$bytes"

	drop_cache "$a" "$b"
	log "resync: round $round: starting the secondary, timing the resync of $(numfmt --to=iec "$bytes")"
	c0=$(cpu_ticks "$RESYNC_A")
	t0=$(date +%s%N)
	resync_start_b "$b"
	wait_in_sync resync-a 300 "$t0" "$RESYNC_B"
	c1=$(cpu_ticks "$RESYNC_A")
	cb=$(cpu_ticks "$RESYNC_B")
	insync=$(resync_field insync_s 1e9)
	link=$(resync_field link_s 1e9)
	total=$(resync_field total_bytes)
	: >"$err"
	if [ "$total" -ne "$bytes" ]; then
		echo "the resync reported $total bytes to copy, $bytes were out of sync" >>"$err"
		record kind=note suite=resync target=netraid-resync \
			text="round $round: the resync reported a total of $total bytes; $bytes were out of sync"
	fi
	resync_record netraid-resync "$round" ok "$bytes" "$insync" $((c1 - c0 + cb)) "$err"
	resync_record netraid-resync-link "$round" ok "$bytes" $((insync - link)) $((c1 - c0 + cb)) "$err"
	record kind=probe suite=resync round="$round" bytes="$bytes" \
		link_up_s="$(millis $((link / 1000000)))" in_sync_s="$(millis $((insync / 1000000)))" \
		resync_first_seen_s="$(millis "$(resync_field resync_s 1e3)")" \
		engine_rate_mib_s="$(($(resync_field rate) / 1048576))" polls="$(resync_field polls)"
}

suite_resync() {
	local a="$WORK/resync.0.img" b="$WORK/resync.1.img" area other pa pb r
	SUITE=resync
	record kind=suite suite=resync reference=baseline min_ratio_peer=0.7 rss_limit_mib=256 subject=netraid-resync \
		title="resync of a secondary that was down, beside a raw copy of the same bytes on the same disk"
	if [ -z "$NETRAID" ]; then
		record kind=note suite=resync text="not measured: $NETRAID_MISSING"
		return 0
	fi
	record kind=target suite=resync target=raw-copy role=baseline \
		desc="dd bs=1M, O_DIRECT both sides, fdatasync: A's data area onto B's, B stopped"
	record kind=target suite=resync target=netraid-resync role=subject \
		desc="netraid bitmap resync, from starting B to in sync (B's start-up and the redial in it); CPU: A+B; RSS: A/B"
	record kind=target suite=resync target=netraid-resync-link role=info \
		desc="the same resync, from the link coming up (A's status) to in sync"

	log "resync: filling two $(numfmt --to=iec "$SIZE") member files"
	make_backing "$a" "$SIZE"
	make_backing "$b" "$SIZE"
	create_netraid resync-a "$a"
	create_netraid resync-b "$b"
	area=$(netraid_data_area "$a") || die "netraid dump-meta --json $a failed"
	other=$(netraid_data_area "$b") || die "netraid dump-meta --json $b failed"
	[ "$area" = "$other" ] || die "the pair's members differ in data area: $area and $other"
	read -r RESYNC_OFF RESYNC_LEN <<<"$area"
	[[ $RESYNC_OFF =~ ^[0-9]+$ && $RESYNC_LEN =~ ^[1-9][0-9]*$ ]] || die "netraid dump-meta: no data area in '$area'"
	(((RESYNC_OFF | RESYNC_LEN) % 4096 == 0)) || die "data area $area is not 4 KiB aligned (dd O_DIRECT)"
	record kind=workload suite=resync workload=resync metric=MiB/s \
		desc="the whole volume ($(numfmt --to=iec-i --suffix=B "$RESYNC_LEN")), primary to secondary"

	RESYNC_PORTS=$(free_ports2)
	read -r pa pb <<<"$RESYNC_PORTS"
	# shellcheck disable=SC2046
	start_netraid_node resync-a "127.0.0.1:$pa" "127.0.0.1:$pb" $(link_args resync-a resync-b) "$a"
	RESYNC_A=$SERVER_PID
	resync_start_b "$b"
	promote_netraid resync-a "$RESYNC_A"
	RESYNC_URI=$SERVER_URI
	wait_in_sync resync-a 120 "$(date +%s%N)" "$RESYNC_B"

	for ((r = 1; r <= ROUNDS; r++)); do
		resync_round "$r" "$a" "$b"
	done

	record kind=rss suite=resync target=netraid-resync daemon=primary peak_rss_kib="$(peak_rss_kib "$RESYNC_A")"
	resync_stop_b
	record kind=rss suite=resync target=netraid-resync daemon=secondary peak_rss_kib="$RESYNC_B_HWM"
	stop_server resync-a "$RESYNC_A"
}
