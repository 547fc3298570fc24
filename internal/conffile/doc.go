// Package conffile sets a command's flags from a TOML file, so that a
// daemon's command line can live in /etc and the command line proper can
// still override any of it.
//
// A file has the daemon's keys at its top and one table per volume:
//
//	control = "/run/netraid/netraid.sock"
//
//	[volume.vol]
//	disks = ["/dev/sdb", "/dev/sdc"]
//	peer = "10.0.0.2:7789"
//	peer-timeout = "5s"
//
// A key is a flag's name and takes what the flag takes on the command
// line (quotes are optional for numbers and booleans); the Schema says
// which flags the file may set and where each goes. Every value goes
// through the flag's own Set, so the file and the command line accept
// and refuse the same things.
//
// Invariants:
//   - Apply sets a flag only through pflag: it runs before the command
//     line is parsed, so a flag given there wins.
//   - Every refusal is an *Error naming the file, the line and what was
//     expected: a syntax error, an unknown key or table, a key in the
//     wrong place, a value its flag does not take.
//   - Nothing is set unless the whole file is good.
package conffile
