#!/usr/bin/env python3
"""Generate the fleet benchmark workload: one task list, written twice.

    gen.py OUTDIR

writes, from the single task list in `tasks()` below:

    OUTDIR/ansible/site.yml          the Ansible playbook (tend and ansible-playbook run it)
    OUTDIR/ansible/templates/*.j2    its templates
    OUTDIR/ansible/files/*           its static files (copy src=)
    OUTDIR/pyinfra/deploy.py         the equivalent pyinfra deploy
    OUTDIR/pyinfra/templates, files  the same templates and files
    OUTDIR/managed.json              the paths the workload manages (for the end-state check)

Per host 31 tasks, everything below /srv/fleet, gather_facts off (pyinfra gathers only the
facts its operations ask for):

     6  directories            file state=directory, modes 0700-0755      files.directory
     8  copy content=          multi-line text, explicit modes            files.put(StringIO)
     4  copy src=              text, a 64 KiB binary blob, a script       files.put(path)
     5  template               task vars, a play-level list, a loop,      files.template
                               conditionals, inventory_hostname           (trim_blocks, as Ansible)
     4  lineinfile             create: true, regexp, two files            files.line(replace=)
     1  blockinfile            a new file, the default Ansible marker     files.block + files.file
     3  guarded commands       command/shell with creates=                server.shell, run only
                                                                          if a File fact says the
                                                                          path is missing

Every file gets an explicit mode (so the end state does not depend on a tool's defaults), except
what the guarded commands create (that follows the remote shell's umask, 022 over ssh, in all
three tools). Content depends only on the inventory name of the host, never on the time, the
controller or the lab's addresses, so a fresh lab gives identical trees for every tool.
"""

import hashlib
import io
import json
import random
import sys
from pathlib import Path

ROOT = "/srv/fleet"

# ansible's blockinfile default marker; pyinfra is told to use the same.
BLOCK_MARKER = "# {mark} ANSIBLE MANAGED BLOCK"

APP_TEMPLATE = """\
# {{ app_name }} on {{ inventory_hostname }} -- managed by the fleet benchmark
[server]
name = {{ app_name }}
port = {{ app_port }}
workers = {{ workers }}
{% for peer in peers %}
peer{{ loop.index }} = {{ peer }}:{{ app_port + loop.index }}
{% endfor %}
{% if tls %}
tls = on
tls_cert = /etc/ssl/{{ app_name }}.pem
{% else %}
tls = off
{% endif %}
"""

NODE_TEMPLATE = """\
NODE_NAME={{ inventory_hostname }}
NODE_ROLE={{ role }}
{% for k, v in settings | dictsort %}
{{ k | upper }}={{ v }}
{% endfor %}
"""

HOSTS_TEMPLATE = """\
# peers known to {{ inventory_hostname }}
{% for peer in peers %}
{{ peer }}.fleet.internal {{ peer }}
{% endfor %}
"""

TEMPLATES = {"app.conf.j2": APP_TEMPLATE, "node.env.j2": NODE_TEMPLATE, "peers.j2": HOSTS_TEMPLATE}

PLAY_VARS = {"peers": ["alpha", "beta", "gamma", "delta"]}


def static_files() -> dict[str, bytes]:
    rng = random.Random(20261122)
    blob = bytes(rng.getrandbits(8) for _ in range(64 * 1024))
    logrotate = "".join(
        f"/srv/fleet/log/app{i}.log {{\n    weekly\n    rotate {i + 3}\n    compress\n    missingok\n}}\n"
        for i in range(6)
    )
    script = "#!/bin/sh\n# health check written by the fleet benchmark\nset -eu\n" + "".join(
        f"test -d /srv/fleet/{d} || {{ echo 'missing /srv/fleet/{d}' >&2; exit 1; }}\n"
        for d in ("etc", "app", "data", "log")
    ) + "echo ok\n"
    banner = "\n".join(f"{'=' * (10 + i)} fleet {i}" for i in range(40)) + "\n"
    return {"logrotate.conf": logrotate.encode(), "blob.bin": blob,
            "health.sh": script.encode(), "banner.txt": banner.encode()}


def tasks() -> list[dict]:
    """The workload, tool-neutral. Each entry: kind, name, and the kind's arguments."""
    t: list[dict] = []
    for path, mode in (("", "0755"), ("etc", "0755"), ("app", "0750"), ("app/conf", "0750"),
                       ("data", "0755"), ("log", "0700")):
        full = f"{ROOT}/{path}".rstrip("/")
        t.append({"kind": "directory", "name": f"directory {full}", "path": full, "mode": mode})

    for i in range(8):
        if i < 3:
            dest, mode = f"{ROOT}/etc/env{i}.conf", "0644"
        elif i < 7:
            dest, mode = f"{ROOT}/app/conf/feature{i - 3}.ini", ("0640" if i % 2 else "0600")
        else:
            dest, mode = f"{ROOT}/etc/motd", "0644"
        lines = [f"# content file {i}", f"[section{i}]"]
        lines += [f"option{j} = value {i * 17 + j}" for j in range(5 + i)]
        t.append({"kind": "content", "name": f"content {dest}", "dest": dest, "mode": mode,
                  "content": "\n".join(lines) + "\n"})

    for src, dest, mode in (("logrotate.conf", f"{ROOT}/etc/logrotate.conf", "0644"),
                            ("blob.bin", f"{ROOT}/data/blob.bin", "0600"),
                            ("health.sh", f"{ROOT}/app/health.sh", "0755"),
                            ("banner.txt", f"{ROOT}/etc/banner.txt", "0644")):
        t.append({"kind": "src", "name": f"file {dest}", "src": src, "dest": dest, "mode": mode})

    for i, (name, port, workers, tls) in enumerate((("web", 8080, 4, True), ("api", 9090, 2, False),
                                                     ("worker", 7070, 8, True))):
        t.append({"kind": "template", "name": f"template app {name}", "src": "app.conf.j2",
                  "dest": f"{ROOT}/app/conf/{name}.conf", "mode": "0640" if i == 1 else "0644",
                  "vars": {"app_name": name, "app_port": port, "workers": workers, "tls": tls}})
    t.append({"kind": "template", "name": "template node env", "src": "node.env.j2",
              "dest": f"{ROOT}/etc/node.env", "mode": "0600",
              "vars": {"role": "bench", "settings": {"region": "lab", "tier": "2", "zone": "a"}}})
    t.append({"kind": "template", "name": "template peers", "src": "peers.j2",
              "dest": f"{ROOT}/etc/peers", "mode": "0644", "vars": {}})

    for path, key, value in ((f"{ROOT}/etc/sysctl.conf", "net.core.somaxconn", "1024"),
                             (f"{ROOT}/etc/sysctl.conf", "vm.swappiness", "10"),
                             (f"{ROOT}/etc/sysctl.conf", "fs.file-max", "100000"),
                             (f"{ROOT}/app/conf/runtime.conf", "max_connections", "512")):
        t.append({"kind": "line", "name": f"line {key} in {path}", "path": path,
                  "regexp": "^" + key.replace(".", r"\.") + "=", "line": f"{key}={value}",
                  "mode": "0644"})

    t.append({"kind": "block", "name": "block limits", "path": f"{ROOT}/etc/limits.conf", "mode": "0644",
              "block": "* soft nofile 65536\n* hard nofile 65536\nroot soft nproc unlimited"})

    t.append({"kind": "command", "name": "record the hostname", "shell": False,
              "cmd": f"cp /etc/hostname {ROOT}/data/hostname.txt", "creates": f"{ROOT}/data/hostname.txt"})
    t.append({"kind": "command", "name": "stamp the build", "shell": True,
              "cmd": f"echo \"built on $(cat /etc/hostname)\" > {ROOT}/data/build.stamp",
              "creates": f"{ROOT}/data/build.stamp"})
    t.append({"kind": "command", "name": "mark initialized", "shell": False,
              "cmd": f"touch {ROOT}/data/initialized", "creates": f"{ROOT}/data/initialized"})
    assert len(t) == 31, len(t)
    return t


def q(value) -> str:
    """A YAML scalar: JSON strings are valid YAML double-quoted strings."""
    return json.dumps(value)


def ansible_playbook(ts: list[dict]) -> str:
    out = ["- name: fleet benchmark", "  hosts: all", "  gather_facts: false",
           f"  vars:", f"    peers: {json.dumps(PLAY_VARS['peers'])}", "  tasks:"]
    for t in ts:
        k = t["kind"]
        out.append(f"    - name: {q(t['name'])}")
        if k == "directory":
            out += ["      ansible.builtin.file:", f"        path: {q(t['path'])}", "        state: directory",
                    f"        mode: {q(t['mode'])}"]
        elif k == "content":
            out += ["      ansible.builtin.copy:", f"        dest: {q(t['dest'])}",
                    f"        content: {q(t['content'])}", f"        mode: {q(t['mode'])}"]
        elif k == "src":
            out += ["      ansible.builtin.copy:", f"        src: {q(t['src'])}",
                    f"        dest: {q(t['dest'])}", f"        mode: {q(t['mode'])}"]
        elif k == "template":
            out += ["      ansible.builtin.template:", f"        src: {q(t['src'])}",
                    f"        dest: {q(t['dest'])}", f"        mode: {q(t['mode'])}"]
            if t["vars"]:
                out.append("      vars:")
                out += [f"        {k2}: {json.dumps(v)}" for k2, v in t["vars"].items()]
        elif k == "line":
            out += ["      ansible.builtin.lineinfile:", f"        path: {q(t['path'])}",
                    f"        regexp: {q(t['regexp'])}", f"        line: {q(t['line'])}",
                    "        create: true", f"        mode: {q(t['mode'])}"]
        elif k == "block":
            out += ["      ansible.builtin.blockinfile:", f"        path: {q(t['path'])}",
                    f"        block: {q(t['block'])}", "        create: true", f"        mode: {q(t['mode'])}"]
        elif k == "command":
            module = "ansible.builtin.shell" if t["shell"] else "ansible.builtin.command"
            out += [f"      {module}:", f"        cmd: {q(t['cmd'])}", f"        creates: {q(t['creates'])}"]
        else:
            raise ValueError(k)
    return "\n".join(out) + "\n"


def pyinfra_deploy(ts: list[dict]) -> str:
    """pyinfra operations for the same end state. Modes are given as pyinfra takes them (octal
    digits without the leading 0); templates get Ansible's trim_blocks."""
    out = ['"""The fleet benchmark workload for pyinfra (generated by benches/fleet/gen.py)."""',
           "", "import io", "", "from pyinfra import host", "from pyinfra.facts.files import File",
           "from pyinfra.operations import files, server", "",
           f"PEERS = {PLAY_VARS['peers']!r}",
           "JINJA = {'trim_blocks': True}", ""]

    def mode(m: str) -> str:
        return repr(m.lstrip("0") or "0")

    for t in ts:
        k, name = t["kind"], repr(t["name"])
        if k == "directory":
            out.append(f"files.directory(name={name}, path={t['path']!r}, mode={mode(t['mode'])})")
        elif k == "content":
            out.append(f"files.put(name={name}, src=io.StringIO({t['content']!r}), dest={t['dest']!r}, "
                       f"mode={mode(t['mode'])})")
        elif k == "src":
            out.append(f"files.put(name={name}, src={'files/' + t['src']!r}, dest={t['dest']!r}, "
                       f"mode={mode(t['mode'])})")
        elif k == "template":
            kw = "".join(f", {k2}={v!r}" for k2, v in t["vars"].items())
            out.append(f"files.template(name={name}, src={'templates/' + t['src']!r}, dest={t['dest']!r}, "
                       f"mode={mode(t['mode'])}, jinja_env_kwargs=dict(JINJA), "
                       f"inventory_hostname=host.name, peers=PEERS{kw})")
        elif k == "line":
            out.append(f"files.line(name={name}, path={t['path']!r}, line={t['regexp'] + '.*$'!r}, "
                       f"replace={t['line']!r})")
            # files.line creates the file with the shell's umask; Ansible's mode: is explicit.
            out.append(f"files.file(name={t['name'] + ' (mode)'!r}, path={t['path']!r}, mode={mode(t['mode'])})")
        elif k == "block":
            out.append(f"files.block(name={name}, path={t['path']!r}, content={t['block']!r}, "
                       f"marker={BLOCK_MARKER!r})")
            out.append(f"files.file(name={t['name'] + ' (mode)'!r}, path={t['path']!r}, mode={mode(t['mode'])})")
        elif k == "command":
            out.append(f"if not host.get_fact(File, path={t['creates']!r}):")
            out.append(f"    server.shell(name={name}, commands=[{t['cmd']!r}])")
        else:
            raise ValueError(k)
    return "\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = Path(sys.argv[1])
    ts = tasks()
    managed = sorted({t.get("path") or t.get("dest") or t.get("creates") for t in ts})
    for tool in ("ansible", "pyinfra"):
        for sub, items in (("templates", {k: v.encode() for k, v in TEMPLATES.items()}),
                           ("files", static_files())):
            d = outdir / tool / sub
            d.mkdir(parents=True, exist_ok=True)
            for name, data in items.items():
                (d / name).write_bytes(data)
    (outdir / "ansible" / "site.yml").write_text(ansible_playbook(ts))
    (outdir / "pyinfra" / "deploy.py").write_text(pyinfra_deploy(ts))
    (outdir / "managed.json").write_text(json.dumps({"root": ROOT, "tasks": len(ts), "paths": managed},
                                                    indent=1))
    digest = hashlib.sha256((outdir / "ansible" / "site.yml").read_bytes()).hexdigest()[:12]
    print(f"{outdir}: {len(ts)} tasks per host (site.yml sha256 {digest})", file=sys.stderr)


if __name__ == "__main__":
    main()
