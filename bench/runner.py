"""runner — libactor's benchmark: every row beside its reference, in one run.

Started by bench/run (inside the dev root, after the build).  Each row is a
small declared entry (ROWS below): its name, the backend and kind of actor,
the command that takes one sample, its reference row, and the target it is
held to (issue 11, item 5).  A trial runs every row once; rows that share a
reference run next to it, ref first on even trials and last on odd ones, so
that a drift in the machine's load hits both alike.  Over the trials each
row gets a median, p10 and p90; a row with a reference gets ratio = its
median / the reference's median from the same run; a row with a target gets
met = true/false.  A row whose feature is missing here (the forkserver
backend, the warm pool, the Python host package) is reported with
"skipped": "<why>" — never as met — as the measuring program detects it at
run time.

The profile rows (instructions and syscalls per call round trip, host and
child) run under valgrind's callgrind and strace: each takes the same loop
at two lengths, n1 and n2 calls, and divides the difference of the counts
by n2 - n1, so that start-up and shut-down cancel out.

Output (--out, default bench/results/): latest.jsonl (one row per line),
latest.md (the table), latest.png (the chart), latest-machine.json (the
machine and its load before and after)."""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIRED = ("name", "backend", "unit", "median", "p10", "p90", "n")


class Row:
    """One line of the results.

    cmd: ("c", measure, {args}) runs actorbench, ("py", measure, {args}) runs
    bench/pyref.py; n_full/n_quick: the operations per sample.  field: the
    key of the sample's JSON taken (rows sharing a command share its runs).
    target: the item-5 text; met(row, rows): whether it holds."""

    def __init__(self, name, backend, unit, cmd, n_full, n_quick=None,
                 ref=None, target=None, met=None, field="value", group=None,
                 kind=None, place=None, note=None, better="lower"):
        self.name, self.backend, self.unit, self.cmd = name, backend, unit, cmd
        self.n_full = n_full
        self.n_quick = n_quick if n_quick is not None else max(1, n_full // 50)
        self.ref, self.target, self.met, self.field = ref, target, met, field
        self.group, self.kind, self.place, self.note = group, kind, place, note
        self.better = better


def C(measure, **kw):
    return ("c", measure, kw)


def PY(measure, **kw):
    return ("py", measure, kw)


# A target's check returns the figure relative to its bound: <= 1 is met.
# (It goes into the row as "vs_target", and the chart draws it.)

def ratio_le(limit):
    return lambda r: r["ratio"] / limit


def le(limit):
    return lambda r: r["median"] / limit


def ge(limit):
    return lambda r: limit / r["median"]


def calls_le(limit):
    # syscalls: a count per call, to a tenth (strace's difference is 3.004)
    return lambda r: round(r["median"], 1) / limit


def fs_py_met(r):
    # <= 1 ms, and >= 2.2x faster than multiprocessing's forkserver
    return max(r["median"] / 1000, r["ratio"] * 2.2)


RTT_SOCK = "<= 1.2x the raw socketpair ping-pong on the same placement"
RTT_SUBINT_ONE = "<= 2x the raw thread ping-pong on one core"
RTT_SUBINT_CROSS = "<= 5 us across cores"


def rtt_rows(place):
    """The call round trips on one placement, with their references."""
    P = {"one": "one core", "cross": "across cores"}[place]
    g = "rtt-" + place
    n = 20000 if place == "one" else 4000
    sock = f"ref: socketpair ping-pong, processes, {P}"
    thr = f"ref: socketpair ping-pong, threads, {P}"
    rows = [
        Row(sock, "reference", "us", C("ref.pp.proc", place=place), n, group=g,
            place=place),
        Row(thr, "reference", "us", C("ref.pp.thread", place=place), n,
            group=g, place=place),
        Row(f"ref: multiprocessing.Pipe round trip, {P}", "reference", "us",
            PY("mp.pipe", place=place), n // 4, group=g, place=place),
    ]
    for kind, label, backend in (("c", "C actor", "subproc"),
                                 ("py", "Python actor", "subproc"),
                                 ("fs-c", "C entry", "forkserver"),
                                 ("fs-py", "Python actor (main interpreter)",
                                  "forkserver")):
        rows.append(Row(f"call round trip: {backend}, {label}, {P}", backend,
                        "us", C("lib.rtt", kind=kind, place=place), n, ref=sock,
                        target=RTT_SOCK, met=ratio_le(1.2), group=g, kind=kind,
                        place=place))
    for kind, label in (("subint", "isolated"), ("subint-legacy", "legacy")):
        if place == "one":
            t, m = RTT_SUBINT_ONE, ratio_le(2.0)
        else:
            t, m = RTT_SUBINT_CROSS, le(5.0)
        rows.append(Row(f"call round trip: subint, {label}, {P}", "subint",
                        "us", C("lib.rtt", kind=kind, place=place), n, ref=thr,
                        target=t, met=m, group=g, kind=kind, place=place))
    rows.append(Row(f"call round trip: Python host -> subint, {P}",
                    "python-host", "us", PY("host.rtt", kind="subint",
                                            place=place), n, ref=thr,
                    target="<= 10 us" if place == "cross" else None,
                    met=le(10.0) if place == "cross" else None, group=g,
                    kind="subint", place=place))
    rows.append(Row(f"call round trip: Python host -> Python subproc, {P}",
                    "python-host", "us", PY("host.rtt", kind="py", place=place),
                    n, ref=f"call round trip: subproc, Python actor, {P}",
                    group=g, kind="py", place=place,
                    note="ref: the C host's figure (issue 10: within 2x)"))
    return rows


ROWS = [
    # ---- spawn -> first reply -> exit ---------------------------------------
    Row("ref: posix_spawn + wait of /bin/true", "reference", "us",
        C("ref.posix_spawn"), 200, 5, group="spawn-c"),
    Row("ref: fork + _exit + wait", "reference", "us", C("ref.fork"), 500, 10,
        group="spawn-c"),
    Row("spawn -> first reply -> exit: subproc, C actor", "subproc", "us",
        C("lib.spawn", kind="c"), 100, 3,
        ref="ref: posix_spawn + wait of /bin/true",
        target="<= 1.5x posix_spawn+wait of /bin/true", met=ratio_le(1.5),
        group="spawn-c", kind="c"),
    Row("spawn -> first reply -> exit: forkserver, C entry", "forkserver", "us",
        C("lib.spawn", kind="fs-c"), 100, 3, ref="ref: fork + _exit + wait",
        target="<= 0.3 ms", met=le(300), group="spawn-c", kind="fs-c"),
    Row("ref: Py_Initialize (fresh process)", "reference", "us",
        C("ref.py_init"), 1, 1, group="spawn-py"),
    Row("ref: create + end a sub-interpreter, isolated", "reference", "us",
        C("ref.subint", mode="isolated"), 10, 1, group="spawn-py"),
    Row("ref: create + end a sub-interpreter, legacy", "reference", "us",
        C("ref.subint", mode="legacy"), 10, 1, group="spawn-py"),
    Row("ref: multiprocessing start+join, fork", "reference", "us",
        PY("mp.start", method="fork"), 20, 1, group="spawn-py"),
    Row("ref: multiprocessing start+join, forkserver", "reference", "us",
        PY("mp.start", method="forkserver"), 20, 1, group="spawn-py"),
    Row("ref: multiprocessing start+join, spawn", "reference", "us",
        PY("mp.start", method="spawn"), 4, 1, group="spawn-py"),
    Row("ref: concurrent.interpreters create+exec+close", "reference", "us",
        PY("ci.create"), 10, 1, group="spawn-py"),
    Row("spawn -> first reply -> exit: subproc, Python actor", "subproc", "us",
        C("lib.spawn", kind="py"), 10, 1,
        ref="ref: multiprocessing start+join, spawn", group="spawn-py",
        kind="py"),
    Row("spawn -> first reply -> exit: subint, isolated", "subint", "us",
        C("lib.spawn", kind="subint"), 10, 1,
        ref="ref: create + end a sub-interpreter, isolated", group="spawn-py",
        kind="subint"),
    Row("spawn -> first reply -> exit: subint, legacy", "subint", "us",
        C("lib.spawn", kind="subint-legacy"), 10, 1,
        ref="ref: create + end a sub-interpreter, legacy", group="spawn-py",
        kind="subint-legacy"),
    Row("spawn -> first reply: subint, isolated (cold)", "subint", "us",
        C("lib.spawn", kind="subint", until="reply"), 10, 1,
        ref="ref: create + end a sub-interpreter, isolated", group="spawn-py",
        kind="subint"),
    Row("spawn -> first reply: subint, isolated, warm pool", "subint", "us",
        C("lib.spawn", kind="pool", until="reply"), 10, 1,
        ref="ref: create + end a sub-interpreter, isolated",
        target="<= 0.5 ms", met=le(500), group="spawn-py", kind="pool",
        note="pool of 4, refilled between spawns (untimed)"),
    Row("spawn -> first reply: subint, isolated, warm pool, entry preloaded",
        "subint", "us", C("lib.spawn", kind="pool-preload", until="reply"),
        10, 1, ref="ref: create + end a sub-interpreter, isolated",
        group="spawn-py", kind="pool-preload",
        note="pool of 4 whose parked interpreters imported the entry module "
        "(benchworker) ahead of the actor: actor_subint_pool_preload; the "
        "import is not in the figure"),
    Row("spawn -> first reply -> exit: forkserver, Python (main interpreter)",
        "forkserver", "us", C("lib.spawn", kind="fs-py"), 20, 1,
        ref="ref: multiprocessing start+join, forkserver",
        target="<= 1 ms, and >= 2.2x faster than multiprocessing's "
        "forkserver start+join", met=fs_py_met, group="spawn-py",
        kind="fs-py"),
    Row("spawn -> first reply -> exit: forkserver, Python in a fresh "
        "isolated sub-interpreter", "forkserver", "us",
        C("lib.spawn", kind="fs-subint"), 10, 1,
        ref="ref: create + end a sub-interpreter, isolated", group="spawn-py",
        kind="fs-subint",
        note="the child creates the interpreter: the server cannot hold one "
        "ready (CPython gh-139759)"),
    Row("spawn -> first reply -> exit: Python host -> subint", "python-host",
        "us", PY("host.spawn", kind="subint"), 10, 1,
        ref="ref: concurrent.interpreters create+exec+close", group="spawn-py",
        kind="subint"),
    # ---- round trips -------------------------------------------------------------
    *rtt_rows("one"),
    *rtt_rows("cross"),
    Row("ref: concurrent.interpreters queue round trip", "reference", "us",
        PY("ci.queue"), 10, 2, group="rtt-ci"),
    # ---- throughput ---------------------------------------------------------------
    Row("64 calls in flight: subproc, C actor, one core", "subproc", "calls/s",
        C("lib.inflight", kind="c", place="one"), 200000, 2000,
        target=">= 5 M calls/s", met=ge(5e6), group="inflight", kind="c",
        place="one", better="higher"),
    Row("64 calls in flight: subproc, C actor, across cores", "subproc",
        "calls/s", C("lib.inflight", kind="c", place="cross"), 100000, 2000,
        group="inflight", kind="c", place="cross", better="higher"),
    Row("64 calls in flight: subproc, Python actor, one core", "subproc",
        "calls/s", C("lib.inflight", kind="py", place="one"), 50000, 1000,
        group="inflight", kind="py", place="one", better="higher"),
    Row("64 calls in flight: subint, isolated, across cores", "subint",
        "calls/s", C("lib.inflight", kind="subint", place="cross"), 50000,
        1000, group="inflight", kind="subint", place="cross", better="higher"),
    Row("stream of small items: subproc, C actor", "subproc", "items/s",
        C("lib.stream", kind="c"), 2000000, 10000, target=">= 20 M items/s",
        met=ge(20e6), group="stream", kind="c", better="higher"),
    Row("stream of small items: subproc, Python actor", "subproc", "items/s",
        C("lib.stream", kind="py"), 300000, 3000, target=">= 1 M items/s",
        met=ge(1e6), group="stream", kind="py", better="higher"),
    Row("stream of small items: subint, isolated", "subint", "items/s",
        C("lib.stream", kind="subint"), 300000, 3000, group="stream",
        kind="subint", better="higher"),
    # ---- scale ----------------------------------------------------------------------
    Row("ref: 100 C actor programs started at once, alive until all run",
        "reference", "s", C("ref.spawn_many"), 100, 5, group="scale"),
    Row("ref: 1,000 C actor programs started at once, alive until all run",
        "reference", "s", C("ref.spawn_many"), 1000, 10, group="scale"),
    Row("scale: 100 C actors spawned at once, all replied", "subproc", "s",
        C("lib.scale", kind="c"), 100, 5, group="scale", kind="c",
        ref="ref: 100 C actor programs started at once, alive until all run"),
    Row("scale: host RSS per live C actor (100)", "subproc", "kB",
        C("lib.scale", kind="c"), 100, 5, field="rss_kb", group="scale",
        kind="c"),
    Row("scale: 1,000 C actors spawned at once, all replied", "subproc", "s",
        C("lib.scale", kind="c"), 1000, 10, target="<= 0.35 s", met=le(0.35),
        group="scale", kind="c",
        ref="ref: 1,000 C actor programs started at once, alive until all "
        "run"),
    Row("scale: host RSS per live C actor (1,000)", "subproc", "kB",
        C("lib.scale", kind="c"), 1000, 10, target="<= 16 kB per actor",
        met=le(16), field="rss_kb", group="scale", kind="c"),
    Row("scale: 64 isolated subints spawned at once, all replied", "subint",
        "s", C("lib.scale", kind="subint"), 64, 2, group="scale",
        kind="subint"),
    Row("scale: host RSS per live isolated subint (64)", "subint", "kB",
        C("lib.scale", kind="subint"), 64, 2, field="rss_kb", group="scale",
        kind="subint"),
]



def with_cpu_rows(rows):
    """After each throughput row, the same per CPU-second of host and
    actor together (actorbench's "cpu_rate", same samples): what the pair
    does with the CPU it got, whatever else the machine runs."""
    out = []
    for r in rows:
        out.append(r)
        if r.cmd[1] in ("lib.inflight", "lib.stream"):
            out.append(Row(r.name + ", per CPU-second", r.backend, r.unit,
                           r.cmd, r.n_full, r.n_quick, field="cpu_rate",
                           group=r.group, kind=r.kind, place=r.place,
                           better="higher",
                           note="operations / CPU time of host and actor "
                           "(schedstat), same samples"))
    return out


ROWS = with_cpu_rows(ROWS)

# The profile rows: (kind, backend, label, side, what, target, met)
PROFILE = [
    ("c", "subproc", "C actor", "host", "instr", "<= 2,000", le(2000)),
    ("c", "subproc", "C actor", "child", "instr", "<= 1,700", le(1700)),
    ("py", "subproc", "Python actor", "host", "instr", None, None),
    ("py", "subproc", "Python actor", "child", "instr", None, None),
    ("subint", "subint", "isolated", "process", "instr", None, None),
    ("c", "subproc", "C actor", "host", "sys", "<= 3", calls_le(3)),
    ("c", "subproc", "C actor", "child", "sys", "<= 3", calls_le(3)),
    ("py", "subproc", "Python actor", "host", "sys", "<= 3", calls_le(3)),
    ("py", "subproc", "Python actor", "child", "sys", "<= 3", calls_le(3)),
    ("subint", "subint", "isolated", "process", "sys", None, None),
    # The Python host package calling the C actor (subproc), spin off: what
    # the package and its C call path cost the host per call.
    ("pyhost", "python-host", "Python host -> C actor", "host", "instr", None,
     None),
    ("pyhost", "python-host", "Python host -> C actor", "host", "sys", None,
     None),
]


# ---- running one sample --------------------------------------------------------

class Env:
    def __init__(self, build):
        self.build = os.path.abspath(build)
        self.actorbench = os.path.join(self.build, "bench", "actorbench")
        self.env = dict(os.environ)
        self.env["LIBACTOR_PYHOST"] = os.path.join(self.build, "tools",
                                                   "actor-pyhost")
        self.env["LIBACTOR_FORKSERVER"] = os.path.join(self.build, "tools",
                                                       "actor-forkserver")
        self.env["ACTORBENCH_DIR"] = HERE
        # the Python host package (python/), when it exists, and the library
        # it loads from this build
        pkg = os.path.join(os.path.dirname(HERE), "python")
        self.env["PYTHONPATH"] = pkg + (":" + self.env["PYTHONPATH"]
                                        if self.env.get("PYTHONPATH") else "")
        self.env["LIBACTOR_LIBRARY"] = os.path.join(self.build,
                                                    "libactor-python.so")

    def argv(self, cmd, n):
        tool, measure, kw = cmd
        args = [f"{k}={v}" for k, v in sorted(kw.items())] + [f"n={n}"]
        if tool == "c":
            return [self.actorbench, measure] + args
        return [sys.executable, os.path.join(HERE, "pyref.py"), measure] + args

    def sample(self, cmd, n, timeout=300):
        """One run: its JSON object, or {"error": ...}."""
        argv = self.argv(cmd, n)
        try:
            p = subprocess.run(argv, env=self.env, capture_output=True,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s: {' '.join(argv)}"}
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not lines:
            tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            return {"error": f"exit {p.returncode}: {tail}"}
        try:
            return json.loads(lines[-1])
        except ValueError as e:
            return {"error": f"bad output {lines[-1]!r}: {e}"}


def quantile(xs, q):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def run_rows(env, rows, trials, quick, log, load):
    """Every row over `trials` trials, each group's rows interleaved."""
    groups = []
    for r in rows:
        if not groups or groups[-1][0] != r.group:
            groups.append((r.group, []))
        groups[-1][1].append(r)
    samples = {r.name: [] for r in rows}
    status = {}  # row name -> {"skipped"/"error": text}
    for t in range(trials):
        load.append(loadavg()[0])
        for gname, grows in groups:
            # references first on even trials, last on odd ones
            order = sorted(grows, key=lambda r: (r.backend == "reference")
                           == (t % 2 == 1))
            cache = {}
            for r in order:
                if r.name in status:
                    continue
                n = r.n_quick if quick else r.n_full
                key = (r.cmd[0], r.cmd[1], tuple(sorted(r.cmd[2].items())), n)
                if key not in cache:
                    t0 = time.monotonic()
                    cache[key] = env.sample(r.cmd, n)
                    log(f"  trial {t + 1}/{trials} {r.name}: "
                        f"{json.dumps(cache[key])} "
                        f"({time.monotonic() - t0:.1f} s)")
                s = cache[key]
                if "skipped" in s or "error" in s:
                    status[r.name] = s
                elif r.field not in s:
                    status[r.name] = {"error": f"no {r.field} in {s}"}
                else:
                    samples[r.name].append(float(s[r.field]))
    out = []
    for r in rows:
        n = r.n_quick if quick else r.n_full
        d = {"name": r.name, "backend": r.backend, "unit": r.unit}
        if r.kind:
            d["kind"] = r.kind
        if r.place:
            d["placement"] = r.place
        d["ops"] = n
        xs = samples[r.name]
        if r.name in status and not xs:
            d.update(median=None, p10=None, p90=None, n=0)
            d.update(status[r.name])
        else:
            d.update(median=quantile(xs, 0.5), p10=quantile(xs, 0.1),
                     p90=quantile(xs, 0.9), n=len(xs))
            if r.name in status:
                d.update(status[r.name])
        if r.ref:
            d["ref"] = r.ref
        if r.target:
            d["target"] = r.target
        if r.note:
            d["note"] = r.note
        d["better"] = r.better
        out.append((r, d))
    by = {d["name"]: d for _, d in out}
    for r, d in out:
        if r.ref and d["median"] is not None:
            ref = by.get(r.ref)
            if ref and ref["median"]:
                d["ref_median"] = ref["median"]
                d["ratio"] = d["median"] / ref["median"]
        if r.met:
            if d["median"] is None or (r.ref and "ratio" not in d):
                d["met"] = None  # skipped or failed: never "met"
            else:
                d["vs_target"] = r.met(d)
                d["met"] = d["vs_target"] <= 1
    return [d for _, d in out]


# ---- the profile rows: callgrind and strace --------------------------------------

def classify(cmdline):
    """host, child or other, from a process's command line."""
    if "--actor" in cmdline or "actor-pyhost" in cmdline:
        return "child"
    if "lib.rtt" in cmdline or "host.rtt" in cmdline:
        return "host"
    return "other"


def traced_rtt(env, tool, kind, n):
    """Run n sequential round trips (unpinned) under `tool` (an argv).
    kind "pyhost": the Python host package calling the C actor."""
    if kind == "pyhost":
        cmd = PY("host.rtt", kind="c", place="none", spin=0)
    else:
        cmd = C("lib.rtt", kind=kind, place="none")
    argv = tool + env.argv(cmd, n)
    p = subprocess.run(argv, env=env.env, capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{tool[0]} exit {p.returncode}: "
                           f"{(p.stderr.strip().splitlines() or [''])[-1]}")


def callgrind_counts(env, kind, n, tmp):
    d = tempfile.mkdtemp(dir=tmp)
    traced_rtt(env, ["valgrind", "--tool=callgrind", "--trace-children=yes",
                     "--dump-instr=no", "--dump-line=no", "-q",
                     f"--callgrind-out-file={d}/cg.%p"], kind, n)
    counts = {"host": 0, "child": 0, "other": 0}
    for f in os.listdir(d):  # one file per process
        cmd, total = "", None
        with open(os.path.join(d, f), errors="replace") as fh:
            for line in fh:
                if line.startswith("cmd:"):
                    cmd = line
                elif line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
        if total is not None:
            counts[classify(cmd)] += total
    shutil.rmtree(d, ignore_errors=True)
    return counts


_LINE = re.compile(r"^(\d+)\s+(.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>")
_RESULT = re.compile(r"\)\s+=\s+(\d+)")


def strace_counts(env, kind, n, tmp):
    """Syscalls per process (threads summed into their process)."""
    fd, path = tempfile.mkstemp(dir=tmp)
    os.close(fd)
    traced_rtt(env, ["strace", "-f", "-qq", "-s", "200", "-o", path], kind, n)
    per_tid, parent, pending, cmd = {}, {}, {}, {}
    first = None
    with open(path, errors="replace") as fh:
        for line in fh:
            m = _LINE.match(line)
            if not m:
                continue
            tid, rest = int(m.group(1)), m.group(2)
            if first is None:
                first = tid
            if rest.startswith(("+++", "---")):
                continue
            rm = _RESUMED.match(rest)
            if rm:
                full = pending.pop(tid, "") + rest
            else:
                names = per_tid.setdefault(tid, {})
                name = rest.split("(", 1)[0]
                names[name] = names.get(name, 0) + 1
                if rest.endswith("<unfinished ...>"):
                    pending[tid] = rest
                    continue
                full = rest
            name = full.split("(", 1)[0]
            if name in ("clone", "clone3", "fork", "vfork"):
                res = _RESULT.search(full)
                if res:
                    new = int(res.group(1))
                    parent[new] = (tid, "CLONE_THREAD" in full)
            elif name == "execve" and "= 0" in full:
                cmd[tid] = full
    os.unlink(path)

    def tgid(t):
        seen = 0
        while t in parent and parent[t][1] and seen < 1000:
            t, seen = parent[t][0], seen + 1
        return t

    counts = {"host": 0, "child": 0, "other": 0}
    by_name = {"host": {}, "child": {}, "other": {}}
    for t, names in per_tid.items():
        g = tgid(t)
        side = "host" if g == first else classify(cmd.get(g, ""))
        for name, c in names.items():
            counts[side] += c
            by_name[side][name] = by_name[side].get(name, 0) + c
    counts["by_name"] = by_name
    return counts


def per_call(a, b, n):
    """(b - a) / n for the counts, and for the by-name counts (strace)."""
    d = {s: (b[s] - a[s]) / n for s in ("host", "child", "other")}
    if "by_name" in b:
        d["by_name"] = {}
        for s, names in b["by_name"].items():
            per = {k: round((v - a["by_name"][s].get(k, 0)) / n, 3)
                   for k, v in names.items()}
            d["by_name"][s] = {k: v for k, v in per.items() if abs(v) >= 0.01}
    return d


def profile_name(p):
    kind, backend, label, side, what = p[:5]
    unit = "instructions" if what == "instr" else "syscalls"
    return f"{unit} per call round trip: {backend}, {label}, {side}"


def run_profile(env, quick, log, tmp, only=None):
    have = {t: shutil.which(t) for t in ("valgrind", "strace")}
    out = []
    cache = {}
    for kind, backend, label, side, what, target, met in PROFILE:
        tool = "valgrind" if what == "instr" else "strace"
        unit = "instructions" if what == "instr" else "syscalls"
        name = profile_name((kind, backend, label, side, what))
        if only and not only.search(name):
            continue
        d = {"name": name, "backend": backend, "unit": unit + "/call",
             "kind": kind, "side": side}
        n1, n2 = ((200, 600) if quick else (1000, 5000)) if what == "instr" \
            else ((200, 600) if quick else (2000, 6000))
        trials = 1 if quick else 3
        d["ops"] = n2 - n1
        xs = []
        err = None
        if not have[tool]:
            err = {"skipped": f"no {tool} here"}
        elif quick and what == "instr" and kind != "c":
            err = {"skipped": "not measured with --quick"}
        for t in range(trials if not err else 0):
            key = (kind, what, t)
            if key not in cache:
                try:
                    f = callgrind_counts if what == "instr" else strace_counts
                    t0 = time.monotonic()
                    a, b = f(env, kind, n1, tmp), f(env, kind, n2, tmp)
                    cache[key] = per_call(a, b, n2 - n1)
                    log(f"  {tool} {kind} #{t + 1}: {cache[key]} "
                        f"({time.monotonic() - t0:.1f} s)")
                except Exception as e:  # noqa: BLE001 - reported as the row's error
                    cache[key] = {"error": str(e)}
            c = cache[key]
            if "error" in c:
                err = c
                break
            xs.append(c["host"] + c["child"] if side == "process" else c[side])
            if "by_name" in c and side != "process":
                d["by_syscall"] = c["by_name"][side]  # the last trial's
            elif "by_name" in c:
                d["by_syscall"] = c["by_name"]["host"]
        if xs:
            d.update(median=quantile(xs, 0.5), p10=quantile(xs, 0.1),
                     p90=quantile(xs, 0.9), n=len(xs))
        else:
            d.update(median=None, p10=None, p90=None, n=0)
            d.update(err or {"error": "no sample"})
        if target:
            d["target"] = target
            if xs:
                d["vs_target"] = met(d)
                d["met"] = d["vs_target"] <= 1
            else:
                d["met"] = None
        d["better"] = "lower"
        d["note"] = (f"{tool}: (count at {n2} calls - count at {n1}) / "
                     f"{n2 - n1}, unpinned")
        out.append(d)
    return out


# ---- the machine -------------------------------------------------------------------

def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpus_allowed": len(os.sched_getaffinity(0)),
            "cpu": cpu, "kernel": platform.release(), "memory": mem,
            "python": platform.python_version()}


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---- rendering -------------------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "-"
    if unit in ("calls/s", "items/s"):
        u = unit.split("/")[0]
        return (f"{v / 1e6:.2f} M {u}/s" if v >= 1e5
                else f"{v / 1e3:.1f} k {u}/s")
    if unit == "us":
        return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.2f} us"
    if unit == "s":
        return f"{v:.3f} s"
    if unit.endswith("/call"):
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
    return f"{v:.1f} {unit}"


def status_of(d):
    if "skipped" in d:
        return "skipped: " + d["skipped"]
    if "error" in d:
        return "ERROR: " + d["error"]
    if d.get("met") is True:
        return "**met**"
    if d.get("met") is False:
        return "**missed**"
    return ""


def render_md(rows, meta):
    m = meta["machine"]
    lines = [
        f"# libactor benchmark — {meta['date']}{' (quick: figures mean nothing)' if meta['quick'] else ''}",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux "
        f"{m['kernel']}, CPython {m['python']}; load average (1, 5, 15 min) "
        f"{' '.join(map(str, meta['load_before']))} before, "
        f"{' '.join(map(str, meta['load_after']))} after (1-minute load as "
        f"each trial began: {', '.join(map(str, meta.get('load_trials', [])))});"
        f" {meta['trials']} "
        f"trials per row, {meta['seconds']:.0f} s in all.",
        "",
        "| row | median | p10 – p90 | reference (median) | ratio | target | status |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for d in rows:
        u = d["unit"]
        spread = ("-" if d["median"] is None else
                  f"{fmt(d['p10'], u)} – {fmt(d['p90'], u)}")
        ref = ""
        if d.get("ref"):
            ref = d["ref"].removeprefix("ref: ")
            if "ref_median" in d:
                ref += f" ({fmt(d['ref_median'], u)})"
        ratio = f"{d['ratio']:.2f}x" if "ratio" in d else ""
        lines.append(f"| {d['name']} | {fmt(d['median'], u)} | {spread} | "
                     f"{ref} | {ratio} | {d.get('target', '')} | "
                     f"{status_of(d)} |")
    met = sum(1 for d in rows if d.get("met") is True)
    missed = sum(1 for d in rows if d.get("met") is False)
    skipped = sum(1 for d in rows if "target" in d and d.get("met") is None)
    lines += ["", f"Targets: {met} met, {missed} missed, {skipped} not "
              "measured (feature missing here).", ""]
    return "\n".join(lines)


def render_png(rows, path, meta):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no matplotlib"
    rat = [d for d in rows if "ratio" in d]
    tgt = [d for d in rows if "vs_target" in d]
    h = 0.32 * (len(rat) + len(tgt)) + 2.5
    fig, (a1, a2) = plt.subplots(
        2, 1, figsize=(11, h),
        gridspec_kw={"height_ratios": [max(len(rat), 1), max(len(tgt), 1)]})

    def colour(d):
        return {True: "#2a9d4b", False: "#d1495b"}.get(d.get("met"), "#7a8ca3")

    def ref_colour(d):  # only a target on the ratio colours the ratio
        return colour(d) if "x " in d.get("target", "") else "#7a8ca3"

    def bars(ax, ds, vals, xlabel, line, col):
        ys = range(len(ds))
        ax.barh(list(ys), vals, color=[col(d) for d in ds])
        for y, d, v in zip(ys, ds, vals):
            ax.text(v, y, " " + fmt(d["median"], d["unit"]), va="center",
                    fontsize=7)
        ax.set_yticks(list(ys))
        ax.set_yticklabels([d["name"] for d in ds], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(line, color="black", lw=0.8)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)

    bars(a1, rat, [d["ratio"] for d in rat],
         "median / reference median (same run); coloured where the target "
         "is on this ratio: green met, red missed", 1.0, ref_colour)
    a1.set_title(f"libactor benchmark, {meta['date']}, {meta['machine']['nproc']}"
                 f" CPUs, load {meta['load_before'][0]}→{meta['load_after'][0]}",
                 fontsize=9)
    bars(a2, tgt, [d["vs_target"] for d in tgt],
         "figure / target bound (throughput: bound / figure); left of 1 = met",
         1.0, colour)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return None


def render(outdir):
    """latest.md and latest.png from latest.jsonl and latest-machine.json
    (the same data, whenever rendered); returns the markdown."""
    with open(os.path.join(outdir, "latest.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(outdir, "latest-machine.json")) as f:
        meta = json.load(f)
    md = render_md(rows, meta)
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write(md)
    why = render_png(rows, os.path.join(outdir, "latest.png"), meta)
    if why:
        print(f"bench: no chart ({why})", file=sys.stderr)
    return md


# ---- the smoke's check ---------------------------------------------------------------

def check(outdir):
    """Problems with the results in outdir: every line a JSON object with
    the required keys, consistent figures, ratio and met where they apply,
    nothing skipped reported as met; the table and the chart there."""
    bad = []
    path = os.path.join(outdir, "latest.jsonl")
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            try:
                d = json.loads(line)
            except ValueError as e:
                bad.append(f"line {i}: not JSON: {e}")
                continue
            if not isinstance(d, dict):
                bad.append(f"line {i}: not an object")
                continue
            rows.append(d)
            miss = [k for k in REQUIRED if k not in d]
            if miss:
                bad.append(f"line {i} ({d.get('name')}): no {', '.join(miss)}")
                continue
            if "error" in d:
                bad.append(f"line {i} ({d['name']}): error: {d['error']}")
            measured = d["median"] is not None
            if measured:
                nums = [d[k] for k in ("median", "p10", "p90")]
                if not all(isinstance(x, (int, float)) for x in nums) or \
                        not d["p10"] <= d["median"] <= d["p90"] or d["n"] < 1:
                    bad.append(f"line {i} ({d['name']}): inconsistent "
                               f"median/p10/p90/n")
            elif "skipped" not in d and "error" not in d:
                bad.append(f"line {i} ({d['name']}): no figure and no reason")
            if "target" in d:
                if "met" not in d or d["met"] not in (True, False, None):
                    bad.append(f"line {i} ({d['name']}): target without met")
                elif d["met"] is not None and not measured:
                    bad.append(f"line {i} ({d['name']}): met without a figure")
            if "skipped" in d and d.get("met") is True:
                bad.append(f"line {i} ({d['name']}): skipped but met")
            if "ratio" in d and not ("ref" in d and measured):
                bad.append(f"line {i} ({d['name']}): ratio without ref")
    names = {d.get("name"): d for d in rows}
    for d in rows:
        ref = names.get(d.get("ref"))
        if ref and ref.get("median") and d.get("median") is not None and \
                "ratio" not in d:
            bad.append(f"{d['name']}: its reference was measured, no ratio")
    if not rows:
        bad.append(f"{path}: no rows")
    for f in ("latest.md", "latest.png", "latest-machine.json"):
        p = os.path.join(outdir, f)
        if not os.path.isfile(p) or os.path.getsize(p) == 0:
            bad.append(f"{p}: missing or empty")
    return bad


# ---- main ----------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build")
    ap.add_argument("--render", metavar="DIR",
                    help="only render the table and chart from DIR's JSON")
    ap.add_argument("--check", metavar="DIR",
                    help="only check the results in DIR (the CI smoke)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    a = ap.parse_args()
    if a.render:
        render(a.render)
        return 0
    if a.check:
        bad = check(a.check)
        for b in bad:
            print(f"bench: {b}", file=sys.stderr)
        print(f"bench: {a.check}: {'%d problems' % len(bad) if bad else 'well formed'}")
        return 1 if bad else 0
    if not a.build:
        ap.error("--build is needed")
    trials = a.trials or (2 if a.quick else 9)
    env = Env(a.build)
    rows = ROWS
    profile = not a.no_profile
    if a.only:
        rx = re.compile(a.only)
        keep = {r.name for r in rows if rx.search(r.name)}
        keep |= {r.ref for r in rows if r.name in keep and r.ref}
        rows = [r for r in rows if r.name in keep]
        profile = profile and any(rx.search(profile_name(p))
                                  for p in PROFILE)
    os.makedirs(a.out, exist_ok=True)
    t_start = time.monotonic()

    def log(s):
        print(s, file=sys.stderr, flush=True)

    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"), "quick": a.quick, "trials": trials,
        "machine": machine(), "load_before": loadavg()}
    log(f"bench: {len(rows)} rows x {trials} trials"
        f"{' + profile' if profile else ''}; load {meta['load_before']}")
    meta["load_trials"] = []  # the 1-minute load average as each trial began
    results = run_rows(env, rows, trials, a.quick, log, meta["load_trials"])
    if profile:
        with tempfile.TemporaryDirectory() as tmp:
            results += run_profile(env, a.quick, log, tmp,
                                   re.compile(a.only) if a.only else None)
    meta["load_after"] = loadavg()
    meta["seconds"] = time.monotonic() - t_start

    with open(os.path.join(a.out, "latest.jsonl"), "w") as f:
        for d in results:
            f.write(json.dumps(d) + "\n")
    with open(os.path.join(a.out, "latest-machine.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(render(a.out))
    errors = [d for d in results if "error" in d]
    for d in errors:
        log(f"bench: ERROR in {d['name']}: {d['error']}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
