# shellcheck shell=bash
# Filesystems for the stores the broker suite runs: ext4 on a loop device
# (direct I/O) over a file, or over an NBD export presented as a file by
# nbdfuse, as README's walkthrough mounts a netraid volume where the
# kernel has no NBD client. Every mount made here is listed, and
# fs_teardown_all (bench.sh's EXIT trap, before the servers stop) undoes
# them all: the filesystem, the loop device, nbdfuse.
#
# Sourced after lib.sh.

declare -a FS_NAMES=()
declare -A FS_MNT=() FS_LOOP=() FS_BACK=() FS_FUSE=() FS_FUSEPID=() FS_TMPFS=()

# mkfs_mount NAME DEVICE: ext4 on DEVICE, mounted at $WORK/NAME.mnt. The
# inode tables and the journal are initialized by mkfs, so that no
# background initialization writes during the runs.
#
# Every target gets the same file system: 4 KiB blocks, mke2fs's default
# profile. Left to itself mke2fs picks its "small" profile (1 KiB blocks)
# below 512 MiB, and netraid's export is its members less its metadata:
# on the same 512 MiB file as the peers it fell just under, and the
# stores' journals then wrote 1 KiB blocks, a third more NBD requests
# per fsync than on the peers' 512 MiB exports.
mkfs_mount() {
	local name=$1 dev=$2 mnt="$WORK/$1.mnt" bs
	mkfs.ext4 -q -F -T default -b 4096 -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$dev" >"$WORK/$name.mkfs.log" 2>&1 ||
		die "mkfs.ext4 on $dev ($name) failed: $(tail -n 3 "$WORK/$name.mkfs.log")"
	mkdir -p "$mnt"
	mount -o data=ordered "$dev" "$mnt" || die "mounting $dev ($name) failed"
	FS_MNT[$name]=$mnt
	bs=$(stat -f -c %S "$mnt")
	[ "$bs" = 4096 ] || die "ext4 on $dev ($name) has $bs-byte blocks, not 4096: the targets would not be compared on the same file system"
}

# attach_loop NAME FILE: a loop device with direct I/O over FILE, in
# FS_LOOP[NAME].
attach_loop() {
	local dev
	dev=$(losetup --find --show --direct-io=on "$2") || die "losetup --direct-io=on $2 ($1) failed"
	FS_LOOP[$1]=$dev
	FS_BACK[$1]=$2
}

# fs_on_file NAME FILE: ext4 on a loop device over FILE; the mount point
# in FS_MNT[NAME].
fs_on_file() {
	FS_NAMES+=("$1")
	attach_loop "$1" "$2"
	mkfs_mount "$1" "${FS_LOOP[$1]}"
}

# fs_on_ram NAME SIZE: a tmpfs of its own holding a file of SIZE bytes,
# and ext4 on a loop device over that file: a filesystem with no disk
# under it.
fs_on_ram() {
	local dir="$WORK/$1.tmpfs"
	FS_NAMES+=("$1")
	mkdir -p "$dir"
	mount -t tmpfs -o size=$(($2 + (16 << 20))) tmpfs "$dir" || die "mounting a tmpfs for $1 failed"
	FS_TMPFS[$1]=$dir
	fallocate -l "$2" "$dir/disk.img"
	fs_on_file "$1" "$dir/disk.img"
}

# fs_on_nbd NAME URI: nbdfuse presents the export at URI as
# $WORK/NAME.fuse/nbd; ext4 on a loop device over that file.
fs_on_nbd() {
	local name=$1 uri=$2 fuse="$WORK/$1.fuse" i
	FS_NAMES+=("$name")
	mkdir -p "$fuse"
	nbdfuse "$fuse" "$uri" >"$WORK/$name.nbdfuse.log" 2>&1 &
	FS_FUSEPID[$name]=$!
	PIDS+=("$!")
	FS_FUSE[$name]=$fuse
	for ((i = 0; i < 200; i++)); do
		[ -e "$fuse/nbd" ] && break
		kill -0 "${FS_FUSEPID[$name]}" 2>/dev/null || die "nbdfuse ($name) exited: $(tail -n 3 "$WORK/$name.nbdfuse.log")"
		sleep 0.1
	done
	[ -e "$fuse/nbd" ] || die "nbdfuse ($name) presented no file within 20 s"
	attach_loop "$name" "$fuse/nbd"
	mkfs_mount "$name" "${FS_LOOP[$name]}"
}

# fs_teardown NAME: unmount, detach the loop device, stop nbdfuse.
fs_teardown() {
	local name=$1 pid i
	if [ -n "${FS_MNT[$name]:-}" ]; then
		umount "${FS_MNT[$name]}" 2>/dev/null || umount -l "${FS_MNT[$name]}" 2>/dev/null ||
			log "warning: could not unmount ${FS_MNT[$name]}"
		unset "FS_MNT[$name]"
	fi
	if [ -n "${FS_LOOP[$name]:-}" ]; then
		losetup -d "${FS_LOOP[$name]}" 2>/dev/null || log "warning: could not detach ${FS_LOOP[$name]}"
		# A detached loop device lets go of its file a moment later; what
		# is under the file (nbdfuse, a tmpfs) goes only after that.
		for ((i = 0; i < 50; i++)); do
			[ -z "$(losetup -j "${FS_BACK[$name]}" 2>/dev/null)" ] && break
			sleep 0.1
		done
		unset "FS_LOOP[$name]" "FS_BACK[$name]"
	fi
	if [ -n "${FS_FUSE[$name]:-}" ]; then
		fusermount3 -u "${FS_FUSE[$name]}" 2>/dev/null || fusermount3 -u -z "${FS_FUSE[$name]}" 2>/dev/null || true
		unset "FS_FUSE[$name]"
	fi
	if [ -n "${FS_FUSEPID[$name]:-}" ]; then
		pid=${FS_FUSEPID[$name]}
		unset "FS_FUSEPID[$name]"
		stop_pid "$pid" "nbdfuse ($name)" || true
	fi
	if [ -n "${FS_TMPFS[$name]:-}" ]; then
		umount "${FS_TMPFS[$name]}" 2>/dev/null || log "warning: could not unmount ${FS_TMPFS[$name]}"
		unset "FS_TMPFS[$name]"
	fi
}

# fs_teardown_all: every mount made, the last first.
fs_teardown_all() {
	local i
	for ((i = ${#FS_NAMES[@]} - 1; i >= 0; i--)); do
		fs_teardown "${FS_NAMES[i]}"
	done
	FS_NAMES=()
}
