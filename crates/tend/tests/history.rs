//! `tend apply` records its runs; `tend history`, `history show`, `audit verify`, `metrics` and
//! `unlock` read them back. Local hosts in temporary directories (no root needed), plus one
//! run against the PostgreSQL test server.

mod common;
use common::{recap_line, text};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tend(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tend"));
    c.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        // Each test its own lock for its local host (tests run at the same time).
        .env("TEND_LOCK_DIR", dir)
        .env_remove("TEND_STORE");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    tend(dir, args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const CANARY: &str = "canary-9d2e61";

/// A playbook that changes a file (with a diff), runs a no_log task holding a secret, and
/// prints a secret-looking extra var.
fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("site.yml"),
        format!(
            r#"- hosts: all
  gather_facts: false
  tasks:
    - name: motd
      copy:
        dest: "{{{{ playbook_dir }}}}/motd"
        content: "hello {{{{ greeting }}}}\n"
    - name: hidden
      command: echo {CANARY}-nolog
      no_log: true
      changed_when: false
    - name: shown
      debug:
        msg: "token is {{{{ api_token }}}}"
    - name: wait when asked
      command: sleep {{{{ pause | default(0) }}}}
      changed_when: false
"#
        ),
    )
    .unwrap();
    std::fs::write(d.path().join("inv"), "web1 ansible_connection=local\n").unwrap();
    d
}

fn apply(dir: &Path, greeting: &str, extra: &[&str]) -> Output {
    let token = format!("api_token={CANARY}-token");
    let greet = format!("greeting={greeting}");
    let mut args = vec![
        "apply", "site.yml", "-i", "inv", "-D", "-e", &greet, "-e", &token,
    ];
    args.extend_from_slice(extra);
    run(dir, &args)
}

fn run_ids(dir: &Path, store: &[&str]) -> Vec<String> {
    try_run_ids(dir, store).unwrap_or_else(|o| panic!("{o}"))
}

fn try_run_ids(dir: &Path, store: &[&str]) -> Result<Vec<String>, String> {
    let mut args = vec!["history", "--output", "json"];
    args.extend_from_slice(store);
    let o = run(dir, &args);
    if !o.status.success() {
        return Err(text(&o));
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    Ok(v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect())
}

#[test]
fn apply_is_recorded_and_history_shows_what_changed() {
    let p = project();
    let o = apply(p.path(), "one", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = apply(p.path(), "two", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        recap_line(&stdout(&o), "web1").contains("changed=1"),
        "{}",
        text(&o)
    );

    let o = run(p.path(), &["history"]);
    assert!(o.status.success(), "{}", text(&o));
    let list = stdout(&o);
    assert_eq!(
        list.lines().filter(|l| l.contains("succeeded")).count(),
        2,
        "{list}"
    );
    assert!(list.contains("changed=1"), "{list}");

    let ids = run_ids(p.path(), &[]);
    assert_eq!(ids.len(), 2);
    let o = run(p.path(), &["history", "show", &ids[1]]);
    assert!(o.status.success(), "{}", text(&o));
    let shown = stdout(&o);
    assert!(
        shown.contains("changed: motd (site.yml:4:7)") || shown.contains("changed: motd ("),
        "{shown}"
    );
    assert!(shown.contains("-hello one\n+hello two\n"), "{shown}");
    assert!(
        shown.contains("api_token=********"),
        "the command line is masked:\n{shown}"
    );
    assert!(shown.contains("web1"), "{shown}");

    // Filters.
    assert_eq!(run_ids(p.path(), &["--host", "web1"]).len(), 2);
    assert!(run_ids(p.path(), &["--host", "db9"]).is_empty());
    assert!(run_ids(p.path(), &["--status", "failed"]).is_empty());
    assert!(run_ids(p.path(), &["--since", "2999-01-01"]).is_empty());
    let o = run(p.path(), &["history", "--status", "nope"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    let o = run(p.path(), &["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("6 records, 2 runs"), "{}", text(&o));

    let o = run(p.path(), &["metrics", "--output", "prometheus"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("tend_runs 2\n"), "{}", text(&o));
    assert!(stdout(&o).contains("tend_deployments 2\n"), "{}", text(&o));

    // The canary (a no_log command's argument, a secret-looking extra var) is nowhere.
    for entry in std::fs::read_dir(p.path().join(".tend")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(CANARY),
            "the secrets canary is in the history file"
        );
    }
}

#[test]
fn audit_verify_names_a_tampered_record() {
    let p = project();
    assert!(apply(p.path(), "one", &[]).status.success());
    assert!(apply(p.path(), "two", &[]).status.success());
    let ids = run_ids(p.path(), &[]);
    let db = rusqlite::Connection::open(p.path().join(".tend/history.db")).unwrap();
    db.execute(
        "UPDATE audit SET body = replace(body, 'hello two', 'hello evil') WHERE seq = 5",
        [],
    )
    .unwrap();
    drop(db);
    let o = run(p.path(), &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("error: record 5 (run {}) was edited", ids[1])),
        "{}",
        text(&o)
    );
}

#[test]
fn a_second_apply_on_a_leased_host_fails_naming_the_holder() {
    let p = project();
    let first = tend(
        p.path(),
        &[
            "apply",
            "site.yml",
            "-i",
            "inv",
            "-e",
            "greeting=a",
            "-e",
            "pause=4",
            "-e",
            "api_token=x",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until the first run has recorded its start (and so holds web1).
    let t = Instant::now();
    while try_run_ids(p.path(), &[]).map_or(true, |ids| ids.is_empty()) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the first run never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let holder = run_ids(p.path(), &[]).remove(0);
    let o = apply(p.path(), "b", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("web1 is held by run {holder}")),
        "{}",
        text(&o)
    );
    assert!(err.contains("nothing was changed"), "{}", text(&o));
    assert!(
        err.contains(&format!("tend unlock web1 --run {holder}")),
        "{}",
        text(&o)
    );
    // A wrong run id is refused by unlock.
    let o = run(
        p.path(),
        &["unlock", "web1", "--run", "20000101-000000-000000"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&holder),
        "{}",
        text(&o)
    );

    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // Waiting (--lock-timeout) works once the holder is done; only the first run and this
    // one are in the history.
    let o = apply(p.path(), "c", &["--lock-timeout", "5"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(run_ids(p.path(), &[]).len(), 2);
}

#[test]
fn a_store_that_cannot_be_opened_stops_the_run_before_anything_changes() {
    let p = project();
    let o = apply(
        p.path(),
        "one",
        &["--store", "/proc/no/such/dir/history.db"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("cannot open the history store /proc/no/such/dir/history.db"),
        "{}",
        text(&o)
    );
    assert!(!p.path().join("motd").exists(), "nothing may change");
    // --no-history runs without a store.
    let o = apply(p.path(), "one", &["--no-history"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!p.path().join(".tend").exists());
    // The history commands never create a store.
    let o = run(p.path(), &["history"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("there is no history store"),
        "{}",
        text(&o)
    );
}

#[test]
#[allow(clippy::print_stderr)] // the skip note
fn history_in_postgresql() {
    let admin = std::env::var("TEND_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://tend_test:tend_test@127.0.0.1:5432/tend_test".into());
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let mut client = match postgres::Client::connect(&admin, postgres::NoTls) {
        Ok(c) => c,
        Err(e) if !root => {
            eprintln!("note: skipping the PostgreSQL history test (not root, no server): {e}");
            return;
        }
        Err(e) => panic!("PostgreSQL does not answer ({e}): run tests/setup.sh"),
    };
    let db = format!("tend_cli_{}", std::process::id());
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let p = project();
    let o = apply(p.path(), "one", &["--store", &url]);
    let ok = o.status.success();
    let ids = ok.then(|| {
        let mut c = tend(p.path(), &["history", "--output", "json"]);
        c.env("TEND_STORE", &url);
        let out = c.output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array().map_or(0, Vec::len)
    });
    let verify = tend(p.path(), &["audit", "verify"])
        .env("TEND_STORE", &url)
        .output()
        .unwrap();
    let dump: Vec<String> = postgres::Client::connect(&url, postgres::NoTls)
        .unwrap()
        .query("SELECT body FROM audit", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    assert!(ok, "{}", text(&o));
    assert_eq!(ids, Some(1));
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        !p.path().join(".tend").exists(),
        "the PostgreSQL store was used"
    );
    assert!(
        dump.iter().all(|b| !b.contains(CANARY)),
        "the canary is in PostgreSQL"
    );
    assert!(
        !String::from_utf8_lossy(&verify.stdout).contains("tend_test:tend_test"),
        "no password in output"
    );
}
