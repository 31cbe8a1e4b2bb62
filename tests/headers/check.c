/* SPDX-License-Identifier: MIT */
/*
 * Compiled once per public header (given with -include, see meson.build in
 * this directory), as strict C11 and as C++11. The header is all there is:
 * no feature macro, no other include before it. This line only keeps the
 * translation unit from being empty for headers that hold macros alone.
 */
typedef int ksync_header_check;
