#!/usr/bin/env python3
"""Measure tend against ansible-playbook on the generated 500-resource playbook.

Called by benches/local/run.sh (which builds tend and generates the playbook);
Python 3.11 standard library only.

For every tool it measures, on one local host:
  * the first apply: the root is removed before every repetition;
  * the no-op re-apply: the same playbook again on the applied root.
Every ansible repetition is timed here (wall clock around the process) and its
PLAY RECAP checked. tend is timed with hyperfine when it is installed (many
repetitions, output discarded), else with the same loop; one extra untimed
tend pass checks its recap, measures its peak RSS (/usr/bin/time) and, when
strace is installed, that every file tend writes arrives by rename(2).
Afterwards the trees are compared (type, mode, sha256 of content) and a
markdown table is printed.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import statistics
import subprocess
import sys
import time
from pathlib import Path

RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)"
)
RESOURCES = 500
# strace lines: rename("from", "to"), renameat2(AT_FDCWD, "from", AT_FDCWD, "to", 0), openat(AT_FDCWD, "p", FLAGS
RENAME = re.compile(r'rename(?:at2?)?\((?:[^,"\n]+, )?"[^"]*", (?:[^,"\n]+, )?"([^"]*)"')
OPEN = re.compile(r'open(?:at)?\((?:[^,"\n]+, )?"([^"]*)", ([A-Z_|]+)')


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[0:3])


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def snapshot(root: Path) -> dict:
    """relative path -> (type, mode, sha256) for everything under root."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            st = full.lstat()
            mode = f"{stat.S_IMODE(st.st_mode):04o}"
            if stat.S_ISDIR(st.st_mode):
                entry = ("dir", mode, "")
            elif stat.S_ISREG(st.st_mode):
                entry = ("file", mode, hashlib.sha256(full.read_bytes()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                entry = ("link", "", os.readlink(full))
            else:
                entry = ("other", mode, "")
            state[str(full.relative_to(root))] = entry
    return state


def tree_diff(a: dict, b: dict, limit: int = 10) -> list[str]:
    out = []
    for path in sorted(set(a) | set(b)):
        if a.get(path) != b.get(path):
            out.append(f"  {path}: {a.get(path)} != {b.get(path)}")
    return out[:limit] + ([f"  ... {len(out) - limit} more"] if len(out) > limit else [])


def parse_recap(output: str) -> dict | None:
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")]
    if not starts:
        return None
    for line in lines[starts[-1] + 1:]:
        m = RECAP_LINE.match(line.strip())
        if m:
            return {k: int(v) for k, v in m.groupdict().items() if k != "host"}
    return None


def read_recap_file(path: Path) -> dict | None:
    try:
        hosts = json.loads(path.read_text())["hosts"]
        return next(iter(hosts.values()))
    except (OSError, ValueError, KeyError, StopIteration):
        return None


class Tool:
    def __init__(self, name: str, argv: list[str], env: dict, recap_file: bool):
        self.name, self.argv, self.env, self.recap_file = name, argv, env, recap_file
        self.slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")

    def command(self, root: Path, recap: Path | None = None) -> list[str]:
        argv = [*self.argv, "-e", f"root={root}"]
        if self.recap_file and recap is not None:
            argv += ["--recap-file", str(recap)]
        return argv


def run_once(tool: Tool, root: Path, cwd: Path, work: Path, wrap: list[str] | None = None):
    """One run: (seconds, rc, recap, (peak RSS in KiB, user+sys CPU seconds) or None, output).

    CPU time covers the process and every descendant it waited for (ansible's
    forked workers and module processes included)."""
    recap_path = work / f"recap-{tool.slug}.json"
    recap_path.unlink(missing_ok=True)
    rss_path = work / "rss.txt"
    argv = tool.command(root, recap_path)
    if wrap is None:
        argv = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_path), *argv] if Path("/usr/bin/time").exists() else argv
    else:
        argv = [*wrap, *argv]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=tool.env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - start
    output = proc.stdout.decode(errors="replace")
    recap = read_recap_file(recap_path) if tool.recap_file else parse_recap(output)
    usage = None
    if wrap is None and rss_path.exists():
        try:
            m, u, s = rss_path.read_text().split()[-3:]
            usage = (int(m), float(u) + float(s))
        except ValueError:
            pass
    rss_path.unlink(missing_ok=True)
    return elapsed, proc.returncode, recap, usage, output


def check(tool: Tool, kind: str, rc: int, recap: dict | None, output: str, problems: list[str]) -> None:
    want_changed = RESOURCES if kind == "first" else 0
    if rc != 0 or recap is None or recap.get("changed") != want_changed or recap.get("failed"):
        problems.append(f"{tool.name} {kind} apply: rc={rc} recap={recap} (want changed={want_changed})")
        tail = "\n".join(output.splitlines()[-15:])
        print(f"!! {problems[-1]}\n{tail}", file=sys.stderr)


def measure_loop(tool: Tool, runs: int, cwd: Path, work: Path, problems: list[str]) -> dict:
    root = work / f"root-{tool.slug}"
    result = {"first": [], "reapply": [], "rss_first": [], "rss_reapply": [],
              "cpu_first": [], "cpu_reapply": [], "load": []}
    for i in range(runs):
        shutil.rmtree(root, ignore_errors=True)
        result["load"].append(load1())
        t, rc, recap, usage, out = run_once(tool, root, cwd, work)
        check(tool, "first", rc, recap, out, problems)
        result["first"].append(t)
        if usage:
            result["rss_first"].append(usage[0])
            result["cpu_first"].append(usage[1])
        print(f"  {tool.name}: first apply #{i + 1}: {t:.3f}s  (rss KiB, cpu s)={usage}  recap={recap}  "
              f"load={load1()}", file=sys.stderr)
    for i in range(runs):
        result["load"].append(load1())
        t, rc, recap, usage, out = run_once(tool, root, cwd, work)
        check(tool, "re", rc, recap, out, problems)
        result["reapply"].append(t)
        if usage:
            result["rss_reapply"].append(usage[0])
            result["cpu_reapply"].append(usage[1])
        print(f"  {tool.name}: re-apply   #{i + 1}: {t:.3f}s  (rss KiB, cpu s)={usage}  recap={recap}  "
              f"load={load1()}", file=sys.stderr)
    result["tree"] = snapshot(root)
    return result


def measure_hyperfine(tool: Tool, runs: int, cwd: Path, work: Path) -> dict:
    root = work / f"root-{tool.slug}"
    cmd = " ".join(shlex_quote(a) for a in tool.command(root))
    times = {}
    for kind, prepare in (("first", f"rm -rf {shlex_quote(str(root))}"), ("reapply", None)):
        export = work / f"hyperfine-{tool.slug}-{kind}.json"
        argv = ["hyperfine", "--style", "basic", "-N", "--runs", str(runs), "--export-json", str(export)]
        if prepare:
            argv += ["--prepare", prepare]
        else:
            argv += ["--warmup", "2"]
        argv.append(cmd)
        subprocess.run(argv, cwd=cwd, env=tool.env, check=True, stdout=sys.stderr)
        data = json.loads(export.read_text())["results"][0]
        times[kind] = data["times"]
        times[f"cpu_{kind}"] = data["user"] + data["system"]  # means over the runs
    return times


def shlex_quote(s: str) -> str:
    import shlex
    return shlex.quote(s)


def atomic_check(tool: Tool, cwd: Path, work: Path) -> str:
    """strace a first apply: every regular file under the root must arrive by rename."""
    root = work / "root-strace"
    shutil.rmtree(root, ignore_errors=True)
    trace = work / "strace.txt"
    wrap = ["strace", "-f", "-qq", "-o", str(trace), "-e",
            "trace=openat,open,creat,rename,renameat,renameat2,truncate,ftruncate"]
    _, rc, _, _, _ = run_once(tool, root, cwd, work, wrap=wrap)
    if rc != 0:
        return f"strace run failed (rc={rc})"
    text = trace.read_text(errors="replace")
    files = {str(p) for p in root.rglob("*") if p.is_file()}
    renamed = set()
    for m in re.finditer(RENAME, text):
        renamed.add(m.group(1))
    direct = set()
    for m in re.finditer(OPEN, text):
        path, flags = m.group(1), m.group(2)
        if path in files and ("O_WRONLY" in flags or "O_RDWR" in flags):
            direct.add(path)
    not_renamed = files - renamed
    verdict = (f"first apply: {len(files)} files under the root, {len(files & renamed)} of them arrived by "
               f"rename(2) from a temporary file, {len(direct)} were opened for writing in place")
    if not_renamed:
        verdict += f"; NOT renamed: {sorted(not_renamed)[:5]}"
    # The no-op re-apply must not write at all.
    _, rc, _, _, _ = run_once(tool, root, cwd, work, wrap=wrap)
    text = trace.read_text(errors="replace")
    prefix = str(root) + "/"
    renames = sum(1 for m in re.finditer(RENAME, text) if m.group(1).startswith(prefix))
    writes = sum(1 for m in re.finditer(OPEN, text)
                 if m.group(1).startswith(prefix) and ("O_WRONLY" in m.group(2) or "O_RDWR" in m.group(2)))
    verdict += f"; re-apply (rc={rc}): {renames} renames and {writes} opens for writing under the root"
    return verdict


def summary(times: list[float]) -> dict:
    return {"n": len(times), "median": statistics.median(times), "min": min(times), "max": max(times)}


def fmt_time(s: dict) -> str:
    def one(x: float) -> str:
        return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"
    if s["n"] == 1:
        return f"{one(s['median'])} (n=1)"
    return f"{one(s['median'])} ({one(s['min'])} – {one(s['max'])}, n={s['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", required=True, help="tend binary")
    ap.add_argument("--ansible-playbook", required=True)
    ap.add_argument("--playbook-dir", required=True, type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--tend-runs", type=int, default=10)
    ap.add_argument("--ansible-runs", type=int, default=1)
    ap.add_argument("--pipelining", action="store_true", help="also measure ansible with ANSIBLE_PIPELINING=1")
    ap.add_argument("--json", type=Path, help="write the raw results here")
    args = ap.parse_args()

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    cwd = args.playbook_dir
    (work / "ansible.cfg").write_text("")  # no stray ansible.cfg from cwd or $HOME

    base_env = dict(os.environ)
    base_env.update({
        "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
    })
    # Modules run with the interpreter ansible-playbook itself runs on (interpreter
    # discovery may pick up a broken pyenv shim on a developer machine).
    venv_python = Path(args.ansible_playbook).with_name("python")
    if venv_python.exists():
        base_env["ANSIBLE_PYTHON_INTERPRETER"] = str(venv_python)
    base_env.pop("ANSIBLE_PIPELINING", None)

    inventory = ["-i", "localhost,"]
    tend = Tool("tend", [args.tend, "apply", "site.yml", *inventory], base_env, recap_file=True)
    tools = [Tool("ansible-playbook", [args.ansible_playbook, *inventory, "-c", "local", "site.yml"],
                  base_env, recap_file=False)]
    if args.pipelining:
        tools.append(Tool("ansible-playbook (pipelining)", tools[0].argv,
                          {**base_env, "ANSIBLE_PIPELINING": "1"}, recap_file=False))

    problems: list[str] = []
    results: dict = {"load_start": loadavg()}

    # tend: a checked pass (recap, RSS, tree), then the timed runs.
    print(f"== tend: checked pass (load {loadavg()})", file=sys.stderr)
    checked = measure_loop(tend, 1, cwd, work, problems)
    tend_res = {"tree": checked["tree"], "rss_first_kib": (checked["rss_first"] or [None])[0],
                "rss_reapply_kib": (checked["rss_reapply"] or [None])[0], "load": [load1()]}
    if shutil.which("hyperfine"):
        print(f"== tend: hyperfine, {args.tend_runs} runs each (load {loadavg()})", file=sys.stderr)
        times = measure_hyperfine(tend, args.tend_runs, cwd, work)
        tend_res.update(first=times["first"], reapply=times["reapply"], timer="hyperfine",
                        cpu_first=[times["cpu_first"]], cpu_reapply=[times["cpu_reapply"]])
    else:
        print(f"== tend: timing loop, {args.tend_runs} runs each (load {loadavg()})", file=sys.stderr)
        loop = measure_loop(tend, args.tend_runs, cwd, work, problems)
        tend_res.update(first=loop["first"], reapply=loop["reapply"], timer="python loop",
                        cpu_first=loop["cpu_first"], cpu_reapply=loop["cpu_reapply"])
    tend_res["load"].append(load1())
    results["tend"] = tend_res
    if shutil.which("strace"):
        results["atomic"] = atomic_check(tend, cwd, work)
        print(f"== tend atomic writes: {results['atomic']}", file=sys.stderr)

    for tool in tools:
        print(f"== {tool.name}: {args.ansible_runs} run(s) each (load {loadavg()})", file=sys.stderr)
        res = measure_loop(tool, args.ansible_runs, cwd, work, problems)
        results[tool.name] = res
        diff = tree_diff(tend_res["tree"], res["tree"])
        if diff:
            problems.append(f"end state of tend differs from {tool.name}:\n" + "\n".join(diff))
        else:
            results[f"same_tree_{tool.name}"] = len(res["tree"])
    results["load_end"] = loadavg()

    # ---- table
    t_first, t_re = summary(tend_res["first"]), summary(tend_res["reapply"])
    rows = [("tend", fmt_time(t_first), fmt_time(t_re), "1×", "1×")]
    verdicts = []
    for tool in tools:
        res = results[tool.name]
        a_first, a_re = summary(res["first"]), summary(res["reapply"])
        s_first = a_first["median"] / t_first["median"]
        s_re = a_re["median"] / t_re["median"]
        rows.append((tool.name, fmt_time(a_first), fmt_time(a_re), f"{s_first:.0f}×", f"{s_re:.0f}×"))
        verdicts.append(f"- vs {tool.name}: first apply {s_first:.0f}× (target 50×: "
                        f"{'met' if s_first >= 50 else 'NOT met'}), re-apply {s_re:.0f}× (target 300×: "
                        f"{'met' if s_re >= 300 else 'NOT met'})")
    lines = ["| tool | first apply (median, min – max) | no-op re-apply (median, min – max) "
             "| tend speed-up, first | tend speed-up, re-apply |",
             "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]

    # CPU time (user+sys, descendants included) depends far less on what else the
    # machine is doing than wall-clock time does.
    def cpu(res: dict, kind: str) -> float | None:
        xs = res.get(f"cpu_{kind}") or []
        return statistics.median(xs) if xs else None
    c_first, c_re = cpu(tend_res, "first"), cpu(tend_res, "reapply")
    cpu_lines = ["| tool | CPU, first apply | CPU, re-apply | CPU ratio, first | CPU ratio, re-apply |",
                 "|---|---|---|---|---|"]
    if c_first and c_re:
        cpu_lines.append(f"| tend | {c_first * 1000:.0f} ms | {c_re * 1000:.0f} ms | 1× | 1× |")
        for tool in tools:
            res = results[tool.name]
            f, r = cpu(res, "first"), cpu(res, "reapply")
            if f and r:
                cpu_lines.append(f"| {tool.name} | {f:.1f} s | {r:.1f} s | {f / c_first:.0f}× | {r / c_re:.0f}× |")
    print()
    print("\n".join(lines))
    if len(cpu_lines) > 3:
        print()
        print("CPU time (user+sys, children included; tend: mean over the hyperfine runs):")
        print()
        print("\n".join(cpu_lines))
    print()
    print("\n".join(verdicts))
    print(f"- tend timed with {tend_res['timer']}; ansible with a wall-clock loop")
    print(f"- tend peak RSS: first apply {tend_res['rss_first_kib']} KiB, re-apply {tend_res['rss_reapply_kib']} KiB")
    for tool in tools:
        rss = [r for r in results[tool.name]["rss_first"] if r]
        if rss:
            print(f"- {tool.name} peak RSS (largest process), first apply: {max(rss)} KiB")
    for tool in tools:
        n = results.get(f"same_tree_{tool.name}")
        if n:
            print(f"- end state: tend and {tool.name} produced identical trees ({n} paths: type, mode, sha256)")
    if "atomic" in results:
        print(f"- atomic writes (strace of a tend first apply): {results['atomic']}")
    print(f"- load average: start {results['load_start']}, end {results['load_end']}; "
          f"1-min load sampled before each run: "
          + ", ".join(f"{name} {min(results[name]['load']):.1f}–{max(results[name]['load']):.1f}"
                      for name in ["tend", *[t.name for t in tools]]))
    if problems:
        print("\nPROBLEMS:")
        print("\n".join(f"- {p}" for p in problems))

    if args.json:
        dump = {k: ({kk: vv for kk, vv in v.items() if kk != "tree"} if isinstance(v, dict) else v)
                for k, v in results.items()}
        dump["problems"] = problems
        args.json.write_text(json.dumps(dump, indent=2))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
