#!/usr/bin/env bash
# Race detectors on ksync (./dev racecheck; lib/annotate.h): tests/racecheck.c,
# whose shared data only ksync primitives order, must come out clean, and
# its "racy" mode (one real race) must still be caught, under
#
#   helgrind, DRD      the ordinary build (valgrind client requests)
#   TSan, user build   a -fsanitize=thread program linked with the ordinary
#                      libksync.so, as a user's program links the installed
#                      library (the TSan runtime is found through weak symbols)
#   TSan, TSan build   the program and libksync both built with TSan
#
# Usage: tests/racecheck.sh BUILD [TSAN_BUILD]
# Prints a line per check and "racecheck: N passed, N failed".
set -uo pipefail

build=$1
tsan_build=${2:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0
failed=0

result() {	# result NAME OK? DETAIL
	if [ "$2" = 1 ]; then
		passed=$((passed + 1))
		echo "  ok    $1: $3"
	else
		failed=$((failed + 1))
		echo "  FAIL  $1: $3"
		[ -f "$out/log" ] && tail -40 "$out/log"
	fi
}

# valgrind TOOL MODE: run it; $errors is the tool's error count, $rc the
# program's exit code, $tasks what it said about io_uring tasks.
valgrind_run() {
	local tool=$1 mode=$2
	valgrind --tool="$tool" --error-exitcode=0 "$build/tests/racecheck" "$mode" \
		>"$out/log" 2>&1
	rc=$?
	errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$out/log" | tail -1)
	tasks=$(sed -n 's/^tasks: //p' "$out/log")
	errors=${errors:--1}
}

if ! command -v valgrind >/dev/null; then
	result valgrind 0 "valgrind is not installed (package valgrind)"
elif ! grep -q "KSYNC_HAVE_VALGRIND 1" "$build/config.h"; then
	result valgrind 0 "$build was configured without valgrind's headers (-Dvalgrind)"
else
	for tool in helgrind drd; do
		valgrind_run "$tool" ok
		ok=0
		[ "$rc" = 0 ] && [ "$errors" = 0 ] && ok=1
		result "$tool ok" $ok "$errors errors, exit $rc, tasks: $tasks"
		valgrind_run "$tool" racy
		ok=0
		[ "$rc" = 0 ] && [ "$errors" -gt 0 ] && grep -q "racy_reader" "$out/log" && ok=1
		result "$tool racy" $ok "$errors errors (the race in racy_reader caught), exit $rc"
	done
fi

# tsan_run NAME BINARY: the clean run reports nothing, the racy one the race.
tsan_run() {
	local name=$1 bin=$2 n
	TSAN_OPTIONS="halt_on_error=0 exitcode=66" "$bin" ok >"$out/log" 2>&1
	rc=$?
	n=$(grep -c "WARNING: ThreadSanitizer" "$out/log")
	ok=0
	[ "$rc" = 0 ] && [ "$n" = 0 ] && ok=1
	result "$name ok" $ok "$n reports, exit $rc, $(sed -n 's/^tasks: /tasks: /p' "$out/log")"
	TSAN_OPTIONS="halt_on_error=0 exitcode=66" "$bin" racy >"$out/log" 2>&1
	rc=$?
	n=$(grep -c "WARNING: ThreadSanitizer" "$out/log")
	ok=0
	[ "$rc" = 66 ] && [ "$n" -gt 0 ] && grep -q "racy_reader" "$out/log" && ok=1
	result "$name racy" $ok "$n reports (the race in racy_reader caught), exit $rc"
}

if [ -x "$build/tests/racecheck-tsan-user" ]; then
	tsan_run "tsan, ordinary libksync" "$build/tests/racecheck-tsan-user"
else
	result "tsan, ordinary libksync" 0 "not built: the compiler cannot link -fsanitize=thread"
fi
if [ -n "$tsan_build" ]; then
	if grep -q -- "-fsanitize=thread" "$tsan_build/build.ninja" 2>/dev/null &&
		[ -x "$tsan_build/tests/racecheck" ]; then
		tsan_run "tsan, TSan libksync" "$tsan_build/tests/racecheck"
	else
		result "tsan, TSan libksync" 0 "$tsan_build is no -Db_sanitize=thread build"
	fi
fi

echo "racecheck: $passed passed, $failed failed"
[ "$failed" = 0 ]
