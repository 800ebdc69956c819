//! `git`, `get_url` and `unarchive` over SSH on a real lab host (crates/tend-lab): a git
//! repository and an HTTP server (python3 -m http.server on the host's loopback) live inside
//! the host; the archives are controller files shipped with the playbook. First run converges,
//! second run changes nothing, check mode predicts the change of a new version and changes
//! nothing, and a ref that does not exist is that task's own failure.
//!
//! Needs root (it starts a lab); skips with a note otherwise.

mod common;
use common::{is_root, recap_line, text};
use std::path::Path;
use std::process::Command;

use tend_lab::Lab;

fn tend(dir: &Path, args: &[&str]) -> std::process::Output {
    common::run_tend(dir, args)
}

const SETUP: &str = r#"set -e
export HOME=/root
git config --global user.email lab@example.com
git config --global user.name lab
mkdir -p /srv/upstream /srv/www
cd /srv/upstream
git init -q -b main
echo v1 > VERSION
git add VERSION
git commit -q -m v1
git tag -a v1 -m v1
git checkout -q -b dev
echo dev > VERSION
git commit -q -am dev
git checkout -q main
printf 'payload 1\n' > /srv/www/pkg.txt
cd /srv/www
setsid python3 -m http.server 8000 --bind 127.0.0.1 </dev/null >/dev/null 2>&1 &
for i in $(seq 1 50); do
  python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8000/pkg.txt")' 2>/dev/null && exit 0
  sleep 0.1
done
echo "http.server did not start" >&2
exit 1
"#;

/// `files/app.tar.gz` and `files/app.zip`: `site/index.html` and `site/bin/run`.
fn archives(files: &Path) {
    std::fs::create_dir_all(files).unwrap();
    let script = r##"
import io, tarfile, zipfile, time, sys
t = 1577923200
files = [("site/", None, 0o755), ("site/index.html", b"<h1>hi</h1>\n", 0o644),
         ("site/bin/", None, 0o755), ("site/bin/run", b"#!/bin/sh\necho run\n", 0o755)]
with tarfile.open("app.tar.gz", "w:gz") as tf:
    for n, data, m in files:
        ti = tarfile.TarInfo(n.rstrip("/"))
        ti.mtime, ti.mode, ti.uname, ti.gname = t, m, "root", "root"
        if data is None:
            ti.type = tarfile.DIRTYPE
            tf.addfile(ti)
        else:
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
with zipfile.ZipFile("app.zip", "w", zipfile.ZIP_DEFLATED) as zf:
    for n, data, m in files:
        zi = zipfile.ZipInfo(n, time.gmtime(t)[:6])
        zi.create_system = 3
        zi.external_attr = ((0o40000 if data is None else 0o100000) | m) << 16
        zf.writestr(zi, data or b"")
"##;
    let o = Command::new("python3")
        .args(["-c", script])
        .current_dir(files)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

const SITE: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - name: deploy the app
      git:
        repo: /srv/upstream
        dest: /srv/app
        version: "{{ app_version | default('v1') }}"
      register: deployed
    - name: download a package
      get_url:
        url: http://127.0.0.1:8000/pkg.txt
        dest: /srv/pkg.txt
        checksum: sha256:5c4bbd8d7d4a5b2ba4bf0b3e8d5c52d6b0d7c4d1b91c46a2bdf5a5a9c3b3f6b1
        mode: "0640"
    - file: path=/srv/site state=directory
    - unarchive: src=app.tar.gz dest=/srv/site
    - file: path=/srv/zip state=directory
    - unarchive: src=app.zip dest=/srv/zip
"#;

#[test]
fn git_get_url_unarchive_converge_over_ssh() {
    if !is_root() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("note: system_fetch needs root (it starts a lab host); skipped");
        }
        return;
    }
    let lab = Lab::start(1).expect("the lab starts (needs root and tests/setup.sh)");
    lab.run("h01", &["sh", "-c", SETUP]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    archives(&dir.path().join("files"));
    let sum = {
        use std::io::Write;
        let mut c = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(b"payload 1\n").unwrap();
        let o = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let site = SITE.replace(
        "5c4bbd8d7d4a5b2ba4bf0b3e8d5c52d6b0d7c4d1b91c46a2bdf5a5a9c3b3f6b1",
        &sum,
    );
    std::fs::write(dir.path().join("site.yml"), site).unwrap();
    let inv = lab.inventory_path();
    let inv = inv.to_str().unwrap();
    let v1 = lab
        .run(
            "h01",
            &["git", "-C", "/srv/upstream", "rev-parse", "v1^{commit}"],
        )
        .unwrap();
    let dev = lab
        .run("h01", &["git", "-C", "/srv/upstream", "rev-parse", "dev"])
        .unwrap();

    let o = tend(dir.path(), &["apply", "site.yml", "-i", inv]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        recap_line(&t, "h01").contains("ok=6    changed=6    unreachable=0    failed=0"),
        "{t}"
    );
    assert_eq!(
        lab.run("h01", &["git", "-C", "/srv/app", "rev-parse", "HEAD"])
            .unwrap(),
        v1
    );
    assert_eq!(
        lab.run("h01", &["stat", "-c", "%a %s", "/srv/pkg.txt"])
            .unwrap(),
        "640 10\n"
    );
    for d in ["/srv/site", "/srv/zip"] {
        assert_eq!(
            lab.run(
                "h01",
                &["stat", "-c", "%a %Y", &format!("{d}/site/bin/run")]
            )
            .unwrap(),
            "755 1577923200\n",
            "{d}"
        );
    }

    // Second run: nothing to do.
    let o = tend(dir.path(), &["apply", "site.yml", "-i", inv]);
    let t = text(&o);
    assert!(
        recap_line(&t, "h01").contains("ok=6    changed=0    unreachable=0    failed=0"),
        "{t}"
    );

    // Check mode predicts the new version (tar archives are skipped in check mode, as
    // ansible-core does) and changes nothing.
    let o = tend(
        dir.path(),
        &[
            "apply",
            "site.yml",
            "-i",
            inv,
            "--check",
            "-e",
            "app_version=dev",
        ],
    );
    let t = text(&o);
    assert!(
        recap_line(&t, "h01").contains("changed=1    unreachable=0    failed=0    skipped=1"),
        "{t}"
    );
    assert_eq!(
        lab.run("h01", &["git", "-C", "/srv/app", "rev-parse", "HEAD"])
            .unwrap(),
        v1
    );
    let o = tend(
        dir.path(),
        &["apply", "site.yml", "-i", inv, "-e", "app_version=dev"],
    );
    let t = text(&o);
    assert!(
        recap_line(&t, "h01").contains("ok=6    changed=1    unreachable=0    failed=0"),
        "{t}"
    );
    assert_eq!(
        lab.run("h01", &["git", "-C", "/srv/app", "rev-parse", "HEAD"])
            .unwrap(),
        dev
    );

    // A ref that does not exist: that task fails with git's step named, the rest of the
    // play goes on under ignore_errors, as in ansible-core.
    std::fs::write(
        dir.path().join("bad.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - git: repo=/srv/upstream dest=/srv/app2 version=nosuch\n      ignore_errors: true\n    - command: echo after\n",
    )
    .unwrap();
    let o = tend(dir.path(), &["apply", "bad.yml", "-i", inv]);
    let t = text(&o);
    assert!(t.contains("Failed to checkout nosuch"), "{t}");
    assert!(
        recap_line(&t, "h01").contains("failed=0") && recap_line(&t, "h01").contains("ignored=1"),
        "{t}"
    );

    // hostname on a host without systemd: /etc/hostname, as ansible-core's Debian strategy.
    std::fs::write(
        dir.path().join("name.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - hostname: name=web01.example.com\n",
    )
    .unwrap();
    let o = tend(dir.path(), &["apply", "name.yml", "-i", inv, "--check"]);
    assert!(
        recap_line(&text(&o), "h01").contains("changed=1"),
        "{}",
        text(&o)
    );
    assert_eq!(lab.run("h01", &["cat", "/etc/hostname"]).unwrap(), "h01\n");
    let o = tend(dir.path(), &["apply", "name.yml", "-i", inv]);
    assert!(
        recap_line(&text(&o), "h01").contains("changed=1"),
        "{}",
        text(&o)
    );
    assert_eq!(
        lab.run("h01", &["cat", "/etc/hostname"]).unwrap(),
        "web01.example.com\n"
    );
    let o = tend(dir.path(), &["apply", "name.yml", "-i", inv]);
    assert!(
        recap_line(&text(&o), "h01").contains("changed=0"),
        "{}",
        text(&o)
    );
}
