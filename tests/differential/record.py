#!/usr/bin/env python3
"""Differential test harness: ansible-core is the oracle, tend is judged.

Record goldens (all cases, or the ones named):
    python3 tests/differential/record.py [CASE ...]

Judge tend against the goldens:
    python3 tests/differential/record.py --tool tend --bin PATH [CASE ...]

Lab mode: the same cases over SSH on the hosts of a running tend-lab
(`tend-lab up -n 5 --prefix P`), goldens in golden-ssh.json, known differences
in xfail-ssh.txt:
    python3 tests/differential/record.py --lab P [CASE ...]
    python3 tests/differential/record.py --lab P --tool tend --bin PATH [CASE ...]

System mode: the cases under tests/differential/system/ (packages, services, users,
cron...), each on fresh lab hosts of its own, observed with snapshot_system.py,
goldens in golden.json, known differences in xfail-system.txt:
    python3 tests/differential/record.py --system [CASE ...]
    python3 tests/differential/record.py --system --tool tend --bin PATH [CASE ...]

Each case is a directory under tests/differential/cases/ holding site.yml and,
optionally, `inventory` (default: localhost with a local connection), `args`
(extra CLI arguments, one per line) and `setup.sh` (run with the fresh root as
$1 before the first run).  The playbook is run twice against the same root
(first run, then the idempotence re-run); after each run the exit code, the
PLAY RECAP counts and the tree under the root are captured (snapshot.py).

In lab mode a case without an inventory runs on every lab host; a case's own
inventory has each host mapped onto a lab host in order (localhost stays the
controller); the root is one path on every host, the state one tree per host.
The rules are spelled out at "lab mode" below.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import threading
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from snapshot import snapshot  # noqa: E402  (one capture format, also run on lab hosts)

ANSIBLE_CORE_VERSION = "2.19.14"
HERE = Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
DEFAULT_INVENTORY = "localhost ansible_connection=local\n"
RUNS_PER_CASE = 2
RUN_TIMEOUT_SECONDS = 300
RECAP_FIELDS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
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
    # tend records its runs: in the run's own directory, not beside the case's site.yml in
    # the source tree.
    env["TEND_STORE"] = str(workdir / "history.db")
    # Cases run at the same time on this machine: each its own host lock for localhost.
    env["TEND_LOCK_DIR"] = str(workdir)
    return env


@dataclass
class RunResult:
    rc: int
    recap: dict | None
    state: dict
    output: str = ""
    # System cases: a --check run, and what it changed on the hosts (it must change nothing).
    check: bool = False
    touched: list[str] = field(default_factory=list)

    def golden(self) -> dict:
        golden = {"rc": self.rc, "recap": self.recap, "state": self.state}
        if self.check:
            golden["check"] = True
        return golden


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


def run_tool(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """One ansible-playbook or tend run: exit code and combined output."""
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=RUN_TIMEOUT_SECONDS)
        return proc.returncode, proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        return -1, (exc.stdout or b"").decode(errors="replace") + "\n[timed out]"
    except OSError as exc:
        return -1, f"[cannot run {argv[0]}: {exc}]"


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
            rc, output = run_tool(argv, case.path, env)
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


# -------------------------------------------------------------------- lab mode
#
# With --lab, every case runs against the hosts of a running tend-lab over SSH
# (both tools use the lab's inventory variables: address, root login, key,
# strict known_hosts, /usr/bin/python3) and is judged against golden-ssh.json.
#
# Hosts.  A case without an inventory runs on every lab host (group `lab`:
# h01..h05), so `hosts: all` means the fleet.  A case's own INI inventory is
# copied and each of its hosts, in order of first appearance, is mapped onto a
# lab host (h01, h02, ... wrapping around if there are more hosts than lab
# hosts): the host line keeps its variables, loses `ansible_connection=local`
# and gains the lab host's connection variables plus `ansible_connection=ssh`.
# `localhost` (and 127.0.0.1, ::1) is not mapped: in both tools it is the
# controller, as it is for Ansible's implicit localhost, so a play or a task
# delegated to it means "on the machine running the tool".
#
# Root.  One path, the same on every machine: /srv/tdiff/<case>-<tool>-<pid>,
# passed as `-e root=...`.  It is made fresh (and setup.sh run in it, with the
# root as $1) on each lab host the case uses, and on the controller too when
# the inventory lists localhost (otherwise the controller gets an empty root,
# so delegated writes have somewhere to land and show up as a difference).
#
# End state.  After each run, snapshot.py runs on each used lab host over ssh
# (same format as local runs) with the host's addresses and the lab's state
# dir replaced by placeholders (<ip:h01>, <ip:controller>, <lab>), so goldens
# do not depend on which lab slot recorded them.  The state is per machine:
# {"h01": {path: entry}, ..., "controller": {...}}; the controller's tree is
# kept only when the inventory lists localhost or something was written there.
# Recap: per inventory host, as in local mode.
#
# Cases whose meaning depends on the controller (delegate_to: localhost, the
# env/pipe/lines lookups, connection: local plays) are refused by tend on SSH
# hosts; they are listed in xfail-ssh.txt with the message tend prints, and the
# judge checks that run 1 printed it.

LAB_ROOT_BASE = "/srv/tdiff"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
CONTROLLER = "controller"
GOLDEN_SSH = "golden-ssh.json"
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class LabHost:
    name: str
    ip: str
    vars: str  # the connection variables, as written in the lab's inventory.ini


class Lab:
    """A running tend-lab, seen through the client files in its state dir."""

    def __init__(self, where: str):
        state_dir = Path(where)
        if not state_dir.is_dir() and "/" not in where:
            state_dir = Path("/run/tend-lab") / where  # a prefix
        inventory = state_dir / "inventory.ini"
        if not inventory.is_file():
            sys.exit(f"error: {inventory} does not exist: --lab takes a running lab's state dir "
                     f"or prefix\nhint: start one with `tend-lab up -n 5 --prefix P`")
        self.state_dir = state_dir
        self.ssh_config = state_dir / "ssh_config"
        self.hosts: list[LabHost] = []
        for line in inventory.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "[")):
                continue
            name, _, rest = line.partition(" ")
            address = re.search(r"(?:^|\s)ansible_host=(\S+)", rest)
            if not address:
                sys.exit(f"error: {inventory}: host {name} has no ansible_host")
            self.hosts.append(LabHost(name, address[1], rest.strip()))
        if not self.hosts:
            sys.exit(f"error: {inventory} lists no hosts")
        # The controller is the lab bridge's .1 address (tend-lab's subnet rule).
        self.bridge_ip = self.hosts[0].ip.rsplit(".", 1)[0] + ".1"
        self.inventory_text = inventory.read_text()
        # The harness's own ssh calls share one master connection per host.
        self.control_dir = Path(tempfile.mkdtemp(prefix="tdiff-cm-"))

    def by_name(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)

    def replacements(self) -> list:
        """Host-specific text in captured files -> placeholders (see snapshot.py)."""
        out = [[str(self.state_dir), "<lab>", False], [self.bridge_ip, "<ip:controller>", True]]
        out += [[h.ip, f"<ip:{h.name}>", True] for h in self.hosts]
        return out

    def ssh(self, host: str, command: str, stdin: bytes = b"",
            timeout: int = RUN_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
        argv = ["ssh", "-F", str(self.ssh_config), "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self.control_dir}/%C", "-o", "ControlPersist=120",
                host, "--", command]
        proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"lab host {host}: `{command[:120]}` exited with {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace').strip()}\n"
                               f"hint: is the lab still up? `tend-lab status`; "
                               f"`ssh -F {self.ssh_config} {host}` to look")
        return proc

    def close(self) -> None:
        for h in self.hosts:
            subprocess.run(["ssh", "-F", str(self.ssh_config), "-o",
                            f"ControlPath={self.control_dir}/%C", "-O", "exit", h.name],
                           capture_output=True, timeout=30)
        shutil.rmtree(self.control_dir, ignore_errors=True)


def expand_host_pattern(pattern: str) -> list[str]:
    """Ansible's INI host ranges: web[1:3], db[01:10:2], rack[a:c]."""
    match = re.match(r"^(?P<head>[^\[]*)\[(?P<range>[^\]]+)\](?P<tail>.*)$", pattern)
    if not match:
        return [pattern]
    parts = match["range"].split(":")
    if len(parts) not in (2, 3):
        return [pattern]
    begin, end = parts[0], parts[1]
    step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
    if begin.isdigit() and end.isdigit():
        width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
        values = [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]
    elif begin in ALPHABET and end in ALPHABET and len(begin) == len(end) == 1:
        values = list(ALPHABET[ALPHABET.index(begin):ALPHABET.index(end) + 1:step])
    else:
        return [pattern]
    return [match["head"] + value + rest
            for value in values
            for rest in expand_host_pattern(match["tail"])]


class LabInventory:
    """A case's INI inventory with its hosts mapped onto lab hosts (see above)."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.mapping: dict[str, str] = {}  # inventory host -> lab host or CONTROLLER

    def assign(self, name: str) -> str:
        if name not in self.mapping:
            if name in LOCAL_NAMES:
                self.mapping[name] = CONTROLLER
            else:
                used = sum(1 for m in self.mapping.values() if m != CONTROLLER)
                self.mapping[name] = self.lab.hosts[used % len(self.lab.hosts)].name
        return self.mapping[name]

    def rewrite(self, text: str, source: Path) -> str:
        hosts_section = True  # lines before any [section] are ungrouped hosts
        out = []
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", ";")):
                out.append(line)
                continue
            if stripped.startswith("["):
                section = stripped[1:].split("]", 1)[0]
                hosts_section = section.partition(":")[2] not in ("vars", "children")
                out.append(line)
                continue
            if not hosts_section:
                out.append(line)
                continue
            pattern, _, rest = stripped.partition(" ")
            for name in expand_host_pattern(pattern):
                first = name not in self.mapping
                target = self.assign(name)
                if target == CONTROLLER:
                    out.append(f"{name} {rest}".rstrip())
                    continue
                kept = re.sub(r"(?:^|\s)ansible_connection=local(?=\s|$)", "", rest).strip()
                # Connection variables once per host (at its first line); host
                # variables merge over all of a host's lines.
                connection = f"{self.lab.by_name(target).vars} ansible_connection=ssh" if first else ""
                out.append(" ".join(w for w in (name, kept, connection) if w))
        return "\n".join(out) + "\n"

    def rewrite_path(self, path: Path) -> None:
        """An inventory file, or each host file of an inventory directory, in place."""
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file())
        else:
            files = [path]
        for file in files:
            if file.suffix in (".yml", ".yaml", ".json"):
                raise RuntimeError(f"{file}: lab mode maps INI inventories only; "
                                   f"write this case's inventory as INI")
            file.write_text(self.rewrite(file.read_text(), file))


def run_on_machines(lab: Lab, machines: list[str], action) -> dict:
    """action(machine) for each machine at once; results by machine."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(machines) or 1) as pool:
        return dict(zip(machines, pool.map(action, machines)))


# One tend run at a time on the shared lab hosts (see run_case_lab).
LAB_TEND_TURN = threading.Lock()


def run_case_lab(case: Case, lab: Lab, tool: str, command_for, recap_from_file: bool,
                 keep: bool = False, extra_env: dict[str, str] | None = None
                 ) -> tuple[dict[str, str], list[RunResult]]:
    """Run the case RUNS_PER_CASE times on lab hosts; the mapping and the results."""
    workdir = Path(tempfile.mkdtemp(prefix=f"tend-diff-ssh-{case.name[:20]}-"))
    # A copy of the case, so the rewritten inventory keeps its place beside
    # group_vars/ and host_vars/ (both tools load those relative to it).
    copy = workdir / "case"
    shutil.copytree(case.path, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("expected.json", GOLDEN_SSH))
    root = Path(LAB_ROOT_BASE) / f"{case.name}-{tool}-{os.getpid()}"
    mapper = LabInventory(lab)
    if case.inventory is not None:
        inventory = copy / "inventory"
        mapper.rewrite_path(inventory)
    else:
        inventory = workdir / "inventory"
        inventory.write_text(lab.inventory_text)
        for h in lab.hosts:
            mapper.assign(h.name)
    mapping = mapper.mapping
    used = [h.name for h in lab.hosts if h.name in mapping.values()]
    controller_used = CONTROLLER in mapping.values()
    env = run_environment(workdir)
    env.update(extra_env or {})
    # Strict host keys: the lab's known_hosts (ansible would otherwise add
    # StrictHostKeyChecking=no before the inventory's common args, and ssh
    # keeps the first value it sees).
    env["ANSIBLE_HOST_KEY_CHECKING"] = "1"
    setup = case.setup_script.read_bytes() if case.setup_script else None
    quoted = shlex.quote(str(root))
    replacements = lab.replacements()
    snapshot_source = (HERE / "snapshot.py").read_bytes()

    def prepare(host: str) -> None:
        command = f"rm -rf {quoted} && mkdir -p {quoted}"
        if setup is not None:
            command += f" && cd {quoted} && bash -s -- {quoted}"
        lab.ssh(host, command, setup or b"")

    def capture(host: str) -> dict:
        command = f"python3 - {quoted} {shlex.quote(json.dumps(replacements))}"
        return json.loads(lab.ssh(host, command, snapshot_source).stdout)

    def clean(host: str) -> None:
        lab.ssh(host, f"rm -rf {quoted}")

    results = []
    try:
        run_on_machines(lab, used, prepare)
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        if setup is not None and controller_used:
            subprocess.run(["bash", "-s", "--", str(root)], input=setup, cwd=root, env=env,
                           check=True, timeout=RUN_TIMEOUT_SECONDS)
        for index in range(RUNS_PER_CASE):
            recap_file = workdir / f"recap-{index}.json"
            argv = command_for(case, inventory, root, recap_file)
            # Cases run at the same time on the same lab hosts, each in its own root. tend
            # locks every host it applies to for the whole run, so two of its runs over the
            # same hosts would refuse each other (or, waiting, each hold a host the other
            # needs): its runs take turns here. ansible-core takes no lock.
            with LAB_TEND_TURN if tool == "tend" else contextlib.nullcontext():
                rc, output = run_tool(argv, copy, env)
            recap = read_recap_file(recap_file) if recap_from_file else parse_recap(output)
            state = run_on_machines(lab, used, capture)
            on_controller = snapshot(root, replacements)
            if controller_used or on_controller:
                state[CONTROLLER] = on_controller
            results.append(RunResult(rc, recap, state, output))
    finally:
        if not keep:
            try:
                run_on_machines(lab, used, clean)
            except RuntimeError as exc:
                print(f"[{case.name}] warning: {exc}", file=sys.stderr)
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"[{case.name}] kept {workdir} and {root} on {', '.join(used)}", file=sys.stderr)
    return mapping, results


# ----------------------------------------------------------------- system mode
#
# With --system, the cases under tests/differential/system/ run as root over SSH against
# fresh lab hosts and observe what a server is made of (files anywhere, users, groups,
# crontabs, packages, units, command output) with snapshot_system.py, per host.
#
# Hosts.  Each case gets a lab of its own: `hosts` (a file holding a number; default 1)
# hosts named h01.., a systemd lab (systemd-nspawn, systemd as PID 1) when the case has a
# `systemd` file, else a raw one.  The recorder (ansible) and the judge (tend) each get
# their own fresh lab, so both start from the same state.  Without --lab, record.py starts
# and stops those labs with the tend-lab binary (--lab-bin, $TEND_LAB_BIN, target/*/tend-lab
# or PATH); with --lab STATE_DIR|PREFIX it uses that running lab for one case (the cargo
# driver crates/tend/tests/differential_system.rs starts one lab per case that way).
#
# Runs.  setup.sh (optional) runs on each host as root before run 1; the playbook runs
# twice (the second run must report changed=0); after each run every host is observed.
# Golden: golden.json beside site.yml (ansible-core only, never hand-written).  Host
# addresses and the lab's state dir become placeholders, package versions that follow the
# mirror become <repo> (snapshot_system.py), so goldens do not depend on the lab slot or
# the day the mirror was read.  Known differences: xfail-system.txt, as xfail-ssh.txt.

SYSTEM_DIR = HERE / "system"
GOLDEN_SYSTEM = "golden.json"
XFAIL_SYSTEM_FILE = HERE / "xfail-system.txt"
SYSTEM_OBSERVE_KEYS = {"paths", "users", "groups", "crontabs", "packages", "units", "commands"}


@dataclass
class SystemCase:
    name: str
    path: Path

    @property
    def hosts(self) -> int:
        f = self.path / "hosts"
        return int(f.read_text().strip()) if f.is_file() else 1

    @property
    def systemd(self) -> bool:
        return (self.path / "systemd").exists()

    @property
    def check_first(self) -> bool:
        """A `--check` run comes first, on the fresh host (for cases whose first run check mode
        can predict)."""
        return (self.path / "check-first").exists()

    def steps(self) -> list[bool]:
        """The runs of the case, True for a `--check` run: [check-first], apply, apply, and a
        check on the converged host."""
        return [True] * self.check_first + [False] * RUNS_PER_CASE + [True]

    @property
    def extra_args(self) -> list[str]:
        return Case(self.name, self.path).extra_args

    @property
    def setup_script(self) -> Path | None:
        candidate = self.path / "setup.sh"
        return candidate if candidate.is_file() else None

    @property
    def golden_file(self) -> Path:
        return self.path / GOLDEN_SYSTEM

    def observe(self) -> dict:
        f = self.path / "observe.json"
        spec = json.loads(f.read_text()) if f.is_file() else {}
        unknown = set(spec) - SYSTEM_OBSERVE_KEYS
        if unknown:
            raise SystemExit(f"error: {f}: unknown keys {sorted(unknown)} "
                             f"(known: {sorted(SYSTEM_OBSERVE_KEYS)})")
        return spec


def discover_system_cases(names: list[str]) -> list[SystemCase]:
    all_cases = {
        entry.name: SystemCase(entry.name, entry)
        for entry in sorted(SYSTEM_DIR.iterdir())
        if entry.is_dir() and (entry / "site.yml").is_file()
    } if SYSTEM_DIR.is_dir() else {}
    if not names:
        return list(all_cases.values())
    selected = []
    for name in names:
        name = Path(name).name
        if name not in all_cases:
            matches = [c for c in all_cases if c.startswith(name)]
            if len(matches) != 1:
                sys.exit(f"error: no single system case named {name!r} "
                         f"(have: {', '.join(all_cases)})")
            name = matches[0]
        selected.append(all_cases[name])
    return selected


def find_lab_bin(given: str | None) -> str:
    candidates = [given, os.environ.get("TEND_LAB_BIN")]
    workspace = HERE.parent.parent
    target = Path(os.environ.get("CARGO_TARGET_DIR", workspace / "target"))
    candidates += [str(target / "debug" / "tend-lab"), str(target / "release" / "tend-lab"),
                   shutil.which("tend-lab")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    sys.exit("error: the tend-lab binary was not found\n"
             "hint: `cargo build -p tend-lab`, then pass --lab-bin PATH or set $TEND_LAB_BIN")


class OwnLab:
    """A lab started for one case with `tend-lab up`, stopped with `tend-lab down`."""

    def __init__(self, lab_bin: str, hosts: int, systemd: bool):
        self.lab_bin = lab_bin
        argv = [lab_bin, "up", "-n", str(hosts)] + (["--systemd"] if systemd else [])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        found = re.search(r"^prefix: (\S+)$", proc.stdout, re.M)
        if proc.returncode != 0 or not found:
            raise RuntimeError(f"`{' '.join(argv)}` failed ({proc.returncode}): "
                               f"{proc.stderr.strip()}")
        self.prefix = found[1]

    def stop(self) -> None:
        proc = subprocess.run([self.lab_bin, "down", "--prefix", self.prefix],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            print(f"warning: stopping lab {self.prefix}: {proc.stderr.strip()}", file=sys.stderr)


def lab_is_systemd(lab: Lab) -> bool:
    try:
        return bool(json.loads((lab.state_dir / "lab.json").read_text()).get("systemd"))
    except (OSError, ValueError):
        return False


def ansible_system_command(playbook: str):
    def build(case: SystemCase, inventory: Path, _recap: Path) -> list[str]:
        return [playbook, "-i", str(inventory), "site.yml", *case.extra_args]
    return build


def tend_system_command(binary: str):
    def build(case: SystemCase, inventory: Path, recap: Path) -> list[str]:
        return [binary, "apply", "site.yml", "-i", str(inventory), *case.extra_args,
                "--recap-file", str(recap)]
    return build


def run_case_system(case: SystemCase, lab: Lab, command_for, recap_from_file: bool,
                    keep: bool = False, extra_env: dict[str, str] | None = None
                    ) -> list[RunResult]:
    """Run a system case twice on the first `case.hosts` hosts of `lab`, observing each."""
    if len(lab.hosts) < case.hosts:
        raise RuntimeError(f"{case.name} needs {case.hosts} hosts, lab {lab.state_dir} has "
                           f"{len(lab.hosts)}")
    if lab_is_systemd(lab) != case.systemd:
        want = "a systemd lab (`tend-lab up --systemd`)" if case.systemd else "a raw lab"
        raise RuntimeError(f"{case.name} needs {want}; {lab.state_dir} is not one")
    hosts = [h.name for h in lab.hosts[:case.hosts]]
    workdir = Path(tempfile.mkdtemp(prefix=f"tend-diff-sys-{case.name[:20]}-"))
    copy = workdir / "case"
    shutil.copytree(case.path, copy, symlinks=True,
                    ignore=shutil.ignore_patterns(GOLDEN_SYSTEM))
    inventory = workdir / "inventory"
    inventory.write_text("[lab]\n" + "".join(
        f"{h} {lab.by_name(h).vars}\n" for h in hosts))
    env = run_environment(workdir)
    env.update(extra_env or {})
    env["ANSIBLE_HOST_KEY_CHECKING"] = "1"  # the lab's known_hosts, strictly
    observe = json.dumps(case.observe())
    replacements = shlex.quote(json.dumps(lab.replacements()))
    snapshot_source = (HERE / "snapshot_system.py").read_bytes()
    setup = case.setup_script.read_bytes() if case.setup_script else None

    def prepare(host: str) -> None:
        lab.ssh(host, "bash -s", setup)

    def capture(host: str) -> dict:
        command = f"python3 - {shlex.quote(observe)} {replacements}"
        return json.loads(lab.ssh(host, command, snapshot_source).stdout)

    results = []
    try:
        if setup is not None:
            run_on_machines(lab, hosts, prepare)
        state = run_on_machines(lab, hosts, capture) if case.check_first else None
        for index, check in enumerate(case.steps()):
            recap_file = workdir / f"recap-{index}.json"
            argv = command_for(case, inventory, recap_file) + ["--check"] * check
            rc, output = run_tool(argv, copy, env)
            recap = read_recap_file(recap_file) if recap_from_file else parse_recap(output)
            after = run_on_machines(lab, hosts, capture)
            # Check mode must change nothing, whichever tool runs it.
            touched = compare_value(state, after, "state") if check else []
            results.append(RunResult(rc, recap, after, output, check, touched))
            state = after
    finally:
        if keep:
            print(f"[{case.name}] kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def compare_value(expected, actual, where: str) -> list[str]:
    """Differences between two observed values, as `where.key: expected X, got Y` lines."""
    if expected == actual:
        return []
    if isinstance(expected, dict) and isinstance(actual, dict):
        problems = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                problems.append(f"{where}.{key}: missing (expected {expected[key]!r})")
            elif key not in expected:
                problems.append(f"{where}.{key}: unexpected {actual[key]!r}")
            else:
                problems += compare_value(expected[key], actual[key], f"{where}.{key}")
        return problems
    if (isinstance(expected, list) and isinstance(actual, list)
            and len(expected) == len(actual) and all(isinstance(e, dict) for e in expected)):
        problems = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            problems += compare_value(e, a, f"{where}[{i}]")
        return problems
    return [f"{where}: expected {expected!r}, got {actual!r}"]


def compare_system_run(expected: dict, actual: RunResult) -> list[str]:
    # Exit code and recap as in the other modes; the state one observation per host.
    problems = compare_run({**expected, "state": {}}, RunResult(actual.rc, actual.recap, {}))
    return problems + compare_value(expected["state"], actual.state, "state")


def with_case_labs(cases: list[SystemCase], jobs: int, lab_where: str | None,
                   lab_bin: str | None, work):
    """work(case, lab) for each case, each on a fresh lab of its own (or on --lab)."""
    if lab_where is not None:
        if len(cases) != 1:
            sys.exit("error: --system --lab runs one case (hosts must be fresh for each); "
                     "name it, or leave --lab out to start a lab per case")
        lab = Lab(lab_where)
        try:
            yield work(cases[0], lab)
        finally:
            lab.close()
        return
    binary = find_lab_bin(lab_bin)

    def one(case: SystemCase):
        own = OwnLab(binary, case.hosts, case.systemd)
        lab = None
        try:
            lab = Lab(own.prefix)
            return work(case, lab)
        finally:
            if lab is not None:
                lab.close()
            own.stop()

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(one, cases)


def record_system(cases: list[SystemCase], jobs: int, keep: bool, lab_where: str | None,
                  lab_bin: str | None) -> int:
    playbook = find_ansible_playbook()
    version = subprocess.run([playbook, "--version"], capture_output=True, text=True).stdout
    if f"core {ANSIBLE_CORE_VERSION}" not in version:
        sys.exit(f"error: {playbook} is not ansible-core {ANSIBLE_CORE_VERSION}:\n{version}")
    print(f"recording {len(cases)} system case(s) with {playbook} on fresh lab hosts")
    build = ansible_system_command(playbook)
    failures = 0

    def work(case: SystemCase, lab: Lab):
        started = time.monotonic()
        return case, run_case_system(case, lab, build, False, keep), time.monotonic() - started

    for case, results, seconds in with_case_labs(cases, jobs, lab_where, lab_bin, work):
        summary = " | ".join(f"rc={r.rc} {recap_text(r.recap)}" for r in results)
        broken = [i + 1 for i, r in enumerate(results) if r.rc == -1 or r.recap is None]
        if broken:
            failures += 1
            print(f"{case.name:32} {seconds:5.1f}s  run {broken} timed out or printed no recap: "
                  f"golden not written; output tail:")
            print("    " + "\n    ".join(results[broken[0] - 1].output.splitlines()[-15:]))
            continue
        golden = {"ansible_core": ANSIBLE_CORE_VERSION, "transport": "ssh",
                  "systemd": case.systemd, "hosts": case.hosts,
                  "runs": [r.golden() for r in results]}
        case.golden_file.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
        print(f"{case.name:32} {seconds:5.1f}s  {summary}")
        second = [r for r in results if not r.check][-1]
        changed = {h: c["changed"] for h, c in (second.recap or {}).items() if c["changed"]}
        if changed:
            print(f"  warning: the second run changed something ({changed}): "
                  f"a system case must be idempotent")
        for r in results:
            for p in r.touched:
                print(f"  warning: ansible-core's --check run changed the host: {p}")
        for p in mispredictions(case, results):
            print(f"  warning: ansible-core's {p}")
    return 1 if failures else 0


def mispredictions(case: SystemCase, results: list[RunResult]) -> list[str]:
    """For a `check-first` case: hosts whose check run predicted another number of changes
    than the first real run then made."""
    if not case.check_first or len(results) < 2 or results[0].recap is None:
        return []
    problems = []
    for host, counts in (results[1].recap or {}).items():
        predicted = results[0].recap.get(host, {}).get("changed")
        if predicted != counts.get("changed"):
            problems.append(f"check run predicted changed={predicted} on {host}, "
                            f"the first real run made changed={counts.get('changed')}")
    return problems


def run_kinds(kinds: list[bool]) -> str:
    return "[" + ", ".join("check" if k else "apply" for k in kinds) + "]"


def judge_system(cases: list[SystemCase], binary: str, jobs: int, keep: bool,
                 report: Path | None, lab_where: str | None, lab_bin: str | None) -> int:
    build = tend_system_command(binary)
    xfail = load_xfail(XFAIL_SYSTEM_FILE)
    outcome: dict[str, dict] = {}
    missing = [c for c in cases if not c.golden_file.is_file()]
    for case in missing:
        print(f"FAIL {case.name}\n    no {GOLDEN_SYSTEM} (record it with ansible first: "
              f"record.py --system {case.name})")
        outcome[case.name] = {"pass": False, "problems": [f"no {GOLDEN_SYSTEM}"]}
    cases = [c for c in cases if c.golden_file.is_file()]

    def work(case: SystemCase, lab: Lab):
        expected = json.loads(case.golden_file.read_text())
        results = run_case_system(case, lab, build, True, keep)
        problems = []
        kinds = [bool(r.get("check")) for r in expected["runs"]]
        if kinds != case.steps():
            problems.append(f"{GOLDEN_SYSTEM} holds runs {run_kinds(kinds)}, the case makes "
                            f"{run_kinds(case.steps())}: record it again")
        for index, (exp, act) in enumerate(zip(expected["runs"], results)):
            where = f"run {index + 1}{' (--check)' * act.check}"
            problems += [f"{where}: {p}" for p in compare_system_run(exp, act)]
            problems += [f"{where} changed the host: {p}" for p in act.touched]
        problems += mispredictions(case, results)
        return case, results, problems

    for case, results, problems in with_case_labs(cases, jobs, lab_where, lab_bin, work):
        known = xfail.get(case.name)
        said = known is not None and known.says and results and known.says in results[0].output
        if known is not None and (not problems or not known.says or said):
            outcome[case.name] = {"pass": bool(problems), "xfail": str(known), "problems": problems}
            if problems:
                print(f"XFAIL {case.name} ({known})")
            else:
                print(f"XPASS {case.name}: remove it from {XFAIL_SYSTEM_FILE.name}")
            continue
        if known is not None:
            problems.append(f'listed in {XFAIL_SYSTEM_FILE.name} as refused with '
                            f'"{known.says}", which tend did not print')
        outcome[case.name] = {"pass": not problems, "problems": problems}
        if not problems:
            print(f"PASS {case.name}")
            continue
        print(f"FAIL {case.name}")
        for problem in problems:
            print(f"    {problem}")
        for index, r in enumerate(results):
            tail = r.output.splitlines()[-12:]
            if tail:
                print(f"    --- run {index + 1} output (tail) ---")
                print("      " + "\n      ".join(tail))

    passed = sum(1 for o in outcome.values() if o["pass"])
    known_count = sum(1 for o in outcome.values() if "xfail" in o and o["pass"])
    print(f"\n{passed}/{len(outcome)} cases pass ({known_count} of them known differences "
          f"listed in {XFAIL_SYSTEM_FILE.name})")
    if report:
        report.write_text(json.dumps({"tool": "tend", "transport": "ssh", "mode": "system",
                                      "passed": passed, "total": len(outcome),
                                      "cases": outcome}, indent=2) + "\n")
    return 0 if passed == len(outcome) else 1


# ---------------------------------------------------------------------- compare


def recap_text(recap: dict | None) -> str:
    if recap is None:
        return "(no recap)"
    return "; ".join(
        f"{host}: " + " ".join(f"{k}={v}" for k, v in counts.items())
        for host, counts in recap.items()
    ) or "(empty recap)"


def compare_tree(exp_state: dict, act_state: dict, prefix: str = "") -> list[str]:
    problems = []
    for path in sorted(set(exp_state) | set(act_state)):
        e, a = exp_state.get(path), act_state.get(path)
        if e == a:
            continue
        if a is None:
            problems.append(f"state: {prefix}{path}: missing (expected {e['type']})")
        elif e is None:
            problems.append(f"state: {prefix}{path}: unexpected {a['type']}")
        else:
            for key in sorted(set(e) | set(a)):
                if e.get(key) != a.get(key):
                    problems.append(f"state: {prefix}{path}: {key}: expected {e.get(key)!r}, got {a.get(key)!r}")
    return problems


def compare_run(expected: dict, actual: RunResult, per_machine: bool = False) -> list[str]:
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
    if not per_machine:
        return problems + compare_tree(expected["state"], actual.state)
    # Lab mode: one tree per machine (lab host, or the controller).
    exp_state, act_state = expected["state"], actual.state
    for machine in sorted(set(exp_state) | set(act_state)):
        if machine not in act_state:
            problems.append(f"state: {machine}: no tree captured (expected {len(exp_state[machine])} paths)")
        elif machine not in exp_state:
            problems.append(f"state: {machine}: unexpected tree of {len(act_state[machine])} paths")
        else:
            problems += compare_tree(exp_state[machine], act_state[machine], f"{machine}:")
    return problems


# ------------------------------------------------------------------------- main


def golden_file(case: Case, lab: Lab | None) -> Path:
    return case.path / GOLDEN_SSH if lab else case.expected_file


def record(cases: list[Case], jobs: int, keep: bool, lab: Lab | None = None) -> int:
    playbook = find_ansible_playbook()
    version = subprocess.run([playbook, "--version"], capture_output=True, text=True).stdout
    if f"core {ANSIBLE_CORE_VERSION}" not in version:
        sys.exit(f"error: {playbook} is not ansible-core {ANSIBLE_CORE_VERSION}:\n{version}")
    # Modules run with the interpreter ansible itself runs on; interpreter
    # discovery can pick a broken shim (pyenv) on developer machines.  Lab
    # hosts set ansible_python_interpreter in the inventory, which wins.
    python = re.search(r"python version = .*\((?P<path>/[^)]+)\)\s*$", version, re.M)
    extra_env = {"ANSIBLE_PYTHON_INTERPRETER": python["path"] if python else "auto_silent"}
    where = f"over SSH on {len(lab.hosts)} lab hosts of {lab.state_dir}, " if lab else ""
    print(f"recording {len(cases)} case(s) with {playbook} ({where}modules on {extra_env['ANSIBLE_PYTHON_INTERPRETER']})")
    build = ansible_command(playbook)
    failures = 0

    def one(case: Case):
        started = time.monotonic()
        mapping = None
        if lab:
            mapping, results = run_case_lab(case, lab, "ansible", build, False, keep, extra_env)
        else:
            results = run_case(case, build, False, keep, extra_env)
        return case, mapping, results, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for case, mapping, results, seconds in pool.map(one, cases):
            broken = [i + 1 for i, r in enumerate(results) if r.rc == -1]
            if broken:
                # A timed-out (or unstartable) run is not what ansible does: keep the old golden.
                failures += 1
                print(f"{case.name:32} {seconds:5.1f}s  run {broken} timed out or did not start: "
                      f"golden not written (--timeout, a less loaded machine); output tail:")
                print("    " + "\n    ".join(results[broken[0] - 1].output.splitlines()[-15:]))
                continue
            golden: dict = {"ansible_core": ANSIBLE_CORE_VERSION}
            if lab:
                golden["transport"] = "ssh"
                golden["hosts"] = mapping
            golden["runs"] = [r.golden() for r in results]
            golden_file(case, lab).write_text(json.dumps(golden, indent=2) + "\n")
            summary = " | ".join(f"rc={r.rc} {recap_text(r.recap)}" for r in results)
            files = (sum(len(t) for t in results[-1].state.values()) if lab
                     else len(results[-1].state))
            print(f"{case.name:32} {seconds:5.1f}s  {summary}  files={files}")
            for index, r in enumerate(results):
                if r.recap is None:
                    failures += 1
                    print(f"  run {index + 1}: no PLAY RECAP; output tail:")
                    print("    " + "\n    ".join(r.output.splitlines()[-15:]))
    return 1 if failures else 0


XFAIL_FILE = HERE / "xfail.txt"
XFAIL_SSH_FILE = HERE / "xfail-ssh.txt"


@dataclass
class Known:
    """A known difference: why, and optionally what tend must print (`"..."` first)."""
    reason: str
    says: str | None = None

    def __str__(self) -> str:
        return f'tend says "{self.says}": {self.reason}' if self.says else self.reason


def load_xfail(path: Path = XFAIL_FILE) -> dict[str, Known]:
    """Cases known to differ: `NAME  reason` per line, `#` comments.

    A reason that starts with a double-quoted text names what tend prints on run 1
    (a refusal); the judge checks it is there, so a different failure is not
    mistaken for the known one.
    """
    known: dict[str, Known] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, reason = line.partition(" ")
                reason = reason.strip()
                said = re.match(r'^"(?P<says>[^"]+)"\s*(?P<rest>.*)$', reason)
                known[name] = Known(said["rest"], said["says"]) if said else Known(reason)
    return known


def judge(cases: list[Case], binary: str, jobs: int, keep: bool, report: Path | None,
          lab: Lab | None = None) -> int:
    build = tend_command(binary)
    outcome: dict[str, dict] = {}
    xfail_file = XFAIL_SSH_FILE if lab else XFAIL_FILE
    xfail = load_xfail(xfail_file)

    def one(case: Case):
        golden = golden_file(case, lab)
        if not golden.is_file():
            how = f"record.py --lab {lab.state_dir} {case.name}" if lab else f"record.py {case.name}"
            return case, None, [f"no {golden.name} (record it with ansible first: {how})"]
        expected = json.loads(golden.read_text())
        if lab:
            mapping, results = run_case_lab(case, lab, "tend", build, True, keep)
            if mapping != expected.get("hosts"):
                return case, results, [f"hosts mapped as {mapping}, the golden has "
                                       f"{expected.get('hosts')}: re-record it"]
        else:
            results = run_case(case, build, True, keep)
        problems = []
        for index, (exp, act) in enumerate(zip(expected["runs"], results)):
            problems += [f"run {index + 1}: {p}"
                         for p in compare_run(exp, act, per_machine=lab is not None)]
        return case, results, problems

    def show(results) -> None:
        for index, r in enumerate(results or []):
            tail = r.output.splitlines()[-12:]
            if tail:
                print(f"    --- run {index + 1} output (tail) ---")
                print("      " + "\n      ".join(tail))

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for case, results, problems in pool.map(one, cases):
            known = xfail.get(case.name)
            if known is not None:
                if problems and known.says and results and known.says not in results[0].output:
                    problems.append(f'listed in {xfail_file.name} as refused with "{known.says}", '
                                    f"which tend did not print")
                    outcome[case.name] = {"pass": False, "xfail": str(known), "problems": problems}
                    print(f"FAIL {case.name}")
                    for problem in problems:
                        print(f"    {problem}")
                    show(results)
                    continue
                # A known difference must still differ: a case that starts passing is news.
                outcome[case.name] = {"pass": bool(problems), "xfail": str(known), "problems": problems}
                if problems:
                    print(f"XFAIL {case.name} ({known})")
                else:
                    print(f"XPASS {case.name}: remove it from {xfail_file.name}")
                continue
            outcome[case.name] = {"pass": not problems, "problems": problems}
            if not problems:
                print(f"PASS {case.name}")
                continue
            print(f"FAIL {case.name}")
            for problem in problems:
                print(f"    {problem}")
            show(results)

    passed = sum(1 for o in outcome.values() if o["pass"])
    known = sum(1 for o in outcome.values() if "xfail" in o and o["pass"])
    print(f"\n{passed}/{len(outcome)} cases pass ({known} of them known differences listed in {xfail_file.name})")
    if report:
        report.write_text(json.dumps({"tool": "tend", "transport": "ssh" if lab else "local",
                                      "passed": passed, "total": len(outcome),
                                      "cases": outcome}, indent=2) + "\n")
    return 0 if passed == len(outcome) else 1


def main() -> int:
    global RUN_TIMEOUT_SECONDS
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--tool", choices=["ansible", "tend"], default="ansible",
                        help="ansible records expected.json; tend is compared against it")
    parser.add_argument("--bin", help="path to the tend binary (with --tool tend)")
    parser.add_argument("--lab", metavar="STATE_DIR|PREFIX",
                        help="run on the hosts of a running tend-lab over SSH "
                             "(goldens: golden-ssh.json, known differences: xfail-ssh.txt)")
    parser.add_argument("--system", action="store_true",
                        help="the system cases (tests/differential/system/): fresh lab hosts "
                             "per case, as root, observing packages/users/units/... "
                             "(goldens: golden.json, known differences: xfail-system.txt)")
    parser.add_argument("--lab-bin", metavar="PATH",
                        help="the tend-lab binary --system starts labs with "
                             "(default: $TEND_LAB_BIN, target/*/tend-lab, PATH)")
    parser.add_argument("--jobs", "-j", type=int, default=max(2, os.cpu_count() or 2),
                        help="cases run in parallel")
    parser.add_argument("--json-report", type=Path, help="write per-case pass/fail as JSON")
    parser.add_argument("--keep", action="store_true", help="keep temp roots for inspection")
    parser.add_argument("--timeout", type=int, default=RUN_TIMEOUT_SECONDS,
                        help=f"seconds one run may take (default {RUN_TIMEOUT_SECONDS})")
    opts = parser.parse_args()
    RUN_TIMEOUT_SECONDS = opts.timeout
    sys.stdout.reconfigure(line_buffering=True)
    os.umask(0o022)
    if opts.system:
        system_cases = discover_system_cases(opts.cases)
        jobs = opts.jobs if "-j" in sys.argv or "--jobs" in sys.argv else 1
        if opts.tool == "tend":
            if not opts.bin:
                parser.error("--tool tend needs --bin PATH")
            return judge_system(system_cases, str(Path(opts.bin).resolve()), jobs, opts.keep,
                                opts.json_report, opts.lab, opts.lab_bin)
        return record_system(system_cases, jobs, opts.keep, opts.lab, opts.lab_bin)
    cases = discover_cases(opts.cases)
    lab = Lab(opts.lab) if opts.lab else None
    try:
        if opts.tool == "tend":
            if not opts.bin:
                parser.error("--tool tend needs --bin PATH")
            return judge(cases, str(Path(opts.bin).resolve()), opts.jobs, opts.keep,
                         opts.json_report, lab)
        return record(cases, opts.jobs, opts.keep, lab)
    finally:
        if lab:
            lab.close()


if __name__ == "__main__":
    sys.exit(main())
