# shellcheck shell=bash
# shellcheck disable=SC2034 # SUITE is read by servers.sh
# Suite "brokerlat" (not run by default: BENCH_SUITES=brokerlat): where
# ActiveMQ's time goes on one netraid node. The broker suite's netraid
# target (ext4 on a loop device over nbdfuse, one member file), its
# daemon with per-stage histograms on (NETRAID_LAT=1, internal/lat), one
# message in flight for RUNTIME seconds per round; then the daemon's
# stages over the run (latency.py) with their count per message: how
# many NBD writes and flushes one persistent message costs, and how long
# each spent on the disk and in netraid.
#
# Sourced after lib.sh, servers.sh and fs.sh; bench.sh calls
# suite_brokerlat.

suite_brokerlat() {
	local r out err msgs img="$WORK/brokerlat.img" st
	SUITE=brokerlat
	# shellcheck source=scripts/bench/suite_latency.sh disable=SC2154 # here: bench.sh's
	. "$here/suite_latency.sh" # for lat_snap
	local store=${STORELOAD_BIN:-$root/bin/storeload}
	local size
	size=$(numfmt --from=iec "${BENCH_BROKER_SIZE:-512M}")
	[ -x "$store" ] || die "$store is not built (go build -o bin/storeload ./tests/broker/cmd/storeload)"
	[ -n "$NETRAID" ] || die "netraid is not built"
	mkdir -p "$WORK/lat" "$WORK/storeload"
	make_backing "$img" "$size"
	NETRAID_LAT=1
	create_netraid brokerlat "$img"
	start_netraid brokerlat "$img"
	NETRAID_LAT=0
	fs_on_nbd brokerlat "$SERVER_URI"
	for ((r = 1; r <= ROUNDS; r++)); do
		out="$WORK/storeload/brokerlat-$r.jsonl" err="$WORK/storeload/brokerlat-$r.err"
		lat_snap brokerlat "$r.before"
		log_run brokerlat activemq netraid "$r"
		bounded $((2 * (RUNTIME + RAMP) + 300)) "$store" activemq --data "${FS_MNT[brokerlat]}/amq-$r" \
			--work "$WORK/storeload/brokerlat-$r" --loads "amq-latency=1x1" --warmup "${RAMP}s" \
			--duration "${RUNTIME}s" --size "${BENCH_BROKER_MSG:-1024}" >"$out" 2>"$err" ||
			die "storeload failed: $(tail -n 3 "$err" | tr '\n' ' ')"
		lat_snap brokerlat "$r.after"
		msgs=$(python3 -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("kind") == "load":
        print(r["msgs"], r["msgs_per_s"], r["lat_p50_us"])' "$out")
		read -r -a st <<<"$msgs"
		echo "brokerlat round $r: ${st[1]} msgs/s, median receipt ${st[2]} us; stages per message (the ramp's requests included):"
		python3 "$here/latency.py" --ops "${st[0]}" "$WORK/lat/brokerlat.$r.before.json" \
			"$WORK/lat/brokerlat.$r.after.json" brokerlat
		rm -rf "${FS_MNT[brokerlat]}/amq-$r"
	done
	fs_teardown_all
}
