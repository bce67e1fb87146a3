"""hotspots — where a call round trip's instructions go, per function.

    scripts/devroot run python3 bench/hotspots.py [BUILD [KIND]]

(after bench/run has built BUILD, default build/bench).

Runs actorbench's sequential no-op round trip (lib.rtt, unpinned) under
callgrind at two lengths, n1 and n2 calls, and prints, for the host and the
child process, each function's instructions per round trip: (self count at
n2 - self count at n1) / (n2 - n1), so start-up and shut-down cancel out.
KIND as in actorbench (c, py, subint; default c)."""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402

_NAMED = re.compile(r"^\((\d+)\)(?: (.*))?$")


def _name(table, v):
    """callgrind's name compression: "(id) name" defines, "(id)" refers."""
    m = _NAMED.match(v.strip())
    if not m:
        return v.strip()
    if m.group(2) is not None:
        table[m.group(1)] = m.group(2)
    return table.get(m.group(1), v.strip())


def self_costs(path):
    """{(object, function): self instructions} of one callgrind file."""
    obs, fns, costs = {}, {}, {}
    ob = fn = "?"
    skip = False
    with open(path, errors="replace") as fh:
        for line in fh:
            if skip:  # the inclusive cost of a call: not this function's own
                skip = False
                continue
            if line.startswith("ob="):
                ob = _name(obs, line[3:])
            elif line.startswith("fn="):
                fn = _name(fns, line[3:])
            elif line.startswith(("cob=", "cfn=", "cfi=", "cfl=")):
                _name(obs if line.startswith("cob") else fns, line[4:]) \
                    if line.startswith(("cob", "cfn")) else None
            elif line.startswith("calls="):
                skip = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    k = (os.path.basename(ob), fn)
                    costs[k] = costs.get(k, 0) + int(parts[1])
    return costs


def per_function(env, kind, n, tmp):
    d = tempfile.mkdtemp(dir=tmp)
    runner.traced_rtt(env, ["valgrind", "--tool=callgrind",
                            "--trace-children=yes", "-q", "--compress-pos=no",
                            f"--callgrind-out-file={d}/cg.%p"], kind, n)
    sides = {}
    for f in os.listdir(d):
        path = os.path.join(d, f)
        with open(path, errors="replace") as fh:
            cmd = next((ln for ln in fh if ln.startswith("cmd:")), "")
        side = sides.setdefault(runner.classify(cmd), {})
        for k, v in self_costs(path).items():
            side[k] = side.get(k, 0) + v
    shutil.rmtree(d, ignore_errors=True)
    return sides


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build/bench"
    kind = sys.argv[2] if len(sys.argv) > 2 else "c"
    env = runner.Env(build)
    n1, n2 = 1000, 5000
    with tempfile.TemporaryDirectory() as tmp:
        a = per_function(env, kind, n1, tmp)
        b = per_function(env, kind, n2, tmp)
    for side in ("host", "child"):
        if side not in b:
            continue
        diff = {f: (v - a.get(side, {}).get(f, 0)) / (n2 - n1)
                for f, v in b[side].items()}
        total = sum(v for v in diff.values() if v > 0)
        print(f"== {kind}, {side}: {total:,.0f} instructions per round trip")
        by_ob = {}
        for (ob, fn), v in diff.items():
            by_ob[ob] = by_ob.get(ob, 0) + v
        for ob, v in sorted(by_ob.items(), key=lambda kv: -kv[1]):
            if v >= 5:
                print(f"   {v:8.0f} {100 * v / total:5.1f}%  {ob}")
        print("   -- functions:")
        for (ob, fn), v in sorted(diff.items(), key=lambda kv: -kv[1])[:25]:
            if v < 5:
                break
            print(f"   {v:8.0f} {100 * v / total:5.1f}%  {fn} ({ob})")

if __name__ == "__main__":
    main()
