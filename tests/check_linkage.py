#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A library needs only what it says it needs, at run time and at link time.

    check_linkage.py --lib LIB.so --allow PREFIX [--allow PREFIX]...
                     [--pc NAME --pc-dir DIR [--forbid WORD]...]

  - every DT_NEEDED entry of LIB.so starts with one of the allowed prefixes
    (libksync.so.0: liburing and libc, nothing else);
  - with --pc, `pkg-config --static --libs NAME` and `pkg-config --cflags
    NAME`, resolved from the generated .pc files in DIR, mention none of the
    forbidden words (a static link of libksync must not ask for systemd).
"""
import argparse
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycheck import Checks  # noqa: E402


def needed(lib):
    out = subprocess.run(["readelf", "-d", "-W", lib], capture_output=True, text=True,
                         check=True).stdout
    libs = []
    for line in out.splitlines():
        if "(NEEDED)" in line and "[" in line:
            libs.append(line[line.index("[") + 1:line.rindex("]")])
    return libs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--allow", action="append", required=True)
    ap.add_argument("--pc")
    ap.add_argument("--pc-dir")
    ap.add_argument("--forbid", action="append", default=[])
    a = ap.parse_args()

    lib = os.path.basename(a.lib)
    checks = Checks(f"linkage of {lib}")
    with checks.case(f"{lib} needs only {', '.join(a.allow)}") as c:
        libs = needed(a.lib)
        print(f"  NEEDED: {' '.join(libs)}")
        if not libs:
            c.fail("no DT_NEEDED entry at all (not a dynamic library?)")
        for n in libs:
            if not any(n.startswith(p) for p in a.allow):
                c.fail(f"{lib} needs {n}")
    if a.pc:
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.abspath(a.pc_dir))
        for what in (["--static", "--libs"], ["--cflags"]):
            cmd = ["pkg-config"] + what + [a.pc]
            with checks.case(" ".join(cmd) + " asks for no " + "/".join(a.forbid)) as c:
                r = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if r.returncode:
                    c.stop(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
                print(f"  {r.stdout.strip()}")
                for w in a.forbid:
                    if w in r.stdout:
                        c.fail(f"{' '.join(cmd)} mentions {w}: {r.stdout.strip()}")
    return checks.done()


if __name__ == "__main__":
    sys.exit(main())
