#!/usr/bin/env python3
"""insync.py NETRAID CONTROL T0_NS TIMEOUT_S [PID]: wait until a primary
is in sync with its peer, and say when things happened on the way.

Polls 'NETRAID status --control CONTROL --json' every 20 ms until the node
is primary, its peer link is connected, both mirror legs are up to date,
nothing is out of sync and no resync runs (what tests/harness.InSync
checks). Prints one JSON object on stdout, times in seconds since T0_NS (a
CLOCK_REALTIME time in nanoseconds, as 'date +%s%N' prints; the caller's
"start"):

  link_s        first poll that saw the peer link connected
  resync_s      first poll that saw a resync running (null if none seen)
  insync_s      first poll that saw the pair in sync
  total_bytes   the largest resync total_bytes seen (null if none seen)
  rate          the resync's own last reported rate, bytes per second
  polls         how many polls it took

Exits 0 when in sync; 1 after TIMEOUT_S seconds, or as soon as process
PID (when given: the peer being waited for) has exited, with the last
status it saw on stderr; 2 on bad arguments.
"""

import json
import subprocess
import sys
import time

POLL_S = 0.02


def in_sync(st):
    peer = st.get("peer") or {}
    legs = st.get("legs") or []
    return (st.get("role") == "primary" and peer.get("state") == "connected"
            and st.get("out_of_sync_bytes") == 0 and not st.get("resync")
            and len(legs) == 2 and all(leg.get("state") == "up-to-date" for leg in legs))


def status(netraid, ctl):
    """The node's status, or None while it does not answer."""
    try:
        out = subprocess.run([netraid, "status", "--control", ctl, "--json"],
                             capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout)
    except ValueError:
        return None


def alive(pid):
    """Whether process pid runs (a zombie, exited but not reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def main():
    if len(sys.argv) not in (5, 6):
        print(__doc__.splitlines()[0], file=sys.stderr)
        sys.exit(2)
    netraid, ctl = sys.argv[1], sys.argv[2]
    t0, timeout = int(sys.argv[3]) / 1e9, float(sys.argv[4])
    watch = sys.argv[5] if len(sys.argv) == 6 else None
    got = {"link_s": None, "resync_s": None, "insync_s": None, "total_bytes": None, "rate": None,
           "polls": 0}
    deadline = time.monotonic() + timeout
    st = None
    why = f"not in sync after {timeout:g} s"
    while time.monotonic() < deadline:
        if watch and not alive(watch):
            why = f"process {watch} exited"
            break
        st = status(netraid, ctl)
        now = time.time() - t0
        got["polls"] += 1
        if st is not None:
            if got["link_s"] is None and (st.get("peer") or {}).get("state") == "connected":
                got["link_s"] = now
            rs = st.get("resync")
            if rs:
                if got["resync_s"] is None:
                    got["resync_s"] = now
                got["total_bytes"] = max(got["total_bytes"] or 0, rs.get("total_bytes", 0))
                got["rate"] = rs.get("rate_bytes_per_second")
            if in_sync(st):
                got["insync_s"] = now
                print(json.dumps(got))
                return
        time.sleep(POLL_S)
    print(f"{why}; last status: {json.dumps(st)}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
