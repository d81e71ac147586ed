#!/usr/bin/env python3
"""Checks the folder rules of docs/design.md on every #include in the tree.

Usage: check_layering.py SOURCE_DIR
Prints one line per violation (file:line: rule) and exits 1 if any, 0 if
none, 2 on a usage error. Tests (*_test.cc) and fuzz targets may also use
testing/ and any folder below their own in the pipeline; the library code
may not.
"""
import os
import re
import sys

# folder -> project folders its non-test code may include (besides itself).
ALLOWED = {
    "base": set(),
    "crashdump/registry": set(),
    "crashdump/format": {"base"},
    "crashdump/capture": {"base", "crashdump/registry", "crashdump/format"},
    "crashdump/oracle": {"base", "crashdump/format"},
    "crashdump/egress": {"base", "crashdump/format", "crashdump/oracle"},
    "signer": {"base", "crashdump/registry"},
    "testing": None,  # test-only: anything
    "stress": {"base", "crashdump/registry", "crashdump/format",
               "crashdump/capture", "crashdump/oracle", "crashdump/egress",
               "signer", "tsan"},
    "tools": {"base", "crashdump/registry", "crashdump/format",
              "crashdump/capture", "crashdump/oracle", "crashdump/egress",
              "signer", "stress", "tsan"},
    "tsan": {"base", "crashdump/registry", "crashdump/format",
             "crashdump/capture", "crashdump/oracle", "signer", "stress"},
    "bench": None,  # benchmarks measure anything
}
# Tests may add these to their folder's own list.
TEST_EXTRA = {"testing"}
# Third-party headers with a folder rule: header prefix -> folders allowed.
THIRD_PARTY = {
    "CLI/": {"tools"},
    "openssl/": {"signer", "crashdump/oracle", "crashdump/egress", "stress",
                 "tools", "tsan", "bench", "testing"},
    "nlohmann/": {"signer", "stress", "tools", "tsan", "bench", "testing"},
}
# The crash path may not include these at all (not async-signal-safe).
CAPTURE_BANNED = ("cstdio", "stdio.h", "iostream", "fstream", "sstream",
                  "mutex", "thread", "condition_variable", "regex")

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def folder_of(rel):
    parts = rel.split("/")
    if parts[0] == "crashdump" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def is_test(rel):
    base = os.path.basename(rel)
    return (base.endswith("_test.cc") or "/fuzz/" in rel
            or base.endswith("_probe.cc"))


def check(root):
    problems = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and d != "build"]
        for name in sorted(filenames):
            if not name.endswith((".cc", ".h")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            folder = folder_of(rel)
            if folder not in ALLOWED and folder != "crashdump":
                problems.append(f"{rel}:1: file in a folder with no rule "
                                f"({folder}/); add it to check_layering.py")
                continue
            allowed = ALLOWED.get(folder)
            test = is_test(rel)
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    kind, inc = m.groups()
                    for prefix, folders in THIRD_PARTY.items():
                        if inc.startswith(prefix) and folder not in folders:
                            problems.append(
                                f"{rel}:{lineno}: {folder}/ may not include "
                                f"<{inc}>")
                    if (folder == "crashdump/capture" and not test
                            and kind == "<" and inc in CAPTURE_BANNED):
                        problems.append(
                            f"{rel}:{lineno}: the crash path may not include "
                            f"<{inc}> (not async-signal-safe)")
                    if kind != '"' or allowed is None:
                        continue
                    target = folder_of(inc)
                    if target == folder:
                        continue
                    ok = target in allowed or (test and target in TEST_EXTRA)
                    if test and not ok:
                        # A test may use anything its folder may, plus the
                        # folders that produce its inputs (a real dump).
                        ok = target in ("crashdump/capture", "crashdump/format",
                                        "crashdump/registry", "base")
                    if not ok:
                        problems.append(f"{rel}:{lineno}: {folder}/ may not "
                                        f"include {inc}")
    return problems


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print("usage: check_layering.py SOURCE_DIR", file=sys.stderr)
        return 2
    problems = check(sys.argv[1])
    for p in problems:
        print(p)
    if problems:
        print(f"check_layering: {len(problems)} violation(s); the rules are "
              "in docs/design.md", file=sys.stderr)
        return 1
    print("check_layering: every #include follows the folder rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
