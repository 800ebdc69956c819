#!/usr/bin/env python3
"""The end state of one root tree, as the differential harness records it.

record.py imports this module for local runs; in lab mode it sends this file to
each lab host and runs it there with the host's python3 (stdlib only, Python
3.9+), so both modes capture the same format:

    python3 - ROOT [REPLACEMENTS_JSON] < snapshot.py    # prints the state as JSON

REPLACEMENTS_JSON is a list of [text, placeholder, bounded]: every occurrence of
text in file contents and link targets becomes placeholder (the root itself is
always replaced by <root>); with bounded true, only where it is not part of a
longer number (addresses: 10.250.2.1 must not match inside 10.250.2.11).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
from pathlib import Path

ROOT_PLACEHOLDER = "<root>"

# Ansible's backup files: <name>.<pid>.<YYYY-MM-DD@HH:MM:SS>~
BACKUP_NAME = re.compile(r"^(?P<name>.+)\.(?P<pid>\d+)\.(?P<when>\d{4}-\d{2}-\d{2}@\d{2}:\d{2}:\d{2})~$")


def walk_order(name: str) -> tuple:
    """Backups of one file in the order they were taken; others by name."""
    match = BACKUP_NAME.match(name)
    if match:
        return (match["name"], 1, match["when"], int(match["pid"]))
    return (name, 0, "", 0)


class Normaliser:
    """Replaces host-specific text (the root, addresses, lab paths) with placeholders."""

    def __init__(self, root: str, replacements=()):
        plain = [(root, ROOT_PLACEHOLDER)]
        bounded = []
        for text, placeholder, is_bounded in replacements:
            if text:
                (bounded if is_bounded else plain).append((text, placeholder))
        # Longest first, so a path that contains another is replaced whole.
        self.plain = sorted(plain, key=lambda p: -len(p[0]))
        self.bounded = None
        if bounded:
            bounded.sort(key=lambda p: -len(p[0]))
            self.placeholders = {text.encode(): ph.encode() for text, ph in bounded}
            alternatives = b"|".join(re.escape(text.encode()) for text, _ in bounded)
            self.bounded = re.compile(rb"(?<![0-9])(?:" + alternatives + rb")(?![0-9])")

    def data(self, content: bytes) -> bytes:
        for text, placeholder in self.plain:
            content = content.replace(text.encode(), placeholder.encode())
        if self.bounded is not None:
            content = self.bounded.sub(lambda m: self.placeholders[m.group(0)], content)
        return content

    def text(self, value: str) -> str:
        return self.data(value.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")


def snapshot(root: Path, replacements=()) -> dict:
    """Every path under root (relative) -> type, mode, link target, content hash."""
    norm = Normaliser(str(root), replacements)
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
                entry["target"] = norm.text(os.readlink(full))
                del entry["mode"]  # symlink modes are meaningless on Linux
            elif stat.S_ISDIR(st.st_mode):
                entry["type"] = "dir"
            elif stat.S_ISREG(st.st_mode):
                entry["type"] = "file"
                content = norm.data(full.read_bytes())
                entry["sha256"] = hashlib.sha256(content).hexdigest()
                entry["size"] = len(content)
            else:
                entry["type"] = "other"
            state[str(rel)] = dict(sorted(entry.items()))
    return dict(sorted(state.items()))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: snapshot.py ROOT [REPLACEMENTS_JSON]")
    given = json.loads(sys.argv[2]) if len(sys.argv) == 3 else []
    json.dump(snapshot(Path(sys.argv[1]), given), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
