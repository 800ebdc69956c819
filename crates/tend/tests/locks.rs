//! Two applies never interleave on one host: the host's own lock (a flock on the target,
//! released by the kernel when its holder dies) and the run lease in the history store.
//!
//! The lab test needs root (real hosts over SSH); the local one runs anywhere.

mod common;
use common::{recap_line, text};

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PLAYBOOK: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - name: owner
      copy:
        dest: "{{ dest }}"
        content: "{{ who }}"
    - name: pause
      command: sleep {{ pause | default(0) }}
      changed_when: false
"#;

fn tend(dir: &Path, args: &[&str]) -> Command {
    let mut c = common::tend_command(dir, args);
    c.env_remove("TEND_STORE");
    c
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    tend(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a child with a deadline: nothing here may hang.
fn wait(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("tend did not finish within {limit:?}:\n{}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `read` (the lock file's text) until a holder has written itself into it.
fn holder(mut read: impl FnMut() -> Option<String>) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Some(v) = read()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .filter(|v| v["run_id"].as_str().is_some_and(|r| !r.is_empty()))
        {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no run ever held the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Over SSH, one lab host: different stores (the lease cannot see the other run) — the host
/// lock lets exactly one proceed and the other names it; the same store — the lease stops the
/// second run before anything runs; `--lock-timeout` waits for the first run; a holder killed
/// with SIGKILL frees the host at once.
#[test]
#[allow(clippy::print_stderr)]
fn two_applies_on_one_host_never_interleave() {
    if !common::is_root() {
        eprintln!("skipped: the lab needs root");
        return;
    }
    let lab = tend_lab::Lab::start(1).expect("the lab starts (needs root and tests/setup.sh)");
    let h = lab.hosts()[0].name.clone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("site.yml"), PLAYBOOK).unwrap();
    let inv = lab.inventory_path();
    let inv = inv.to_str().unwrap();
    let apply = |who: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "apply",
            "site.yml",
            "-i",
            inv,
            "-e",
            "dest=/root/owner",
            "-e",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(format!("who={who}"));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |v: Vec<String>| -> Output {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        tend(d, &refs).output().unwrap()
    };
    let start_bg = |v: Vec<String>| -> Child {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        spawn(d, &refs)
    };
    let lock_text = || {
        lab.exec(&h, &["cat", "/run/lock/tend/host.lock"])
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let owner_file = || lab.run(&h, &["cat", "/root/owner"]).unwrap();

    // 1. Different stores: the host lock decides.
    let first = start_bg(apply("a", &["-e", "pause=8", "--store", "a.db"]));
    let held = holder(lock_text);
    let run_a = held["run_id"].as_str().unwrap().to_string();
    let o = run(apply("b", &["--store", "b.db"]));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(
        t.contains(&format!(
            "{h}: locked by run {run_a} (user root on controller "
        )),
        "{t}"
    );
    assert!(t.contains("--lock-timeout"), "{t}");
    assert!(recap_line(&t, &h).contains("unreachable=1"), "{t}");

    // 2. The same store: the lease stops the second run before anything runs.
    let o = run(apply("c", &["--store", "a.db"]));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("{h} is held by run {run_a}")), "{t}");
    assert!(t.contains("nothing was changed"), "{t}");

    let o = wait(first, Duration::from_secs(120));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(owner_file(), "a", "only the first run changed the host");
    assert_eq!(
        lock_text().unwrap_or_default(),
        "",
        "the lock says nobody holds it"
    );
    let o = run(vec![
        "audit".into(),
        "verify".into(),
        "--store".into(),
        "a.db".into(),
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // 3. --lock-timeout waits for the holder to end, then proceeds.
    let first = start_bg(apply("d", &["-e", "pause=3", "--no-history"]));
    holder(lock_text);
    let t0 = Instant::now();
    let o = run(apply("e", &["--no-history", "--lock-timeout", "60"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(t0.elapsed() >= Duration::from_secs(1), "it waited");
    let o = wait(first, Duration::from_secs(60));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(owner_file(), "e");

    // 4. A holder killed with SIGKILL: the kernel releases its lock, the next run goes on.
    let first = start_bg(apply("f", &["-e", "pause=120", "--no-history"]));
    let held = holder(lock_text);
    let pid = held["pid"]
        .as_u64()
        .expect("the holder wrote its pid")
        .to_string();
    let killed = lab.exec(&h, &["kill", "-KILL", &pid]).unwrap();
    assert!(killed.status.success(), "kill: {killed:?}");
    let t0 = Instant::now();
    let o = run(apply("g", &["--no-history"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert_eq!(owner_file(), "g");
    // The killed run's controller may wait for its orphaned `sleep`; it is not the point.
    let mut first = first;
    let _ = first.kill();
    let _ = first.wait();
}

/// Local hosts take the same lock in-process: a second run is refused naming the first, and
/// a first run killed with SIGKILL frees the host at once.
#[test]
fn local_runs_lock_this_machine_until_their_process_dies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("site.yml"), PLAYBOOK).unwrap();
    std::fs::write(d.join("inv"), "web1 ansible_connection=local\n").unwrap();
    let dest = format!("dest={}", d.join("owner").display());
    let args = |who: &'static str, pause: &'static str| -> Vec<String> {
        [
            "apply",
            "site.yml",
            "-i",
            "inv",
            "--no-history",
            "-e",
            &dest,
            "-e",
            &format!("who={who}"),
            "-e",
            &format!("pause={pause}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let first_args = args("a", "120");
    let first_refs: Vec<&str> = first_args.iter().map(String::as_str).collect();
    let mut first = spawn(d, &first_refs);
    let held = holder(|| std::fs::read_to_string(d.join("host.lock")).ok());
    assert_eq!(held["pid"].as_u64(), Some(u64::from(first.id())));
    let run_a = held["run_id"].as_str().unwrap().to_string();

    let second_args = args("b", "0");
    let second_refs: Vec<&str> = second_args.iter().map(String::as_str).collect();
    let o = tend(d, &second_refs).output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(
        t.contains(&format!("web1: locked by run {run_a} (user ")),
        "{t}"
    );
    assert_eq!(std::fs::read_to_string(d.join("owner")).unwrap(), "a");

    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let t0 = Instant::now();
    let o = tend(d, &second_refs).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert_eq!(std::fs::read_to_string(d.join("owner")).unwrap(), "b");
    // Check mode takes no lock: it runs beside a holder.
    let mut holder_run = spawn(d, &first_refs);
    holder(|| std::fs::read_to_string(d.join("host.lock")).ok());
    let mut check = second_args.clone();
    check.push("--check".into());
    let check_refs: Vec<&str> = check.iter().map(String::as_str).collect();
    let o = tend(d, &check_refs).output().unwrap();
    holder_run.kill().unwrap();
    holder_run.wait().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}
