//! Plans on lab hosts over SSH: `tend plan -o`, `tend show`, `tend apply PLAN` (exactly that
//! plan: changed inputs refused, a resource edited on the host since the plan not touched,
//! a plan applied once), and secrets kept out of the plan, its output and the history.
//!
//! Needs root (the lab); without it the test prints a note and passes.

mod common;
use common::{is_root, recap_line, text};

use std::path::Path;
use std::process::Output;

use tend_lab::Lab;

const CANARY: &str = "plan-canary-5b1e";
const VAR_CANARY: &str = "plan-canary-var-77c3";

fn tend(dir: &Path, args: &[&str]) -> Output {
    common::tend_command(dir, args)
        .env_remove("TEND_STORE")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn project(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("group_vars")).unwrap();
    std::fs::write(
        dir.join("templates/motd.j2"),
        "managed by tend on {{ inventory_hostname }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/app.conf.j2"),
        "password={{ db_password }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("group_vars/all.yml"),
        format!("db_password: {VAR_CANARY}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("site.yml"),
        format!(
            r#"- hosts: all
  gather_facts: false
  tasks:
    - name: motd
      template: src=motd.j2 dest=/etc/motd mode=0644
    - name: config
      template: src=app.conf.j2 dest=/root/app.conf mode=0600
    - name: token
      copy:
        content: "{CANARY}\n"
        dest: /root/token
        mode: "0600"
      no_log: true
    - name: marker
      command: touch /root/ran creates=/root/ran
"#
        ),
    )
    .unwrap();
}

fn assert_no_canary(what: &str, text: &str) {
    assert!(
        !text.contains(CANARY) && !text.contains(VAR_CANARY),
        "a secret shows in {what}:\n{text}"
    );
}

#[test]
#[allow(clippy::print_stderr)]
fn plan_apply_exactly_that_plan_then_nothing_is_left() {
    if !is_root() {
        eprintln!("skipped: the lab needs root");
        return;
    }
    let lab = Lab::start(2).expect("the lab starts (these tests need root and tests/setup.sh)");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    project(dir);
    let inv = lab.inventory_path();
    let inv = inv.to_str().unwrap();

    // The plan: printed like OpenTofu's, saved, secrets masked.
    let o = tend(
        dir,
        &[
            "plan",
            "site.yml",
            "-i",
            inv,
            "-o",
            "plan.json",
            "--detailed-exitcode",
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    let shown = stdout(&o);
    for h in ["h01", "h02"] {
        assert!(
            shown.contains(&format!(
                "# {h}: template[/etc/motd] will be updated in-place"
            )),
            "{t}"
        );
        assert!(
            shown.contains(&format!("# {h}: template[/root/app.conf] will be created")),
            "{t}"
        );
        assert!(
            shown.contains(&format!("# {h}: copy[token] will be created")),
            "{t}"
        );
    }
    assert!(shown.contains("+managed by tend on h01"), "{t}");
    assert!(shown.contains("+password=********"), "{t}");
    assert!(
        shown.contains("(the change is hidden: the task has no_log)"),
        "{t}"
    );
    assert!(
        shown.ends_with("Plan: 4 to add, 4 to change, 0 to destroy on 2 hosts.\n"),
        "{t}"
    );
    assert_no_canary("the plan output", &t);
    let saved = std::fs::read_to_string(dir.join("plan.json")).unwrap();
    assert_no_canary("the plan file", &saved);

    // JSON shape, and `tend show` renders what `tend plan` printed.
    let v: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(v["format"], "tend-plan");
    assert_eq!(v["version"], 1);
    assert!(
        v["inputs"]["site.yml"].as_str().unwrap().len() == 64,
        "{saved}"
    );
    assert!(v["inputs"]["templates/motd.j2"].is_string(), "{saved}");
    assert!(v["inputs"]["group_vars/all.yml"].is_string(), "{saved}");
    assert!(v["inputs"][inv].is_string(), "{saved}");
    assert_eq!(v["hosts"][0]["host"], "h01");
    let c0 = &v["hosts"][0]["changes"][0];
    assert_eq!(c0["module"], "template");
    assert_eq!(c0["action"], "update");
    assert!(c0["key"].as_str().unwrap().starts_with("0:"), "{c0}");
    assert_eq!(c0["digest"].as_str().unwrap().len(), 64);
    assert_eq!(v["summary"]["add"], 4);
    let o = tend(dir, &["show", "plan.json"]);
    assert_eq!(stdout(&o), shown);
    let o = tend(dir, &["show", "plan.json", "--output", "json"]);
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again, v);

    // Options that would change the plan are refused.
    let o = tend(dir, &["apply", "plan.json", "-l", "h01"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("-l/--limit cannot be given with a plan file"),
        "{}",
        text(&o)
    );
    let o = tend(dir, &["apply", "plan.json", "--no-history"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--no-history"), "{}", text(&o));

    // Behind the plan's back, h02's motd is edited: that resource is not touched, the rest
    // (of h02 too) applies.
    lab.exec_with_input("h02", &["sh", "-c", "cat > /etc/motd"], b"edited by hand\n")
        .unwrap();
    let o = tend(dir, &["apply", "plan.json"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("changed since plan"), "{t}");
    assert!(t.contains("h02: template[/etc/motd]"), "{t}");
    assert!(t.contains("run `tend plan` again"), "{t}");
    assert_no_canary("the apply output", &t);
    assert!(
        recap_line(&t, "h01").contains("changed=4    unreachable=0    failed=0"),
        "{t}"
    );
    assert!(
        recap_line(&t, "h02").contains("changed=3    unreachable=0    failed=0")
            && recap_line(&t, "h02").contains("ignored=1"),
        "{t}"
    );
    assert_eq!(
        lab.run("h01", &["cat", "/etc/motd"]).unwrap(),
        "managed by tend on h01\n"
    );
    assert_eq!(
        lab.run("h02", &["cat", "/etc/motd"]).unwrap(),
        "edited by hand\n"
    );
    for h in ["h01", "h02"] {
        assert_eq!(
            lab.run(h, &["cat", "/root/token"]).unwrap(),
            format!("{CANARY}\n")
        );
        assert!(lab.run(h, &["ls", "/root/ran"]).is_ok());
    }

    // A plan is applied once.
    let o = tend(dir, &["apply", "plan.json"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("was already applied by run"), "{t}");

    // A new plan holds only h02's motd; applied, nothing is left to do.
    let o = tend(dir, &["plan", "site.yml", "-i", inv, "-o", "plan2.json"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        stdout(&o).ends_with("Plan: 0 to add, 1 to change, 0 to destroy on 2 hosts.\n"),
        "{t}"
    );
    let o = tend(dir, &["apply", "plan2.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = tend(
        dir,
        &[
            "plan",
            "site.yml",
            "-i",
            inv,
            "-o",
            "plan3.json",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("No changes"), "{}", text(&o));
    let o = tend(dir, &["apply", "plan3.json"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for h in ["h01", "h02"] {
        assert!(recap_line(&t, h).contains("changed=0"), "{t}");
    }

    // An input changed since the plan: refused, naming it; nothing runs.
    let o = tend(dir, &["plan", "site.yml", "-i", inv, "-o", "plan4.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::write(dir.join("templates/motd.j2"), "changed\n").unwrap();
    let o = tend(dir, &["apply", "plan4.json"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("templates/motd.j2 (changed)"), "{t}");
    assert_eq!(
        lab.run("h01", &["cat", "/etc/motd"]).unwrap(),
        "managed by tend on h01\n"
    );

    // The history holds plans as plan runs, and no secret.
    let o = tend(dir, &["history", "--kind", "plan", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 4, "{}", text(&o));
    let db = std::fs::read(dir.join(".tend/history.db")).unwrap();
    let db = String::from_utf8_lossy(&db);
    assert_no_canary("the history store", &db);
}

/// A plan whose tasks build on each other (a file created, then edited twice) applies as planned on a local host: the apply's own earlier tasks change what later
/// ones observe, which is not "changed since plan". An edit made outside tend between plan and
/// apply still is. No root needed.
#[test]
fn tasks_that_build_on_each_other_apply_as_planned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Outside the playbook's directory: everything in there is an input of the plan.
    let out = tempfile::tempdir().unwrap();
    let target = out.path();
    std::fs::write(
        d.join("inventory.ini"),
        "localhost ansible_connection=local\n",
    )
    .unwrap();
    std::fs::write(
        d.join("site.yml"),
        format!(
            r#"- hosts: all
  gather_facts: false
  tasks:
    - copy:
        content: "first\n"
        dest: "{t}/app.conf"
        mode: "0644"
    - lineinfile: path={t}/app.conf line=second create=yes
    - lineinfile: path={t}/app.conf line=third create=yes
    - copy:
        content: "other\n"
        dest: "{t}/other.conf"
"#,
            t = target.display()
        ),
    )
    .unwrap();
    let plan = ["plan", "site.yml", "-i", "inventory.ini", "-o", "plan.json"];
    let o = tend(d, &plan);
    assert!(o.status.success(), "plan failed:\n{}", text(&o));
    let o = tend(d, &["apply", "plan.json"]);
    assert!(
        o.status.success(),
        "apply of the plan failed:\n{}",
        text(&o)
    );
    assert!(!text(&o).contains("changed since plan"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(target.join("app.conf")).unwrap(),
        "first\nsecond\nthird\n"
    );

    // Start over; this time app.conf is edited between plan and apply.
    std::fs::remove_file(target.join("app.conf")).unwrap();
    std::fs::remove_file(target.join("other.conf")).unwrap();
    let o = tend(d, &plan);
    assert!(o.status.success(), "plan failed:\n{}", text(&o));
    std::fs::write(target.join("app.conf"), "written by someone else\n").unwrap();
    let o = tend(d, &["apply", "plan.json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("changed since plan"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(target.join("app.conf")).unwrap(),
        "written by someone else\n",
        "a resource changed since the plan was touched"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("other.conf")).unwrap(),
        "other\n",
        "the rest of the plan was not applied"
    );
}
