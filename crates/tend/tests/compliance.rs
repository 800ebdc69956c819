//! `tend compliance` (docs/policy.md, "Compliance"): hosts' observed state judged by policies
//! without a playbook.
//!
//! - On the local host, inside a directory of its own: what the policies collect reaches them,
//!   a violation makes the host non-compliant (exit 2) and its repair compliant (exit 0), the
//!   history keeps verdicts but never the content it judged, the metrics count the last check;
//!   a missing or broken policy contacts no host (exit 1); an unreachable host is an error
//!   (exit 1), never left out.
//! - `examples/compliance` on three systemd lab hosts (needs root): a clean fleet passes with
//!   warnings, three changes made outside tend are found on the hosts they were made on, a
//!   host whose sshd was stopped is an error, and the metrics' policy compliance rate follows.
//! - `tend drift --fix` with policies: a denied fix corrects nothing.

#[allow(dead_code)]
mod common;
use common::text;

use std::path::{Path, PathBuf};
use std::process::Output;

fn tend(dir: &Path, args: &[&str]) -> Output {
    common::tend_command(dir, args)
        .env("TEND_STORE", dir.join("history.db"))
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// A project: `root/` holds the files the policy judges, `policies/` one policy naming them.
fn project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("srv/app")).unwrap();
    std::fs::write(
        root.join("etc/app.conf"),
        "listen 127.0.0.1\n# content-canary-7f3a\n",
    )
    .unwrap();
    std::fs::write(root.join("srv/app/data"), "x").unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let r = root.display();
    std::fs::write(
        policies.join("local.rego"),
        format!(
            r#"package local.files

import rego.v1

collect_files contains "{r}/etc/*.conf"

collect_metadata contains "{r}/srv/**"

deny contains sprintf("%s is world-writable", [path]) if {{
	some path, f in input.host.files
	f.world_writable
}}

deny contains sprintf("%s listens on every address", [path]) if {{
	some path, f in input.host.files
	contains(f.content, "listen 0.0.0.0")
}}

warn contains sprintf("%d packages, %d services seen", [count(input.host.packages), count(input.host.services)]) if {{
	input.host.facts.hostname
	input.kind == "compliance"
	input.host.files["{r}/srv/app/data"].type == "file"
}}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("inventory"),
        "local ansible_connection=local\n",
    )
    .unwrap();
    (dir, root)
}

#[test]
fn the_local_host_is_judged_on_what_it_holds_and_the_history_keeps_only_verdicts() {
    let (dir, root) = project();
    let d = dir.path();
    let conf = root.join("etc/app.conf");
    let run = |extra: &[&str]| {
        let mut args = vec!["compliance", "-i", "inventory", "--policy", "policies"];
        args.extend_from_slice(extra);
        tend(d, &args)
    };

    // Compliant: the warn sees facts, packages, services and the collected files.
    let out = run(&[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("COMPLIANCE [policies]"), "{t}");
    assert!(t.contains("local  compliant\n"), "{t}");
    assert!(
        t.contains("packages, ") && t.contains(" services seen [local.files]"),
        "{t}"
    );
    assert!(
        t.contains("Compliance: 1 of 1 host compliant, 0 non-compliant, 0 not judged (error); 0 deny, 1 warn"),
        "{t}"
    );
    assert!(t.contains("Recorded as compliance run "), "{t}");

    // Two violations made outside tend: exit 2, both named.
    std::fs::write(&conf, "listen 0.0.0.0\n# content-canary-7f3a\n").unwrap();
    std::fs::set_permissions(
        root.join("srv/app/data"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let out = run(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc = json(&out);
    assert_eq!(doc["totals"]["non_compliant"], 1, "{doc}");
    assert_eq!(doc["compliance_rate"], 0.0, "{doc}");
    let host = &doc["hosts"][0];
    assert_eq!(host["status"], "non_compliant", "{doc}");
    let denies: Vec<&str> = host["deny"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["msg"].as_str().unwrap())
        .collect();
    assert!(
        denies.contains(&format!("{} listens on every address", conf.display()).as_str()),
        "{denies:?}"
    );
    assert!(
        denies.contains(
            &format!("{} is world-writable", root.join("srv/app/data").display()).as_str()
        ),
        "{denies:?}"
    );
    assert_eq!(host["deny"][0]["host"], "local", "{doc}");

    // Repaired: compliant again.
    std::fs::write(&conf, "listen 127.0.0.1\n# content-canary-7f3a\n").unwrap();
    std::fs::set_permissions(
        root.join("srv/app/data"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The history: three compliance runs with their verdicts, never the content judged.
    let out = tend(d, &["history", "--kind", "compliance", "--output", "json"]);
    let runs = json(&out);
    assert_eq!(runs.as_array().map(Vec::len), Some(3), "{runs}");
    let db = std::fs::read(d.join("history.db")).unwrap();
    assert!(
        !db.windows(b"content-canary-7f3a".len())
            .any(|w| w == b"content-canary-7f3a"),
        "file contents reached the history"
    );
    let second = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["exit_code"] == 2)
        .expect("the non-compliant run");
    let id = second["run_id"].as_str().unwrap();
    let out = tend(d, &["history", "show", id]);
    let t = text(&out);
    assert!(t.contains("kind:      compliance\n"), "{t}");
    assert!(
        t.contains("verdicts:  0 of 1 hosts compliant, 1 non-compliant, 0 not judged (error)\n"),
        "{t}"
    );
    assert!(t.contains("listens on every address (local)"), "{t}");

    // The metrics: three checks, one violation, compliant at the last check.
    let out = tend(d, &["metrics", "--output", "json"]);
    let m = json(&out);
    assert_eq!(m["total"]["policy_checks"], 3, "{m}");
    assert_eq!(m["total"]["policy_violations"], 1, "{m}");
    assert_eq!(m["total"]["policy_compliance_rate"], 1.0, "{m}");
    let out = tend(d, &["metrics", "--output", "prometheus"]);
    let p = String::from_utf8_lossy(&out.stdout);
    assert!(p.contains("\ntend_policy_compliance_ratio 1\n"), "{p}");
}

#[test]
fn missing_or_broken_policies_contact_no_host_and_unreachable_hosts_are_errors() {
    let (dir, _root) = project();
    let d = dir.path();

    // No compliance/ here and no --policy.
    let out = tend(d, &["compliance", "-i", "inventory"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("no compliance policies") && t.contains("hint:"),
        "{t}"
    );

    // A policy that does not parse: named with its line, nothing recorded.
    std::fs::write(
        d.join("policies/broken.rego"),
        "package b\n\ndeny contains if {\n",
    )
    .unwrap();
    let out = tend(
        d,
        &["compliance", "-i", "inventory", "--policy", "policies"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("broken.rego") && t.contains("does not parse"),
        "{t}"
    );
    assert!(t.contains("no host was contacted"), "{t}");
    assert!(!d.join("history.db").exists(), "{t}");
    std::fs::remove_file(d.join("policies/broken.rego")).unwrap();

    // A policy directory that is not there.
    let out = tend(d, &["compliance", "-i", "inventory", "--policy", "nowhere"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("cannot read the policy directory nowhere"),
        "{t}"
    );
    assert!(t.contains("no host was contacted"), "{t}");

    // A collect rule with a relative path: refused before any host, naming the policy.
    std::fs::write(
        d.join("policies/relative.rego"),
        "package rel\nimport rego.v1\ncollect_metadata contains \"etc/**\"\n",
    )
    .unwrap();
    let out = tend(
        d,
        &["compliance", "-i", "inventory", "--policy", "policies"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("relative.rego") && t.contains("\"etc/**\" is not an absolute path"),
        "{t}"
    );
    assert!(t.contains("no host was contacted"), "{t}");
    std::fs::remove_file(d.join("policies/relative.rego")).unwrap();

    // A collect rule with something else than paths.
    std::fs::write(
        d.join("policies/odd.rego"),
        "package odd\nimport rego.v1\ncollect_files contains 7\n",
    )
    .unwrap();
    let out = tend(
        d,
        &["compliance", "-i", "inventory", "--policy", "policies"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("must be strings"), "{t}");
    std::fs::remove_file(d.join("policies/odd.rego")).unwrap();

    // An unreachable host: an error for that host (exit 1), the other still judged.
    std::fs::write(
        d.join("inventory"),
        "local ansible_connection=local\nghost ansible_host=127.0.0.1 ansible_port=9 ansible_user=nobody\n",
    )
    .unwrap();
    let out = tend(
        d,
        &[
            "compliance",
            "-i",
            "inventory",
            "--policy",
            "policies",
            "--accept-new-host-keys",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("local  compliant\n"), "{t}");
    assert!(t.contains("ghost  ERROR\n    error: unreachable: "), "{t}");
    assert!(
        t.contains("1 of 2 hosts compliant, 0 non-compliant, 1 not judged (error)"),
        "{t}"
    );
}

#[test]
fn the_example_compliance_policies_pass_their_own_tests() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/compliance");
    let out = common::run_tend(&example, &["policy", "test", "compliance"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(" 0 failed, 0 errors"), "{t}");
}

#[test]
fn a_fix_the_policies_deny_corrects_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = d.join("motd");
    std::fs::write(
        d.join("site.yml"),
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: motd\n      copy:\n        dest: {}\n        content: \"welcome\\n\"\n        mode: \"0666\"\n",
            target.display()
        ),
    )
    .unwrap();
    std::fs::write(d.join("inventory"), "local ansible_connection=local\n").unwrap();
    let out = tend(d, &["apply", "site.yml", "-i", "inventory"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&target, "changed outside tend\n").unwrap();

    std::fs::create_dir_all(d.join("gate")).unwrap();
    std::fs::write(
        d.join("gate/modes.rego"),
        "package gate\nimport rego.v1\ndeny contains sprintf(\"%s would be world-writable\", [c.path]) if {\n  some c in input.changes\n  c.module == \"copy\"\n  c.args.mode == \"0666\"\n}\n",
    )
    .unwrap();
    let out = tend(
        d,
        &[
            "drift",
            "site.yml",
            "-i",
            "inventory",
            "--fix",
            "--policy",
            "gate",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("would be world-writable"), "{t}");
    assert!(t.contains("the drift was not corrected"), "{t}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "changed outside tend\n"
    );
    let out = tend(d, &["history", "--kind", "fix", "--output", "json"]);
    let runs = json(&out);
    assert_eq!(runs[0]["status"], "error", "{runs}");

    // Without the policy the same fix corrects it.
    let out = tend(d, &["drift", "site.yml", "-i", "inventory", "--fix"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "welcome\n");
}

#[test]
#[allow(clippy::print_stderr)]
fn the_example_policies_find_changes_made_outside_tend_on_lab_hosts() {
    if !common::is_root() {
        eprintln!("note: skipped: lab hosts need root (run as root, as CI does)");
        return;
    }
    let lab = tend_lab::Lab::builder()
        .hosts(3)
        .systemd(true)
        .start()
        .expect("the lab starts (tests need root and tests/setup.sh)");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/compliance");
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("history.db");
    let inv = lab.inventory_path();
    let check = || {
        common::tend_command(
            &example,
            &[
                "compliance",
                "-i",
                inv.to_str().unwrap(),
                "--output",
                "json",
            ],
        )
        .env("TEND_STORE", &store)
        .output()
        .unwrap()
    };
    let by_host = |doc: &serde_json::Value, h: &str| -> serde_json::Value {
        doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["host"] == h)
            .cloned()
            .unwrap_or_else(|| panic!("{h} missing: {doc}"))
    };
    let msgs = |v: &serde_json::Value, kind: &str| -> Vec<String> {
        v[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["msg"].as_str().unwrap().to_string())
            .collect()
    };

    // A fresh fleet: compliant, with the lab's key-only root login as a warning.
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc = json(&out);
    for h in ["h01", "h02", "h03"] {
        let v = by_host(&doc, h);
        assert_eq!(v["status"], "compliant", "{v}");
        assert!(
            msgs(&v, "warn")
                .iter()
                .any(|m| m.contains("prohibit-password")),
            "{v}"
        );
    }

    // Changes made outside tend, one kind per host.
    lab.run(
        "h02",
        &[
            "sh",
            "-c",
            "echo 'PermitRootLogin yes' > /etc/ssh/sshd_config.d/00-root.conf",
        ],
    )
    .unwrap();
    lab.run(
        "h03",
        &[
            "sh",
            "-c",
            "echo x > /etc/tend-canary.conf && chmod 0666 /etc/tend-canary.conf",
        ],
    )
    .unwrap();
    lab.run(
        "h03",
        &[
            "sh",
            "-c",
            "apt-get update -q && apt-get install -y -q tend-demo=1.0",
        ],
    )
    .unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc = json(&out);
    assert_eq!(by_host(&doc, "h01")["status"], "compliant", "{doc}");
    let h02 = by_host(&doc, "h02");
    assert_eq!(h02["status"], "non_compliant", "{h02}");
    assert_eq!(
        msgs(&h02, "deny"),
        vec!["sshd lets root log in with a password (PermitRootLogin yes): set it to no or prohibit-password"]
    );
    let h03 = by_host(&doc, "h03");
    let mut deny = msgs(&h03, "deny");
    deny.sort();
    assert_eq!(
        deny,
        vec![
            "/etc/tend-canary.conf is world-writable (mode 0666)".to_string(),
            "tend-demo 1.0 is a known-vulnerable version: upgrade it".to_string(),
        ],
        "{h03}"
    );

    // A host whose sshd stopped cannot be judged: an error, not a pass.
    lab.run("h01", &["systemctl", "stop", "ssh"]).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc = json(&out);
    let h01 = by_host(&doc, "h01");
    assert_eq!(h01["status"], "error", "{h01}");
    assert!(
        h01["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("unreachable: "),
        "{h01}"
    );

    // The metrics: each host's last judged check — h01 compliant, h02 and h03 not.
    let out = common::tend_command(&example, &["metrics", "--output", "json"])
        .env("TEND_STORE", &store)
        .output()
        .unwrap();
    let m = json(&out);
    assert_eq!(m["total"]["hosts_policy_checked"], 3, "{m}");
    assert_eq!(m["total"]["hosts_policy_compliant"], 1, "{m}");
    assert_eq!(m["total"]["policy_checks"], 8, "{m}");
    assert_eq!(m["total"]["policy_violations"], 4, "{m}");
}
