#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The libraries keep frame pointers (meson option frame_pointers).

    check_frame_pointers.py --cpu CPU_FAMILY LIB.a...

A profiler or BPF tool walks a user stack through the chain of saved frame
pointers. For the chain to reach the caller of a ksync function, every
function that calls another must set up its frame: `mov %rsp,%rbp` on
x86_64, `mov x29, sp` on aarch64. Without -fno-omit-frame-pointer the
compiler uses that register for data and the chain breaks.

Functions that call nothing (leaves, or functions that only tail-call) are
not checked: GCC 12 keeps no frame in them even with
-mno-omit-leaf-frame-pointer, and a sample taken inside one loses only that
function's own caller. Compiler-split `.cold` parts belong to the function
whose frame is already set up and are not checked either.
"""
import argparse
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycheck import Checks  # noqa: E402

ARCH = {
    # cpu family: (instruction that sets up the frame, a call instruction)
    "x86_64": (re.compile(r"\bmov\s+%rsp,%rbp\b"), re.compile(r"\bcall\b")),
    "aarch64": (re.compile(r"\b(mov\s+x29,\s*sp|add\s+x29,\s*sp\b)"), re.compile(r"\bblr?\b")),
}


def functions(lib):
    """{name: [instruction text]} of every function in the archive or object."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", lib], capture_output=True,
                         text=True, check=True).stdout
    funcs = {}
    body = None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if m:
            body = funcs.setdefault(m.group(1), [])
            continue
        if body is not None and "\t" in line:
            body.append(line.split("\t", 1)[1])
    return funcs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", required=True)
    ap.add_argument("libs", nargs="+")
    a = ap.parse_args()

    checks = Checks("frame pointers")
    if a.cpu not in ARCH:
        print(f"[  SKIPPED ] frame-pointers-on-{a.cpu}")
        return checks.done()
    sets_up, calls = ARCH[a.cpu]
    for lib in a.libs:
        name = os.path.basename(lib)
        with checks.case(f"{name}: every function that calls another keeps a frame pointer") as c:
            funcs = functions(lib)
            if not funcs:
                c.stop(f"no function found in {lib}")
            checked = 0
            for fn, body in sorted(funcs.items()):
                if ".cold" in fn or not any(calls.search(i) for i in body):
                    continue
                checked += 1
                if not any(sets_up.search(i) for i in body):
                    c.fail(f"{fn}: calls out without setting up a frame pointer")
            print(f"  {name}: {checked} of {len(funcs)} functions call out")
    return checks.done()


if __name__ == "__main__":
    sys.exit(main())
