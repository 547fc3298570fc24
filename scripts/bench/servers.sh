# shellcheck shell=bash
# shellcheck disable=SC2034 # SERVER_PID, SERVER_URI, SERVER_ADDR: read by the suites
# The NBD servers under test. Each start_* function starts one server in
# the background as a child of bench.sh, records its pid in PIDS (so the
# EXIT trap stops it), waits until it answers NBD, and leaves the pid in
# SERVER_PID and the client URI in SERVER_URI (netraid's: its address in
# SERVER_ADDR too). Every server exports the name "bench" (nbdkit's file
# plugin ignores the name).
#
# A mirrored netraid pair runs on loopback: start_netraid_node twice (each
# node's replication port the other's peer, from free_ports2; with
# --tls-dir among its flags for a TLS pair), then promote_netraid on one
# and wait_in_sync. The pair's control sockets are
# $WORK/NAME.ctl; pair_state and peer_since read the primary's status.
#
# Sourced after lib.sh.

# Server-side threads for nbdkit: its default (16) would cap the random
# workloads' QD32 at 16 requests in flight, which is not how anyone would
# run it against a deep queue.
NBDKIT_THREADS=${NBDKIT_THREADS:-32}

SERVER_PID=
SERVER_URI=
SERVER_ADDR=
SUITE=

# Every server runs in a memory cgroup of its own limited to SERVER_MEM
# (default 256 MiB, the RSS budget the suites hold netraid to), page cache
# included. A server that reads through the page cache (nbdkit's file
# plugin keeps what it read even with cache=none) could otherwise serve a
# 1 GiB backing file from memory after its first pass, and its figures
# would measure the machine's RAM, not the server on its disk. The budget
# is the same for every server; O_DIRECT servers never come near it.
SERVER_MEM=$(numfmt --from=iec "${BENCH_SERVER_MEM:-256M}")
MEMCG_BASE=
MEMCG_LIMIT_FILE=
MEMCG_WHY=

# memcg_setup: find where this process may make memory cgroups (cgroup v1
# memory controller, or v2 with memory delegated to its own cgroup's
# children); if it cannot, MEMCG_WHY says why and servers run unconfined.
memcg_setup() {
	local line path
	if line=$(grep -m1 -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' /proc/self/cgroup) &&
		[ -d /sys/fs/cgroup/memory ]; then
		path=/sys/fs/cgroup/memory${line#*:*:}
		MEMCG_LIMIT_FILE=memory.limit_in_bytes
	elif line=$(grep -m1 '^0::' /proc/self/cgroup) && [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		path=/sys/fs/cgroup${line#0::}
		MEMCG_LIMIT_FILE=memory.max
		# v2 lets a cgroup's children limit memory only if the cgroup
		# delegates it, which it cannot while it holds processes itself.
		grep -qw memory "$path/cgroup.subtree_control" 2>/dev/null ||
			echo +memory >"$path/cgroup.subtree_control" 2>/dev/null || {
			MEMCG_WHY="cgroup v2: cannot delegate memory to the children of $path"
			return 0
		}
	else
		MEMCG_WHY="no memory cgroup controller"
		return 0
	fi
	MEMCG_BASE="$path/netraid-bench-$$"
	mkdir "$MEMCG_BASE" 2>/dev/null || {
		MEMCG_WHY="cannot make a cgroup under $path"
		MEMCG_BASE=
	}
}

# confine NAME PID: move PID into a memory cgroup of its own, limited to
# SERVER_MEM. A failure is recorded and the server runs unconfined.
confine() {
	local cg
	[ -n "$MEMCG_BASE" ] || return 0
	cg="$MEMCG_BASE/$1"
	if mkdir -p "$cg" && echo "$SERVER_MEM" >"$cg/$MEMCG_LIMIT_FILE" && echo "$2" >"$cg/cgroup.procs"; then
		return 0
	fi
	record kind=note suite="$SUITE" target="$1" text="not confined to $(numfmt --to=iec "$SERVER_MEM") of memory: moving it into $cg failed"
}

# memcg_teardown: remove the cgroups, once their servers are gone.
memcg_teardown() {
	local cg
	[ -n "$MEMCG_BASE" ] && [ -d "$MEMCG_BASE" ] || return 0
	for cg in "$MEMCG_BASE"/*/; do
		[ -d "$cg" ] && rmdir "$cg" 2>/dev/null
	done
	rmdir "$MEMCG_BASE" 2>/dev/null || true
}

# started NAME PID ADDRESS: bookkeeping common to every start_*.
started() {
	SERVER_PID=$2
	PIDS+=("$2")
	confine "$1" "$2"
	SERVER_URI=$(nbd_uri "$3" bench)
	wait_nbd "$SERVER_URI" "$2" "$1"
}

# start_nbdkit NAME FILE OFFSET SIZE [--filter=FILTER | KEY=VALUE]...:
# nbdkit's file plugin with cache=none, serving SIZE bytes of FILE from
# OFFSET (through the offset filter), with any further filters in front.
start_nbdkit() {
	local name=$1 file=$2 off=$3 size=$4 addr a
	local -a where filters=() params=()
	shift 4
	for a in "$@"; do
		case $a in
		--filter=*) filters+=("$a") ;;
		*) params+=("$a") ;;
		esac
	done
	addr=$(listen_addr "$name")
	case $addr in
	/*) where=(--unix "$addr") ;;
	*) where=(--ipaddr 127.0.0.1 --port "${addr##*:}") ;;
	esac
	nbdkit --foreground --exit-with-parent --threads "$NBDKIT_THREADS" "${where[@]}" \
		"${filters[@]}" --filter=offset file "$file" cache=none offset="$off" range="$size" \
		"${params[@]}" >"$WORK/$name.log" 2>&1 &
	started "$name" $! "$addr"
}

# start_nbdkit_memory NAME SIZE: nbdkit's memory plugin, SIZE bytes: an
# NBD server with no disk. Not confined to SERVER_MEM: its memory is its
# disk, by design. Fails (1) if nbdkit has no memory plugin.
start_nbdkit_memory() {
	local name=$1 size=$2 addr
	nbdkit memory --dump-plugin >/dev/null 2>&1 || return 1
	addr=$(listen_addr "$name")
	case $addr in
	/*) set -- --unix "$addr" ;;
	*) set -- --ipaddr 127.0.0.1 --port "${addr##*:}" ;;
	esac
	nbdkit --foreground --exit-with-parent --threads "$NBDKIT_THREADS" "$@" memory size="$size" \
		>"$WORK/$name.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	SERVER_URI=$(nbd_uri "$addr" bench)
	wait_nbd "$SERVER_URI" "$SERVER_PID" "$name"
}

# start_qemu_nbd NAME FILE OFFSET SIZE: qemu-nbd with O_DIRECT and Linux
# native AIO, staying up across client connections, serving SIZE bytes of
# FILE from OFFSET (the raw driver's own offset and size).
start_qemu_nbd() {
	local name=$1 file=$2 off=$3 size=$4 addr
	local -a where
	addr=$(listen_addr "$name")
	case $addr in
	/*) where=(--socket "$addr") ;;
	*) where=(--bind 127.0.0.1 --port "${addr##*:}") ;;
	esac
	# In qemu's option syntax a comma inside a value is written twice.
	qemu-nbd --cache=none --aio=native --persistent --export-name=bench "${where[@]}" \
		--image-opts "driver=raw,offset=$off,size=$size,file.driver=file,file.filename=${file//,/,,}" \
		>"$WORK/$name.log" 2>&1 &
	started "$name" $! "$addr"
}

# status_address CONTROL: the address netraid's export is bound to, as
# reported by 'netraid status --json' (empty while it is not serving).
status_address() {
	{ "$NETRAID" status --control "$1" --json 2>/dev/null || true; } | python3 -c '
import json, sys
try:
    print((json.load(sys.stdin).get("export") or {}).get("address") or "")
except ValueError:
    pass'
}

# create_netraid NAME DISK...: a fresh volume on DISKs ('netraid create').
create_netraid() {
	local name=$1
	shift
	"$NETRAID" create --name bench --chunk "$NETRAID_CHUNK" "$@" >"$WORK/$name.create.log" 2>&1 ||
		die "netraid create $* failed: $(cat "$WORK/$name.create.log")"
}

# netraid_data_area DISK: "OFFSET SIZE" of the data area on a member disk,
# from its superblock.
netraid_data_area() {
	"$NETRAID" dump-meta --json "$1" | python3 -c '
import json, sys
sb = json.load(sys.stdin)
print(sb["DataOffset"], sb["MemberDataSize"])'
}

# netraid_serve NAME LISTEN DISK-AND-FLAGS...: start 'netraid serve' in the
# background with its control socket at $WORK/NAME.ctl, appending to
# $WORK/NAME.log (a node restarted keeps one log). Leaves the pid in
# SERVER_PID and in PIDS. With NETRAID_LAT=1 the daemon records its
# per-stage latency histograms (internal/lat) into $WORK/NAME.lat.
netraid_serve() {
	local name=$1 listen=$2
	local -a env=()
	shift 2
	[ "${NETRAID_LAT:-0}" = 1 ] && env=("NETRAID_LATENCY=$WORK/$name.lat")
	env "${env[@]}" "$NETRAID" serve --listen "$listen" --control "$WORK/$name.ctl" --export bench "$@" >>"$WORK/$name.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
}

# netraid_listen NAME: the --listen address for netraid server NAME. TCP:
# netraid binds a free port itself and the address is read back from
# status.
netraid_listen() {
	if [ "$TRANSPORT" = tcp ]; then
		echo 127.0.0.1:0
	else
		listen_addr "$1"
	fi
}

# wait_export NAME PID [CERTS]: wait until netraid server NAME (pid PID)
# reports its export address and answers NBD there (over TLS with client
# certificate directory CERTS, when given), for at most 30 s each; leaves
# the URI in SERVER_URI and the address in SERVER_ADDR.
wait_export() {
	local name=$1 pid=$2 certs=${3:-} addr='' i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || die "netraid serve ($name) exited: $(tail -n 5 "$WORK/$name.log")"
		addr=$(status_address "$WORK/$name.ctl")
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || die "netraid serve ($name) reported no export address within 30 s (log: $WORK/$name.log)"
	SERVER_PID=$pid
	SERVER_ADDR=$addr
	SERVER_URI=$(nbd_uri "$addr" bench "$certs")
	wait_nbd "$SERVER_URI" "$pid" "$name"
}

# start_netraid NAME DISK...: serve the volume on DISKs (standalone: no
# peer) until stopped.
start_netraid() {
	local name=$1
	shift
	netraid_serve "$name" "$(netraid_listen "$name")" "$@"
	wait_export "$name" "$SERVER_PID"
}

# start_netraid_node NAME LISTEN_PEER PEER DISK...: one node of a mirrored
# pair on loopback, accepting its primary's replication link on
# LISTEN_PEER (127.0.0.1:PORT) and dialling PEER when it is the primary
# itself. It starts as secondary, which exports nothing: this waits (30 s
# at most) until its control socket answers, and leaves the pid in
# SERVER_PID. 'promote_netraid' then makes a node primary.
start_netraid_node() {
	local name=$1 lpeer=$2 peer=$3 i
	shift 3
	netraid_serve "$name" "$(netraid_listen "$name")" --listen-peer "$lpeer" --peer "$peer" "$@"
	wait_netraid_node "$name"
}

# link_args NAME PEER_NAME: the flags that authenticate a pair's link as
# a user would deploy it: a shared secret ($WORK/link.secret, made once)
# and the two nodes' names.
link_args() {
	[ -f "$WORK/link.secret" ] || "$NETRAID" secret new "$WORK/link.secret" >/dev/null
	echo "--name $1 --peer-name $2 --peer-secret $WORK/link.secret"
}

# wait_netraid_node NAME: wait (30 s at most) until the node SERVER_PID
# answers on its control socket.
wait_netraid_node() {
	local name=$1 i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$SERVER_PID" 2>/dev/null || die "netraid serve ($name) exited: $(tail -n 5 "$WORK/$name.log")"
		"$NETRAID" status --control "$WORK/$name.ctl" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "netraid serve ($name) did not answer on its control socket within 30 s (log: $WORK/$name.log)"
}

# promote_netraid NAME PID [CERTS]: make node NAME the primary and wait
# until it serves its export (URI in SERVER_URI; with CERTS, a client
# certificate directory, over TLS).
promote_netraid() {
	"$NETRAID" promote --control "$WORK/$1.ctl" >>"$WORK/$1.log" 2>&1 ||
		die "netraid promote ($1) failed: $(tail -n 3 "$WORK/$1.log")"
	wait_export "$1" "$2" "${3:-}"
}

PAIR_PIDS= # start_netraid_pair's pids, "A,B"

# start_netraid_pair NAME_A NAME_B DISK_A DISK_B [CA]: start nodes NAME_A
# and NAME_B, make A primary and wait until it serves; with CA (the
# certificate authority's directory, where 'netraid certs' put each node's
# certificate under nodes/NAME and the client's under clients/bench), both
# with TLS: on the link, and offered on the export (--tls-optional: fio
# reaches the same pair in plaintext and over TLS). Leaves the pids in
# PAIR_PIDS, the export in SERVER_URI and SERVER_ADDR.
start_netraid_pair() {
	local na=$1 nb=$2 da=$3 db=$4 ca=${5:-} pa pb a b
	local -a fa=() fb=()
	if [ -n "$ca" ]; then
		fa=(--tls-dir "$ca/nodes/$na" --tls-optional)
		fb=(--tls-dir "$ca/nodes/$nb" --tls-optional)
	fi
	read -r pa pb <<<"$(free_ports2)"
	# shellcheck disable=SC2046 # link_args is words
	start_netraid_node "$na" "127.0.0.1:$pa" "127.0.0.1:$pb" $(link_args "$na" "$nb") "${fa[@]}" "$da"
	a=$SERVER_PID
	# shellcheck disable=SC2046
	start_netraid_node "$nb" "127.0.0.1:$pb" "127.0.0.1:$pa" $(link_args "$nb" "$na") "${fb[@]}" "$db"
	b=$SERVER_PID
	promote_netraid "$na" "$a" "${ca:+$ca/clients/bench}"
	PAIR_PIDS=$a,$b
}

# free_ports2: two different TCP ports on 127.0.0.1 that were free a
# moment ago, for a pair's replication links.
free_ports2() {
	local a b i
	a=$(free_port)
	for ((i = 0; i < 20; i++)); do
		b=$(free_port)
		[ "$a" != "$b" ] && break
	done
	[ "$a" != "$b" ] || die "no second free port on 127.0.0.1"
	echo "$a $b"
}

# wait_in_sync NAME SECONDS [T0_NS [PID]]: wait until primary NAME is in
# sync with its peer (insync.py), for at most SECONDS, giving up early if
# PID (the peer, say) exits; its timings, relative to T0_NS (default: now),
# are left in $WORK/NAME.insync.json.
wait_in_sync() {
	local name=$1 secs=$2 t0=${3:-$(date +%s%N)} pid=${4:-}
	# shellcheck disable=SC2154 # here: bench.sh's scripts/bench directory
	bounded $((secs + 15)) python3 "$here/insync.py" "$NETRAID" "$WORK/$name.ctl" "$t0" "$secs" ${pid:+"$pid"} \
		>"$WORK/$name.insync.json" 2>"$WORK/$name.insync.err" ||
		die "$name not in sync with its peer within $secs s: $(tail -c 600 "$WORK/$name.insync.err")"
}

# pair_state NAME [SINCE]: nothing when primary NAME's peer link is
# connected (and has been since SINCE, a status .peer.since, when given)
# and both legs are up to date; else what is wrong.
pair_state() {
	{ "$NETRAID" status --control "$WORK/$1.ctl" --json 2>/dev/null || echo '{}'; } | python3 -c '
import json, sys
try:
    st = json.load(sys.stdin)
except ValueError:
    st = {}
peer = st.get("peer") or {}
legs = {l["name"]: l["state"] for l in st.get("legs") or []}
state, since = peer.get("state"), peer.get("since")
if state != "connected" or len(legs) != 2 or any(v != "up-to-date" for v in legs.values()):
    print(f"peer link {state}, legs {legs or None}")
elif sys.argv[1] and since != sys.argv[1]:
    print(f"the peer link went down and came back (connected since {since}, not {sys.argv[1]})")' "${2:-}"
}

# peer_since NAME: when primary NAME's peer link last came up (status
# .peer.since).
peer_since() {
	"$NETRAID" status --control "$WORK/$1.ctl" --json | python3 -c '
import json, sys
print((json.load(sys.stdin).get("peer") or {}).get("since") or "")'
}

# stop_server NAME PID: stop a server. It must exit 0 on SIGTERM
# (netraid's contract) or die of it.
stop_server() {
	local name=$1 rc=0
	stop_pid "$2" "$name" || rc=$?
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ]; then
		log "$name exited with status $rc on SIGTERM: $(tail -n 3 "$WORK/$name.log" | tr '\n' ' ')"
		record kind=note suite="$SUITE" target="$name" text="exited with status $rc on SIGTERM"
	fi
}

# stop_target SUITE TARGET PIDS NAMES: record the peak RSS of each of a
# target's server processes (PIDS and NAMES comma-separated, a pair's
# primary first, recorded as daemon=primary and daemon=secondary) and
# stop them, the primary first so that it does not see its secondary go.
stop_target() {
	local suite=$1 t=$2 p
	local -a pids names who=()
	IFS=, read -ra pids <<<"$3"
	IFS=, read -ra names <<<"$4"
	[ "${#pids[@]}" -gt 1 ] && who=(daemon=primary daemon=secondary)
	for ((p = 0; p < ${#pids[@]}; p++)); do
		if kill -0 "${pids[p]}" 2>/dev/null; then
			record kind=rss suite="$suite" target="$t" peak_rss_kib="$(peak_rss_kib "${pids[p]}")" ${who[p]:+"${who[p]}"}
		else
			record kind=note suite="$suite" target="$t" text="pid ${pids[p]} died before its peak RSS was read"
		fi
	done
	for ((p = 0; p < ${#pids[@]}; p++)); do
		stop_server "${names[p]}" "${pids[p]}"
	done
}
