#!/usr/bin/env bash
# cover.sh PROFILE PKG... — statement coverage of each package of a Go
# cover profile, counting each statement once however many test binaries
# wrote it (go test -coverpkg with several packages repeats blocks).
set -euo pipefail
profile=$1
shift
mod=$(go list -m)
awk -v mod="$mod" -v pkgs="$*" '
	BEGIN { n = split(pkgs, want, " ") }
	NR == 1 { next }
	{
		split($1, loc, ":"); file = loc[1]
		key = $1; stmts[key] = $2
		if ($3 > 0) hit[key] = 1
		sub("/[^/]*$", "", file); sub("^" mod "/", "", file); pkg[key] = file
	}
	END {
		for (k in stmts) { total[pkg[k]] += stmts[k]; if (k in hit) covered[pkg[k]] += stmts[k] }
		for (i = 1; i <= n; i++) {
			p = want[i]
			if (total[p] == 0) { printf "%-8s no statements\n", p; continue }
			printf "%-8s %5.1f%% of %d statements\n", p, 100 * covered[p] / total[p], total[p]
		}
	}' "$profile"
