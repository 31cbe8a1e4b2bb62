#!/usr/bin/env bash
# Instructions per uncontended fast path, counted by callgrind (exact and
# repeatable, unlike times on a shared machine), in several builds:
#
#   tests/bench/fastpath-cost.sh [N] [NAME=MESON_OPTIONS ...]
#
# Default builds: "default" (as shipped: probes, frame pointers, race-detector
# annotations), "no-probes" (-Dprobes=disabled), "no-valgrind"
# (-Dvalgrind=disabled), "no-fp" (-Dframe_pointers=false). Each is set up in
# build-cost-NAME and only tests/bench/ksync-fastpath is built. Prints one
# row per case: instructions per iteration (the case's inclusive count / N,
# its loop included).
set -euo pipefail
cd "$(dirname "$0")/../.."

n=100000
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
	n=$1
	shift
fi
if [ $# -eq 0 ]; then
	set -- "default=" "no-probes=-Dprobes=disabled" "no-valgrind=-Dvalgrind=disabled" \
		"no-fp=-Dframe_pointers=false"
fi

names=()
declare -A cost
for spec in "$@"; do
	name=${spec%%=*}
	opts=${spec#*=}
	dir=build-cost-$name
	names+=("$name")
	# shellcheck disable=SC2086
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" $opts >/dev/null
	else
		meson setup "$dir" -Dbpf_tool=disabled -Dsdevent=disabled -Dexamples=false $opts >/dev/null
	fi
	ninja -C "$dir" tests/bench/ksync-fastpath >/dev/null
	valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
		"$dir/tests/bench/ksync-fastpath" "$n" >/dev/null 2>"$dir/callgrind.log"
	while read -r ir fn; do
		cost[$name,$fn]=$ir
	done < <(callgrind_annotate --inclusive=yes "$dir/callgrind.out" 2>/dev/null |
		sed -n 's/^ *\([0-9,]*\) ([^)]*) *[^:]*:\(case_[a-z_]*\) .*/\1 \2/p' | tr -d ,)
done

printf "%-18s" "instructions/iter"
for name in "${names[@]}"; do printf " %12s" "$name"; done
echo
for fn in case_lock case_lock_try case_sem case_sem_try case_event_wait case_event_set \
	case_op_lock; do
	printf "%-18s" "${fn#case_}"
	for name in "${names[@]}"; do
		ir=${cost[$name,$fn]:-}
		if [ -n "$ir" ]; then
			printf " %12s" "$(awk -v a="$ir" -v n="$n" 'BEGIN { printf "%.2f", a / n }')"
		else
			printf " %12s" "-"
		fi
	done
	echo
done
