//! `become` on local hosts, for real: `sudo`/`su` start the privileged worker, files end up
//! owned by the become user, and the password paths fail cleanly and quickly.
//!
//! These tests need root (to create throwaway users and a sudoers drop-in, removed again) and
//! `sudo` (tests/setup.sh installs it). The agent binary is copied to a directory every user
//! can read, because the become user runs that same binary as its worker.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|r| r.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A world-readable directory holding a copy of `tend` and the test's files.
struct Lab {
    dir: TempDir,
    tend: PathBuf,
}

impl Lab {
    /// `None` (and the test passes without running) when not root: only root can set up
    /// the users and sudo rules these tests need.
    #[allow(clippy::print_stderr)]
    fn new() -> Option<Lab> {
        if !is_root() {
            eprintln!("skipped: become tests need root");
            return None;
        }
        assert!(
            Path::new("/usr/bin/sudo").exists(),
            "sudo is not installed: run tests/setup.sh (apt-get install sudo)"
        );
        let dir = tempfile::Builder::new()
            .prefix("tend-become-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tend = bin.join("tend");
        std::fs::copy(env!("CARGO_BIN_EXE_tend"), &tend).expect("copy tend");
        std::fs::set_permissions(&tend, std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(Lab { dir, tend })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn owner(&self, rel: &str) -> u32 {
        std::fs::metadata(self.path(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .uid()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// `tend apply PLAYBOOK -i INVENTORY`, as root or (with `as_user`) as that user; while it
    /// runs, every process's command line is checked for `secret`.
    fn apply(&self, playbook: &str, inventory: &str, as_user: Option<&str>, secret: &str) -> Run {
        self.tend(&["apply", playbook, "-i", inventory], as_user, secret, None)
    }

    /// Runs `tend ARGS`. With `typed`, it runs on a terminal (`script`) and `typed` is typed
    /// there once the become password prompt shows.
    fn tend(&self, args: &[&str], as_user: Option<&str>, secret: &str, typed: Option<&str>) -> Run {
        let mut argv: Vec<String> = Vec::new();
        if let Some(u) = as_user {
            argv.extend(["runuser", "-u", u, "--"].map(String::from));
        }
        argv.push(self.tend.display().to_string());
        argv.extend(args.iter().map(|a| a.to_string()));
        if typed.is_some() {
            // Temporary paths and these arguments need no quoting.
            argv = vec![
                "script".into(),
                "-qec".into(),
                argv.join(" "),
                "/dev/null".into(),
            ];
        }
        let started = Instant::now();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            // Each test its own host lock (tests run at the same time on this machine).
            .env("TEND_LOCK_DIR", self.dir.path())
            .stdin(if typed.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tend");
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut stdin = child.stdin.take();
        let mut out = Vec::new();
        let mut leaked = Vec::new();
        let mut held = None;
        let status = loop {
            while let Ok(chunk) = rx.try_recv() {
                out.extend(chunk);
            }
            if let (Some(text), Some(_)) = (typed, &stdin) {
                if String::from_utf8_lossy(&out).contains("BECOME password:") {
                    let mut s = stdin.take().unwrap();
                    writeln!(s, "{text}").unwrap();
                    // The terminal's input stays open until tend ends.
                    held = Some(s);
                }
            }
            leaked.extend(cmdlines_containing(secret));
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "tend hangs: {argv:?}\n{}",
                String::from_utf8_lossy(&out)
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        drop(held);
        for chunk in rx {
            out.extend(chunk);
        }
        assert!(
            leaked.is_empty(),
            "the password showed in a command line: {leaked:?}"
        );
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(
            !text.contains(secret),
            "the password showed in the output:\n{text}"
        );
        Run {
            code: status.code(),
            text,
            took: started.elapsed(),
        }
    }
}

struct Run {
    code: Option<i32>,
    text: String,
    took: Duration,
}

/// Command lines of running processes that contain `needle`.
fn cmdlines_containing(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            if line.contains(needle) {
                found.push(line);
            }
        }
    }
    found
}

fn uid_of(user: &str) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == user)
        .and_then(|f| f[2].parse().ok())
        .unwrap_or_else(|| panic!("no user {user}"))
}

#[test]
fn become_user_owns_what_its_tasks_create_and_facts_say_who_runs() {
    let Some(lab) = Lab::new() else { return };
    lab.write("inventory.ini", "localhost ansible_connection=local\n");
    lab.write(
        "templates/who.j2",
        "rendered as {{ ansible_user_id }} for {{ greeting }}\n",
    );
    lab.write(
        "site.yml",
        r#"
- hosts: localhost
  become: true
  become_user: nobody
  vars:
    greeting: "{{ 'hello' | upper }}"
  tasks:
    - name: as nobody
      file: path={{ playbook_dir }}/by-nobody state=touch
      notify: handler inherits the play's become
    - name: without become
      file: path={{ playbook_dir }}/by-root state=touch
      become: false
    - command: whoami
      register: who
    - template: src=who.j2 dest={{ playbook_dir }}/rendered
    - block:
        - copy: content="block" dest={{ playbook_dir }}/by-block
      become_user: root
    - copy:
        content: "{{ who.stdout }} {{ ansible_user_id }}"
        dest: "{{ playbook_dir }}/report"
      become: false
  handlers:
    - name: handler inherits the play's become
      file: path={{ playbook_dir }}/by-handler state=touch
"#,
    );
    let run = lab.apply("site.yml", "inventory.ini", None, "no-secret-in-this-test");
    assert_eq!(run.code, Some(0), "{}", run.text);
    let nobody = uid_of("nobody");
    assert_eq!(lab.owner("by-nobody"), nobody);
    assert_eq!(lab.owner("by-handler"), nobody);
    assert_eq!(lab.owner("rendered"), nobody);
    assert_eq!(lab.owner("by-root"), 0);
    assert_eq!(
        lab.owner("by-block"),
        0,
        "become_user on a block wins over the play's"
    );
    assert_eq!(lab.read("report"), "nobody nobody");
    assert_eq!(lab.read("rendered"), "rendered as nobody for HELLO\n");
}

#[test]
fn ansible_become_variables_win_over_keywords() {
    let Some(lab) = Lab::new() else { return };
    lab.write(
        "inventory.ini",
        "localhost ansible_connection=local ansible_become=yes ansible_become_user=nobody\n",
    );
    lab.write(
        "site.yml",
        r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - file: path={{ playbook_dir }}/by-var state=touch
      become: false
      become_user: root
"#,
    );
    let run = lab.apply("site.yml", "inventory.ini", None, "no-secret-in-this-test");
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(lab.owner("by-var"), uid_of("nobody"));
}

/// Throwaway users and a sudoers drop-in, removed when the test ends (even when it fails).
struct Users {
    names: Vec<&'static str>,
    sudoers: PathBuf,
}

impl Users {
    fn create(names: &[(&'static str, &str)]) -> Users {
        let users = Users {
            names: names.iter().map(|(n, _)| *n).collect(),
            sudoers: PathBuf::from("/etc/sudoers.d/tend-become-test"),
        };
        for (name, password) in names {
            let _ = Command::new("userdel").arg(name).output();
            let ok = Command::new("useradd")
                .args(["-M", "-d", "/nonexistent", "-s", "/bin/sh", name])
                .status()
                .expect("useradd");
            assert!(ok.success(), "useradd {name}");
            // The password goes on stdin, never in a command line.
            let mut c = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .spawn()
                .expect("chpasswd");
            writeln!(c.stdin.take().unwrap(), "{name}:{password}").unwrap();
            assert!(c.wait().unwrap().success(), "chpasswd {name}");
        }
        users
    }

    fn allow_sudo(&self, user: &str) {
        std::fs::write(
            &self.sudoers,
            format!("Defaults:{user} timestamp_timeout=0\n{user} ALL=(ALL) ALL\n"),
        )
        .unwrap();
        std::fs::set_permissions(&self.sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
    }

    fn deny_sudo(&self) {
        let _ = std::fs::remove_file(&self.sudoers);
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        self.deny_sudo();
        for n in &self.names {
            let _ = Command::new("userdel").arg(n).output();
        }
    }
}

/// The password paths, with the agent running as a user that sudo asks a password of. One
/// test, because the scenarios share the throwaway users.
#[test]
fn passwords_go_to_sudo_and_su_only_and_every_failure_is_clean_and_quick() {
    let Some(lab) = Lab::new() else { return };
    const AGENT: &str = "tend-become-test";
    const AGENT_PW: &str = "agent-Pw-8231";
    const PEER: &str = "tend-become-peer";
    const PEER_PW: &str = "peer-Pw-5517";
    let users = Users::create(&[(AGENT, AGENT_PW), (PEER, PEER_PW)]);
    users.allow_sudo(AGENT);
    let inventory = |pw: Option<&str>| match pw {
        Some(p) => format!("localhost ansible_connection=local ansible_become_password={p}\n"),
        None => "localhost ansible_connection=local\n".into(),
    };
    lab.write(
        "sudo.yml",
        r#"
- hosts: localhost
  become: true
  tasks:
    - command: whoami
      register: who
    - copy: content="{{ who.stdout }} {{ ansible_user_id }}" dest={{ playbook_dir }}/sudo-report
"#,
    );
    lab.write(
        "su.yml",
        r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - command: whoami
      register: who
      become: true
      become_method: su
      become_user: tend-become-peer
    - copy: content="{{ who.stdout }}" dest={{ playbook_dir }}/su-report
"#,
    );

    // The right password: sudo asks, gets it on stdin, the worker runs as root.
    lab.write("right.ini", &inventory(Some(AGENT_PW)));
    let run = lab.apply("sudo.yml", "right.ini", Some(AGENT), AGENT_PW);
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(lab.read("sudo-report"), "root root");
    assert_eq!(lab.owner("sudo-report"), 0);

    // A wrong one: the second prompt ends it, with ansible-core's message.
    lab.write("wrong.ini", &inventory(Some("not-the-Pw-4490")));
    let run = lab.apply("sudo.yml", "wrong.ini", Some(AGENT), "not-the-Pw-4490");
    assert_eq!(run.code, Some(2), "{}", run.text);
    assert!(run.text.contains("Incorrect sudo password"), "{}", run.text);
    assert!(run.took < Duration::from_secs(15), "took {:?}", run.took);

    // None at all: failed at the first prompt, naming how to give one.
    lab.write("none.ini", &inventory(None));
    let run = lab.apply("sudo.yml", "none.ini", Some(AGENT), AGENT_PW);
    assert_eq!(run.code, Some(2), "{}", run.text);
    assert!(run.text.contains("Missing sudo password"), "{}", run.text);
    assert!(run.text.contains("ansible_become_password"), "{}", run.text);
    assert!(run.took < Duration::from_secs(15), "took {:?}", run.took);

    // -K: asked once on the terminal, typed without echo, used for every prompt.
    let run = lab.tend(
        &["apply", "sudo.yml", "-i", "none.ini", "-K"],
        Some(AGENT),
        AGENT_PW,
        Some(AGENT_PW),
    );
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(
        run.text.matches("BECOME password:").count(),
        1,
        "{}",
        run.text
    );

    // su: the peer's password, and a wrong one.
    lab.write("peer.ini", &inventory(Some(PEER_PW)));
    let run = lab.apply("su.yml", "peer.ini", Some(AGENT), PEER_PW);
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(lab.read("su-report"), PEER);
    let run = lab.apply("su.yml", "wrong.ini", Some(AGENT), "not-the-Pw-4490");
    assert_eq!(run.code, Some(2), "{}", run.text);
    assert!(run.text.contains("Incorrect su password"), "{}", run.text);
    assert!(run.took < Duration::from_secs(15), "took {:?}", run.took);

    // No sudo rule: sudo's own words.
    users.deny_sudo();
    let run = lab.apply("sudo.yml", "right.ini", Some(AGENT), AGENT_PW);
    assert_eq!(run.code, Some(2), "{}", run.text);
    assert!(run.text.contains("not in the sudoers file"), "{}", run.text);
    assert!(run.took < Duration::from_secs(15), "took {:?}", run.took);
}
