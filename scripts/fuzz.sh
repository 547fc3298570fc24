#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for a bounded number of
# executions each (a count, not a duration: when a duration runs out on a
# loaded machine, go test can report "context deadline exceeded" as a
# failure although nothing failed).
set -euo pipefail
t=${1:-100000x}
go=${GO:-go}
for pkg in $($go list ./...); do
	dir=$($go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz: $pkg $f ($t)"
		$go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 100x "$pkg"
	done
done
