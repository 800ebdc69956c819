//! Rolling batches over SSH with a real unreachable host (sshd stopped): unreachable hosts
//! are failures for `any_errors_fatal` but not for `max_fail_percentage`, and the batch's
//! hosts stop together at the step where the rule fired (docs/architecture.md, "Batches").
//!
//! Needs root (lab hosts); without it the test prints a note and passes.

mod common;
use common::{recap_line, text};

const PLAYBOOK: &str = r#"- name: rollout
  hosts: all
  gather_facts: false
  serial: 2
  RULE
  tasks:
    - name: first step
      copy:
        dest: /root/step1
        content: "1"
    - name: second step
      copy:
        dest: /root/step2
        content: "2"
"#;

#[test]
#[allow(clippy::print_stderr)]
fn unreachable_hosts_stop_any_errors_fatal_but_not_the_threshold() {
    if !common::is_root() {
        eprintln!("skipped: the lab needs root");
        return;
    }
    let lab = tend_lab::Lab::start(4).expect("the lab starts (needs root and tests/setup.sh)");
    lab.stop_sshd("h02").unwrap();
    let inv = lab.inventory_path();
    let inv = inv.to_str().unwrap();
    let has = |h: &str, f: &str| lab.run(h, &["test", "-e", f]).is_ok();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // max_fail_percentage: 0 counts failed hosts only; h02 unreachable is not one.
    std::fs::write(
        d.join("site.yml"),
        PLAYBOOK.replace("RULE", "max_fail_percentage: 0"),
    )
    .unwrap();
    let out = common::run_tend(d, &["apply", "site.yml", "-i", inv]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(recap_line(&t, "h02").contains("unreachable=1"), "{t}");
    for h in ["h01", "h03", "h04"] {
        assert!(recap_line(&t, h).contains("ok=2    changed=2"), "{t}");
        assert!(has(h, "/root/step2"), "{h} finished: {t}");
    }
    for h in ["h01", "h03", "h04"] {
        lab.run(h, &["rm", "-f", "/root/step1", "/root/step2"])
            .unwrap();
    }

    // any_errors_fatal: h02 unreachable at the first step stops h01 after that step, and the
    // second batch never runs.
    std::fs::write(
        d.join("site.yml"),
        PLAYBOOK.replace("RULE", "any_errors_fatal: true"),
    )
    .unwrap();
    let out = common::run_tend(d, &["apply", "site.yml", "-i", inv]);
    let t = text(&out);
    // ansible-core 2.19.14 exits 4 here too (checked by hand on a lab).
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(recap_line(&t, "h02").contains("unreachable=1"), "{t}");
    assert!(
        recap_line(&t, "h01").contains("ok=1    changed=1    unreachable=0    failed=0"),
        "{t}"
    );
    assert!(
        has("h01", "/root/step1") && !has("h01", "/root/step2"),
        "{t}"
    );
    for h in ["h03", "h04"] {
        assert_eq!(recap_line(&t, h), "", "{h} ran: {t}");
        assert!(!has(h, "/root/step1"), "{h} ran: {t}");
    }
    assert!(
        t.contains("any_errors_fatal") && t.contains("no more hosts left"),
        "{t}"
    );
}
