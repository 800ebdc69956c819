#!/usr/bin/env python3
"""Measure tend, ansible-core and pyinfra on lab fleets (called by benches/fleet/run.sh).

For every fleet size N and every tool it brings up a FRESH lab of N hosts (`tend-lab up`),
then:

  * first apply (timed): the workload on hosts that have never seen it (and, for tend, have no
    cached agent or bundle);
  * no-op re-apply (timed): the same again; it must report no change (tend and ansible: every
    recap line changed=0; pyinfra: its "Grand total" row has no "Success" (changed) operation);
  * end state: on every host, type, mode, owner, group and sha256 of everything under the
    workload's root, read inside the host (`tend-lab exec`, not over ssh), compared with the
    state tend left on the same host name in its own lab;
  * the lab is torn down (`tend-lab down`), and processes the tool left behind (ansible's
    ControlPersist masters) are stopped by pid.

Memory, per run: the peak RSS of the largest single process of the tool's tree (GNU time's %M:
for tend the tend process itself, its ssh children are smaller; for ansible-playbook the largest
of the controller and its forks) and the peak of the PSS summed over the whole tree (sampled
from /proc every 0.2 s: the tool's process and every descendant, including ssh clients and
ansible's detached ssh masters, found by the private ControlPath directory of the run).

Python 3.11 standard library only.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[0:3])


# ---------------------------------------------------------------- process tree memory

def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, cmdline) of every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        table[pid] = (ppid, cmd)
    return table


def _mem_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB of one process, 0 if it is gone."""
    try:
        rss = pss = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
        return rss, pss
    except (OSError, ValueError):
        return 0, 0


class TreeSampler(threading.Thread):
    """Samples the summed PSS/RSS of a process tree (plus processes whose command line holds
    `marker`) until stopped; keeps the peaks."""

    def __init__(self, root_pid: int, marker: str | None, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.marker, self.interval = root_pid, marker, interval
        self.stop_event = threading.Event()
        self.peak_pss = self.peak_rss = self.peak_procs = 0
        self.seen: set[int] = set()

    def run(self) -> None:
        while not self.stop_event.is_set():
            table = _proc_table()
            children: dict[int, list[int]] = {}
            for pid, (ppid, _) in table.items():
                children.setdefault(ppid, []).append(pid)
            tree, todo = set(), [self.root]
            while todo:
                p = todo.pop()
                if p in tree or (p != self.root and p not in table):
                    continue
                tree.add(p)
                todo.extend(children.get(p, []))
            if self.marker:
                tree |= {pid for pid, (_, cmd) in table.items() if self.marker in cmd}
            self.seen |= tree
            rss = pss = 0
            for p in tree:
                r, s = _mem_kib(p)
                rss, pss = rss + r, pss + s
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(tree))
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()


def marked_cpu(marker: str | None) -> dict[int, float]:
    """pid -> CPU seconds (user+sys) so far of the processes whose command line holds `marker`.
    Between runs these are the ssh masters a tool detached (ControlPersist): nobody waits for
    them, so GNU time does not count their CPU (the key exchange, the encryption)."""
    if not marker:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid, (_, cmd) in _proc_table().items():
        if marker in cmd and pid != os.getpid():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                out[pid] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, ValueError, IndexError):
                pass
    return out


def kill_marked(marker: str) -> int:
    """Stops the processes (by pid) whose command line holds `marker`: ssh masters a tool
    detached (ControlPersist) under this run's private ControlPath directory."""
    n = 0
    for pid, (_, cmd) in _proc_table().items():
        if marker in cmd and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGTERM)
                n += 1
            except OSError:
                pass
    return n


# ---------------------------------------------------------------- the lab

class Lab:
    def __init__(self, tend_lab: str, n: int):
        self.tend_lab, self.n = tend_lab, n
        start = time.perf_counter()
        out = subprocess.run([tend_lab, "up", "-n", str(n)], check=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        info = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
        self.prefix = info["prefix"]
        self.state_dir = Path(info["state_dir"])
        self.inventory = Path(info["inventory"])
        self.hosts = [f"h{i:02d}" for i in range(1, n + 1)]
        log(f"lab {self.prefix}: {n} hosts up in {time.perf_counter() - start:.1f} s")

    def cpu_usec(self) -> int | None:
        """CPU time used so far by every process of every host of the lab (its cgroup v2 group:
        sshd, the agents, ansible's and pyinfra's remote commands)."""
        for line in open("/proc/self/mountinfo"):
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                stat = Path(left.split()[4]) / "tend-lab" / self.prefix / "cpu.stat"
                try:
                    for entry in stat.read_text().splitlines():
                        if entry.startswith("usage_usec "):
                            return int(entry.split()[1])
                except OSError:
                    return None
        return None

    def exec(self, host: str, argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([self.tend_lab, "exec", "-p", self.prefix, host, "--", *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def host_vars(self) -> dict[str, dict[str, str]]:
        """Inventory variables per host, from the lab's inventory.ini (key=value words)."""
        hosts = {}
        for line in self.inventory.read_text().splitlines():
            words = shlex.split(line, comments=True)
            if words and re.fullmatch(r"h\d+", words[0]):
                hosts[words[0]] = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        return hosts

    def down(self) -> None:
        subprocess.run([self.tend_lab, "down", "--prefix", self.prefix], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


STATE_SCRIPT = r"""
cd "$1" 2>/dev/null || exit 0
find . -printf 'meta %y %m %u %g %p\n' | LC_ALL=C sort
find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sed 's/^/sum /'
"""


def end_state(lab: Lab, root: str) -> dict[str, dict[str, tuple]]:
    """host -> path -> (type, mode, owner, group, sha256)."""
    def one(host: str):
        p = lab.exec(host, ["sh", "-c", STATE_SCRIPT, "sh", root])
        meta, sums = {}, {}
        for line in p.stdout.splitlines():
            if line.startswith("meta "):
                _, kind, mode, user, group, path = line.split(" ", 5)
                meta[path] = (kind, mode.zfill(4), user, group)
            elif line.startswith("sum "):
                digest, path = line[4:].split("  ", 1)
                sums[path] = digest
        return host, {path: (*m, sums.get(path, "")) for path, m in meta.items()}
    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, lab.hosts))


def state_diff(want: dict, got: dict, limit: int = 8) -> list[str]:
    out = []
    for host in sorted(set(want) | set(got)):
        a, b = want.get(host, {}), got.get(host, {})
        for path in sorted(set(a) | set(b)):
            if a.get(path) != b.get(path):
                out.append(f"{host}:{path}: tend {a.get(path)} != {b.get(path)}")
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


# ---------------------------------------------------------------- the tools

class Tool:
    """How to run one tool against a lab. `prepare` writes its config; `command` is its argv."""

    def __init__(self, name: str, key: str):
        self.name, self.key = name, key

    def prepare(self, lab: Lab, work: Path, args) -> None: ...

    def command(self, lab: Lab, work: Path, args) -> list[str]: ...

    def env(self, work: Path) -> dict:
        return dict(os.environ, NO_COLOR="1", ANSIBLE_NOCOLOR="1")

    def marker(self, work: Path) -> str | None:
        return None

    def cleanup(self) -> None:
        """After the lab is down and the tool's leftover processes are stopped."""

    def check(self, kind: str, rc: int, output: str, work: Path, n: int, tasks: int) -> tuple[str | None, dict]:
        """(problem or None, counts) for a finished run."""
        raise NotImplementedError


def check_recap(recap: dict[str, dict], kind: str, rc: int, n: int, tasks: int) -> tuple[str | None, dict]:
    changed = sum(r["changed"] for r in recap.values())
    bad = sum(r["failed"] + r["unreachable"] for r in recap.values())
    counts = {"hosts": len(recap), "changed": changed, "failed+unreachable": bad,
              "ok": sum(r["ok"] for r in recap.values())}
    want = n * tasks if kind == "first" else 0
    if rc != 0 or len(recap) != n or bad or changed != want:
        return f"rc={rc} recap {counts} (want {n} hosts, changed={want})", counts
    return None, counts


class Tend(Tool):
    def __init__(self, name, key, ssh_args: list[str] | None = None, persist: bool = False):
        super().__init__(name, key)
        self.ssh_args = ssh_args or []
        self.persist = persist
        self.runtime: str | None = None

    def prepare(self, lab, work, args):
        if self.persist:
            # tend keeps persistent masters in $XDG_RUNTIME_DIR/tend/ssh: give each measurement
            # its own (short: socket paths are limited to ~100 bytes), so the first apply's
            # masters serve the re-apply and nothing else, and are found and stopped afterwards.
            self.runtime = tempfile.mkdtemp(prefix="tb-", dir="/tmp")

    def env(self, work):
        e = super().env(work)
        e.pop("TEND_SSH_PERSIST", None)
        if self.runtime:
            e["XDG_RUNTIME_DIR"] = self.runtime
        return e

    def marker(self, work):
        return self.runtime

    def cleanup(self):
        if self.runtime:
            shutil.rmtree(self.runtime, ignore_errors=True)
            self.runtime = None

    def command(self, lab, work, args):
        return [args.tend, "apply", "site.yml", "-i", str(lab.inventory), "-f", str(lab.n),
                "--recap-file", str(work / "recap.json"), *self.ssh_args]

    def check(self, kind, rc, output, work, n, tasks):
        try:
            recap = json.loads((work / "recap.json").read_text())["hosts"]
            (work / "recap.json").unlink()
        except (OSError, ValueError, KeyError):
            return f"rc={rc}, no recap file", {}
        return check_recap(recap, kind, rc, n, tasks)


class Ansible(Tool):
    def __init__(self, name, key, fast: bool):
        super().__init__(name, key)
        self.fast = fast

    def prepare(self, lab, work, args):
        cfg = ["[defaults]", "retry_files_enabled = False", "host_key_checking = True"]
        if self.fast:
            cfg += ["forks = 50", "", "[ssh_connection]", "pipelining = True",
                    "ssh_args = -o ControlMaster=auto -o ControlPersist=600s"]
        else:
            cfg += ["", "[ssh_connection]"]
        # A private ControlPath directory per run (the default one, ~/.ansible/cp, could hold a
        # master of an earlier lab that had the same addresses).
        cfg.append(f"control_path_dir = {work / 'cp'}")
        (work / "ansible.cfg").write_text("\n".join(cfg) + "\n")

    def env(self, work):
        e = super().env(work)
        for k in list(e):
            if k.startswith("ANSIBLE_") and k not in ("ANSIBLE_NOCOLOR",):
                del e[k]
        e["ANSIBLE_CONFIG"] = str(work / "ansible.cfg")
        return e

    def marker(self, work):
        return str(work / "cp")

    def command(self, lab, work, args):
        return [args.ansible_playbook, "-i", str(lab.inventory), "site.yml"]

    def check(self, kind, rc, output, work, n, tasks):
        lines = output.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")]
        recap = {}
        if starts:
            for line in lines[starts[-1] + 1:]:
                m = RECAP_LINE.match(line.strip())
                if m:
                    recap[m["host"]] = {k: int(v) for k, v in m.groupdict().items() if k != "host"}
        return check_recap(recap, kind, rc, n, tasks)


class Pyinfra(Tool):
    def prepare(self, lab, work, args):
        hosts = []
        for name, v in lab.host_vars().items():
            hosts.append((name, {
                "ssh_hostname": v["ansible_host"], "ssh_user": v.get("ansible_user", "root"),
                "ssh_key": v["ansible_ssh_private_key_file"],
                "ssh_known_hosts_file": str(lab.state_dir / "known_hosts"),
                "ssh_strict_host_key_checking": "yes",
            }))
        (work / "inventory.py").write_text(f"lab = {hosts!r}\n")

    def command(self, lab, work, args):
        return [args.pyinfra, "-y", "--parallel", str(lab.n), str(work / "inventory.py"), "deploy.py"]

    def check(self, kind, rc, output, work, n, tasks):
        text = ANSI.sub("", output)
        total = None
        for line in text.splitlines():
            cells = [c.strip() for c in re.split(r"\s{2,}|\|", line.strip()) if c.strip()]
            if cells[:2] == ["Grand", "total"] or (cells and cells[0] == "Grand total"):
                total = cells
        if total is None:
            return f"rc={rc}, no 'Grand total' row in pyinfra's output", {}
        nums = [0 if c == "-" else int(c) for c in total[-4:]]
        counts = dict(zip(["host-operations", "success (changed)", "error", "no change"], nums))
        success, error = counts["success (changed)"], counts["error"]
        if rc != 0 or error or (kind == "first" and success == 0) or (kind != "first" and success):
            return f"rc={rc} pyinfra totals {counts}", counts
        return None, counts


# ---------------------------------------------------------------- running

def run_tool(tool: Tool, argv: list[str], cwd: Path, work: Path, cap: float, lab: "Lab"):
    """One timed run: seconds, rc, output, max RSS KiB (largest process), tree peaks, capped,
    CPU of the controller's tree and of the lab's hosts."""
    hosts_before = lab.cpu_usec()
    detached_before = marked_cpu(tool.marker(work))
    time_out = work / "time.txt"
    time_out.unlink(missing_ok=True)
    full = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(time_out), *argv]
    log_path = work / "output.log"
    start = time.perf_counter()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(full, cwd=cwd, env=tool.env(work), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        sampler = TreeSampler(proc.pid, tool.marker(work))
        sampler.start()
        capped = False
        try:
            rc = proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            capped = True
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        elapsed = time.perf_counter() - start
        sampler.stop()
    hosts_after = lab.cpu_usec()
    # Masters still running after the run are detached ones (the tool and its waited-for
    # children are gone): add what they used during this run.
    detached_after = marked_cpu(tool.marker(work))
    detached = sum(v - detached_before.get(pid, 0.0) for pid, v in detached_after.items())
    hosts_cpu = (hosts_after - hosts_before) / 1e6 if hosts_before is not None and hosts_after is not None else None
    output = log_path.read_text(errors="replace")
    maxrss = cpu = None
    try:
        m, u, s = time_out.read_text().split()[-3:]
        maxrss, cpu = int(m), float(u) + float(s) + detached
    except (OSError, ValueError):
        pass
    return {"seconds": elapsed, "rc": rc, "capped": capped, "maxrss_kib": maxrss, "cpu_s": cpu,
            "detached_cpu_s": detached,
            "tree_pss_kib": sampler.peak_pss, "tree_rss_kib": sampler.peak_rss,
            "tree_procs": sampler.peak_procs, "hosts_cpu_s": hosts_cpu,
            "load1": float(loadavg().split()[0])}, output


def measure(tool: Tool, n: int, args, workload: Path, tasks: int, root: str, problems: list[str]):
    work = (args.workdir / f"{tool.key}-{n}").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "cp").mkdir()
    cwd = workload / ("pyinfra" if isinstance(tool, Pyinfra) else "ansible")
    lab = Lab(args.tend_lab, n)
    result = {"tool": tool.name, "hosts": n, "load_start": loadavg()}
    try:
        tool.prepare(lab, work, args)
        argv = tool.command(lab, work, args)
        result["command"] = " ".join(shlex.quote(a) for a in argv)
        for kind in ("first", "reapply"):
            log(f"{tool.name} N={n}: {kind} … (load {loadavg()})")
            r, output = run_tool(tool, argv, cwd, work, args.cap, lab)
            (work / f"{kind}.log").write_text(output)
            if r["capped"]:
                problem, counts = f"capped after {args.cap:.0f} s", {}
            else:
                problem, counts = tool.check(kind, r["rc"], output, work, n, tasks)
            r["counts"] = counts
            result[kind] = r
            log(f"{tool.name} N={n}: {kind} {r['seconds']:.2f} s rc={r['rc']} maxrss={r['maxrss_kib']} KiB "
                f"tree pss={r['tree_pss_kib']} KiB ({r['tree_procs']} procs) cpu={r['cpu_s']} s "
                f"hosts cpu={r['hosts_cpu_s']} s {counts}")
            if problem:
                result[f"{kind}_problem"] = problem
                if not r["capped"]:
                    problems.append(f"{tool.name} N={n} {kind}: {problem} (log: {work / (kind + '.log')})")
                    tail = "\n".join(output.splitlines()[-20:])
                    log(f"!! {problem}\n{tail}")
                break
        result["state"] = end_state(lab, root)
    finally:
        left = kill_marked(tool.marker(work) or str(work / "cp"))
        if left:
            log(f"{tool.name}: stopped {left} ssh master(s) left running")
        lab.down()
        tool.cleanup()
    result["load_end"] = loadavg()
    return result


def fmt_s(r: dict | None) -> str:
    if r is None:
        return "—"
    if r["capped"]:
        return f"> {r['seconds'] / 60:.0f} min (capped)"
    s = r["seconds"]
    return f"{s:.2f} s" if s < 100 else f"{s:.0f} s ({s / 60:.1f} min)"


def mib(kib) -> str:
    return "—" if not kib else f"{kib / 1024:.0f} MiB"


def speedup(r: dict | None, t: dict | None) -> str:
    if not r or not t:
        return "—"
    return f"{r['seconds'] / t['seconds']:.1f}×" + (" (at least)" if r["capped"] else "")


def cpu_s(x: dict | None, key: str) -> str:
    return "—" if not x or x.get(key) is None else f"{x[key]:.1f} s"


def total_cpu(x: dict) -> float | None:
    """CPU seconds of the controller's tree and the hosts together (None if not measured)."""
    if x.get("cpu_s") is None or x.get("hosts_cpu_s") is None:
        return None
    return x["cpu_s"] + x["hosts_cpu_s"]


def report(results: list[dict], problems: list[str], targets: dict) -> str:
    sizes = sorted({r["hosts"] for r in results})
    wall = ["| hosts | tool | first apply | no-op re-apply | tend faster, first | tend faster, re-apply | 1-min load |",
            "|---|---|---|---|---|---|---|"]
    cpu = ["| hosts | tool | controller CPU, first | controller CPU, re-apply | hosts' CPU, first "
           "| hosts' CPU, re-apply |", "|---|---|---|---|---|---|"]
    mem = ["| hosts | tool | peak RSS, largest process | peak PSS, whole process tree | processes |",
           "|---|---|---|---|---|"]
    verdicts, informative = [], []
    for n in sizes:
        rows = [r for r in results if r["hosts"] == n]
        tend = next((r for r in rows if r["tool"] == "tend"), {})
        variants = [r for r in rows if r["tool"].startswith("tend (")]
        for r in rows:
            f, re_ = r.get("first"), r.get("reapply")
            runs = [x for x in (f, re_) if x]
            load = " / ".join(f"{x.get('load1', 0):.0f}" for x in runs)
            variant = r is not tend and r["tool"].startswith("tend")
            sp_f = "—" if variant else speedup(f, tend.get("first"))
            sp_r = "—" if variant else speedup(re_, tend.get("reapply"))
            wall.append(f"| {n} | {r['tool']} | {fmt_s(f)} | {fmt_s(re_)} | {sp_f} | {sp_r} | {load} |")
            cpu.append(f"| {n} | {r['tool']} | {cpu_s(f, 'cpu_s')} | {cpu_s(re_, 'cpu_s')} "
                       f"| {cpu_s(f, 'hosts_cpu_s')} | {cpu_s(re_, 'hosts_cpu_s')} |")
            mem.append(f"| {n} | {r['tool']} | {mib(max([x['maxrss_kib'] or 0 for x in runs], default=0))} "
                       f"| {mib(max([x['tree_pss_kib'] for x in runs], default=0))} "
                       f"| {max([x['tree_procs'] for x in runs], default=0)} |")
            if n != sizes[-1] or r is tend or not tend or r["tool"] not in targets:
                continue
            t_f, t_r = targets[r["tool"]]
            for kind, t in (("first apply", t_f), ("no-op re-apply", t_r)):
                x = f if kind == "first apply" else re_
                y = tend.get("first" if kind == "first apply" else "reapply")
                for v in variants:
                    z = v.get("first" if kind == "first apply" else "reapply")
                    if x and z:
                        line = f"- {n} hosts, {v['tool']} vs {r['tool']}, {kind}: {x['seconds'] / z['seconds']:.1f}×"
                        if total_cpu(x) and total_cpu(z):
                            line += f"; in CPU time, controller + hosts: {total_cpu(x) / total_cpu(z):.1f}×"
                        informative.append(line)
                if x and y:
                    ratio = x["seconds"] / y["seconds"]
                    line = (f"- {n} hosts, vs {r['tool']}, {kind}: tend {ratio:.1f}× faster"
                            + (" (at least: the other run was capped)" if x["capped"] else "")
                            + f" (target ≥ {t}×: **{'met' if ratio >= t else 'NOT met'}**)")
                    if total_cpu(x) and total_cpu(y):
                        c = total_cpu(x) / total_cpu(y)
                        line += f"; in CPU time, controller + hosts: {c:.1f}× ({'met' if c >= t else 'not met'})"
                    verdicts.append(line)
        if n == sizes[-1] and tend.get("first"):
            runs = [x for x in (tend.get("first"), tend.get("reapply")) if x]
            rss = max(x["maxrss_kib"] or 0 for x in runs)
            pss = max(x["tree_pss_kib"] for x in runs)
            ok = rss * 1024 < 200e6 and pss * 1024 < 200e6
            verdicts.append(f"- {n} hosts, tend controller memory: {rss / 1024:.0f} MiB peak RSS of the tend "
                            f"process, {pss / 1024:.0f} MiB peak PSS of tend and all its ssh clients "
                            f"(target < 200 MB: **{'met' if ok else 'NOT met'}**)")
    if informative:
        verdicts += ["", "The same ratios for tend's variants (not its defaults: an opt-in, and a "
                     "classic key exchange; see below):", ""] + informative
    out = ("Wall clock (one run each):\n\n" + "\n".join(wall) + "\n\nTargets (tend as it is, defaults):\n\n" + "\n".join(verdicts)
           + "\n\nCPU time: the controller's process tree (GNU time: user+sys of the tool and every "
           "process it waited for, plus what its detached ssh masters used during the run) and the "
           "hosts' (the lab's cgroup: sshd, agents, modules):\n\n"
           + "\n".join(cpu) + "\n\nController memory:\n\n" + "\n".join(mem) + "\n")
    checks = [f"- {r['tool']}, {r['hosts']} hosts: end state {r['same_state']}" for r in results if "same_state" in r]
    checks += [f"- {r['tool']}, {r['hosts']} hosts: {k} {v}" for r in results
               for k, v in (("first apply", (r.get("first") or {}).get("counts")),
                            ("re-apply", (r.get("reapply") or {}).get("counts"))) if v]
    out += "\nChecks:\n\n" + "\n".join(checks) + "\n"
    if problems:
        out += "\nPROBLEMS:\n\n" + "\n".join(f"- {p}" for p in problems) + "\n"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", required=True)
    ap.add_argument("--tend-lab", required=True)
    ap.add_argument("--ansible-playbook", required=True)
    ap.add_argument("--pyinfra", required=True)
    ap.add_argument("--workload", required=True, type=Path, help="gen.py's output directory")
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--hosts", default="10,50")
    ap.add_argument("--tools", default="tend,ansible-default,ansible-fast,pyinfra")
    ap.add_argument("--cap", type=float, default=1200, help="seconds after which a run is stopped")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--report-only", type=Path, help="print the tables of an earlier run's --json file")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    managed = json.loads((args.workload / "managed.json").read_text())
    tasks, root = managed["tasks"], managed["root"]
    all_tools = {
        "tend": Tend("tend", "tend"),
        # Not tend's default: the same run with a classic key exchange instead of OpenSSH 9's
        # post-quantum hybrid (sntrup761x25519), whose key generation costs ~0.1 s of CPU per
        # connection on the benchmark machine. Shown to separate tend from ssh's handshake.
        "tend-x25519": Tend("tend (ssh KexAlgorithms=curve25519-sha256)", "tend-x25519",
                            ["--ssh-extra-args", "-o KexAlgorithms=curve25519-sha256"]),
        # Opt-in, and what ansible-core (fast) does: the first apply's master connections stay
        # (ControlPersist=600s) and the re-apply goes through them, with no new key exchange.
        "tend-persist": Tend("tend (--ssh-persist 600, like ansible-core fast)", "tend-persist",
                             ["--ssh-persist", "600"], persist=True),
        "ansible-default": Ansible("ansible-core (default: forks 5)", "ansible-default", fast=False),
        "ansible-fast": Ansible("ansible-core (fast: forks 50, pipelining, ControlPersist)", "ansible-fast",
                                fast=True),
        "pyinfra": Pyinfra("pyinfra", "pyinfra"),
    }
    tools = [all_tools[t] for t in args.tools.split(",")]
    assert tools[0].key == "tend", "tend runs first: its end state is the reference"
    targets = {all_tools["ansible-fast"].name: (30, 100), all_tools["pyinfra"].name: (5, 5)}
    if args.report_only:
        saved = json.loads(args.report_only.read_text())
        text = report(saved["results"], saved["problems"], targets)
        print(text)
        if args.markdown:
            args.markdown.write_text(text)
        return
    problems: list[str] = []
    results: list[dict] = []
    for n in [int(x) for x in args.hosts.split(",")]:
        reference = None
        for tool in tools:
            r = measure(tool, n, args, args.workload, tasks, root, problems)
            state = r.pop("state")
            paths = {len(s) for s in state.values()}
            if reference is None:
                reference = state
                r["same_state"] = f"reference: {sum(len(s) for s in state.values())} paths on {n} hosts"
                if paths != {len(managed["paths"])}:
                    problems.append(f"{tool.name} N={n}: paths per host {sorted(paths)}, "
                                    f"want {len(managed['paths'])} on every host")
            elif "first_problem" in r:
                r["same_state"] = "not compared (first apply did not finish)"
            else:
                diff = state_diff(reference, state)
                if diff:
                    problems.append(f"{tool.name} N={n}: end state differs from tend's:\n    " + "\n    ".join(diff))
                    r["same_state"] = f"DIFFERS from tend's ({len(diff)} differences shown in PROBLEMS)"
                else:
                    r["same_state"] = (f"identical to tend's ({sum(len(s) for s in state.values())} paths on "
                                       f"{n} hosts: type, mode, owner, group, sha256)")
            results.append(r)
            if args.json:
                args.json.write_text(json.dumps({"results": results, "problems": problems}, indent=1))
    text = report(results, problems, targets)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
