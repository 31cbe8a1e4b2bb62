#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Install ksync into a scratch prefix and build programs against the
# installed .pc files, as a user of the library would:
#
#   - the install holds the libraries, headers and .pc files;
#   - `pkg-config --static --libs ksync` asks for nothing but liburing and
#     libc (no systemd: Debian 12 has no libsystemd.a);
#   - the installed libksync.so.0 needs only liburing and libc;
#   - every installed header compiles alone from the installed include
#     directory, as strict C11 and as C++11;
#   - examples/shared_lock.c links fully statically (-static) with
#     `pkg-config --static --libs ksync`, is a static executable, runs and
#     checks mutual exclusion itself;
#   - the same example linked against the installed shared library runs;
#   - where the sd-event adapter is installed, examples/sd_service.c builds
#     with `pkg-config --libs ksync-sdevent`, needs libksync-sdevent.so.0,
#     and runs.
#
# Prints one "static-link: N passed, N failed" line; exits 1 if any failed.
#
#   tests/check-static-link.sh [WORKDIR]     (default: build-install)
# shellcheck disable=SC2317	# the checks are functions run through check()
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

work=$(realpath -m "${1:-build-install}")
build=$work/build
prefix=$work/prefix
out=$work/out
cc=${CC:-cc}
cxx=${CXX:-c++}
passed=0
failed=0

# check NAME COMMAND...: run it, count it, show its output if it failed.
check() {
	local name=$1 log
	shift
	log=$(mktemp)
	if "$@" >"$log" 2>&1; then
		echo "ok      $name"
		passed=$((passed + 1))
	else
		echo "FAILED  $name"
		tail -25 "$log" | sed 's/^/        /'
		failed=$((failed + 1))
	fi
	rm -f "$log"
}

finish() {
	echo "static-link: $passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit $?
}

install_ksync() {
	rm -rf "$prefix" "$out"
	mkdir -p "$out"
	if [ -f "$build/build.ninja" ]; then
		meson setup --reconfigure "$build" -Dprefix="$prefix" || return 1
	else
		meson setup "$build" -Dprefix="$prefix" -Dtests=false -Dexamples=false \
			-Dbenchmarks=false || return 1
	fi
	ninja -C "$build" -j2 && meson install -C "$build" --no-rebuild
}

check "meson install into $prefix" install_ksync
libdir=$(find "$prefix" -name ksync.pc -printf '%h\n' 2>/dev/null | head -1)
libdir=${libdir%/pkgconfig}
if [ -z "$libdir" ]; then
	echo "FAILED  no ksync.pc installed under $prefix"
	failed=$((failed + 1))
	finish
fi
export PKG_CONFIG_PATH=$libdir/pkgconfig
has_sdevent=0
[ -f "$libdir/pkgconfig/ksync-sdevent.pc" ] && has_sdevent=1

installed() {
	local f
	for f in "$libdir/libksync.a" "$libdir/libksync.so.0" "$prefix/include/ksync/ksync.h" \
		"$prefix/include/ksync/word.h"; do
		[ -e "$f" ] || { echo "missing: $f"; return 1; }
	done
	if [ "$has_sdevent" = 1 ]; then
		for f in "$libdir/libksync-sdevent.so.0" "$prefix/include/ksync/sdevent.h"; do
			[ -e "$f" ] || { echo "missing: $f"; return 1; }
		done
	fi
}
check "libraries, headers and .pc files are installed" installed

no_systemd() {
	local libs
	libs=$(pkg-config --static --libs ksync) || return 1
	echo "pkg-config --static --libs ksync: $libs"
	! grep -q systemd <<<"$libs"
}
check "pkg-config --static --libs ksync names no systemd" no_systemd

needs_only() {
	local lib=$1 n
	shift
	readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' >"$out/needed" || return 1
	cat "$out/needed"
	[ -s "$out/needed" ] || return 1
	while read -r n; do
		case " $* " in *" ${n%%.so*} "*) ;; *) echo "unexpected: $n"; return 1 ;; esac
	done <"$out/needed"
}
check "installed libksync.so.0 needs only liburing and libc" \
	needs_only "$libdir/libksync.so.0" liburing libc

headers_alone() {
	local flags h
	flags=$(pkg-config --cflags ksync) || return 1
	[ "$has_sdevent" = 1 ] && flags=$(pkg-config --cflags ksync-sdevent)
	for h in "$prefix"/include/ksync/*.h; do
		h=ksync/$(basename "$h")
		# shellcheck disable=SC2086
		"$cc" -std=c11 -pedantic -Werror -Wall -Wextra $flags -include "$h" \
			-x c -c tests/headers/check.c -o "$out/header.o" || { echo "C11: $h"; return 1; }
		if command -v "$cxx" >/dev/null; then
			# shellcheck disable=SC2086
			"$cxx" -std=c++11 -pedantic -Werror -Wall -Wextra $flags -include "$h" \
				-x c++ -c tests/headers/check.c -o "$out/header.o" ||
				{ echo "C++11: $h"; return 1; }
		fi
	done
}
check "every installed header compiles alone (C11, C++11)" headers_alone

static_example() {
	local bin=$out/shared_lock-static
	# shellcheck disable=SC2046
	"$cc" -O2 $(pkg-config --cflags ksync) examples/shared_lock.c -o "$bin" \
		-static $(pkg-config --static --libs ksync) || return 1
	if readelf -l "$bin" | grep -q INTERP || readelf -d "$bin" | grep -q NEEDED; then
		echo "$bin is not a static executable"
		return 1
	fi
	"$bin"
}
check "examples/shared_lock.c linked -static from the installed ksync.pc runs" static_example

shared_example() {
	local bin=$out/shared_lock
	# shellcheck disable=SC2046
	"$cc" -O2 $(pkg-config --cflags ksync) examples/shared_lock.c -o "$bin" \
		$(pkg-config --libs ksync) -Wl,-rpath,"$libdir" || return 1
	readelf -d "$bin" | grep -q 'NEEDED.*\[libksync\.so\.0\]' || return 1
	"$bin"
}
check "examples/shared_lock.c linked against the installed libksync.so.0 runs" shared_example

sdevent_example() {
	local bin=$out/sd_service
	# shellcheck disable=SC2046
	"$cc" -O2 $(pkg-config --cflags ksync-sdevent) examples/sd_service.c -o "$bin" \
		$(pkg-config --libs ksync-sdevent) -Wl,-rpath,"$libdir" || return 1
	readelf -d "$bin" | grep -q 'NEEDED.*\[libksync-sdevent\.so\.0\]' || return 1
	"$bin"
}
if [ "$has_sdevent" = 1 ]; then
	check "examples/sd_service.c built from the installed ksync-sdevent.pc runs" sdevent_example
else
	echo "skip    sd-event adapter not installed (no libsystemd)"
fi

finish
