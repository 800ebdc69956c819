//! `tend drift [--fix]` on real hosts over SSH: a playbook managing a file's content, a file's
//! mode, a package and a service is applied to two systemd lab hosts; out-of-band edits on one
//! of them are reported as exactly those drifts (with compliance figures and exit status 2),
//! `--fix` corrects them, a second check finds everything in state, and `tend metrics` counts
//! the checks, the detection, the correction and an MTTR. A secret in group_vars (the
//! canary) shows up in no output and not in the history.
//!
//! Needs root (labs do); without it the test prints a note and passes.

mod common;
use common::{is_root, recap_line, run_tend, text};

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use tend_lab::Lab;

const CANARY: &str = "drift-canary-5c1e77";

const SITE: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - name: app config
      copy:
        dest: /etc/tend-app.conf
        content: "listen 8080\npassword={{ db_password }}\n"
    - name: motd
      copy:
        dest: /etc/tend-motd
        content: "welcome\n"
    - name: motd mode
      file:
        path: /etc/tend-motd
        mode: "0644"
    - name: hello installed
      package:
        name: hello
    - name: cron runs
      service:
        name: cron
        state: started
        enabled: true
    - name: migrate
      command: /bin/true
      changed_when: false
"#;

fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("site.yml"), SITE).unwrap();
    std::fs::create_dir(d.path().join("group_vars")).unwrap();
    std::fs::write(
        d.path().join("group_vars/all.yml"),
        format!("db_password: {CANARY}\n"),
    )
    .unwrap();
    d
}

fn tend(dir: &Path, lab: &Lab, args: &[&str]) -> Output {
    let inv = lab.inventory_path();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["site.yml", "-i", inv.to_str().unwrap()]);
    let o = run_tend(dir, &all);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(CANARY)
            && !String::from_utf8_lossy(&o.stderr).contains(CANARY),
        "the secrets canary was printed:\n{}",
        text(&o)
    );
    o
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let o = run_tend(dir, args);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

#[test]
fn drift_is_found_reported_fixed_and_counted() {
    if !is_root() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("note: skipped: lab hosts need root (run as root, as CI does)");
        }
        return;
    }
    let lab = Lab::builder()
        .hosts(2)
        .systemd(true)
        .start()
        .expect("the lab starts (these tests need root and tests/setup.sh)");
    let p = project();
    let dir = p.path();
    for h in ["h01", "h02"] {
        lab.run(h, &["apt-get", "update", "-q"]).unwrap();
    }
    let o = tend(dir, &lab, &["apply"]);
    assert!(o.status.success(), "{}", text(&o));

    // Nothing drifted yet.
    let o = tend(dir, &lab, &["drift"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Out-of-band edits on h01.
    lab.run("h01", &["sh", "-c", "echo hacked >> /etc/tend-app.conf"])
        .unwrap();
    lab.run("h01", &["chmod", "0600", "/etc/tend-motd"])
        .unwrap();
    lab.run("h01", &["dpkg", "-r", "hello"]).unwrap();
    lab.run("h01", &["systemctl", "stop", "cron"]).unwrap();

    let o = tend(dir, &lab, &["drift"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = stdout(&o);
    let drifts: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" outside tend"))
        .collect();
    assert_eq!(
        drifts,
        [
            "h01: copy[/etc/tend-app.conf]: content changed outside tend:",
            "h01: file[/etc/tend-motd]: mode changed outside tend: declared 0644, found 0600",
            "h01: package[hello]: removed outside tend",
            "h01: service[cron]: stopped outside tend (declared started)",
        ],
        "{}",
        text(&o)
    );
    assert!(
        out.contains("    --- declared\n    +++ found on h01\n")
            && out.contains("     password=********\n    +hacked\n"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("h01: not checkable: migrate ("),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("Compliance: hosts 50% (1 of 2 checked hosts fully in state), resources 60% (6 of 10 checked resources in state)"),
        "{}",
        text(&o)
    );

    // The same as one JSON document.
    let o = tend(dir, &lab, &["drift", "--output", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert!(doc["run_id"].is_string(), "{doc}");
    assert_eq!(doc["fix"], Value::Null);
    let h01 = &doc["hosts"][0];
    assert_eq!(h01["host"], "h01");
    assert_eq!(h01["status"], "drifted");
    assert_eq!(
        h01["counts"],
        serde_json::json!({"in_state": 1, "drifted": 4, "errors": 0, "not_checkable": 1})
    );
    assert_eq!(h01["drifts"][1]["field"], "mode");
    assert_eq!(h01["drifts"][1]["declared"], "0644");
    assert_eq!(h01["drifts"][1]["found"], "0600");
    assert_eq!(doc["hosts"][1]["status"], "in_state");
    assert_eq!(doc["totals"]["hosts_checked"], 2);
    assert_eq!(doc["totals"]["resources_checked"], 10);
    assert_eq!(doc["compliance"]["hosts_percent"], 50.0);
    assert_eq!(doc["compliance"]["resources_percent"], 60.0);

    // --fix corrects exactly the drifted host.
    let o = tend(dir, &lab, &["drift", "--fix"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    for r in [
        "copy[/etc/tend-app.conf]",
        "file[/etc/tend-motd]",
        "package[hello]",
        "service[cron]",
    ] {
        assert!(
            out.contains(&format!("h01: {r}: corrected\n")),
            "{r}:\n{}",
            text(&o)
        );
    }
    assert!(
        out.contains("Fix: 4 resources corrected on 1 host; 0 errors"),
        "{}",
        text(&o)
    );
    assert_eq!(
        lab.run("h01", &["systemctl", "is-active", "cron"])
            .unwrap()
            .trim(),
        "active"
    );
    assert_eq!(
        lab.run("h01", &["stat", "-c", "%a", "/etc/tend-motd"])
            .unwrap()
            .trim(),
        "644"
    );

    // Everything in state again.
    let o = tend(dir, &lab, &["drift"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).contains("Compliance: hosts 100% (2 of 2 checked hosts fully in state), resources 100% (10 of 10 checked resources in state)"),
        "{}",
        text(&o)
    );

    // The history: four drift checks (two hosts each), three finding h01 drifted, one fix
    // that corrected it (not a deployment: only the first apply is one).
    let kinds = |k: &str| {
        json(dir, &["history", "--kind", k, "--output", "json"])
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((kinds("drift"), kinds("fix"), kinds("apply")), (5, 1, 1));
    let m = json(dir, &["metrics", "--output", "json"]);
    let total = &m["total"];
    assert_eq!(total["drift_checks"], 10, "{m}");
    assert_eq!(total["drift_detected"], 3, "{m}");
    assert_eq!(total["deployments"], 1, "{m}");
    assert_eq!(total["hosts_compliant"], 2, "{m}");
    assert_eq!(total["compliance_rate"], 1.0, "{m}");
    assert_eq!(total["drift_corrected"], 1, "{m}");
    assert!(total["mttr_seconds_avg"].as_f64().unwrap() > 0.0, "{m}");

    for entry in std::fs::read_dir(dir.join(".tend")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(CANARY),
            "the secrets canary is in the history"
        );
    }
}

/// The same on local hosts in a temporary directory (no root needed): content and mode drift,
/// exit statuses (an error wins over drift), --fix, and a clean second check.
#[test]
fn local_hosts_drift_exit_statuses_and_fix() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("site.yml"),
        r#"- hosts: all
  gather_facts: false
  tasks:
    - name: conf
      copy:
        dest: "{{ playbook_dir }}/{{ inventory_hostname }}.conf"
        content: "a\nb\n"
        mode: "0644"
    - name: hidden
      copy:
        dest: "{{ playbook_dir }}/{{ inventory_hostname }}.hidden"
        content: "nolog-canary-4b1d\n"
      no_log: true
    - name: broken on purpose
      command: "{{ '/bin/false' if break_me | default(false) else '/bin/true' }}"
      check_mode: false
      changed_when: false
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("inv"),
        "web1 ansible_connection=local\nweb2 ansible_connection=local\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["site.yml", "-i", "inv"]);
        run_tend(dir, &all)
    };
    let o = run(&["apply"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        recap_line(&stdout(&o), "web1").contains("changed=2 "),
        "{}",
        text(&o)
    );
    let o = run(&["drift"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    std::fs::write(dir.join("web1.conf"), "a\nc\n").unwrap();
    std::fs::write(dir.join("web2.hidden"), "nolog-canary-4b1d edited\n").unwrap();
    std::fs::set_permissions(
        dir.join("web1.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let o = run(&["drift"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = stdout(&o);
    let conf = dir.join("web1.conf");
    assert!(
        out.contains(&format!(
            "web1: copy[{}]: mode changed outside tend: declared 0644, found 0600\n",
            conf.display()
        )),
        "{}",
        text(&o)
    );
    assert!(
        out.contains(" a\n    -b\n    +c\n"),
        "the diff goes from declared to found:\n{}",
        text(&o)
    );
    assert!(
        out.contains("hosts 0% (0 of 2 checked hosts fully in state)"),
        "{}",
        text(&o)
    );
    // A no_log task's drift is reported without its details, and they are not recorded.
    assert!(
        out.contains("web2: copy[hidden]: changed outside tend (details hidden: no_log)\n"),
        "{}",
        text(&o)
    );
    assert!(!out.contains("nolog-canary"), "{}", text(&o));
    let db = std::fs::read(dir.join(".tend/history.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains("nolog-canary"),
        "a no_log task's diff is in the history"
    );

    // A failing host: exit 1 even though web1 drifted.
    let o = run(&["drift", "-e", "{\"break_me\": true}", "-l", "web1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("web1: error: broken on purpose ("),
        "{}",
        text(&o)
    );

    let o = run(&["drift", "--fix"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).contains(&format!("web1: copy[{}]: corrected\n", conf.display())),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "a\nb\n");
    let o = run(&["drift", "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["compliance"]["hosts_percent"], 100.0, "{doc}");
    assert_eq!(doc["totals"]["in_state"], 4, "{doc}");
}
