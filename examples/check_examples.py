#!/usr/bin/env python3
"""Offline checks of the nightly examples (no cluster, no CI service).

- every file parses as YAML (python3-yaml) and passes yamllint when it is
  installed;
- the Kubernetes Job is an Indexed Job whose completions, parallelism and
  SIGRACE_SHARD_COUNT agree, and the merge Job names exactly the reports
  of indexes 0..N-1;
- the workflow's matrix lists shards 0..N-1, its stress step passes
  --shard matrix/N with N = SHARDS, and its merge job needs the shards and
  names exactly their N reports;
- every sigrace flag the examples use is one `sigrace SUBCOMMAND --help`
  lists (so a renamed flag breaks this check, not the nightly).

Usage: check_examples.py SIGRACE_BIN EXAMPLES_DIR
"""

import os
import re
import shutil
import subprocess
import sys

import yaml


def fail(msg):
    print("check_examples: " + msg, file=sys.stderr)
    sys.exit(1)


def sigrace_commands(text):
    """Each `sigrace SUB ...` command line in a (folded) shell string."""
    out = []
    for part in re.split(r"[;&|]+", text):
        words = part.split()
        for i, w in enumerate(words):
            if (w.endswith("sigrace") and i + 1 < len(words) and
                    re.fullmatch(r"[a-z-]+", words[i + 1])):
                out.append(words[i + 1:])
                break
    return out


def check_flags(binary, commands):
    helps = {}
    for words in commands:
        sub = words[0]
        if sub not in helps:
            helps[sub] = subprocess.run(
                [binary, sub, "--help"], capture_output=True, text=True,
                check=False).stdout
        for w in words[1:]:
            if w.startswith("--"):
                flag = w.split("=")[0]
                if flag not in helps[sub]:
                    fail("sigrace %s has no flag %s" % (sub, flag))


def check_kubernetes(d, binary):
    with open(os.path.join(d, "sigrace-nightly.yaml")) as f:
        job = yaml.safe_load(f)
    with open(os.path.join(d, "sigrace-nightly-merge.yaml")) as f:
        merge = yaml.safe_load(f)
    spec = job["spec"]
    if job["kind"] != "Job" or spec.get("completionMode") != "Indexed":
        fail("kubernetes: not an Indexed Job")
    n = spec["completions"]
    if spec.get("parallelism") != n:
        fail("kubernetes: parallelism %s != completions %s"
             % (spec.get("parallelism"), n))
    c = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in c.get("env", [])}
    if env.get("SIGRACE_SHARD_COUNT") != str(n):
        fail("kubernetes: SIGRACE_SHARD_COUNT %s != completions %s"
             % (env.get("SIGRACE_SHARD_COUNT"), n))
    shard_cmd = " ".join(c["command"])
    if "$JOB_COMPLETION_INDEX.json" not in shard_cmd:
        fail("kubernetes: shard reports are not named by index")
    mc = " ".join(merge["spec"]["template"]["spec"]["containers"][0]
                  ["command"])
    want = ["/reports/shard-%d.json" % i for i in range(n)]
    got = re.findall(r"/reports/shard-\d+\.json", mc)
    if got != want:
        fail("kubernetes: merge names %s, want %s" % (got, want))
    check_flags(binary, sigrace_commands(shard_cmd) + sigrace_commands(mc))
    return n


def check_workflow(d, binary):
    with open(os.path.join(d, "sigrace-nightly.yml")) as f:
        wf = yaml.safe_load(f)
    n = int(wf["env"]["SHARDS"])
    jobs = wf["jobs"]
    matrix = jobs["shard"]["strategy"]["matrix"]["shard"]
    if matrix != list(range(n)):
        fail("workflow: matrix %s, want 0..%d" % (matrix, n - 1))
    runs = [s.get("run", "") for s in jobs["shard"]["steps"]]
    stress = [r for r in runs if "sigrace stress" in r]
    if len(stress) != 1 or \
            "--shard ${{ matrix.shard }}/$SHARDS" not in stress[0]:
        fail("workflow: the stress step does not pass --shard matrix/N")
    if jobs["merge"].get("needs") != "shard":
        fail("workflow: merge does not wait for the shards")
    mruns = " ; ".join(s.get("run", "") for s in jobs["merge"]["steps"])
    want = ["shards/shard-%d.json" % i for i in range(n)]
    got = re.findall(r"shards/shard-\d+\.json", mruns)
    if got != want:
        fail("workflow: merge names %s, want %s" % (got, want))
    cmds = sigrace_commands(stress[0]) + sigrace_commands(mruns)
    # ${{ ... }} expressions are one word for the flag check.
    check_flags(binary, cmds)
    return n


def main():
    if len(sys.argv) != 3:
        fail("usage: check_examples.py SIGRACE_BIN EXAMPLES_DIR")
    binary, root = sys.argv[1], sys.argv[2]
    files = []
    for sub in ("kubernetes", "github-actions"):
        for name in sorted(os.listdir(os.path.join(root, sub))):
            files.append(os.path.join(root, sub, name))
    for p in files:
        with open(p) as f:
            list(yaml.safe_load_all(f))
    lint = shutil.which("yamllint")
    if lint:
        r = subprocess.run([lint, "-d", "relaxed", "-f", "parsable"] + files,
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            fail("yamllint:\n" + r.stdout)
    k = check_kubernetes(os.path.join(root, "kubernetes"), binary)
    w = check_workflow(os.path.join(root, "github-actions"), binary)
    print("check_examples: %d files ok (yamllint %s); kubernetes %d shards, "
          "workflow %d shards" % (len(files), "ran" if lint else "absent",
                                  k, w))


if __name__ == "__main__":
    main()
