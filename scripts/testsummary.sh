#!/usr/bin/env bash
# Passes go test -v output through and ends with one line
# "N passed, N failed, N skipped"; exits non-zero if any test failed or
# go test itself failed.
set -o pipefail
pass=0 fail=0 skip=0 bad=0
while IFS= read -r line; do
	printf '%s\n' "$line"
	case "$line" in
	"--- PASS:"*) pass=$((pass + 1)) ;;
	"--- FAIL:"*) fail=$((fail + 1)) ;;
	"--- SKIP:"*) skip=$((skip + 1)) ;;
	FAIL*) bad=1 ;;
	esac
done
echo "e2e: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$bad" -eq 0 ]
