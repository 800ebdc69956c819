#!/usr/bin/env python3
"""Differential test harness: ansible-core is the oracle, tend is judged.

Record goldens (all cases, or the ones named):
    python3 tests/differential/record.py [CASE ...]

Judge tend against the goldens:
    python3 tests/differential/record.py --tool tend --bin PATH [CASE ...]

Each case is a directory under tests/differential/cases/ holding site.yml and,
optionally, `inventory` (default: localhost with a local connection), `args`
(extra CLI arguments, one per line) and `setup.sh` (run with the fresh root as
$1 before the first run).  The playbook is run twice against the same root
(first run, then the idempotence re-run); after each run the exit code, the
PLAY RECAP counts and the tree under the root are captured.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ANSIBLE_CORE_VERSION = "2.19.14"
HERE = Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
DEFAULT_INVENTORY = "localhost ansible_connection=local\n"
RUNS_PER_CASE = 2
RUN_TIMEOUT_SECONDS = 300
RECAP_FIELDS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
ROOT_PLACEHOLDER = b"<root>"

# Ansible's backup files: <name>.<pid>.<YYYY-MM-DD@HH:MM:SS>~
BACKUP_NAME = re.compile(r"^(?P<name>.+)\.(?P<pid>\d+)\.(?P<when>\d{4}-\d{2}-\d{2}@\d{2}:\d{2}:\d{2})~$")
RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s*:\s*"
    + r"\s+".join(rf"{name}=(?P<{name}>\d+)" for name in RECAP_FIELDS)
)


# --------------------------------------------------------------------------- case


@dataclass
class Case:
    name: str
    path: Path

    @property
    def inventory(self) -> Path | None:
        # A file (INI/YAML) or a directory (hosts file plus group_vars/, host_vars/).
        candidate = self.path / "inventory"
        return candidate if candidate.exists() else None

    @property
    def extra_args(self) -> list[str]:
        args_file = self.path / "args"
        if not args_file.is_file():
            return []
        lines = args_file.read_text().splitlines()
        return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]

    @property
    def setup_script(self) -> Path | None:
        candidate = self.path / "setup.sh"
        return candidate if candidate.is_file() else None

    @property
    def expected_file(self) -> Path:
        return self.path / "expected.json"


def discover_cases(names: list[str]) -> list[Case]:
    all_cases = {
        entry.name: Case(entry.name, entry)
        for entry in sorted(CASES_DIR.iterdir())
        if entry.is_dir() and (entry / "site.yml").is_file()
    }
    if not names:
        return list(all_cases.values())
    selected = []
    for name in names:
        name = Path(name).name  # accept a path such as cases/001-foo/
        if name not in all_cases:
            matches = [c for c in all_cases if c.startswith(name)]
            if len(matches) != 1:
                sys.exit(f"error: no single case named {name!r} (have: {', '.join(all_cases)})")
            name = matches[0]
        selected.append(all_cases[name])
    return selected


# ---------------------------------------------------------------------- runners


def find_ansible_playbook() -> str:
    from_env = os.environ.get("ANSIBLE_PLAYBOOK")
    if from_env:
        return from_env
    venv = Path("/opt/tend-test/venv/bin/ansible-playbook")
    if venv.is_file() and os.access(venv, os.X_OK):
        return str(venv)
    on_path = shutil.which("ansible-playbook")
    if on_path:
        return on_path
    sys.exit("error: ansible-playbook not found\n"
             "hint: run tests/setup.sh, or set $ANSIBLE_PLAYBOOK")


def run_environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_PIPELINING": "1",
        # A case may read this through lookup('env') or environment:.
        "TEND_DIFF_MARKER": "from-the-environment",
    })
    # Never pick up a stray ansible.cfg from the working directory or $HOME:
    # point at an empty one (ansible rejects /dev/null for lack of an extension).
    empty_config = workdir / "ansible.cfg"
    empty_config.write_text("")
    env["ANSIBLE_CONFIG"] = str(empty_config)
    return env


@dataclass
class RunResult:
    rc: int
    recap: dict | None
    state: dict
    output: str = ""

    def golden(self) -> dict:
        return {"rc": self.rc, "recap": self.recap, "state": self.state}


def parse_recap(output: str) -> dict | None:
    lines = output.splitlines()
    try:
        start = max(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP"))
    except ValueError:
        return None
    recap = {}
    for line in lines[start + 1:]:
        match = RECAP_LINE.match(line.strip())
        if match:
            recap[match["host"]] = {name: int(match[name]) for name in RECAP_FIELDS}
    return dict(sorted(recap.items()))


def read_recap_file(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict):
        return None
    return {
        host: {name: counts.get(name) for name in RECAP_FIELDS}
        for host, counts in sorted(hosts.items())
    }


def walk_order(name: str) -> tuple:
    """Backups of one file in the order they were taken; others by name."""
    match = BACKUP_NAME.match(name)
    if match:
        return (match["name"], 1, match["when"], int(match["pid"]))
    return (name, 0, "", 0)


def snapshot(root: Path) -> dict:
    """Every path under root (relative) -> type, mode, link target, content hash."""
    root_bytes = str(root).encode()
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames, key=walk_order):
            full = Path(dirpath) / name
            rel = full.relative_to(root)
            match = BACKUP_NAME.match(rel.name)
            if match:
                # Several backups of one file (walked in the order they were
                # taken) become <backup>, <backup-2>, ...
                rel = rel.with_name(f"{match['name']}.<backup>~")
                count = 2
                while str(rel) in state:
                    rel = rel.with_name(f"{match['name']}.<backup-{count}>~")
                    count += 1
            st = full.lstat()
            entry: dict = {"mode": f"{stat.S_IMODE(st.st_mode):04o}"}
            if stat.S_ISLNK(st.st_mode):
                entry["type"] = "link"
                entry["target"] = os.readlink(full).replace(str(root), "<root>")
                del entry["mode"]  # symlink modes are meaningless on Linux
            elif stat.S_ISDIR(st.st_mode):
                entry["type"] = "dir"
            elif stat.S_ISREG(st.st_mode):
                entry["type"] = "file"
                content = full.read_bytes().replace(root_bytes, ROOT_PLACEHOLDER)
                entry["sha256"] = hashlib.sha256(content).hexdigest()
                entry["size"] = len(content)
            else:
                entry["type"] = "other"
            state[str(rel)] = dict(sorted(entry.items()))
    return dict(sorted(state.items()))


def run_case(case: Case, command_for, recap_from_file: bool, keep: bool = False,
             extra_env: dict[str, str] | None = None) -> list[RunResult]:
    """Run the case RUNS_PER_CASE times against one fresh root."""
    workdir = Path(tempfile.mkdtemp(prefix=f"tend-diff-{case.name[:20]}-"))
    root = workdir / "root"
    root.mkdir()
    inventory = case.inventory
    if inventory is None:
        inventory = workdir / "inventory"
        inventory.write_text(DEFAULT_INVENTORY)
    env = run_environment(workdir)
    env.update(extra_env or {})
    results = []
    try:
        if case.setup_script:
            subprocess.run(["bash", str(case.setup_script), str(root)], cwd=case.path,
                           env=env, check=True, timeout=RUN_TIMEOUT_SECONDS)
        for index in range(RUNS_PER_CASE):
            recap_file = workdir / f"recap-{index}.json"
            argv = command_for(case, inventory, root, recap_file)
            try:
                proc = subprocess.run(argv, cwd=case.path, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      timeout=RUN_TIMEOUT_SECONDS)
                rc, output = proc.returncode, proc.stdout.decode(errors="replace")
            except subprocess.TimeoutExpired as exc:
                rc = -1
                output = (exc.stdout or b"").decode(errors="replace") + "\n[timed out]"
            except OSError as exc:
                rc, output = -1, f"[cannot run {argv[0]}: {exc}]"
            # tend reports through --recap-file; ansible through its stdout.
            recap = read_recap_file(recap_file) if recap_from_file else parse_recap(output)
            results.append(RunResult(rc, recap, snapshot(root), output))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"[{case.name}] kept {workdir}", file=sys.stderr)
    return results


def ansible_command(playbook: str):
    def build(case: Case, inventory: Path, root: Path, _recap: Path) -> list[str]:
        return [playbook, "-i", str(inventory), "site.yml", "-e", f"root={root}",
                *case.extra_args]
    return build


def tend_command(binary: str):
    def build(case: Case, inventory: Path, root: Path, recap: Path) -> list[str]:
        return [binary, "apply", "site.yml", "-i", str(inventory), "-e", f"root={root}",
                *case.extra_args, "--recap-file", str(recap)]
    return build


# ---------------------------------------------------------------------- compare


def recap_text(recap: dict | None) -> str:
    if recap is None:
        return "(no recap)"
    return "; ".join(
        f"{host}: " + " ".join(f"{k}={v}" for k, v in counts.items())
        for host, counts in recap.items()
    ) or "(empty recap)"


def compare_run(expected: dict, actual: RunResult) -> list[str]:
    problems = []
    if expected["rc"] != actual.rc:
        problems.append(f"exit code: expected {expected['rc']}, got {actual.rc}")
    exp_recap, act_recap = expected["recap"], actual.recap
    if exp_recap != act_recap:
        if exp_recap is None or act_recap is None:
            problems.append(f"recap: expected {recap_text(exp_recap)}, got {recap_text(act_recap)}")
        else:
            for host in sorted(set(exp_recap) | set(act_recap)):
                if host not in act_recap:
                    problems.append(f"recap: host {host} missing (expected {recap_text({host: exp_recap[host]})})")
                elif host not in exp_recap:
                    problems.append(f"recap: unexpected host {host}")
                else:
                    for name in RECAP_FIELDS:
                        e, a = exp_recap[host].get(name), act_recap[host].get(name)
                        if e != a:
                            problems.append(f"recap: {host} {name}: expected {e}, got {a}")
    exp_state, act_state = expected["state"], actual.state
    for path in sorted(set(exp_state) | set(act_state)):
        e, a = exp_state.get(path), act_state.get(path)
        if e == a:
            continue
        if a is None:
            problems.append(f"state: {path}: missing (expected {e['type']})")
        elif e is None:
            problems.append(f"state: {path}: unexpected {a['type']}")
        else:
            for key in sorted(set(e) | set(a)):
                if e.get(key) != a.get(key):
                    problems.append(f"state: {path}: {key}: expected {e.get(key)!r}, got {a.get(key)!r}")
    return problems


# ------------------------------------------------------------------------- main


def record(cases: list[Case], jobs: int, keep: bool) -> int:
    playbook = find_ansible_playbook()
    version = subprocess.run([playbook, "--version"], capture_output=True, text=True).stdout
    if f"core {ANSIBLE_CORE_VERSION}" not in version:
        sys.exit(f"error: {playbook} is not ansible-core {ANSIBLE_CORE_VERSION}:\n{version}")
    # Modules run with the interpreter ansible itself runs on; interpreter
    # discovery can pick a broken shim (pyenv) on developer machines.
    python = re.search(r"python version = .*\((?P<path>/[^)]+)\)\s*$", version, re.M)
    extra_env = {"ANSIBLE_PYTHON_INTERPRETER": python["path"] if python else "auto_silent"}
    print(f"recording {len(cases)} case(s) with {playbook} (modules on {extra_env['ANSIBLE_PYTHON_INTERPRETER']})")
    build = ansible_command(playbook)
    failures = 0

    def one(case: Case):
        started = time.monotonic()
        return case, run_case(case, build, False, keep, extra_env), time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for case, results, seconds in pool.map(one, cases):
            golden = {"ansible_core": ANSIBLE_CORE_VERSION,
                      "runs": [r.golden() for r in results]}
            case.expected_file.write_text(json.dumps(golden, indent=2) + "\n")
            summary = " | ".join(f"rc={r.rc} {recap_text(r.recap)}" for r in results)
            print(f"{case.name:32} {seconds:5.1f}s  {summary}  files={len(results[-1].state)}")
            for index, r in enumerate(results):
                if r.recap is None:
                    failures += 1
                    print(f"  run {index + 1}: no PLAY RECAP; output tail:")
                    print("    " + "\n    ".join(r.output.splitlines()[-15:]))
    return 1 if failures else 0


XFAIL_FILE = Path(__file__).resolve().parent / "xfail.txt"


def load_xfail() -> dict[str, str]:
    """Cases known to differ, each with the reason (`NAME  reason` per line, `#` comments)."""
    known: dict[str, str] = {}
    if XFAIL_FILE.is_file():
        for line in XFAIL_FILE.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, reason = line.partition(" ")
                known[name] = reason.strip()
    return known


def judge(cases: list[Case], binary: str, jobs: int, keep: bool, report: Path | None) -> int:
    build = tend_command(binary)
    outcome: dict[str, dict] = {}
    xfail = load_xfail()

    def one(case: Case):
        if not case.expected_file.is_file():
            return case, None, [f"no expected.json (record it with ansible first)"]
        expected = json.loads(case.expected_file.read_text())
        results = run_case(case, build, True, keep)
        problems = []
        for index, (exp, act) in enumerate(zip(expected["runs"], results)):
            problems += [f"run {index + 1}: {p}" for p in compare_run(exp, act)]
        return case, results, problems

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for case, results, problems in pool.map(one, cases):
            known = xfail.get(case.name)
            if known is not None:
                # A known difference must still differ: a case that starts passing is news.
                outcome[case.name] = {"pass": bool(problems), "xfail": known, "problems": problems}
                if problems:
                    print(f"XFAIL {case.name} ({known})")
                else:
                    print(f"XPASS {case.name}: remove it from {XFAIL_FILE.name}")
                continue
            outcome[case.name] = {"pass": not problems, "problems": problems}
            if not problems:
                print(f"PASS {case.name}")
                continue
            print(f"FAIL {case.name}")
            for problem in problems:
                print(f"    {problem}")
            for index, r in enumerate(results or []):
                tail = r.output.splitlines()[-12:]
                if tail:
                    print(f"    --- run {index + 1} output (tail) ---")
                    print("      " + "\n      ".join(tail))

    passed = sum(1 for o in outcome.values() if o["pass"])
    known = sum(1 for o in outcome.values() if "xfail" in o and o["pass"])
    print(f"\n{passed}/{len(outcome)} cases pass ({known} of them known differences listed in {XFAIL_FILE.name})")
    if report:
        report.write_text(json.dumps({"tool": "tend", "passed": passed, "total": len(outcome),
                                      "cases": outcome}, indent=2) + "\n")
    return 0 if passed == len(outcome) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--tool", choices=["ansible", "tend"], default="ansible",
                        help="ansible records expected.json; tend is compared against it")
    parser.add_argument("--bin", help="path to the tend binary (with --tool tend)")
    parser.add_argument("--jobs", "-j", type=int, default=max(2, os.cpu_count() or 2),
                        help="cases run in parallel")
    parser.add_argument("--json-report", type=Path, help="write per-case pass/fail as JSON")
    parser.add_argument("--keep", action="store_true", help="keep temp roots for inspection")
    opts = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    os.umask(0o022)
    cases = discover_cases(opts.cases)
    if opts.tool == "tend":
        if not opts.bin:
            parser.error("--tool tend needs --bin PATH")
        return judge(cases, str(Path(opts.bin).resolve()), opts.jobs, opts.keep, opts.json_report)
    return record(cases, opts.jobs, opts.keep)


if __name__ == "__main__":
    sys.exit(main())
