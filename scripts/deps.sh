#!/usr/bin/env bash
# Installs the Debian packages that netraid's tests, demo and benchmarks
# use, only when something is missing. Safe to run again.
set -euo pipefail

need=()
want() { # want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || need+=("$2")
}
want nbdfuse libnbd-bin
want nbdinfo libnbd-bin
want nbdcopy libnbd-bin
want nbdsh python3-libnbd
want nbdkit nbdkit
want qemu-io qemu-utils
want qemu-nbd qemu-utils
want nbd-server nbd-server
want fio fio
want mkfs.ext4 e2fsprogs
want losetup mount
want fusermount3 fuse3
want ip iproute2
want python3 python3
want systemd-analyze systemd
want groff groff-base
want etcd etcd-server
want etcdctl etcd-client
want prometheus prometheus
want promtool prometheus
want man man-db
python3 -c 'import nbd' 2>/dev/null || need+=(python3-libnbd)
if [ "${1:-}" = "--broker" ]; then
	[ -f /usr/share/activemq/bin/activemq.jar ] || need+=(activemq)
	want redis-server redis-server
	want strace strace
fi

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "deps: installing ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: these packages are missing and installing them needs root: ${need[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
