# shellcheck shell=bash
# shellcheck disable=SC2034 # SUITE is read by servers.sh
# Suite "failover": automatic, fenced failover through a witness in etcd
# (serve --etcd). Two figures, on one target, netraid-mirror-etcd:
#
#   failover  the time from the primary machine's death to the first
#             message acknowledged by the broker on the survivor, with
#             netraid's default settings (a 3 s lease, a ping every 1 s
#             answered within 1 s). bin/failovertime
#             (tests/promoter/cmd/failovertime) runs a pair in network
#             namespaces, a witness of three etcd members in namespaces of
#             their own, and on both nodes the promoter recipe of
#             dist/promoter: netraid-mount attaches and mounts the volume,
#             then ActiveMQ starts on it. Each round a producer sends
#             persistent messages; the primary's machine goes off the
#             network and its netraid, broker and nbdfuse are killed; a
#             producer reconnects to the survivor's broker until a message
#             is acknowledged. The dead machine then comes back as the
#             secondary, and the next round kills the other. Median of
#             BENCH_FAILOVER_ROUNDS rounds; target at most 10 s.
#   journal   what the election costs on the write path: a journal's
#             pattern (4 KiB writes at QD1, each flushed, as in suite
#             mirror) through a pair on loopback serving with --etcd (one
#             etcd on 127.0.0.1), against the same pair without it
#             (netraid-mirror, the baseline), in alternating runs; median
#             of BENCH_FAILOVER_ROUNDS rounds; target at least 0.95x.
#
# Environment: BENCH_FAILOVER_ROUNDS (default 3, at most 10),
# BENCH_FAILOVER_SIZE (each pair's member files, default 256M),
# FAILOVER_BIN (default bin/failovertime: make bench builds it).
#
# Sourced after lib.sh and servers.sh; bench.sh calls suite_failover.

FO_ROUNDS=${BENCH_FAILOVER_ROUNDS:-3}
FO_SIZE=$(numfmt --from=iec "${BENCH_FAILOVER_SIZE:-256M}")
# shellcheck disable=SC2154 # root: bench.sh's checkout
FAILOVER=${FAILOVER_BIN:-$root/bin/failovertime}
FO_JOURNAL="--rw=write --bs=4k --iodepth=1 --fsync=1"
declare -A FO_PIDS=() FO_NAMES=() FO_URI=() FO_SINCE=()
FO_ETCD=
FO_ETCD_PID=

# fo_etcd: one etcd member on 127.0.0.1, its data in $WORK; FO_ETCD is
# its client URL once it answers (30 s at most).
fo_etcd() {
	local c p pid i
	read -r c p <<<"$(free_ports2)"
	etcd --name bench --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$c" \
		--advertise-client-urls "http://127.0.0.1:$c" --listen-peer-urls "http://127.0.0.1:$p" \
		--initial-advertise-peer-urls "http://127.0.0.1:$p" --initial-cluster "bench=http://127.0.0.1:$p" \
		>"$WORK/etcd.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	FO_ETCD_PID=$pid
	for ((i = 0; i < 300; i++)); do
		if etcdctl --endpoints "http://127.0.0.1:$c" endpoint health >/dev/null 2>&1; then
			FO_ETCD=http://127.0.0.1:$c
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || die "etcd exited: $(tail -n 3 "$WORK/etcd.log")"
		sleep 0.1
	done
	die "etcd did not answer within 30 s (log: $WORK/etcd.log)"
}

# fo_role NAME: node NAME's role.
fo_role() {
	{ "$NETRAID" status --control "$WORK/$1.ctl" --json 2>/dev/null || echo '{}'; } |
		python3 -c 'import json, sys; print(json.load(sys.stdin).get("role", ""))'
}

# fo_pair TARGET A B FILE_A FILE_B [FLAGS...]: a pair on loopback with
# FLAGS on both nodes; with --etcd, one of them promotes itself,
# otherwise A is promoted. Waits until in sync, fills the volume once
# through the primary, and records TARGET's primary in FO_NAMES.
fo_pair() {
	local t=$1 na=$2 nb=$3 fa=$4 fb=$5 pa pb a b prim='' i
	shift 5
	read -r pa pb <<<"$(free_ports2)"
	# shellcheck disable=SC2046 # link_args is words
	start_netraid_node "$na" "127.0.0.1:$pa" "127.0.0.1:$pb" $(link_args "$na" "$nb") "$@" "$fa"
	a=$SERVER_PID
	# shellcheck disable=SC2046
	start_netraid_node "$nb" "127.0.0.1:$pb" "127.0.0.1:$pa" $(link_args "$nb" "$na") "$@" "$fb"
	b=$SERVER_PID
	if [ $# -eq 0 ]; then
		"$NETRAID" promote --control "$WORK/$na.ctl" >>"$WORK/$na.log" 2>&1 ||
			die "netraid promote ($na) failed: $(tail -n 3 "$WORK/$na.log")"
		prim=$na
	else
		for ((i = 0; i < 600; i++)); do
			if [ "$(fo_role "$na")" = primary ]; then
				prim=$na
			elif [ "$(fo_role "$nb")" = primary ]; then
				prim=$nb
			fi
			[ -z "$prim" ] || break
			sleep 0.1
		done
		[ -n "$prim" ] || die "neither $na nor $nb promoted itself within 60 s (logs: $WORK/$na.log, $WORK/$nb.log)"
	fi
	if [ "$prim" = "$na" ]; then
		wait_export "$na" "$a"
		FO_NAMES[$t]=$na,$nb
		FO_PIDS[$t]=$a,$b
	else
		wait_export "$nb" "$b"
		FO_NAMES[$t]=$nb,$na
		FO_PIDS[$t]=$b,$a
	fi
	FO_URI[$t]=$SERVER_URI
	wait_in_sync "$prim" 120
	prefill failover "$t" --ioengine=nbd --uri="$SERVER_URI"
	wait_in_sync "$prim" 120
	FO_SINCE[$t]=$(peer_since "$prim")
}

# fo_check TARGET: RUN_CHECK: the pair's link stayed up, both legs up to date.
fo_check() {
	pair_state "${FO_NAMES[$1]%%,*}" "${FO_SINCE[$1]}" || echo "could not read the primary's status"
}

# fo_journal ROUNDS: the journal's pattern on both pairs, in turn, the
# first one alternating.
fo_journal() {
	local r t
	local -a wl order
	read -ra wl <<<"$FO_JOURNAL"
	RUN_CHECK=fo_check
	for ((r = 1; r <= $1; r++)); do
		order=(netraid-mirror netraid-mirror-etcd)
		[ $((r % 2)) = 1 ] || order=(netraid-mirror-etcd netraid-mirror)
		for t in "${order[@]}"; do
			drop_cache "$WORK"/fo-*.img "$WORK"/foe-*.img
			log_run failover journal "$t" "$r"
			run_fio failover "$t" journal "$r" "${FO_PIDS[$t]}" "${wl[@]}" --ioengine=nbd --uri="${FO_URI[$t]}"
		done
	done
	RUN_CHECK=
}

# fo_failover ROUNDS: bin/failovertime's rounds, each recorded as a run
# with its times as a probe; a round it did not finish is recorded failed.
fo_failover() {
	local out="$WORK/failovertime.jsonl" err="$WORK/failovertime.err" done=0 rc=0 r v p m n lost
	log "failover: $1 failovers of a pair under ActiveMQ (bin/failovertime; a minute or two each)"
	bounded $(($1 * 600 + 600)) env NETRAID_BIN="$NETRAID" NETRAID_MOUNT="$root/dist/promoter/netraid-mount" \
		"$FAILOVER" --rounds "$1" >"$out" 2>"$err" || rc=$?
	while read -r r v p m n lost; do
		record kind=run suite=failover target=netraid-mirror-etcd workload=failover round="$r" status=ok value="$v" error_log="$err"
		record kind=probe suite=failover round="$r" primary_s="$p" mounted_s="$m" first_ack_s="$v" \
			node_failover_s="$n" lost_messages="$lost" \
			what="from the death: the survivor primary, its volume mounted, the first message acknowledged; node_failover_s: its own figure, primary found gone to on-promote commands done"
		done=$r
	done < <(python3 -c 'import json, sys
for l in sys.stdin:
    j = json.loads(l)
    print(j["round"], *(round(j[k], 2) for k in ("failover_s", "promoted_s", "mounted_s", "node_failover_s")), j["lost"])' <"$out")
	if [ "$rc" -ne 0 ] || [ "$done" -lt "$1" ]; then
		log "failover: bin/failovertime failed (exit $rc) after $done rounds: $(tail -n 3 "$err" | tr '\n' ' ')"
		record kind=run suite=failover target=netraid-mirror-etcd workload=failover round=$((done + 1)) status=failed error_log="$err"
	fi
}

suite_failover() {
	local f t
	SUITE=failover
	if ! [[ $FO_ROUNDS =~ ^[1-9][0-9]*$ ]] || [ "$FO_ROUNDS" -gt 10 ]; then
		die "BENCH_FAILOVER_ROUNDS is 1 to 10"
	fi
	record kind=suite suite=failover subject=netraid-mirror-etcd reference=baseline min_ratio_peer=0.95 rss_limit_mib=256 \
		title="automatic failover through etcd: failover time, and the election's cost on the write path"
	record kind=workload suite=failover workload=journal metric=kIOPS min_ratio=0.95 \
		desc="journal: sequential write 4 KiB, QD1, flush after each"
	record kind=workload suite=failover workload=failover metric=s max_value=10 \
		desc="failover: primary's death to first message acknowledged on the survivor (median)"
	record kind=target suite=failover target=netraid-mirror role=baseline \
		desc="netraid pair on 127.0.0.1 without --etcd (manual failover); CPU: both"
	record kind=target suite=failover target=netraid-mirror-etcd role=subject \
		desc="journal: the same pair with --etcd (one etcd on 127.0.0.1); failover: two netns machines, 3 etcd members, the promoter with ActiveMQ; CPU: both"
	if [ -z "$NETRAID" ]; then
		record kind=note suite=failover text="netraid not measured: $NETRAID_MISSING"
		return 0
	fi
	for t in etcd etcdctl; do
		command -v "$t" >/dev/null || die "$t is missing (make deps installs etcd-server and etcd-client)"
	done
	for f in fo-a fo-b foe-a foe-b; do
		fallocate -l "$FO_SIZE" "$WORK/$f.img"
		create_netraid "$f" "$WORK/$f.img"
	done
	fo_etcd
	fo_pair netraid-mirror fo-a fo-b "$WORK/fo-a.img" "$WORK/fo-b.img"
	fo_pair netraid-mirror-etcd foe-a foe-b "$WORK/foe-a.img" "$WORK/foe-b.img" --etcd "$FO_ETCD"
	fo_journal "$FO_ROUNDS"
	for t in netraid-mirror netraid-mirror-etcd; do
		stop_target failover "$t" "${FO_PIDS[$t]}" "${FO_NAMES[$t]}"
	done
	stop_pid "$FO_ETCD_PID" etcd || true
	if [ -x "$FAILOVER" ]; then
		fo_failover "$FO_ROUNDS"
	else
		record kind=note suite=failover text="failover not measured: $FAILOVER is not built (make bench builds it)"
	fi
}
