//! `tend rollback RUN`: a local host in a temporary directory (no root needed) — an apply
//! changes files, modes, a link and a directory and creates a file; the rollback puts every
//! one back byte for byte, a second rollback changes nothing, what cannot be undone is named,
//! and the rollback is a run in the history.

mod common;
use common::{recap_line, text};

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tend(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("TEND_LOCK_DIR", dir.join("lock"))
        // Each test its own journals (the default is the user's cache, or /var/lib as root).
        .env("TEND_JOURNAL_DIR", dir.join("journal"))
        .env_remove("TEND_STORE")
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const OLD_SECRET: &str = "old-secret-4c1e7a";

/// Every path under `root`: kind, mode, owner, content or link target.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let what = if m.file_type().is_symlink() {
            format!("link {:?}", std::fs::read_link(p).unwrap())
        } else if m.is_dir() {
            format!("dir {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid())
        } else {
            format!(
                "file {:o} {}:{} {:?}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                std::fs::read(p).unwrap()
            )
        };
        out.insert(p.to_path_buf(), what);
        if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                walk(&e.path(), out);
            }
        }
    }
    walk(root, &mut out);
    out
}

/// A project whose playbook changes what is under `root/`.
fn project(extra_tasks: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("releases/1")).unwrap();
    std::fs::create_dir_all(root.join("releases/2")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    // Not UTF-8, no final newline: restored byte for byte or not at all.
    std::fs::write(root.join("app.conf"), b"port=80\n\xff\xfe tail").unwrap();
    std::fs::set_permissions(root.join("app.conf"), PermissionsExt::from_mode(0o640)).unwrap();
    std::fs::write(root.join("hosts"), "a\nb\n").unwrap();
    std::fs::write(root.join("token"), format!("{OLD_SECRET}\n")).unwrap();
    std::os::unix::fs::symlink("releases/1", root.join("current")).unwrap();
    std::fs::write(
        d.path().join("site.yml"),
        format!(
            r#"- hosts: all
  gather_facts: false
  vars:
    root: "{{{{ playbook_dir }}}}/root"
  tasks:
    - name: config
      copy: {{dest: "{{{{ root }}}}/app.conf", content: "port=8080\n", mode: "0600"}}
    - name: a line
      lineinfile: {{path: "{{{{ root }}}}/hosts", line: c}}
    - name: release
      file: {{path: "{{{{ root }}}}/current", src: releases/2, state: link}}
    - name: private data
      file: {{path: "{{{{ root }}}}/data", state: directory, mode: "0700"}}
    - name: a new file
      copy: {{dest: "{{{{ root }}}}/new.txt", content: "fresh\n"}}
    - name: new token
      copy: {{dest: "{{{{ root }}}}/token", content: "new-token\n"}}
      no_log: true
{extra_tasks}"#
        ),
    )
    .unwrap();
    std::fs::write(d.path().join("inv"), "web1 ansible_connection=local\n").unwrap();
    d
}

fn last_run(dir: &Path) -> String {
    let o = tend(dir, &["history", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array().unwrap().last().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_rollback_restores_every_change_byte_for_byte_and_a_second_one_changes_nothing() {
    let p = project("");
    let root = p.path().join("root");
    let before = snapshot(&root);
    let o = tend(p.path(), &["apply", "site.yml", "-i", "inv"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        recap_line(&out(&o), "web1").contains("changed=6"),
        "{}",
        text(&o)
    );
    assert_ne!(snapshot(&root), before);
    let run = last_run(p.path());

    // The journal holds old contents: private to the user.
    let jdir = p.path().join("journal").join(&run);
    assert_eq!(
        std::fs::metadata(&jdir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(jdir.join("entries.jsonl"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let o = tend(p.path(), &["rollback", &run, "-i", "inv", "-D"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let shown = out(&o);
    assert!(
        recap_line(&shown, "web1").contains("changed=6"),
        "{}",
        text(&o)
    );
    for r in [
        "rollback copy[",
        "rollback lineinfile[",
        "rollback file[",
        "app.conf]",
        "new.txt]",
    ] {
        assert!(shown.contains(r), "{r} missing:\n{}", text(&o));
    }
    // Newest change first.
    assert!(shown.find("new.txt]").unwrap() < shown.find("app.conf]").unwrap());
    assert!(
        !shown.contains(OLD_SECRET),
        "no_log content shown:\n{shown}"
    );
    assert_eq!(snapshot(&root), before, "not restored:\n{}", text(&o));

    // Restored entries are marked: nothing is left to do.
    let o = tend(p.path(), &["rollback", &run, "-i", "inv"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        recap_line(&out(&o), "web1").contains("changed=0"),
        "{}",
        text(&o)
    );
    assert!(out(&o).contains("nothing to restore"), "{}", text(&o));
    assert_eq!(snapshot(&root), before);

    // Both rollbacks are runs of their own in the history, with their diffs; the no_log
    // task's old content is in neither.
    let o = tend(p.path(), &["history", "--kind", "rollback"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(out(&o).matches("rollback").count(), 2, "{}", text(&o));
    let rb = last_run(p.path());
    assert_ne!(rb, run);
    let o = tend(p.path(), &["history", "show", &rb, "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!out(&o).contains(OLD_SECRET));
    let runs = tend(p.path(), &["history", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let first_rb = &v.as_array().unwrap()[1];
    let o = tend(
        p.path(),
        &[
            "history",
            "show",
            first_rb["run_id"].as_str().unwrap(),
            "--output",
            "json",
        ],
    );
    let all = out(&o);
    assert_eq!(v.as_array().unwrap()[1]["rolls_back"], run.as_str());
    // The run says it was rolled back, and by which runs.
    let o = tend(p.path(), &["history", "show", &run]);
    assert!(
        out(&o).contains(&format!(
            "undone by: run {}",
            first_rb["run_id"].as_str().unwrap()
        )),
        "{}",
        text(&o)
    );
    assert!(
        all.contains("\"before\": \"port=8080"),
        "diffs not recorded: {all}"
    );
    assert!(!all.contains(OLD_SECRET), "no_log content recorded: {all}");
}

#[test]
fn what_cannot_be_undone_is_named_with_its_task_and_the_rest_is_restored() {
    let p = project(
        r#"    - name: restart by hand
      command: "true"
    - name: only looks
      command: "true"
      changed_when: false
"#,
    );
    let root = p.path().join("root");
    let before = snapshot(&root);
    let o = tend(p.path(), &["apply", "site.yml", "-i", "inv"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(p.path());
    let o = tend(p.path(), &["rollback", &run, "-i", "inv"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = err(&o);
    assert!(
        e.contains("cannot restore command[restart by hand]: `command` ran at")
            && e.contains("site.yml:19:7"),
        "{}",
        text(&o)
    );
    // A task that changed nothing (changed_when) is not something to undo.
    assert!(!e.contains("only looks"), "{}", text(&o));
    assert_eq!(snapshot(&root), before);
}

#[test]
fn only_runs_that_changed_something_can_be_rolled_back() {
    let p = project("");
    let o = tend(p.path(), &["rollback", "no-such-run", "-i", "inv"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err(&o).contains("error: there is no history store"),
        "{}",
        text(&o)
    );

    let o = tend(p.path(), &["apply", "site.yml", "-i", "inv", "--check"]);
    assert!(o.status.success(), "{}", text(&o));
    let check = last_run(p.path());
    let o = tend(p.path(), &["rollback", &check, "-i", "inv"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(err(&o).contains("was a check"), "{}", text(&o));
    assert!(!p.path().join("journal").exists(), "a check run journaled");

    let o = tend(p.path(), &["rollback", "no-such-run", "-i", "inv"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err(&o).contains("no run matches `no-such-run`"),
        "{}",
        text(&o)
    );

    // A host the run did not change is said so, and the rollback changes nothing.
    let o = tend(p.path(), &["apply", "site.yml", "-i", "inv"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = tend(p.path(), &["apply", "site.yml", "-i", "inv"]);
    assert!(o.status.success(), "{}", text(&o));
    let idle = last_run(p.path());
    let o = tend(p.path(), &["rollback", &idle, "-i", "inv"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        err(&o).contains(&format!(
            "web1: nothing to restore (run {idle} changed nothing there)"
        )),
        "{}",
        text(&o)
    );
}

// ---- over SSH, on a systemd lab host ----------------------------------------------------

/// `${Version} ${Status}` of a package on the lab host, or "absent".
fn dpkg(lab: &tend_lab::Lab, pkg: &str) -> String {
    let o = lab
        .exec(
            "h01",
            &["dpkg-query", "-W", "-f", "${Version} ${Status}", pkg],
        )
        .unwrap();
    if o.status.success() {
        String::from_utf8_lossy(&o.stdout).into_owned()
    } else {
        "absent".into()
    }
}

fn unit(lab: &tend_lab::Lab, name: &str) -> (String, String) {
    let ask = |verb: &str| {
        let o = lab.exec("h01", &["systemctl", verb, name]).unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    (ask("is-active"), ask("is-enabled"))
}

#[test]
#[allow(clippy::print_stderr)]
fn packages_and_services_changed_over_ssh_are_rolled_back() {
    if !common::is_root() {
        eprintln!("note: skipped: lab hosts need root (run as root, as CI does)");
        return;
    }
    let mut lab = tend_lab::Lab::builder()
        .prefix("rbsys")
        .hosts(1)
        .systemd(true)
        .start()
        .expect("the lab starts (needs tests/setup.sh)");
    let inv = lab.inventory_path().to_string_lossy().into_owned();
    let d = tempfile::tempdir().unwrap();
    let tend_in = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_tend"))
            .args(args)
            .current_dir(d.path())
            .env("NO_COLOR", "1")
            .env_remove("TEND_STORE")
            .output()
            .unwrap()
    };
    // What the host has before the run under test.
    std::fs::write(
        d.path().join("setup.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - apt: {name: tend-demo=1.0, update_cache: true}\n    - service: {name: cron, state: started, enabled: true}\n",
    )
    .unwrap();
    let o = tend_in(&["apply", "setup.yml", "-i", &inv]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(
        d.path().join("site.yml"),
        r#"- hosts: all
  gather_facts: false
  tasks:
    - apt: {name: tend-demo, state: latest}
    - apt: {name: hello}
    - copy: {dest: /etc/tend-rollback.conf, content: "new\n"}
    - service: {name: cron, state: stopped, enabled: false}
"#,
    )
    .unwrap();
    let o = tend_in(&["apply", "site.yml", "-i", &inv]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(dpkg(&lab, "tend-demo").starts_with("2.0 "));
    assert!(dpkg(&lab, "hello").ends_with("install ok installed"));
    assert_eq!(unit(&lab, "cron"), ("inactive".into(), "disabled".into()));
    let run = last_run(d.path());
    // root's journal on the host, private.
    let mode = lab
        .run(
            "h01",
            &["stat", "-c", "%a", &format!("/var/lib/tend/journal/{run}")],
        )
        .unwrap();
    assert_eq!(mode.trim(), "700");

    let o = tend_in(&["rollback", &run, "-i", &inv]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        recap_line(&out(&o), "h01").contains("changed=4"),
        "{}",
        text(&o)
    );
    assert!(dpkg(&lab, "tend-demo").starts_with("1.0 "), "{}", text(&o));
    assert_eq!(dpkg(&lab, "hello"), "absent", "{}", text(&o));
    assert_eq!(unit(&lab, "cron"), ("active".into(), "enabled".into()));
    assert!(lab
        .exec("h01", &["test", "!", "-e", "/etc/tend-rollback.conf"])
        .unwrap()
        .status
        .success());

    let o = tend_in(&["rollback", &run, "-i", &inv]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        recap_line(&out(&o), "h01").contains("changed=0"),
        "{}",
        text(&o)
    );
    lab.stop().unwrap();
}

// ---- become: changes the root worker made are in root's journal --------------------------

/// A throwaway login user with passwordless sudo, removed (with its sudoers drop-in and the
/// root journal of the test's runs) when the test ends.
struct BecomeUser {
    name: &'static str,
    sudoers: PathBuf,
    runs: std::cell::RefCell<Vec<String>>,
}

impl Drop for BecomeUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = Command::new("userdel").arg(self.name).output();
        for r in self.runs.borrow().iter() {
            let _ = std::fs::remove_dir_all(Path::new("/var/lib/tend/journal").join(r));
        }
    }
}

#[test]
#[allow(clippy::print_stderr)]
fn a_become_run_is_rolled_back_from_the_root_journal_through_the_worker() {
    if !common::is_root() || !Path::new("/usr/bin/sudo").exists() {
        eprintln!("note: skipped: needs root and sudo (tests/setup.sh)");
        return;
    }
    let d = tempfile::Builder::new()
        .prefix("tend-rollback-become-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), PermissionsExt::from_mode(0o1777)).unwrap();
    let home = d.path().join("home");
    let user = BecomeUser {
        name: "tendrbu",
        sudoers: PathBuf::from("/etc/sudoers.d/tend-rollback-test"),
        runs: Default::default(),
    };
    let _ = Command::new("userdel").arg(user.name).output();
    let ok = Command::new("useradd")
        .args([
            "-m",
            "-d",
            home.to_str().unwrap(),
            "-s",
            "/bin/sh",
            user.name,
        ])
        .status()
        .unwrap();
    assert!(ok.success(), "useradd");
    std::fs::write(
        &user.sudoers,
        format!("{} ALL=(ALL) NOPASSWD: ALL\n", user.name),
    )
    .unwrap();
    std::fs::set_permissions(&user.sudoers, PermissionsExt::from_mode(0o440)).unwrap();
    // The worker runs the agent's own binary: it must be readable by the login user.
    let bin = d.path().join("tend");
    std::fs::copy(env!("CARGO_BIN_EXE_tend"), &bin).unwrap();
    std::fs::set_permissions(&bin, PermissionsExt::from_mode(0o755)).unwrap();

    let project = d.path().join("p");
    std::fs::create_dir(&project).unwrap();
    let root_file = d.path().join("root-owned.conf");
    std::fs::write(&root_file, "root before\n").unwrap();
    std::fs::set_permissions(&root_file, PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(
        project.join("site.yml"),
        format!(
            r#"- hosts: all
  gather_facts: false
  tasks:
    - name: as root
      copy: {{dest: "{}", content: "root after\n"}}
      become: true
    - name: as me
      copy: {{dest: "{{{{ playbook_dir }}}}/mine.txt", content: "mine\n"}}
"#,
            root_file.display()
        ),
    )
    .unwrap();
    std::fs::write(project.join("inv"), "h ansible_connection=local\n").unwrap();
    Command::new("chown")
        .args(["-R", user.name, project.to_str().unwrap()])
        .status()
        .unwrap();
    let as_user = |args: &[&str]| -> Output {
        Command::new("runuser")
            .args(["-u", user.name, "--"])
            .arg(&bin)
            .args(args)
            .current_dir(&project)
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .env("TEND_LOCK_DIR", &project)
            .env_remove("TEND_JOURNAL_DIR")
            .env_remove("TEND_STORE")
            .env_remove("XDG_CACHE_HOME")
            .output()
            .unwrap()
    };
    let o = as_user(&["apply", "site.yml", "-i", "inv"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run_as(&as_user);
    user.runs.borrow_mut().push(run.clone());
    // Root's change in root's journal, the user's own in the user's.
    assert!(Path::new("/var/lib/tend/journal")
        .join(&run)
        .join("entries.jsonl")
        .exists());
    assert!(home.join(".cache/tend/journal").join(&run).exists());

    // With -b (as the run had), the agent has the root worker read and restore its part.
    let o = as_user(&["rollback", &run, "-i", "inv", "-b"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        recap_line(&out(&o), "h").contains("changed=2"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&root_file).unwrap(),
        "root before\n"
    );
    assert_eq!(
        std::fs::metadata(&root_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!project.join("mine.txt").exists());
    let o = as_user(&["rollback", &run, "-i", "inv", "-b"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        recap_line(&out(&o), "h").contains("changed=0"),
        "{}",
        text(&o)
    );
}

fn last_run_as(tend: &dyn Fn(&[&str]) -> Output) -> String {
    let o = tend(&["history", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array().unwrap().last().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn limit_rolls_back_only_the_hosts_it_names() {
    let d = tempfile::tempdir().unwrap();
    for h in ["a", "b"] {
        std::fs::write(d.path().join(h), "old\n").unwrap();
    }
    std::fs::write(
        d.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {content: \"new\\n\", dest: \"{{ playbook_dir }}/{{ inventory_hostname }}\"}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("inv"),
        "a ansible_connection=local\nb ansible_connection=local\n",
    )
    .unwrap();
    let o = tend(d.path(), &["apply", "site.yml", "-i", "inv"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    let o = tend(d.path(), &["rollback", &run, "-i", "inv", "--limit", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        err(&o).contains("b: not rolled back (outside --limit)"),
        "{}",
        text(&o)
    );
    let read = |h: &str| std::fs::read_to_string(d.path().join(h)).unwrap();
    assert_eq!((read("a").as_str(), read("b").as_str()), ("old\n", "new\n"));
    // The rest later: b alone is left to restore.
    let o = tend(d.path(), &["rollback", &run, "-i", "inv"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        recap_line(&out(&o), "b").contains("changed=1"),
        "{}",
        text(&o)
    );
    assert!(
        recap_line(&out(&o), "a").contains("changed=0"),
        "{}",
        text(&o)
    );
    assert_eq!(read("b"), "old\n");
}
