#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every exported function has a reference page, and every page is sound.

    check_man.py --man-dir DIR --map LIB.map [--map ...] [--installed PAGE]...
                 [--groff GROFF]

A page is man/NAME.3: either a page (man(7) roff) or a one-line link to its
family's page (".so man3/FAMILY.3"). Checks:
  - every function a version script exports has its page (the message names
    the file to add);
  - every link points at a page that exists and lists the function in its
    NAME section;
  - no ksync_*.3 page is left for a function nobody exports;
  - every page in the directory is installed (listed in man/meson.build);
  - with groff, every page formats without a warning (groff -man -ww).
"""
import argparse
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycheck import Checks  # noqa: E402


def exported(map_path):
    """The names a version script lists under global:."""
    text = re.sub(r"/\*.*?\*/", "", open(map_path).read(), flags=re.S)
    names = []
    for block in re.findall(r"global:(.*?)(?:local:|\})", text, flags=re.S):
        names += re.findall(r"\b([A-Za-z_]\w*)\s*;", block)
    return names


def so_target(path):
    """The page a link names, or None for a page of its own."""
    lines = [l for l in open(path).read().splitlines() if l.strip()]
    if len(lines) == 1 and lines[0].startswith(".so "):
        return lines[0][4:].strip()
    return None


def name_section(path):
    """The function names in a page's NAME section."""
    m = re.search(r"^\.SH NAME\n(.*?)^\.SH", open(path).read(), flags=re.S | re.M)
    if not m:
        return set()
    return set(re.findall(r"\b(ksync\w*)", m.group(1).split("\\-")[0]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--man-dir", required=True)
    ap.add_argument("--map", action="append", default=[])
    ap.add_argument("--installed", action="append", default=[])
    ap.add_argument("--groff")
    a = ap.parse_args()

    checks = Checks("man")
    names = []
    for m in a.map:
        names += exported(m)
    pages = sorted(f for f in os.listdir(a.man_dir) if re.match(r".*\.[1-8]$", f))
    page_path = lambda p: os.path.join(a.man_dir, p)  # noqa: E731

    with checks.case("every exported function has a page") as c:
        missing = [n for n in names if n + ".3" not in pages]
        for n in missing:
            c.fail(f"{n} has no man page: add man/{n}.3 (a page, or the line "
                   f"'.so man3/FAMILY.3' to a family page that lists {n} under NAME) "
                   f"to man/ and to man/meson.build")

    with checks.case("every link points at a page that names the function") as c:
        for p in pages:
            t = so_target(page_path(p))
            if t is None:
                continue
            target = os.path.basename(t)
            if target not in pages or so_target(page_path(target)) is not None:
                c.fail(f"man/{p}: '.so {t}': no such page in man/")
            elif p[:-2] not in name_section(page_path(target)):
                c.fail(f"man/{p}: man/{target} does not list {p[:-2]} under NAME")

    with checks.case("no page for a function that is not exported") as c:
        for p in pages:
            if p.endswith(".3") and p[:-2] not in names:
                c.fail(f"man/{p}: {p[:-2]} is not exported by any version script "
                       f"(removed or renamed?)")

    with checks.case("every page is installed") as c:
        installed = {os.path.basename(i) for i in a.installed}
        for p in pages:
            if p not in installed:
                c.fail(f"man/{p} is not installed: list it in man/meson.build")

    with checks.case("every page formats without warnings") as c:
        if not a.groff:
            print("groff not found: pages not formatted", flush=True)
        else:
            for p in pages:
                if so_target(page_path(p)) is not None:
                    continue
                r = subprocess.run([a.groff, "-man", "-Tutf8", "-ww", "-z", page_path(p)],
                                   capture_output=True, text=True)
                if r.returncode or r.stderr.strip():
                    c.fail(f"man/{p}: {r.stderr.strip() or 'groff failed'}")

    sys.exit(checks.done())


if __name__ == "__main__":
    main()
