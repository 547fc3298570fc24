package nbd

import "github.com/netraid/netraid/internal/lat"

// measureRequest records a request's execution (from t2, its handler
// starting, to now: the device call and the reply) and its whole time in
// the server (from t0, its header read), under its command's stages.
func measureRequest(req *Request, t0, t2 int64) {
	if t0 == 0 {
		return
	}
	exec, total := lat.NBDExecRead, lat.NBDTotalRead
	switch {
	case req.Type == CmdWrite && req.Flags&CmdFlagFUA != 0:
		exec, total = lat.NBDExecFUA, lat.NBDTotalFUA
	case req.Type == CmdWrite:
		exec, total = lat.NBDExecWrite, lat.NBDTotalWrite
	case req.Type == CmdFlush:
		exec, total = lat.NBDExecFlush, lat.NBDTotalFlush
	case req.Type != CmdRead:
		return
	}
	lat.Since(exec, t2)
	lat.Since(total, t0)
}
