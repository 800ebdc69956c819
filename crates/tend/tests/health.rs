//! Health gates (`health:` on a play): after each batch converges its gate runs on the batch's
//! hosts; a failed gate stops the rollout (docs/architecture.md, "Batches"). Three local hosts
//! in a temporary directory: no root needed.

mod common;
use common::{recap_line, run_tend, text};

use std::path::Path;

const INVENTORY: &str = "[web]
web1 ansible_connection=local
web2 ansible_connection=local
web3 ansible_connection=local
";

/// A release in batches of one; the gate checks a marker file per host (retrying once), and
/// reads what the batch registered and set.
const RELEASE: &str = r#"- name: release
  hosts: web
  gather_facts: false
  serial: 1
  tasks:
    - name: install the release
      copy:
        dest: "{{ root }}/{{ inventory_hostname }}.release"
        content: "v2\n"
      register: installed
    - name: remember the version
      set_fact:
        version: v2
  health:
    - name: app is healthy
      command: test -f "{{ root }}/{{ inventory_hostname }}.ok"
      register: probe
      until: probe.rc == 0
      retries: 1
      delay: 0
    - name: the gate sees the batch's state
      copy:
        dest: "{{ root }}/{{ inventory_hostname }}.gate"
        content: "{{ version }} {{ installed.changed }}\n"

- name: afterwards
  hosts: web
  gather_facts: false
  tasks:
    - name: second play
      copy:
        dest: "{{ root }}/{{ inventory_hostname }}.after"
        content: "after\n"
"#;

fn project(playbook: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("site.yml"), playbook).unwrap();
    std::fs::write(d.path().join("inv"), INVENTORY).unwrap();
    std::fs::create_dir(d.path().join("root")).unwrap();
    d
}

fn root_arg(d: &Path) -> String {
    format!("root={}", d.join("root").display())
}

fn has(d: &Path, name: &str) -> bool {
    d.join("root").join(name).exists()
}

#[test]
fn a_failed_gate_stops_the_rollout_after_its_batch() {
    let p = project(RELEASE);
    let d = p.path();
    for h in ["web1", "web3"] {
        std::fs::write(d.join("root").join(format!("{h}.ok")), "").unwrap();
    }
    // What web2 runs before the release: the rollback puts it back.
    std::fs::write(d.join("root/web2.release"), "v1\n").unwrap();
    let root = root_arg(d);
    let out = run_tend(d, &["apply", "site.yml", "-i", "inv", "-e", &root]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");

    // web1 passed its gate, which saw the batch's registered value and fact.
    assert!(t.contains("HEALTH [release] batch 1/3"), "{t}");
    assert!(recap_line(&t, "web1").contains("failed=0"), "{t}");
    assert_eq!(
        std::fs::read_to_string(d.join("root/web1.gate")).unwrap(),
        "v2 True\n"
    );
    // web2 converged, then failed its gate (after one retry); nothing after it ran.
    assert!(t.contains("HEALTH [release] batch 2/3"), "{t}");
    assert!(
        t.contains("FAILED - RETRYING: [web2]: app is healthy (1 retries left)."),
        "{t}"
    );
    assert!(!has(d, "web2.gate"), "{t}");
    assert!(recap_line(&t, "web2").contains("failed=1"), "{t}");
    assert!(
        t.contains(
            "health gate of play \"release\" failed on web2: app is healthy: non-zero return code; rollout stopped after batch 2/3"
        ),
        "{t}"
    );
    // Then web2's batch was rolled back: its release file is v1 again; web1 keeps v2.
    assert!(
        t.contains("rolling back batch 2/3 of play \"release\" on web2"),
        "{t}"
    );
    assert!(t.contains("rollback copy["), "{t}");
    assert!(
        t.contains("batch 2/3 of play \"release\" rolled back on web2"),
        "{t}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("root/web2.release")).unwrap(),
        "v1\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("root/web1.release")).unwrap(),
        "v2\n"
    );
    // web3's batch and the next play never ran.
    assert!(!t.contains("batch 3/3"), "{t}");
    assert_eq!(recap_line(&t, "web3"), "", "{t}");
    assert!(!has(d, "web3.release"), "{t}");
    assert!(!has(d, "web1.after"), "{t}");

    // The history has the failed run, with the gate's results under the play.
    let o = run_tend(d, &["history", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &runs[0];
    assert_eq!(run["status"], "failed", "{runs}");
    let id = run["run_id"].as_str().unwrap();
    let o = run_tend(d, &["history", "show", id]);
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    assert!(shown.contains("release (health)"), "{shown}");
    assert!(shown.contains("app is healthy"), "{shown}");
}

#[test]
fn a_passing_gate_lets_the_rollout_finish() {
    let p = project(RELEASE);
    let d = p.path();
    for h in ["web1", "web2", "web3"] {
        std::fs::write(d.join("root").join(format!("{h}.ok")), "").unwrap();
    }
    let root = root_arg(d);
    let out = run_tend(d, &["apply", "site.yml", "-i", "inv", "-e", &root]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for h in ["web1", "web2", "web3"] {
        // copy, set_fact, the gate's command and copy, the second play's copy.
        assert!(
            recap_line(&t, h).contains("ok=5    changed=4    unreachable=0    failed=0"),
            "{t}"
        );
        assert!(has(d, &format!("{h}.gate")), "{t}");
        assert!(has(d, &format!("{h}.after")), "{t}");
    }
    assert!(t.contains("HEALTH [release] batch 3/3"), "{t}");
    assert!(!t.contains("RETRYING"), "{t}");
    assert!(!t.contains("rollout stopped"), "{t}");
}

#[test]
fn a_gate_retries_until_the_service_answers() {
    // No serial: one batch, one gate. The check fails twice before the "service" is up.
    let playbook = r#"- name: start
  hosts: web
  gather_facts: false
  tasks:
    - name: start the service
      copy:
        dest: "{{ root }}/{{ inventory_hostname }}.conf"
        content: "on\n"
  health:
    - name: wait for the service
      shell: |
        n=$(cat "{{ root }}/{{ inventory_hostname }}.tries" 2>/dev/null || echo 0)
        echo $((n + 1)) > "{{ root }}/{{ inventory_hostname }}.tries"
        [ "$n" -ge 2 ]
      register: up
      until: up.rc == 0
      retries: 5
      delay: 0
      changed_when: false
"#;
    let p = project(playbook);
    let d = p.path();
    let root = root_arg(d);
    let out = run_tend(
        d,
        &[
            "apply", "site.yml", "-i", "inv", "-e", &root, "--output", "json",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let starts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "health_start")
        .collect();
    assert_eq!(starts.len(), 1, "{t}");
    assert_eq!(starts[0]["name"], "start", "{t}");
    assert_eq!(starts[0]["hosts"].as_array().unwrap().len(), 3, "{t}");
    for h in ["web1", "web2", "web3"] {
        let tries = std::fs::read_to_string(d.join("root").join(format!("{h}.tries"))).unwrap();
        assert_eq!(tries, "3\n", "{h}: {t}");
    }
}

#[test]
fn check_mode_runs_the_gate_in_check_mode() {
    // Nothing exists yet: the command would fail, but check mode skips it (no `creates`), and
    // the copy in the gate only says what it would do.
    let p = project(RELEASE);
    let d = p.path();
    let root = root_arg(d);
    let out = run_tend(
        d,
        &["apply", "site.yml", "-i", "inv", "-e", &root, "--check"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("HEALTH [release] batch 3/3"), "{t}");
    for h in ["web1", "web2", "web3"] {
        assert!(!has(d, &format!("{h}.release")), "{t}");
        assert!(!has(d, &format!("{h}.gate")), "{t}");
    }
}

#[test]
fn health_tasks_are_checked_before_anything_runs() {
    let playbook = r#"- hosts: web
  gather_facts: false
  tasks:
    - name: change something
      copy:
        dest: "{{ root }}/{{ inventory_hostname }}.x"
        content: "x\n"
  health:
    - name: not a module
      no_such_module:
        x: 1
    - name: lockstep makes no sense here
      command: /bin/true
      any_errors_fatal: true
"#;
    let p = project(playbook);
    let d = p.path();
    let root = root_arg(d);
    let out = run_tend(d, &["apply", "site.yml", "-i", "inv", "-e", &root]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("module `no_such_module` is not supported by tend"),
        "{t}"
    );
    assert!(t.contains("site.yml:10:7"), "{t}");
    assert!(
        t.contains("site.yml:12:7: `any_errors_fatal` has no effect in `health:` tasks"),
        "{t}"
    );
    assert!(!has(d, "web1.x"), "{t}");
}

/// Over SSH, through the agents: `throttle: 1` keeps the hosts' runs of a task apart (each
/// host writes when its run started and ended; lab hosts share the machine's clock), and a
/// health gate that fails on the second host stops the rollout there.
#[test]
#[allow(clippy::print_stderr)]
fn over_ssh_throttle_and_a_gate_work_through_the_agents() {
    if !common::is_root() {
        eprintln!("skipped: the lab needs root");
        return;
    }
    let lab = tend_lab::Lab::builder()
        .hosts(3)
        .prefix("hgate")
        .start()
        .expect("the lab starts (needs root and tests/setup.sh)");
    for h in ["h01", "h03"] {
        lab.run(h, &["touch", "/root/ok"]).unwrap();
    }
    let inv = lab.inventory_path();
    let inv = inv.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("site.yml"),
        r#"- name: one at a time
  hosts: all
  gather_facts: false
  tasks:
    - name: timed
      shell: date +%s.%N > /root/t0; sleep 0.5; date +%s.%N > /root/t1
      throttle: 1

- name: release
  hosts: all
  gather_facts: false
  serial: 1
  tasks:
    - name: install
      copy:
        dest: /root/release
        content: "v2\n"
  health:
    - name: healthy
      command: test -f /root/ok
"#,
    )
    .unwrap();
    let out = common::run_tend(d, &["apply", "site.yml", "-i", inv]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");

    let time =
        |h: &str, f: &str| -> f64 { lab.run(h, &["cat", f]).unwrap().trim().parse().unwrap() };
    let mut spans: Vec<(f64, f64)> = ["h01", "h02", "h03"]
        .iter()
        .map(|h| (time(h, "/root/t0"), time(h, "/root/t1")))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "throttled runs overlap: {spans:?}\n{t}");
    }

    assert!(
        t.contains("health gate of play \"release\" failed on h02: healthy: non-zero return code; rollout stopped after batch 2/3"),
        "{t}"
    );
    assert!(recap_line(&t, "h01").contains("failed=0"), "{t}");
    assert!(recap_line(&t, "h02").contains("failed=1"), "{t}");
    // h02's batch was rolled back through its agent: the file it did not have is gone again.
    assert!(
        t.contains("batch 2/3 of play \"release\" rolled back on h02"),
        "{t}"
    );
    assert!(lab.run("h01", &["test", "-f", "/root/release"]).is_ok());
    assert!(lab.run("h02", &["test", "-f", "/root/release"]).is_err());
    assert!(lab.run("h03", &["test", "-f", "/root/release"]).is_err());
}

#[test]
fn tags_never_skip_a_gate() {
    let playbook = r#"- name: release
  hosts: web
  gather_facts: false
  serial: 1
  tasks:
    - name: install the release
      copy:
        dest: "{{ root }}/{{ inventory_hostname }}.release"
        content: "v2\n"
      tags: [install]
  health:
    - name: app is healthy
      command: test -f "{{ root }}/{{ inventory_hostname }}.ok"
"#;
    let p = project(playbook);
    let d = p.path();
    std::fs::write(d.join("root/web1.ok"), "").unwrap();
    let root = root_arg(d);
    let out = run_tend(
        d,
        &[
            "apply", "site.yml", "-i", "inv", "-e", &root, "--tags", "other",
        ],
    );
    let t = text(&out);
    // The install task is not selected, but the gates run: web1's passes, web2's fails.
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(!has(d, "web1.release"), "{t}");
    assert!(
        t.contains("health gate of play \"release\" failed on web2"),
        "{t}"
    );
}

#[test]
fn the_orchestration_order_shows_the_gate() {
    let p = project(RELEASE);
    let d = p.path();
    let out = run_tend(
        d,
        &["apply", "site.yml", "-i", "inv", "--dry-run-orchestration"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("play 1 [release] (") && t.contains("serial: 1 · health gate after each batch"),
        "{t}"
    );
    assert!(!has(d, "web1.release"), "{t}");
}
