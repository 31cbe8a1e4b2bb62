#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A shared library exports exactly the functions its public headers declare.

    check_exports.py --lib LIB.so --map LIB.map --cc CC [--cc ARG]...
                     [-I DIR]... HEADER...

Three lists must agree:
  declared  functions declared in HEADER... (preprocessed with CC, so macros
            and #if are honoured; static inline functions do not count)
  exported  the defined dynamic symbols of LIB.so (readelf --dyn-syms)
  versioned the names the version script LIB.map lists under global:

and every export carries the version of the node that lists it. A function
missing from any list, or a symbol nobody declared (a private helper that
leaked), fails the check, which names the file to fix.
"""
import argparse
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycheck import Checks  # noqa: E402


def strip_attributes(decl):
    """Remove __attribute__((...)), __asm__(...) and the like."""
    out = []
    i = 0
    while i < len(decl):
        m = re.compile(r"\b__\w+\s*\(").match(decl, i)
        if m and (i == 0 or not (decl[i - 1].isalnum() or decl[i - 1] == "_")):
            depth = 0
            j = m.end() - 1
            while j < len(decl):
                depth += {"(": 1, ")": -1}.get(decl[j], 0)
                j += 1
                if depth == 0:
                    break
            i = j
            continue
        out.append(decl[i])
        i += 1
    return "".join(out)


def declared_functions(cc, includes, headers):
    """Names of the non-static functions declared at file scope in headers."""
    wanted = {os.path.realpath(h) for h in headers}
    src = "".join(f'#include "{os.path.abspath(h)}"\n' for h in headers)
    cmd = cc + ["-E", "-std=gnu11", "-D_GNU_SOURCE"] + [f"-I{d}" for d in includes] + ["-x", "c", "-"]
    out = subprocess.run(cmd, input=src, capture_output=True, text=True, check=True).stdout

    # Keep only the text that comes from the headers under test.
    keep = []
    current = None
    for line in out.splitlines():
        m = re.match(r'^# \d+ "([^"]+)"', line)
        if m:
            current = os.path.realpath(m.group(1)) if not m.group(1).startswith("<") else None
            continue
        if current in wanted:
            keep.append(line)
    text = "\n".join(keep)

    # Drop everything inside braces (struct/enum bodies, inline function
    # bodies), then look at each file-scope declaration.
    flat = []
    depth = 0
    for ch in text:
        if ch == "{":
            depth += 1
            flat.append(" ")
        elif ch == "}":
            depth -= 1
            flat.append(";" if depth == 0 else " ")
        elif depth == 0:
            flat.append(ch)
    names = set()
    for decl in "".join(flat).split(";"):
        decl = " ".join(decl.split())
        if not decl or "(" not in decl:
            continue
        words = decl.split()
        if words[0] == "typedef" or "static" in words:
            continue
        decl = strip_attributes(decl)
        # The declarator: the first identifier followed by '('.
        m = re.search(r"\b([A-Za-z_]\w*)\s*\(", decl)
        if m:
            names.add(m.group(1))
    return names


def exported_symbols(lib):
    """{name: (version or None, type)} of the defined dynamic symbols."""
    out = subprocess.run(["readelf", "--dyn-syms", "-W", lib], capture_output=True,
                         text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        f = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(f) < 8 or not f[0].endswith(":") or not f[0][:-1].isdigit():
            continue
        typ, bind, ndx, name = f[3], f[4], f[6], f[7]
        if ndx in ("UND",) or bind not in ("GLOBAL", "WEAK"):
            continue
        if "@" in name:
            base, _, version = name.partition("@")
            version = version.lstrip("@")
        else:
            base, version = name, None
        if typ == "OBJECT" and ndx == "ABS" and version in (None, base):
            continue  # the definition of a version node (KSYNC_0.1) itself
        syms[base] = (version, typ)
    return syms


def version_script(path):
    """{name: node} of the global names of a version script."""
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"#[^\n]*", " ", text)
    names = {}
    for node, body in re.findall(r"([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*[\w.]*\s*;", text, flags=re.S):
        scope = None
        for tok in re.split(r"[;\s]+", body):
            if not tok:
                continue
            if tok.endswith(":"):
                scope = tok[:-1]
                continue
            if scope == "global":
                names[tok] = node
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--map", required=True)
    ap.add_argument("--cc", action="append", required=True, help="compiler command, one word each")
    ap.add_argument("-I", dest="includes", action="append", default=[])
    ap.add_argument("headers", nargs="+")
    a = ap.parse_args()
    a.map = os.path.normpath(a.map)

    lib = os.path.basename(a.lib)
    checks = Checks(f"exports of {lib}")
    declared = exported = versioned = None

    with checks.case("the public headers declare functions") as c:
        declared = declared_functions(a.cc, a.includes, a.headers)
        if not declared:
            c.stop("no function declared in " + " ".join(a.headers))
    with checks.case("the library exports symbols") as c:
        exported = exported_symbols(a.lib)
        if not exported:
            c.stop(f"{a.lib} exports nothing")
        print(f"  {lib}: {len(exported)} exported symbols")
    with checks.case("the version script lists names") as c:
        versioned = version_script(a.map)
        if not versioned:
            c.stop(f"{a.map} lists no global name")
    if declared is None or exported is None or versioned is None:
        return checks.done()

    with checks.case("every declared function is exported") as c:
        for name in sorted(declared - exported.keys()):
            hint = "list it in " + a.map if name not in versioned else \
                "mark its definition KSYNC_API"
            c.fail(f"{name}: declared in a public header, not exported ({hint})")
    with checks.case("nothing undeclared is exported") as c:
        for name in sorted(exported.keys() - declared):
            c.fail(f"{name}: exported, not declared in any public header "
                   "(make it static or hidden, or declare it)")
    with checks.case("only functions are exported") as c:
        for name, (_, typ) in sorted(exported.items()):
            if typ not in ("FUNC", "IFUNC"):
                c.fail(f"{name}: exported {typ}")
    with checks.case("the version script lists exactly the declared functions") as c:
        for name in sorted(declared - versioned.keys()):
            c.fail(f"{name}: declared, missing from {a.map}")
        for name in sorted(versioned.keys() - declared):
            c.fail(f"{name}: in {a.map}, declared in no public header")
    with checks.case("every export carries its version") as c:
        for name, (version, _) in sorted(exported.items()):
            want = versioned.get(name)
            if want is not None and version != want:
                c.fail(f"{name}: version {version}, {a.map} says {want}")
    return checks.done()


if __name__ == "__main__":
    sys.exit(main())
