//! Snapshot tests of whole `tend` runs: exit code, stdout and stderr, as a user sees them.
//!
//! Temporary paths become `[TMP]`, the workspace becomes `[WORKSPACE]` and durations become
//! `[TIME]`, so snapshots are the same on every machine. Review changes with `cargo insta review`
//! (or `INSTA_UPDATE=always cargo test -p tend --test cli` and read the diff).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

fn workspace() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

/// A temporary directory holding the given files (path relative to the directory, content).
fn fixture(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("tend-cli-")
        .tempdir()
        .expect("temp dir");
    for (name, body) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("fixture dir");
        }
        std::fs::write(&path, body).expect("fixture file");
    }
    dir
}

const LOCAL_INVENTORY: &str = "localhost ansible_connection=local\n";

/// Runs `tend ARGS` in `cwd` and renders what a user would see, with volatile parts filtered.
fn run(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("ANSIBLE_CONFIG")
        // Each test its own history: tests run the README's example at the same time, and
        // the shared `examples/hello/.tend` store would lease `localhost` to one of them.
        .env("TEND_STORE", cwd.join(".tend").join("history.db"))
        // Likewise its own host lock for localhost (tests run at the same time).
        .env("TEND_LOCK_DIR", cwd)
        .output()
        .expect("run tend");
    let code = out
        .status
        .code()
        .map_or_else(|| "killed by a signal".to_string(), |c| c.to_string());
    let text = format!(
        "exit: {code}\n----- stdout -----\n{}----- stderr -----\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = text.replace(&workspace().display().to_string(), "[WORKSPACE]");
    if let Ok(real) = cwd.canonicalize() {
        text = text.replace(&real.display().to_string(), "[TMP]");
    }
    text.replace(&cwd.display().to_string(), "[TMP]")
}

macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            prepend_module_to_snapshot => false,
            filters => vec![(r"\b\d+(\.\d+)?(ms|s)\b", "[TIME]")],
        }, {
            insta::assert_snapshot!($name, $text);
        })
    };
}

/// The README's example, run into a temporary directory.
fn hello(cwd: &Path, extra: &[&str]) -> String {
    let ws = workspace();
    let playbook = ws.join("examples/hello/site.yml");
    let inventory = ws.join("examples/hello/inventory.ini");
    let dest = format!("dest={}", cwd.join("hello").display());
    let mut args = vec![
        "apply",
        playbook.to_str().unwrap(),
        "-i",
        inventory.to_str().unwrap(),
        "-e",
        &dest,
    ];
    args.extend_from_slice(extra);
    run(cwd, &args)
}

#[test]
fn apply_example_first_run_and_rerun() {
    let dir = fixture(&[]);
    snapshot!("apply_example_first_run", hello(dir.path(), &[]));
    snapshot!("apply_example_rerun", hello(dir.path(), &[]));
}

#[test]
fn apply_check_diff_shows_changes_and_changes_nothing() {
    let dir = fixture(&[]);
    hello(dir.path(), &[]);
    let conf = dir.path().join("hello/etc/hello.conf");
    let before = std::fs::read_to_string(&conf).expect("config written by the first run");
    snapshot!(
        "apply_check_diff",
        hello(dir.path(), &["-e", "listen_port=9090", "--check", "--diff"])
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        before,
        "--check changed a file"
    );
}

/// ansible-core reports `changed` for a template whose directory a previous task would create;
/// tend fails the task instead (found while writing these tests).
#[test]
fn check_mode_template_into_missing_directory_reports_change() {
    let dir = fixture(&[]);
    let out = hello(dir.path(), &["--check"]);
    assert!(out.starts_with("exit: 0\n"), "{out}");
    assert!(out.contains("ok=4    changed=4"), "{out}");
}

#[test]
fn yaml_tab_indentation() {
    let dir = fixture(&[
        ("site.yml", "- hosts: all\n  tasks:\n\t- debug: msg=hi\n"),
        ("inventory.ini", LOCAL_INVENTORY),
    ]);
    snapshot!(
        "yaml_tab_indentation",
        run(dir.path(), &["apply", "site.yml", "-i", "inventory.ini"])
    );
}

#[test]
fn yaml_duplicate_key() {
    let dir = fixture(&[
        (
            "site.yml",
            "- hosts: all\n  tasks:\n    - name: first\n      debug: msg=hi\n      name: second\n",
        ),
        ("inventory.ini", LOCAL_INVENTORY),
    ]);
    snapshot!(
        "yaml_duplicate_key",
        run(dir.path(), &["apply", "site.yml", "-i", "inventory.ini"])
    );
}

#[test]
fn unknown_module() {
    let dir = fixture(&[
        (
            "site.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Create the database\n      community.mysql.mysql_db:\n        name: app\n",
        ),
        ("inventory.ini", LOCAL_INVENTORY),
    ]);
    snapshot!(
        "unknown_module",
        run(dir.path(), &["apply", "site.yml", "-i", "inventory.ini"])
    );
}

#[test]
fn unknown_task_keyword() {
    let dir = fixture(&[
        (
            "site.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Greet\n      debug:\n        msg: hi\n      wehn: true\n",
        ),
        ("inventory.ini", LOCAL_INVENTORY),
    ]);
    snapshot!(
        "unknown_task_keyword",
        run(dir.path(), &["apply", "site.yml", "-i", "inventory.ini"])
    );
}

#[test]
fn undefined_variable_in_template() {
    let dir = fixture(&[
        (
            "site.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Render the motd\n      template:\n        src: motd.j2\n        dest: \"{{ playbook_dir }}/motd\"\n",
        ),
        ("templates/motd.j2", "Welcome to {{ inventory_hostname }}\nOwner: {{ owner_name }}\n"),
        ("inventory.ini", LOCAL_INVENTORY),
    ]);
    snapshot!(
        "undefined_variable_in_template",
        run(dir.path(), &["apply", "site.yml", "-i", "inventory.ini"])
    );
    assert!(!dir.path().join("motd").exists());
}

#[test]
fn syntax_check() {
    let dir = fixture(&[]);
    snapshot!("syntax_check", hello(dir.path(), &["--syntax-check"]));
    let bad = fixture(&[
        ("site.yml", "- hosts: all\n  tasks:\n    - name: Greet\n      debug: msg=hi\n      shell: echo hi\n"),
        ("inventory.ini", LOCAL_INVENTORY),
    ]);
    snapshot!(
        "syntax_check_error",
        run(
            bad.path(),
            &["apply", "site.yml", "-i", "inventory.ini", "--syntax-check"]
        )
    );
}

#[test]
fn list_tasks_and_hosts() {
    let dir = fixture(&[]);
    snapshot!("list_tasks", hello(dir.path(), &["--list-tasks"]));
    snapshot!("list_hosts", hello(dir.path(), &["--list-hosts"]));
    assert!(
        !dir.path().join("hello").exists(),
        "a listing ran the playbook"
    );
}

const INVENTORY: &str = "\
[web]
web1 http_port=8080
web2

[db]
db1 ansible_host=10.0.0.5

[prod:children]
web
db

[prod:vars]
env=production
";

#[test]
fn inventory_list_and_graph() {
    let dir = fixture(&[("hosts.ini", INVENTORY)]);
    snapshot!(
        "inventory_list",
        run(dir.path(), &["inventory", "-i", "hosts.ini", "--list"])
    );
    snapshot!(
        "inventory_graph",
        run(dir.path(), &["inventory", "-i", "hosts.ini", "--graph"])
    );
}

#[test]
fn inventory_syntax_error() {
    let dir = fixture(&[("hosts.ini", "[web\nweb1\n")]);
    snapshot!(
        "inventory_syntax_error",
        run(dir.path(), &["inventory", "-i", "hosts.ini", "--list"])
    );
}
