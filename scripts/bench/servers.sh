# shellcheck shell=bash
# shellcheck disable=SC2034 # SERVER_PID and SERVER_URI are read by the suites
# The NBD servers under test. Each start_* function starts one server in
# the foreground as a child of bench.sh, records its pid in PIDS (so the
# EXIT trap stops it), waits until it answers NBD, and leaves the pid in
# SERVER_PID and the client URI in SERVER_URI. Every server exports the
# name "bench" (nbdkit's file plugin ignores the name).
#
# Sourced after lib.sh.

# Server-side threads for nbdkit: its default (16) would cap the random
# workloads' QD32 at 16 requests in flight, which is not how anyone would
# run it against a deep queue.
NBDKIT_THREADS=${NBDKIT_THREADS:-32}

SERVER_PID=
SERVER_URI=
SUITE=

# started NAME PID ADDRESS: bookkeeping common to every start_*.
started() {
	SERVER_PID=$2
	PIDS+=("$2")
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

# start_netraid NAME DISK...: serve the volume on DISKs (standalone: no
# peer) until stopped.
start_netraid() {
	local name=$1 addr='' listen ctl="$WORK/$1.ctl" pid i
	shift
	listen=$(listen_addr "$name")
	# TCP: let netraid bind a free port itself and read it back from status.
	[ "$TRANSPORT" = tcp ] && listen=127.0.0.1:0
	"$NETRAID" serve --listen "$listen" --control "$ctl" --export bench "$@" >"$WORK/$name.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || die "netraid serve exited: $(tail -n 5 "$WORK/$name.log")"
		addr=$(status_address "$ctl")
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || die "netraid serve reported no export address within 30 s (log: $WORK/$name.log)"
	forget_pid "$pid"
	started "$name" "$pid" "$addr"
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
