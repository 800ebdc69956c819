#!/usr/bin/env python3
"""What a system differential case observes on one lab host, as canonical JSON.

record.py --system sends this file to each lab host over ssh and runs it there as root
with the host's python3 (stdlib only, Python 3.9+):

    python3 - OBSERVE_JSON [REPLACEMENTS_JSON] < snapshot_system.py

OBSERVE_JSON is the case's observe.json, any subset of
    {"paths": [...], "users": [...], "groups": [...], "crontabs": [...],
     "packages": [...], "units": [...], "commands": [[argv...], ...]}
REPLACEMENTS_JSON is a list of [text, placeholder]: host-specific text (the lab's
addresses) in file contents and command output becomes the placeholder, where it is
not part of a longer number.

Nothing volatile is kept: no timestamps (file times, shadow's last-change day), no
inode numbers. Owners and groups are given as numbers and as names. A package's
version is `<repo>` when it is the candidate of the lab's repository
(/srv/tend-lab-repo/versions.json) for a package that follows the mirror, so goldens
survive a mirror update; the lab's own packages (tend-demo) keep their versions.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import stat
import subprocess
import sys

REPO_VERSIONS = "/srv/tend-lab-repo/versions.json"
REPO_PLACEHOLDER = "<repo>"
UNIT_PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState")


class Normaliser:
    def __init__(self, replacements):
        pairs = sorted(((t, p) for t, p, *_ in replacements if t), key=lambda p: -len(p[0]))
        self.pattern = None
        if pairs:
            self.placeholders = {t.encode(): p.encode() for t, p in pairs}
            alternatives = b"|".join(re.escape(t.encode()) for t, _ in pairs)
            self.pattern = re.compile(rb"(?<![0-9])(?:" + alternatives + rb")(?![0-9])")

    def data(self, content: bytes) -> bytes:
        if self.pattern is None:
            return content
        return self.pattern.sub(lambda m: self.placeholders[m.group(0)], content)

    def text(self, value: str) -> str:
        return self.data(value.encode("utf-8", "surrogateescape")).decode("utf-8", "replace")


def owner(st) -> dict:
    def name(lookup, ident):
        try:
            return lookup(ident)[0]
        except KeyError:
            return None
    return {"uid": st.st_uid, "owner": name(pwd.getpwuid, st.st_uid),
            "gid": st.st_gid, "group": name(grp.getgrgid, st.st_gid)}


def path_entry(path: str, norm: Normaliser) -> dict:
    st = os.lstat(path)
    entry = owner(st)
    if stat.S_ISLNK(st.st_mode):
        entry["type"] = "link"
        entry["target"] = norm.text(os.readlink(path))
        return entry
    entry["mode"] = f"{stat.S_IMODE(st.st_mode):04o}"
    if stat.S_ISDIR(st.st_mode):
        entry["type"] = "dir"
    elif stat.S_ISREG(st.st_mode):
        entry["type"] = "file"
        with open(path, "rb") as f:
            content = norm.data(f.read())
        entry["sha256"] = hashlib.sha256(content).hexdigest()
        entry["size"] = len(content)
    else:
        entry["type"] = "other"
    return entry


def paths(wanted, norm: Normaliser) -> dict:
    """Each path (directories recursively) -> type, mode, owner, group, content hash."""
    out = {}
    for top in wanted:
        if not os.path.lexists(top):
            out[top] = {"type": "absent"}
            continue
        out[top] = path_entry(top, norm)
        if out[top]["type"] != "dir":
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                out[full] = path_entry(full, norm)
    return dict(sorted(out.items()))


def read_table(path: str) -> dict:
    """name -> fields of a colon-separated database (/etc/shadow, ...)."""
    table = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields and fields[0]:
                    table[fields[0]] = fields
    except FileNotFoundError:
        pass
    return table


def users(wanted, norm: Normaliser) -> dict:
    shadow = read_table("/etc/shadow")
    groups = list(grp.getgrall())
    out = {}
    for name in wanted:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            out[name] = {"exists": False}
            continue
        try:
            primary = grp.getgrgid(pw.pw_gid).gr_name
        except KeyError:
            primary = None
        sh = shadow.get(name, [])
        entry = {
            "exists": True,
            "uid": pw.pw_uid, "gid": pw.pw_gid, "group": primary,
            "gecos": pw.pw_gecos, "home": pw.pw_dir, "shell": pw.pw_shell,
            "groups": sorted(g.gr_name for g in groups if name in g.gr_mem),
            # The password field only: shadow's other fields hold the day of the change.
            "password": sh[1] if len(sh) > 1 else None,
            "expires": sh[7] if len(sh) > 7 else None,
        }
        keys = os.path.join(pw.pw_dir, ".ssh", "authorized_keys")
        if os.path.lexists(keys):
            entry["authorized_keys"] = path_entry(keys, norm)
            with open(keys, encoding="utf-8", errors="replace") as f:
                entry["authorized_keys"]["content"] = norm.text(f.read())
        home = pw.pw_dir
        entry["home_exists"] = os.path.isdir(home)
        if entry["home_exists"]:
            entry["home_entry"] = path_entry(home, norm)
        out[name] = entry
    return out


def groups(wanted) -> dict:
    out = {}
    for name in wanted:
        try:
            g = grp.getgrnam(name)
        except KeyError:
            out[name] = {"exists": False}
            continue
        out[name] = {"exists": True, "gid": g.gr_gid, "members": sorted(g.gr_mem)}
    return out


def run(argv, input_text=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, LC_ALL="C")
    return subprocess.run(argv, input=input_text, capture_output=True, text=True, env=env,
                          errors="replace")


def crontabs(wanted, norm: Normaliser) -> dict:
    out = {}
    for name in wanted:
        try:
            proc = run(["crontab", "-l", "-u", name])
        except OSError as exc:
            raise SystemExit(f"crontab -l -u {name}: {exc.strerror} (is cron installed?)")
        # "no crontab for NAME" is an absent crontab, not an error.
        out[name] = norm.text(proc.stdout) if proc.returncode == 0 else None
    return out


def repo_candidates() -> tuple[dict, set]:
    try:
        with open(REPO_VERSIONS) as f:
            data = json.load(f)
        return data.get("candidates", {}), set(data.get("local", []))
    except (OSError, ValueError):
        return {}, set()


def packages(wanted) -> dict:
    candidates, local = repo_candidates()
    out = {name: {"status": "not-installed"} for name in wanted}
    if not wanted:
        return out
    # One dpkg-query for the whole list; unknown names go to stderr.
    proc = run(["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Version}\n", *wanted])
    for line in proc.stdout.splitlines():
        name, status, version = (line.split("\t") + ["", ""])[:3]
        if name not in out:
            continue
        if status.endswith(" not-installed"):
            continue
        if version and version == candidates.get(name) and name not in local:
            version = REPO_PLACEHOLDER
        out[name] = {"status": status, "version": version or None}
    return out


def units(wanted) -> dict:
    if not wanted:
        return {}
    if not os.path.isdir("/run/systemd/system"):
        return {name: {"manager": "none"} for name in wanted}
    # One systemctl call: blocks in the order asked, separated by blank lines.
    proc = run(["systemctl", "show", "--property=" + ",".join(UNIT_PROPERTIES), "--", *wanted])
    blocks = [b for b in proc.stdout.split("\n\n")]
    out = {}
    for name, block in zip(wanted, blocks + [""] * len(wanted)):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        out[name] = {key: props.get(key) for key in UNIT_PROPERTIES}
    return out


def commands(wanted, norm: Normaliser) -> list:
    out = []
    for argv in wanted:
        try:
            proc = run(argv)
            out.append({"argv": argv, "rc": proc.returncode, "stdout": norm.text(proc.stdout)})
        except OSError as exc:
            out.append({"argv": argv, "rc": None, "error": exc.strerror})
    return out


def observe(spec: dict, replacements=()) -> dict:
    norm = Normaliser(replacements)
    known = {"paths", "users", "groups", "crontabs", "packages", "units", "commands"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise SystemExit(f"observe.json: unknown keys {unknown} (known: {sorted(known)})")
    state = {}
    if "paths" in spec:
        state["paths"] = paths(spec["paths"], norm)
    if "users" in spec:
        state["users"] = users(spec["users"], norm)
    if "groups" in spec:
        state["groups"] = groups(spec["groups"])
    if "crontabs" in spec:
        state["crontabs"] = crontabs(spec["crontabs"], norm)
    if "packages" in spec:
        state["packages"] = packages(list(spec["packages"]))
    if "units" in spec:
        state["units"] = units(list(spec["units"]))
    if "commands" in spec:
        state["commands"] = commands(spec["commands"], norm)
    return state


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: snapshot_system.py OBSERVE_JSON [REPLACEMENTS_JSON]")
    given = json.loads(sys.argv[2]) if len(sys.argv) == 3 else []
    json.dump(observe(json.loads(sys.argv[1]), given), sys.stdout, sort_keys=True, indent=None)
    sys.stdout.write("\n")
