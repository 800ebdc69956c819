//! `needs:` between plays (docs/architecture.md, "Plays as a graph"): independent plays run at
//! once, dependents wait, a play whose dependency failed is skipped (and what depends on it),
//! bad graphs are refused before anything runs, and `--dry-run-orchestration` prints the order.
//! Local hosts (`ansible_connection=local`, each with its own directory) for everything but the
//! last test, which runs over SSH on lab hosts (needs root; without it, it prints a note).

mod common;
use common::{recap_line, run_tend, text};

use std::path::Path;

/// Three local hosts, each with its own directory `{{ d }}`, and the playbook.
fn setup(playbook: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut inv = String::new();
    for h in ["a", "b", "c"] {
        std::fs::create_dir_all(d.join(h)).unwrap();
        inv.push_str(&format!(
            "{h} ansible_connection=local d={}\n",
            d.join(h).display()
        ));
    }
    inv.push_str(&format!("[all:vars]\nshared={}\n", d.display()));
    std::fs::write(d.join("inv"), inv).unwrap();
    std::fs::write(d.join("site.yml"), playbook).unwrap();
    dir
}

fn apply(d: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["apply", "site.yml", "-i", "inv", "--no-history"];
    args.extend_from_slice(extra);
    let out = run_tend(d, &args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        text(&out),
    )
}

/// Play `first` waits for a file that play `second` writes, and `second` waits for a file
/// `first` writes after that: they can only both finish if they run at the same time.
const PARALLEL: &str = r#"- name: first
  hosts: a
  gather_facts: false
  NEEDS_FIRST
  tasks:
    - name: wait for second to start
      wait_for:
        path: "{{ shared }}/second-started"
        timeout: TIMEOUT
    - name: first is done
      copy:
        dest: "{{ shared }}/first-done"
        content: "1"
    - set_fact:
        token: "42"

- name: second
  hosts: b
  gather_facts: false
  NEEDS_SECOND
  tasks:
    - name: second starts
      copy:
        dest: "{{ shared }}/second-started"
        content: "1"
    - name: wait for first
      wait_for:
        path: "{{ shared }}/first-done"
        timeout: TIMEOUT

- name: after both
  hosts: a:c
  gather_facts: false
  needs: [first, second]
  tasks:
    - name: both are done
      command: test -e {{ shared }}/first-done -a -e {{ shared }}/second-started
    - name: what first left
      copy:
        dest: "{{ d }}/token"
        content: "{{ token | default('none') }}"
"#;

fn parallel(needs_first: &str, needs_second: &str, timeout: u32) -> String {
    PARALLEL
        .replace("NEEDS_FIRST", needs_first)
        .replace("NEEDS_SECOND", needs_second)
        .replace("TIMEOUT", &timeout.to_string())
}

#[test]
fn independent_plays_run_at_once_and_their_dependent_after_them() {
    let dir = setup(&parallel("needs: []", "needs: []", 120));
    let d = dir.path();
    let (code, stdout, t) = apply(d, &[]);
    assert_eq!(code, Some(0), "{t}");
    assert!(recap_line(&t, "a").contains("ok=5    changed=3"), "{t}");
    assert!(recap_line(&t, "b").contains("ok=2    changed=1"), "{t}");
    assert!(recap_line(&t, "c").contains("ok=2    changed=2"), "{t}");
    // Facts a host got in a play flow to the play that needs it.
    assert_eq!(std::fs::read_to_string(d.join("a/token")).unwrap(), "42");
    assert_eq!(std::fs::read_to_string(d.join("c/token")).unwrap(), "none");
    // Each play's output is one block: the plays' lines do not interleave.
    let first = stdout.find("PLAY [first]").expect("first's banner");
    let second = stdout.find("PLAY [second]").expect("second's banner");
    let after = stdout
        .find("PLAY [after both]")
        .expect("the dependent's banner");
    let (one, two) = if first < second {
        (first, second)
    } else {
        (second, first)
    };
    let block = &stdout[one..two];
    let other = if first < second {
        "TASK [second starts]"
    } else {
        "TASK [wait for second to start]"
    };
    assert!(!block.contains(other), "{t}");
    assert!(after > two, "{t}");
}

#[test]
fn without_needs_the_same_plays_run_one_after_the_other() {
    // The implicit order: `first` waits in vain for `second`, which has not started.
    let dir = setup(&parallel("", "", 2));
    let d = dir.path();
    let (code, _, t) = apply(d, &[]);
    assert_eq!(code, Some(2), "{t}");
    assert!(recap_line(&t, "a").contains("failed=1"), "{t}");
    // Every host of `first` failed: as in ansible-core, that ends the run for the plays that
    // follow it in the file; `after both`, which needs both, says why it did not run.
    assert!(!t.contains("PLAY [second]"), "{t}");
    assert!(
        t.contains("skipped: needs `first`, which failed on a (failed); needs `second`, which did not run (the run ended before it)"),
        "{t}"
    );
    assert!(!d.join("a/token").exists());
}

const FAILING: &str = r#"- name: db
  hosts: a
  gather_facts: false
  needs: []
  tasks:
    - fail:
        msg: the database did not start

- name: cache
  hosts: b
  gather_facts: false
  needs: []
  tasks:
    - copy:
        dest: "{{ d }}/cache"
        content: "1"

- name: app
  hosts: c
  gather_facts: false
  needs: [db, cache]
  tasks:
    - copy:
        dest: "{{ d }}/app"
        content: "1"

- name: lb
  hosts: b
  gather_facts: false
  needs: app
  tasks:
    - copy:
        dest: "{{ d }}/lb"
        content: "1"

- name: after lb
  hosts: c
  gather_facts: false
  tasks:
    - copy:
        dest: "{{ d }}/after-lb"
        content: "1"

- name: cache users
  hosts: c
  gather_facts: false
  needs: [cache]
  tasks:
    - copy:
        dest: "{{ d }}/cache-users"
        content: "1"
"#;

#[test]
fn a_failed_play_skips_what_needs_it_transitively_and_nothing_else() {
    let dir = setup(FAILING);
    let d = dir.path();
    let (code, stdout, t) = apply(d, &[]);
    assert_eq!(code, Some(2), "{t}");
    assert!(
        stdout.contains("PLAY [app] ***")
            && stdout.contains("skipped: needs `db`, which failed on a (failed)\n"),
        "{t}"
    );
    assert!(
        stdout.contains("skipped: needs `app`, which was skipped\n"),
        "{t}"
    );
    assert!(
        stdout.contains("skipped: comes after `lb`, which was skipped\n"),
        "{t}"
    );
    for skipped in ["c/app", "b/lb", "c/after-lb"] {
        assert!(!d.join(skipped).exists(), "{skipped}: {t}");
    }
    // Independent of the failure: ran.
    assert!(d.join("b/cache").exists(), "{t}");
    assert!(d.join("c/cache-users").exists(), "{t}");
    // The recap says which plays did not run, and why.
    let recap = &stdout[stdout.find("PLAY RECAP").expect("recap")..];
    assert!(recap.contains("PLAYS SKIPPED"), "{t}");
    assert!(
        recap.contains("app                        : needs `db`, which failed on a (failed)"),
        "{t}"
    );
    assert!(recap.contains("\nlb "), "{t}");
    assert!(recap.contains("\nafter lb "), "{t}");
    assert!(recap_line(&t, "a").contains("failed=1"), "{t}");
    assert!(recap_line(&t, "c").contains("ok=1    changed=1"), "{t}");

    // The same as JSON events.
    let (code, stdout, t) = apply(d, &["--output", "json"]);
    assert_eq!(code, Some(2), "{t}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let skipped: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "play_skipped")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, vec!["app", "lb", "after lb"], "{t}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "plays_skipped", "{t}");
    assert_eq!(last["plays"].as_array().unwrap().len(), 3, "{t}");
}

#[test]
fn a_rollout_stop_ends_the_implicit_order_as_in_ansible() {
    let dir = setup(
        r#"- name: rollout
  hosts: a:b
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - fail:
        msg: stop
      when: inventory_hostname == 'a'

- name: next
  hosts: c
  gather_facts: false
  tasks:
    - copy:
        dest: "{{ d }}/next"
        content: "1"

- name: elsewhere
  hosts: c
  gather_facts: false
  needs: []
  tasks:
    - copy:
        dest: "{{ d }}/elsewhere"
        content: "1"
"#,
    );
    let d = dir.path();
    let (code, stdout, t) = apply(d, &[]);
    assert_eq!(code, Some(2), "{t}");
    // `next` ends with the run, silently, as ansible-core; `elsewhere` needs nothing: it runs.
    assert!(!stdout.contains("PLAY [next]"), "{t}");
    assert!(!d.join("c/next").exists(), "{t}");
    assert!(d.join("c/elsewhere").exists(), "{t}");
    assert!(!stdout.contains("PLAYS SKIPPED"), "{t}");
}

#[test]
fn bad_graphs_are_refused_before_anything_runs() {
    let marker = r#"- name: marker
  hosts: a
  gather_facts: false
  needs: []
  tasks:
    - copy:
        dest: "{{ d }}/ran"
        content: "1"
"#;
    // Unknown name.
    let dir = setup(&format!(
        "{marker}\n- name: app\n  hosts: b\n  needs: [marker, dbx]\n  tasks: []\n"
    ));
    let d = dir.path();
    let (code, _, t) = apply(d, &[]);
    assert_eq!(code, Some(5), "{t}");
    assert!(
        t.contains("site.yml:12:19: play `app` needs `dbx`, but no play has that name"),
        "{t}"
    );
    assert!(
        t.contains("hint: `needs` names plays of this playbook: `marker`, `app`"),
        "{t}"
    );
    assert!(!d.join("a/ran").exists());

    // A cycle, with every play in it named, and one play that only follows it.
    let dir = setup(&format!(
        "{marker}\n- name: x\n  hosts: b\n  needs: z\n  tasks: []\n- name: y\n  hosts: b\n  tasks: []\n- name: z\n  hosts: b\n  needs: [y]\n  tasks: []\n- name: w\n  hosts: b\n  needs: [z]\n  tasks: []\n"
    ));
    let d = dir.path();
    let (code, _, t) = apply(d, &[]);
    assert_eq!(code, Some(5), "{t}");
    assert!(
        t.contains("site.yml:12:3: these plays need each other in a cycle, so none of them could start: `x`, `y`, `z` (`x` needs `z`; `y` comes after `x` (no `needs`: the play before it); `z` needs `y`)"),
        "{t}"
    );
    assert!(!t.contains("`w`,"), "{t}");
    assert!(!d.join("a/ran").exists());
    // The dry run refuses it the same way.
    let out = run_tend(
        d,
        &["apply", "site.yml", "-i", "inv", "--dry-run-orchestration"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));

    // Two plays with the name `needs` uses.
    let dir = setup(&format!(
        "{marker}\n- name: marker\n  hosts: b\n  tasks: []\n- name: app\n  hosts: c\n  needs: marker\n  tasks: []\n"
    ));
    let (code, _, t) = apply(dir.path(), &[]);
    assert_eq!(code, Some(5), "{t}");
    assert!(
        t.contains("needs `marker`, but 2 plays have that name"),
        "{t}"
    );
}

const ORDER: &str = r#"- name: db
  hosts: a
  gather_facts: false
  needs: []
  tasks:
    - copy:
        dest: "{{ d }}/ran"
        content: "1"

- name: cache
  hosts: b:c
  gather_facts: false
  needs: []
  serial: 1
  order: reverse_inventory
  tasks: []

- name: app
  hosts: all
  gather_facts: false
  needs: [db, cache]
  serial: [1, "50%"]
  max_fail_percentage: 0
  tasks: []

- name: lb
  hosts: c
  gather_facts: false
  tasks: []
"#;

#[test]
fn dry_run_orchestration_prints_the_order_and_touches_nothing() {
    let dir = setup(ORDER);
    let d = dir.path();
    let out = run_tend(
        d,
        &["apply", "site.yml", "-i", "inv", "--dry-run-orchestration"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!(
        "ORCHESTRATION site.yml: 4 plays in 3 stages

STAGE 1 (2 plays in parallel)
  play 1 [db] ({p}:1:3): needs nothing
    batch 1/1: a
  play 2 [cache] ({p}:10:3): needs nothing · serial: 1 · order: reverse_inventory
    batch 1/2: c
    batch 2/2: b

STAGE 2
  play 3 [app] ({p}:18:3): needs db, cache · serial: 1, 50% · max_fail_percentage: 0 · lockstep
    batch 1/3: a
    batch 2/3: b
    batch 3/3: c

STAGE 3
  play 4 [lb] ({p}:26:3): after app
    batch 1/1: c

A play starts as soon as the plays it needs are done; plays that share a host run one after the other.
",
        p = d.join("site.yml").display()
    );
    assert_eq!(stdout, expected, "{t}");
    assert!(!d.join("a/ran").exists(), "{t}");

    // `tend plan` takes it too, and JSON says the same.
    let out = run_tend(
        d,
        &[
            "plan",
            "site.yml",
            "-i",
            "inv",
            "--dry-run-orchestration",
            "--output",
            "json",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3, "{t}");
    assert_eq!(stages[0]["parallel"], true, "{t}");
    let names: Vec<&str> = stages[0]["plays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["db", "cache"], "{t}");
    let app = &stages[1]["plays"][0];
    assert_eq!(app["needs"], serde_json::json!(["db", "cache"]), "{t}");
    assert_eq!(app["lockstep"], true, "{t}");
    assert_eq!(
        app["batches"],
        serde_json::json!([["a"], ["b"], ["c"]]),
        "{t}"
    );
    assert_eq!(stages[2]["plays"][0]["after"], "app", "{t}");
    assert_eq!(
        stages[2]["plays"][0]["needs"],
        serde_json::Value::Null,
        "{t}"
    );
    assert!(!d.join("a/ran").exists(), "{t}");
    // It saves no plan: -o is refused, not ignored.
    let out = run_tend(
        d,
        &[
            "plan",
            "site.yml",
            "-i",
            "inv",
            "--dry-run-orchestration",
            "-o",
            "p.json",
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(!d.join("p.json").exists());
}

#[test]
#[allow(clippy::print_stderr)]
fn over_ssh_independent_plays_overlap_and_the_dependent_follows() {
    if !common::is_root() {
        eprintln!("skipped: the lab needs root");
        return;
    }
    let lab = tend_lab::Lab::builder()
        .hosts(3)
        .prefix("dag")
        .start()
        .expect("the lab starts (needs root and tests/setup.sh)");
    let inv = lab.inventory_path();
    let inv = inv.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Lab hosts share this machine's clock: the times they write can be compared.
    let timed = |name: &str, host: &str, needs: &str| {
        format!(
            r#"- name: {name}
  hosts: {host}
  gather_facts: false
  needs: {needs}
  tasks:
    - shell: date +%s.%N > /root/{name}.start && sleep 3 && date +%s.%N > /root/{name}.end
"#
        )
    };
    let playbook = [
        timed("one", "h01", "[]"),
        timed("two", "h02", "[]"),
        timed("three", "h03", "[one, two]"),
    ]
    .join("\n");
    std::fs::write(d.join("site.yml"), playbook).unwrap();
    let out = run_tend(d, &["apply", "site.yml", "-i", inv, "--no-history"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for h in ["h01", "h02", "h03"] {
        assert!(recap_line(&t, h).contains("ok=1    changed=1"), "{t}");
    }
    let time =
        |h: &str, f: &str| -> f64 { lab.run(h, &["cat", f]).unwrap().trim().parse().unwrap() };
    let (s1, e1) = (time("h01", "/root/one.start"), time("h01", "/root/one.end"));
    let (s2, e2) = (time("h02", "/root/two.start"), time("h02", "/root/two.end"));
    let s3 = time("h03", "/root/three.start");
    assert!(
        s1 < e2 && s2 < e1,
        "one and two overlap: {s1} {e1} {s2} {e2}\n{t}"
    );
    assert!(s3 >= e1 && s3 >= e2, "three after both: {s3}\n{t}");
}
