# SPDX-License-Identifier: MIT
"""Report build checks in cmocka's format, so ./dev counts them as tests.

    checks = Checks("exports")
    with checks.case("no private symbol is exported") as c:
        if leaked:
            c.fail("exported but not declared: " + ", ".join(leaked))
    sys.exit(checks.done())
"""
import sys


class CaseFailed(Exception):
    pass


class Case:
    def __init__(self, name):
        self.name = name
        self.problems = []

    def fail(self, msg):
        """Record a problem; the case fails, and goes on checking."""
        self.problems.append(msg)

    def stop(self, msg):
        """Record a problem and end the case at once."""
        self.problems.append(msg)
        raise CaseFailed()


class Checks:
    def __init__(self, group):
        self.group = group
        self.passed = []
        self.failed = []
        print(f"[==========] {group}: running checks.", flush=True)

    def case(self, name):
        checks = self

        class _Ctx:
            def __enter__(self):
                print(f"[ RUN      ] {name}", flush=True)
                self.c = Case(name)
                return self.c

            def __exit__(self, typ, value, tb):
                if typ is not None and not issubclass(typ, CaseFailed):
                    self.c.problems.append(f"{typ.__name__}: {value}")
                for p in self.c.problems:
                    print(f"  {p}", file=sys.stderr, flush=True)
                if self.c.problems:
                    print(f"[  FAILED  ] {name}", flush=True)
                    checks.failed.append(name)
                else:
                    print(f"[       OK ] {name}", flush=True)
                    checks.passed.append(name)
                return True

        return _Ctx()

    def done(self):
        """Print the summary; returns the exit status."""
        total = len(self.passed) + len(self.failed)
        print(f"[==========] {self.group}: {total} check(s) run.")
        print(f"[  PASSED  ] {len(self.passed)} test(s).")
        if self.failed:
            print(f"[  FAILED  ] {len(self.failed)} test(s), listed below:")
            for name in self.failed:
                print(f"[  FAILED  ] {name}")
            return 1
        return 0
