# shellcheck shell=bash
# Shared machinery for scripts/bench.sh: logging, the servers the benchmark
# starts (and only those), page-cache control, fio runs and the result log
# that report.py turns into the table and bench-results.json.
#
# Sourced, not run. Expects WORK (the run's scratch directory), RESULTS (the
# result log, JSON lines), RUNTIME, RAMP, TRANSPORT and CLK_TCK to be set by
# bench.sh.

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# ---------------------------------------------------------------- processes

# PIDS lists every process this run started in the background (servers,
# bounded commands) and has not yet reaped.
declare -a PIDS=()

forget_pid() { # forget_pid PID
	local p keep=()
	for p in "${PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# stop_pid PID NAME: SIGTERM, wait up to 15 s for the exit, then SIGKILL.
# Returns the process's exit status (143 = died of the SIGTERM itself).
stop_pid() {
	local pid=$1 name=$2 i rc=0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 150; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name (pid $pid) ignored SIGTERM for 15 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || rc=$?
	forget_pid "$pid"
	return "$rc"
}

# stop_all stops whatever is still running; the EXIT trap calls it.
stop_all() {
	local p
	for p in "${PIDS[@]}"; do
		stop_pid "$p" "process" || true
	done
}

# bounded SECONDS COMMAND...: run COMMAND for at most SECONDS, in the
# background so that a signal to bench.sh is handled at once (its trap
# stops COMMAND with the servers) rather than after COMMAND ends.
bounded() {
	local secs=$1 pid rc=0
	shift
	timeout --kill-after=10 "$secs" "$@" &
	pid=$!
	PIDS+=("$pid")
	wait "$pid" || rc=$?
	forget_pid "$pid"
	return "$rc"
}

# wait_nbd URI PID NAME: wait until an NBD client can connect to URI, for
# at most 30 s, failing early if PID exits.
wait_nbd() {
	local uri=$1 pid=$2 name=$3 i
	for ((i = 0; i < 300; i++)); do
		if nbdinfo --size "$uri" >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || die "$name exited before serving $uri (log: $WORK/$name.log)"
		sleep 0.1
	done
	die "$name did not serve $uri within 30 s (log: $WORK/$name.log)"
}

# ---------------------------------------------------------------- addresses

# free_port prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# nbd_uri ADDRESS EXPORT [CERTS]: the NBD URI of an export at a unix
# socket path or at HOST:PORT; with CERTS (a client certificate directory,
# or "-" for libnbd's default one), over TLS.
nbd_uri() {
	local s='' q=''
	case ${3:-} in
	'') ;;
	-) s=s ;;
	*) s=s q=tls-certificates=$3 ;;
	esac
	case $1 in
	/*) printf 'nbd%s+unix:///%s?socket=%s%s\n' "$s" "$2" "$1" "${q:+&$q}" ;;
	*) printf 'nbd%s://%s/%s%s\n' "$s" "$1" "$2" "${q:+?$q}" ;;
	esac
}

# listen_addr NAME: where server NAME should listen for this run's
# transport. A socket left by an earlier server of that name is removed.
listen_addr() {
	case $TRANSPORT in
	unix)
		rm -f "$WORK/$1.sock"
		printf '%s/%s.sock\n' "$WORK" "$1"
		;;
	tcp) printf '127.0.0.1:%s\n' "$(free_port)" ;;
	*) die "unknown transport $TRANSPORT (unix or tcp)" ;;
	esac
}

# ---------------------------------------------------------------- files

# make_backing FILE SIZE: a preallocated file filled with incompressible
# data written once with O_DIRECT, so that reads hit real blocks and no
# extent is still "unwritten" (which the filesystem answers with zeroes).
make_backing() {
	local file=$1 size=$2
	fallocate -l "$size" "$file"
	bounded 600 fio --name=fill --filename="$file" --ioengine=libaio --direct=1 \
		--rw=write --bs=1M --iodepth=8 --size="$size" --refill_buffers \
		--output="$WORK/fill.log" >/dev/null ||
		die "filling $file failed: $(cat "$WORK/fill.log")"
}

# raw_iomem_setup: give the raw fio baselines buffers in huge pages, as
# netraid's large buffers are. From ordinary 4 KiB pages a 1 MiB O_DIRECT
# request is 256 segments, more than a virtio disk takes in one request
# (max_segments 254), and goes to the disk as two; raw would then measure
# fio's buffers rather than the disk. It reserves 32 huge pages and mounts
# hugetlbfs under $WORK for the run (raw_iomem_teardown undoes both);
# where it cannot, RAW_IOMEM stays empty and RAW_IOMEM_WHY says why.
RAW_IOMEM=()
RAW_IOMEM_WHY=
HUGE_OLD=
HUGE_MNT=
raw_iomem_setup() {
	local want=32 old got
	if ! old=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null) || ! echo $((old + want)) >/proc/sys/vm/nr_hugepages 2>/dev/null; then
		RAW_IOMEM_WHY="cannot reserve huge pages"
		return 0
	fi
	HUGE_OLD=$old
	got=$(cat /proc/sys/vm/nr_hugepages)
	if [ $((got - old)) -lt $want ]; then
		RAW_IOMEM_WHY="the kernel reserved $((got - old)) of $want huge pages"
		return 0
	fi
	mkdir -p "$WORK/huge"
	if ! mount -t hugetlbfs -o pagesize=2M none "$WORK/huge" 2>/dev/null; then
		RAW_IOMEM_WHY="cannot mount hugetlbfs"
		return 0
	fi
	HUGE_MNT=$WORK/huge
	RAW_IOMEM=("--iomem=mmaphuge:$HUGE_MNT/fio")
}

raw_iomem_teardown() {
	if [ -n "$HUGE_MNT" ]; then
		umount "$HUGE_MNT" 2>/dev/null || log "warning: could not unmount $HUGE_MNT"
		HUGE_MNT=
	fi
	if [ -n "$HUGE_OLD" ]; then
		echo "$HUGE_OLD" >/proc/sys/vm/nr_hugepages 2>/dev/null || log "warning: could not set vm.nr_hugepages back to $HUGE_OLD"
		HUGE_OLD=
	fi
}

# drop_cache FILE...: write back and drop the files' pages from the page
# cache, so no server starts a run with the data already in memory.
drop_cache() {
	local f
	for f in "$@"; do
		dd of="$f" oflag=nocache conv=notrunc,fdatasync count=0 status=none
		dd if="$f" iflag=nocache count=0 status=none
	done
}

# ---------------------------------------------------------------- results

json_str() { # json_str TEXT: TEXT as a JSON string
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	s=${s//$'\r'/}
	printf '"%s"' "$s"
}

# record KEY=VALUE...: append one JSON object to the result log. Values that
# look like numbers are written as numbers, anything else as a string.
record() {
	local kv k v out=""
	for kv in "$@"; do
		k=${kv%%=*}
		v=${kv#*=}
		if [[ $v =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?$ ]]; then
			out+="${out:+,}$(json_str "$k"):$v"
		else
			out+="${out:+,}$(json_str "$k"):$(json_str "$v")"
		fi
	done
	printf '{%s}\n' "$out" >>"$RESULTS"
}

# millis MS: MS milliseconds as seconds with a decimal point.
millis() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# cpu_ticks PID: user+system clock ticks the process has used so far.
cpu_ticks() {
	local stat
	stat=$(<"/proc/$1/stat") || return 1
	stat=${stat##*) } # the command name may contain spaces
	# shellcheck disable=SC2086 # split on purpose
	set -- $stat
	echo $((${12} + ${13}))
}

# peak_rss_kib PID: the process's peak resident set (VmHWM) in KiB.
peak_rss_kib() {
	awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"
}

# cpu_ticks_of PIDS: cpu_ticks summed over a comma-separated list of pids.
cpu_ticks_of() {
	local p sum=0 t
	local -a pids
	IFS=, read -ra pids <<<"$1"
	for p in "${pids[@]}"; do
		t=$(cpu_ticks "$p") || return 1
		sum=$((sum + t))
	done
	echo "$sum"
}

# all_alive PIDS: whether every pid of a comma-separated list still runs.
all_alive() {
	local p
	local -a pids
	IFS=, read -ra pids <<<"$1"
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null || return 1
	done
}

# RUN_CHECK, when set, names a function run_fio calls after each run as
# "$RUN_CHECK TARGET": whatever it prints marks the run failed, with that
# as the reason (a mirror whose peer dropped out measured something else).
RUN_CHECK=

# FIO_WRAP, when set, is a command that run_fio runs fio under, fio's
# command line appended (the TLS rows run fio where libnbd finds their
# client certificate). An array; empty runs fio directly.
declare -a FIO_WRAP=()

# prefill SUITE TARGET ENGINE_ARGS...: write TARGET's whole export once
# through fio (under FIO_WRAP, if set), unmeasured, so that no measured run
# is the first write to a block.
prefill() {
	local suite=$1 target=$2
	shift 2
	log "$suite: writing $target's whole volume once"
	bounded 600 "${FIO_WRAP[@]}" fio --name=prefill "$@" --rw=write --bs=1M --iodepth=8 \
		--output="$WORK/$target.prefill" >"$WORK/$target.prefill.err" 2>&1 ||
		die "prefill through $target failed: $(cat "$WORK/$target.prefill" "$WORK/$target.prefill.err")"
}

# log_run SUITE WORKLOAD TARGET ROUND: say which run starts.
log_run() {
	if [ "$ROUNDS" -gt 1 ]; then
		log "$1: $2 on $3, round $4 of $ROUNDS"
	else
		log "$1: $2 on $3"
	fi
}

# run_fio SUITE TARGET WORKLOAD ROUND SERVER_PIDS FIO_ARGS...: one
# time-bounded fio run; its JSON output is kept and the run is recorded
# with the servers' CPU use (SERVER_PIDS: a pid, several joined by commas,
# whose CPU times are added, or "-" when there is no server). A failed run
# is recorded as such and does not stop the benchmark.
run_fio() {
	local suite=$1 target=$2 workload=$3 round=$4 pid=$5
	shift 5
	local out="$WORK/fio/$suite-$target-$workload-$round.json" err="$WORK/fio/$suite-$target-$workload-$round.err"
	local t0 t1 c0=0 c1=0 status=ok why
	mkdir -p "$WORK/fio"
	[ "$pid" = - ] || c0=$(cpu_ticks_of "$pid")
	t0=$(date +%s%N)
	# Bounded twice: fio's own --runtime, and timeout(1) should it hang.
	if ! bounded $((RUNTIME + RAMP + 60)) "${FIO_WRAP[@]}" fio --name="$workload" --time_based --runtime="${RUNTIME}s" --ramp_time="${RAMP}s" \
		--output-format=json --output="$out" "$@" >"$err" 2>&1; then
		status=failed
	fi
	t1=$(date +%s%N)
	if [ "$pid" != - ]; then
		if all_alive "$pid"; then
			c1=$(cpu_ticks_of "$pid")
		else
			status=failed
			echo "server pid(s) $pid exited during the run" >>"$err"
		fi
	fi
	if [ -n "$RUN_CHECK" ] && why=$("$RUN_CHECK" "$target") && [ -n "$why" ]; then
		status=failed
		echo "after the run: $why" >>"$err"
	fi
	if [ "$status" = failed ]; then
		log "$suite/$target/$workload failed: $(tail -n 3 "$err" | tr '\n' ' ')"
	fi
	record kind=run suite="$suite" target="$target" workload="$workload" round="$round" status="$status" \
		fio_json="$out" error_log="$err" wall_s="$(millis "$(((t1 - t0) / 1000000))")" \
		server_cpu_s="$(millis "$(((c1 - c0) * 1000 / CLK_TCK))")"
}
