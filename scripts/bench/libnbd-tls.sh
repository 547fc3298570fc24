#!/bin/sh
# libnbd-tls.sh CERTS SCRATCH COMMAND...: run COMMAND (fio, nbdinfo) so that
# libnbd's default TLS certificates directory holds the files of CERTS, an
# NBD client's certificate directory in libnbd's layout ('netraid certs
# client': ca-cert.pem, client-cert.pem, client-key.pem).
#
# Why: fio's nbd engine takes only a URI, and libnbd refuses a URI's
# tls-certificates parameter (a local file) unless the program allows it
# with nbd_set_uri_allow_local_file, which fio 3.33 does not. Without the
# parameter libnbd reads its default directory: /etc/pki/libnbd for root,
# $HOME/.pki/libnbd for anyone else.
#
# As root, COMMAND runs in a mount namespace of its own in which an overlay
# on /etc adds pki/libnbd. The real /etc is not written, no other process
# sees the overlay, and it goes away with the namespace's last process. As
# another user, COMMAND runs with HOME=SCRATCH/home. SCRATCH is a directory
# on a disk filesystem (overlayfs's upper and work directories), which this
# fills on first use.
set -eu
[ "$#" -ge 3 ] || {
	echo "usage: libnbd-tls.sh CERTS SCRATCH COMMAND..." >&2
	exit 2
}
certs=$1 scratch=$2
shift 2
for f in ca-cert.pem client-cert.pem client-key.pem; do
	[ -f "$certs/$f" ] || {
		echo "libnbd-tls.sh: no $certs/$f" >&2
		exit 2
	}
done

if [ "$(id -u)" -ne 0 ]; then
	if [ ! -d "$scratch/home/.pki/libnbd" ]; then
		mkdir -p "$scratch/home/.pki"
		cp -R "$certs" "$scratch/home/.pki/libnbd"
	fi
	HOME=$scratch/home exec "$@"
fi

if [ ! -d "$scratch/upper/pki/libnbd" ]; then
	mkdir -p "$scratch/upper/pki" "$scratch/work"
	cp -R "$certs" "$scratch/upper/pki/libnbd"
fi
# shellcheck disable=SC2016 # expanded by the inner shell
exec unshare --mount --propagation private -- sh -c '
set -e
mount -t overlay netraid-bench-tls -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc
shift
exec "$@"' sh "$scratch" "$@"
