//! Policies on plans (docs/policy.md), on the local host with a directory of its own per test:
//! the example policies' failing playbooks are refused and leave every file as it was, their
//! passing ones apply; `warn` blocks nothing; a broken policy blocks; `tend plan` with a deny
//! saves no plan; `tend policy test` passes on the examples and fails on a broken test; secrets
//! never reach the policies' input.
//!
//! The example policies judge `/etc/…` and `/srv/…` under the host variable `policy_root`,
//! which each test points at its own directory (see examples/policies/policies/lib.rego).

#[allow(dead_code)]
mod common;
use common::text;

use std::path::{Path, PathBuf};
use std::process::Output;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies")
}

/// `tend ARGS` in `dir`, the history in `dir`.
fn tend(dir: &Path, args: &[&str]) -> Output {
    common::tend_command(dir, args)
        .env("TEND_STORE", dir.join("history.db"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A test directory: `root/` the host's file system (with `etc/ssh` and `srv`), and an
/// inventory naming the local host with that root.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(extra_vars: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(root.join("srv")).unwrap();
        std::fs::write(root.join("etc/hostname"), "untouched\n").unwrap();
        std::fs::write(
            dir.path().join("inventory"),
            format!(
                "local ansible_connection=local policy_root={} policy_app_user={} {extra_vars}\n",
                root.display(),
                app_user()
            ),
        )
        .unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn root(&self) -> PathBuf {
        self.path().join("root")
    }

    fn inventory(&self) -> String {
        self.path().join("inventory").display().to_string()
    }

    /// Every file and directory under the root, with its content.
    fn tree(&self) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        fn walk(p: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for e in entries {
                if e.is_dir() {
                    out.push((e.clone(), None));
                    walk(&e, out);
                } else {
                    out.push((e.clone(), Some(std::fs::read(&e).unwrap())));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root(), &mut out);
        out
    }
}

/// A user other than root that files under /srv may belong to: `nobody` when the test runs as
/// root, else the user running it (who can only give files to themself).
fn app_user() -> String {
    if common::is_root() {
        return "nobody".into();
    }
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `tend history show` of the last run recorded in `dir`'s history.
fn last_run(dir: &Path) -> String {
    let list = stdout(&tend(dir, &["history"]));
    let id = list
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run in the history:\n{list}"))
        .to_string();
    stdout(&tend(dir, &["history", "show", &id]))
}

fn playbook(name: &str) -> String {
    examples().join(name).display().to_string()
}

#[test]
fn each_failing_example_is_refused_untouched_and_each_passing_one_applies() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("etc-perms", "world-writable", &["etc/app.conf"]),
        ("sshd", "PermitRootLogin must be", &["etc/ssh/sshd_config"]),
        (
            "db-bind",
            "Redis (6379) on 0.0.0.0",
            &["etc/redis/redis.conf"],
        ),
        (
            "srv-owner",
            "files under /srv must be owned by a non-root user",
            &["srv/site", "srv/site/index.html"],
        ),
    ];
    for (name, why, made) in cases {
        let p = Project::new("");
        let before = p.tree();
        let o = tend(
            p.path(),
            &[
                "apply",
                &playbook(&format!("{name}-fail.yml")),
                "-i",
                &p.inventory(),
            ],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}-fail:\n{}", text(&o));
        assert!(
            err.contains("Policy: deny: ") && err.contains(why),
            "{name}-fail:\n{}",
            text(&o)
        );
        assert!(
            err.contains("(local, "),
            "the deny names host and task:\n{err}"
        );
        assert!(err.contains("nothing was changed on any host"), "{err}");
        assert_eq!(p.tree(), before, "{name}-fail changed files:\n{}", text(&o));

        let o = tend(
            p.path(),
            &[
                "apply",
                &playbook(&format!("{name}-pass.yml")),
                "-i",
                &p.inventory(),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{name}-pass:\n{}", text(&o));
        assert!(!stderr(&o).contains("Policy: deny"), "{}", text(&o));
        for f in *made {
            assert!(p.root().join(f).exists(), "{name}-pass did not make {f}");
        }
    }
}

#[test]
fn a_plan_with_a_deny_exits_1_and_is_not_saved_and_warnings_block_nothing() {
    let p = Project::new("");
    let o = tend(
        p.path(),
        &[
            "plan",
            &playbook("sshd-fail.yml"),
            "-i",
            &p.inventory(),
            "-o",
            "plan.json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("not saved"), "{}", text(&o));
    assert!(!p.path().join("plan.json").exists());
    // The plan itself is still printed: the reviewer sees what was denied.
    assert!(stdout(&o).contains("sshd_config"), "{}", text(&o));
    // The deny is in the plan's record in the history.
    let shown = last_run(p.path());
    assert!(
        shown.contains("exit 1")
            && shown.contains("policy:    deny: ")
            && shown.contains("PermitRootLogin"),
        "{shown}"
    );

    let warn = p.path().join("warn");
    std::fs::create_dir_all(&warn).unwrap();
    std::fs::write(
        warn.join("notice.rego"),
        "package notice\n\nwarn contains sprintf(\"%s changes %s\", [c.host, c.subject]) if {\n\tsome c in input.changes\n}\n",
    )
    .unwrap();
    let w = warn.display().to_string();
    let o = tend(
        p.path(),
        &[
            "plan",
            &playbook("sshd-fail.yml"),
            "-i",
            &p.inventory(),
            "--policy",
            &w,
            "-o",
            "plan.json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stderr(&o).contains("Policy: warn: local changes "),
        "{}",
        text(&o)
    );
    assert!(p.path().join("plan.json").exists());

    // The saved plan is judged again when it is applied: with the examples' policies, denied.
    let before = p.tree();
    let examples_policies = examples().join("policies").display().to_string();
    let o = tend(
        p.path(),
        &["apply", "plan.json", "--policy", &examples_policies],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("PermitRootLogin"), "{}", text(&o));
    assert_eq!(p.tree(), before);
    // Recorded as a blocked apply that changed nothing (and the plan is not spent).
    let shown = last_run(p.path());
    assert!(
        shown.contains("the policies blocked plan") && shown.contains("policy:    deny: "),
        "{shown}"
    );
    // With only the warning, it applies.
    let o = tend(p.path(), &["apply", "plan.json", "--policy", &w]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(p.root().join("etc/ssh/sshd_config").exists());
}

#[test]
fn a_broken_policy_blocks_naming_its_file() {
    let p = Project::new("");
    let bad = p.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("broken.rego"),
        "package broken\n\nimport rego.v1\n\ndeny contains msg if {\n\tmsg := \n}\n",
    )
    .unwrap();
    let before = p.tree();
    let b = bad.display().to_string();
    for cmd in ["apply", "plan"] {
        let o = tend(
            p.path(),
            &[
                cmd,
                &playbook("etc-perms-pass.yml"),
                "-i",
                &p.inventory(),
                "--policy",
                &b,
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{cmd}: {}", text(&o));
        assert!(stderr(&o).contains("broken.rego"), "{cmd}: {}", text(&o));
        assert_eq!(p.tree(), before, "{cmd} changed files");
    }
    // A rule that cannot be evaluated (a complete rule with two values) blocks too.
    std::fs::write(
        bad.join("broken.rego"),
        "package broken\n\nport := 1 if input.format_version == 1\nport := 2 if input.kind == \"plan\"\n\ndeny contains \"x\" if port > 5\n",
    )
    .unwrap();
    let o = tend(
        p.path(),
        &[
            "apply",
            &playbook("etc-perms-pass.yml"),
            "-i",
            &p.inventory(),
            "--policy",
            &b,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("cannot be evaluated"), "{}", text(&o));
    assert_eq!(p.tree(), before);
}

#[test]
fn policy_test_passes_on_the_examples_and_fails_on_a_broken_test() {
    let d = tempfile::tempdir().unwrap();
    let ex = examples().join("policies").display().to_string();
    let o = tend(d.path(), &["policy", "test", &ex]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("PASS data.tend.sshd.test_yes_denied"), "{out}");
    assert!(!out.contains("FAIL") && !out.contains("ERROR"), "{out}");
    assert!(out.contains(" 0 failed, 0 errors"), "{out}");

    std::fs::create_dir_all(d.path().join("policies")).unwrap();
    std::fs::write(
        d.path().join("policies/p.rego"),
        "package p\n\nimport rego.v1\n\ndeny contains \"x\" if input.x\n\ntest_denies if {\n\tcount(deny) == 1 with input as {\"x\": true}\n}\n\ntest_wrong if {\n\tcount(deny) == 1 with input as {}\n}\n",
    )
    .unwrap();
    // Default directory: policies/ here.
    let o = tend(d.path(), &["policy", "test"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("PASS data.p.test_denies"), "{out}");
    assert!(out.contains("FAIL data.p.test_wrong"), "{out}");
    assert!(
        out.contains("2 tests: 1 passed, 1 failed, 0 errors"),
        "{out}"
    );
}

#[test]
fn secrets_never_reach_the_policies_input() {
    const VAR: &str = "policy-canary-var-41d9";
    const NOLOG: &str = "policy-canary-nolog-8e2c";
    let p = Project::new(&format!("db_password={VAR}"));
    std::fs::write(
        p.path().join("site.yml"),
        format!(
            r#"- hosts: all
  gather_facts: true
  tasks:
    - name: app config
      copy:
        dest: "{{{{ policy_root }}}}/etc/app.conf"
        content: "password={{{{ db_password }}}}\n"
        mode: "0600"
    - name: token
      copy:
        dest: "{{{{ policy_root }}}}/etc/token"
        content: "{NOLOG}\n"
        mode: "0600"
      no_log: true
"#
        ),
    )
    .unwrap();
    // A policy that shows the policies everything they get: its deny is the input itself.
    let show = p.path().join("show");
    std::fs::create_dir_all(&show).unwrap();
    std::fs::write(
        show.join("show.rego"),
        "package show\n\nimport rego.v1\n\ndeny contains json.marshal(input)\n",
    )
    .unwrap();
    let o = tend(
        p.path(),
        &[
            "plan",
            "site.yml",
            "-i",
            &p.inventory(),
            "--policy",
            &show.display().to_string(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = stderr(&o);
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("Policy: deny: "))
        .unwrap_or_else(|| panic!("no deny:\n{err}"));
    let input: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(input["format_version"], 1);
    assert_eq!(input["kind"], "plan");
    assert_eq!(input["hosts"]["local"]["vars"]["db_password"], "********");
    // The facts the plan gathered.
    assert!(
        input["hosts"]["local"]["facts"]["architecture"].is_string(),
        "{input:#}"
    );
    let changes = input["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{input:#}");
    assert_eq!(changes[0]["task"], "app config");
    assert_eq!(changes[0]["action"], "create");
    assert_eq!(changes[0]["module"], "copy");
    assert_eq!(
        changes[0]["content"]["after"], "password=********\n",
        "{input:#}"
    );
    assert!(changes[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/root/etc/app.conf"));
    assert_eq!(changes[1]["censored"], true);
    let all = text(&o);
    assert!(
        !all.contains(VAR) && !all.contains(NOLOG),
        "a secret reached the policies:\n{all}"
    );
}

/// The packages policy on a lab host over SSH (packages can only be installed there: the lab's
/// offline repository): a package off the allow-list (`hello`) is refused before anything
/// changes — dpkg still knows nothing of it —, one on the list (`nginx`) installs.
#[test]
#[allow(clippy::print_stderr)]
fn packages_off_the_allow_list_are_refused_on_a_lab_host() {
    if !common::is_root() {
        eprintln!("note: skipped: lab hosts need root (run as root, as CI does)");
        return;
    }
    let lab = tend_lab::Lab::builder()
        .hosts(1)
        .prefix("polpkg")
        .start()
        .expect("the lab starts (tests need root and tests/setup.sh)");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policies = examples().join("policies").display().to_string();
    let inv = lab.inventory_path().display().to_string();
    let installed = |p: &str| {
        lab.exec("h01", &["dpkg-query", "-W", "-f", "${Status}", p])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
            .unwrap_or(false)
    };
    for (name, pkg) in [("fail", "hello"), ("pass", "nginx")] {
        std::fs::write(
            d.join(format!("{name}.yml")),
            format!(
                "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Tools\n      apt:\n        name: {pkg}\n        update_cache: true\n"
            ),
        )
        .unwrap();
    }
    // apt's lists, so that the plan (check mode) knows the candidates.
    lab.run("h01", &["apt-get", "update", "-q"]).unwrap();

    let o = tend(d, &["apply", "fail.yml", "-i", &inv, "--policy", &policies]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains("Policy: deny: package hello is not on the allow-list"),
        "{}",
        text(&o)
    );
    assert!(err.contains("(h01, Tools)"), "{err}");
    assert!(!installed("hello"), "a denied package was installed");

    let o = tend(d, &["apply", "pass.yml", "-i", &inv, "--policy", &policies]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!stderr(&o).contains("Policy: deny"), "{}", text(&o));
    assert!(installed("nginx"), "{}", text(&o));
}
