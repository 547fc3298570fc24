package nbd

import "sync/atomic"

// The server's counters by command and by error value: fixed slots of
// atomics, so that counting a request is one atomic add on its
// command's slot.

// countedCommands are the commands counted apart; any other (an unknown
// command, refused) counts under "other".
var countedCommands = [...]Command{
	CmdRead, CmdWrite, CmdFlush, CmdTrim, CmdCache, CmdWriteZeroes, CmdBlockStatus, CmdNetraidControl,
}

// countedErrnos are the error values counted apart; any other counts
// under "other".
var countedErrnos = [...]Errno{EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN}

// otherName is the slot of what is not counted apart.
const otherName = "other"

// cmdCount is one command's slot.
type cmdCount struct {
	requests atomic.Int64 // received
	bytes    atomic.Int64 // moved by those that succeeded
}

// counters are a server's counters by command and error value.
type counters struct {
	cmds   [len(countedCommands) + 1]cmdCount
	errnos [len(countedErrnos) + 1]atomic.Int64
}

// cmd returns c's slot.
func (k *counters) cmd(c Command) *cmdCount {
	for i, x := range countedCommands {
		if x == c {
			return &k.cmds[i]
		}
	}
	return &k.cmds[len(countedCommands)]
}

// errno returns e's slot.
func (k *counters) errno(e Errno) *atomic.Int64 {
	for i, x := range countedErrnos {
		if x == e {
			return &k.errnos[i]
		}
	}
	return &k.errnos[len(countedErrnos)]
}

// CommandStats are one command's counters.
type CommandStats struct {
	Requests int64 `json:"requests"` // received
	// Bytes is what the requests that succeeded moved: read, written,
	// trimmed or zeroed (0 for the commands that move none).
	Bytes int64 `json:"bytes"`
}

// snapshot returns the counters by command name (Command.String, and
// "other") and by error value name (Errno.String, and "other"); every
// slot is there, counted or not.
func (k *counters) snapshot() (cmds map[string]CommandStats, errnos map[string]int64) {
	cmds = make(map[string]CommandStats, len(k.cmds))
	for i := range k.cmds {
		name := otherName
		if i < len(countedCommands) {
			name = countedCommands[i].String()
		}
		cmds[name] = CommandStats{Requests: k.cmds[i].requests.Load(), Bytes: k.cmds[i].bytes.Load()}
	}
	errnos = make(map[string]int64, len(k.errnos))
	for i := range k.errnos {
		name := otherName
		if i < len(countedErrnos) {
			name = countedErrnos[i].String()
		}
		errnos[name] = k.errnos[i].Load()
	}
	return cmds, errnos
}
