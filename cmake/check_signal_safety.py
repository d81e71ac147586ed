#!/usr/bin/env python3
"""Checks that crash-path object files call only async-signal-safe code.

usage: check_signal_safety.py --nm NM --allowlist FILE [--tsan] OBJECT...

For every OBJECT, lists the symbols it leaves undefined (`nm -u`), drops
those that one of the OBJECTs defines (the crash path calling itself), and
reports every remaining symbol that the allowlist does not name: one line
per offending symbol, naming the object. Exit status: 0 clean, 1 at least
one symbol not allowed, 2 usage error (bad arguments, unreadable files, a
malformed allowlist, nm failing).

Allowlist format (crashdump/capture/signal_safe_allowlist.txt): one symbol
per line, followed by `# reason` (why calling it from a signal handler is
safe). Blank lines and lines that start with `#` are comments. Tags in
brackets may precede the symbol:
  [tsan]           honoured only with --tsan: ThreadSanitizer's
                   instrumentation adds calls into its runtime to every
                   function, and those are allowed in TSan builds only;
  [registry.cc.o]  (any other tag) allowed only in the object of that file
                   name, for code that shares an object with the crash path
                   but is never reached from it.
Symbols are the raw (mangled) names that `nm` prints; the messages also
show the demangled name.
"""

import argparse
import os
import subprocess
import sys

USAGE_ERROR = 2
VIOLATION = 1


class UsageError(Exception):
    pass


def parse_allowlist(path, tsan):
    """Returns {symbol: set of object names, or None for any object}.

    Raises UsageError when the file is unreadable or malformed.
    """
    allowed = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"cannot read allowlist {path}: {e.strerror}")
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry, sep, reason = line.partition("#")
        if not sep or not reason.strip():
            raise UsageError(f"{path}:{number}: entry without a '# reason'")
        fields = entry.split()
        only_tsan = False
        scopes = set()
        while fields and fields[0].startswith("[") and fields[0].endswith("]"):
            tag = fields.pop(0)[1:-1]
            if not tag:
                raise UsageError(f"{path}:{number}: empty tag []")
            if tag == "tsan":
                only_tsan = True
            else:
                scopes.add(tag)
        if len(fields) != 1:
            raise UsageError(
                f"{path}:{number}: expected [tags] then one symbol, then "
                f"'# reason'")
        if only_tsan and not tsan:
            continue
        symbol = fields[0]
        if not scopes:
            allowed[symbol] = None
        elif symbol not in allowed or allowed[symbol] is not None:
            allowed[symbol] = allowed.get(symbol) or set()
            allowed[symbol] |= scopes
    return allowed


def is_allowed(allowed, symbol, obj):
    if symbol not in allowed:
        return False
    scopes = allowed[symbol]
    return scopes is None or os.path.basename(obj) in scopes


def run_nm(nm, args, obj):
    """Runs nm and returns its output lines; raises UsageError on failure."""
    try:
        proc = subprocess.run([nm] + args + [obj], capture_output=True,
                              text=True, check=False)
    except OSError as e:
        raise UsageError(f"cannot run {nm}: {e.strerror}")
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()
        raise UsageError(f"{nm} {' '.join(args)} {obj} failed: "
                         f"{detail[0] if detail else proc.returncode}")
    return proc.stdout.splitlines()


def names(lines):
    # nm -p prints "   U name" for undefined and "addr T name" for defined
    # symbols: the name is the last field.
    return [line.split()[-1] for line in lines if line.strip()]


def undefined_symbols(nm, obj):
    """Returns [(mangled, demangled)] in symbol-table order."""
    raw = names(run_nm(nm, ["-u", "-p"], obj))
    shown = [line.strip().split(None, 1)[-1]
             for line in run_nm(nm, ["-u", "-p", "-C"], obj) if line.strip()]
    if len(shown) != len(raw):
        shown = raw
    return list(zip(raw, shown))


def defined_symbols(nm, obj):
    return set(names(run_nm(nm, ["-g", "-p", "--defined-only"], obj)))


def shown_path(path):
    """The path relative to the working directory (the build tree) if it
    lies below it, else normalised."""
    rel = os.path.relpath(path)
    return os.path.normpath(path) if rel.startswith("..") else rel


def main(argv):
    parser = argparse.ArgumentParser(
        description="Fail when crash-path objects call anything outside the "
        "async-signal-safe allowlist.")
    parser.add_argument("--nm", required=True, help="path of nm")
    parser.add_argument("--allowlist", required=True,
                        help="one symbol per line with a '# reason'")
    parser.add_argument("--tsan", action="store_true",
                        help="also allow entries tagged [tsan]")
    parser.add_argument("objects", nargs="+", metavar="OBJECT")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return USAGE_ERROR if e.code else 0
    try:
        for obj in args.objects:
            if not os.path.isfile(obj):
                raise UsageError(f"no such object file: {obj}")
        allowed = parse_allowlist(args.allowlist, args.tsan)
        defined = set()
        undefined = {}
        for obj in args.objects:
            defined |= defined_symbols(args.nm, obj)
            undefined[obj] = undefined_symbols(args.nm, obj)
    except UsageError as e:
        print(f"check_signal_safety: {e}", file=sys.stderr)
        return USAGE_ERROR

    allowlist_name = shown_path(args.allowlist)
    bad = 0
    for obj in args.objects:
        for mangled, demangled in undefined[obj]:
            if mangled in defined or is_allowed(allowed, mangled, obj):
                continue
            bad += 1
            what = mangled if demangled == mangled else \
                f"{mangled} ({demangled})"
            print(f"check_signal_safety: {shown_path(obj)}: uses {what}, "
                  f"which is not in {allowlist_name}", file=sys.stderr)
    return VIOLATION if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
