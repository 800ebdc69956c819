//! Whole runs through the engine: inputs on disk, events and counters out.

use std::path::Path;
use std::sync::mpsc;

use tend_engine::{prepare, run, Settings, Summary};
use tend_proto::{Event, HostStats, ResultStatus, RunOptions, Vars};

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn settings(dir: &Path, options: RunOptions) -> Settings {
    let mut extra = Vars::new();
    extra.insert("root".into(), dir.join("out").to_string_lossy().into());
    Settings {
        playbook: dir.join("site.yml"),
        inventories: vec!["localhost,".into()],
        extra_vars: extra,
        limit: None,
        options,
        forks: 4,
        connection: None,
        remote: Default::default(),
        become_password: None,
        guards: None,
        lock: None,
        undo: None,
    }
}

fn apply(dir: &Path, options: RunOptions) -> (Summary, Vec<Event>) {
    let prep = prepare(settings(dir, options)).expect("inputs are valid");
    let (tx, rx) = mpsc::channel();
    let summary = run(&prep, &tx);
    drop(tx);
    (summary, rx.into_iter().collect())
}

/// The error `prepare` refuses these settings with (a test failure if it accepts them).
fn refusal(s: Settings, why: &str) -> String {
    match prepare(s) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{why}"),
    }
}

fn stats(s: &Summary) -> HostStats {
    s.stats["localhost"]
}

#[test]
fn recap_counts_like_ansible_core() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - block:
        - command: /bin/false
      rescue:
        - debug: msg=rescued
    - command: /bin/false
      ignore_errors: true
    - debug: msg=x
      loop: [1, 2]
      when: item > 5
    - debug: msg=y
      loop: []
    - debug: msg=z
      when: false
"#,
    );
    let (s, _) = apply(d.path(), RunOptions::default());
    let st = stats(&s);
    // rescued failure: rescued only; ignored failure: ok + ignored + changed (command changed);
    // all-skipped loop, empty loop and false `when`: one skip each.
    assert_eq!(
        (st.ok, st.changed, st.failed, st.rescued, st.ignored, st.skipped),
        (2, 1, 0, 1, 1, 3),
        "{st:?}"
    );
    assert_eq!(s.exit_code(), 0);
}

#[test]
fn a_failed_host_exits_2_and_skips_later_plays() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - fail: msg=boom\n- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug: msg=never\n",
    );
    let (s, events) = apply(d.path(), RunOptions::default());
    assert_eq!(s.exit_code(), 2);
    assert_eq!(stats(&s).failed, 1);
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::TaskStart { name, .. } if name == "debug")));
}

#[test]
fn check_mode_touches_nothing_and_predicts_the_change() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - file: path={{ root }} state=directory
    - copy: content="a\n" dest={{ root }}/f
    - lineinfile: path={{ root }}/g line=b create=true
"#,
    );
    let check = RunOptions {
        check: true,
        ..Default::default()
    };
    let (s, _) = apply(d.path(), check.clone());
    assert!(!d.path().join("out").exists(), "check mode created files");
    assert_eq!(stats(&s).changed, 3);
    let (s, _) = apply(d.path(), RunOptions::default());
    assert_eq!(stats(&s).changed, 3);
    let before = std::fs::metadata(d.path().join("out/f"))
        .unwrap()
        .modified()
        .unwrap();
    let (s, _) = apply(d.path(), check);
    assert_eq!(stats(&s).changed, 0);
    let after = std::fs::metadata(d.path().join("out/f"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "check mode changed an mtime");
    assert_eq!(
        std::fs::read_to_string(d.path().join("out/g")).unwrap(),
        "b\n"
    );
}

#[test]
fn no_log_results_never_reach_the_event_stream() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        r#"
- hosts: localhost
  gather_facts: false
  vars:
    secret: hunter2-canary
  tasks:
    - debug: msg="{{ secret }}"
      no_log: true
    - command: echo {{ secret }}
      no_log: true
      loop: [1]
    - fail: msg="{{ secret }}"
      no_log: true
      ignore_errors: true
"#,
    );
    let (_, events) = apply(d.path(), RunOptions::default());
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("hunter2-canary"), "secret leaked: {all}");
    assert!(all.contains("censored"));
}

/// Diffs are collected for the history without `--diff` (the registered result has no `diff`
/// key then), and a `no_log` task's diffs and planned changes never leave the agent.
#[test]
fn diffs_are_collected_without_diff_and_stay_censored_under_no_log() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - file: path={{ root }} state=directory
    - copy: content="shown-content" dest={{ root }}/a
      register: r
    - copy: content="hunter2-canary" dest={{ root }}/b
      no_log: true
    - copy: content="{{ item }}-canary" dest={{ root }}/{{ item }}
      loop: [c]
      no_log: true
    - assert:
        that: r.diff is not defined
"#,
    );
    let options = RunOptions {
        collect_diffs: true,
        plan: true,
        check: false,
        ..Default::default()
    };
    let (s, events) = apply(d.path(), options);
    assert_eq!(s.stats["localhost"].failed, 0, "{events:?}");
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("canary"), "secret leaked: {all}");
    let results: Vec<&tend_proto::TaskResult> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskResult(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(
        all.contains("shown-content"),
        "the diff was not collected: {all}"
    );
    assert!(results[1]
        .diffs
        .iter()
        .any(|d| d.to_string().contains("shown-content")));
    assert_eq!(results[1].changes.len(), 1);
    assert_eq!(results[1].changes[0].key, format!("0:{}#1", results[1].loc));
    for r in &results[2..4] {
        assert!(r.diffs.is_empty(), "{r:?}");
        assert!(
            r.changes.iter().all(|c| c.censored && c.diffs.is_empty()),
            "{r:?}"
        );
    }
    assert_eq!(
        results[3].changes[0].key,
        format!("0:{}#1[0]", results[3].loc)
    );
}

#[test]
fn programs_survive_the_wire() {
    // What the controller sends to a remote agent is JSON; running the decoded program must
    // give the same results as running the original.
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "roles/r/tasks/main.yml",
        "- copy: content={{ v }} dest={{ root }}/r\n",
    );
    write(d.path(), "roles/r/defaults/main.yml", "v: from-role\n");
    write(
        d.path(),
        "site.yml",
        "- hosts: localhost\n  gather_facts: false\n  pre_tasks:\n    - file: path={{ root }} state=directory\n  roles: [r]\n",
    );
    let prep = prepare(settings(d.path(), RunOptions::default())).unwrap();
    let program = tend_engine::compile(&prep, 0, "localhost", &["localhost".to_string()]).unwrap();
    let wire = serde_json::to_string(&program).unwrap();
    let decoded: tend_proto::Program = serde_json::from_str(&wire).unwrap();
    let mut events = Vec::new();
    let (st, _) = tend_agent::run(&decoded, &mut |e| events.push(e), None);
    assert_eq!((st.ok, st.changed), (2, 2));
    assert_eq!(
        std::fs::read_to_string(d.path().join("out/r")).unwrap(),
        "from-role"
    );
    let statuses: Vec<ResultStatus> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskResult(r) => Some(r.status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, [ResultStatus::Changed, ResultStatus::Changed]);
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: localhost\n  tasks:\n    - file: path={{ root }} state=directory\n    - community.mysql.mysql_db: name=x\n",
    );
    let err = refusal(
        settings(d.path(), RunOptions::default()),
        "an unknown module must be refused",
    );
    assert!(
        err.contains("site.yml:4:7: module `community.mysql.mysql_db` is not supported by tend"),
        "{err}"
    );
    assert!(!d.path().join("out").exists());
}

#[test]
fn unknown_module_arguments_are_refused_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: localhost\n  tasks:\n    - file: path={{ root }} state=directory\n    - copy:\n        dest: /tmp/x\n        colour: red\n",
    );
    let err = refusal(
        settings(d.path(), RunOptions::default()),
        "an unknown argument must be refused",
    );
    assert!(
        err.contains("site.yml:4:7: Unsupported parameters for (copy) module: colour."),
        "{err}"
    );
    assert!(!d.path().join("out").exists());
}

#[test]
fn command_output_is_data_never_a_template() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - file: path={{ root }} state=directory
    - command:
        argv: [printf, "%s%s", "{", "{ 7 * 6 }}"]
      register: out
    - set_fact:
        copied: "{{ out.stdout }}"
    - copy:
        content: "{{ copied }} {{ out.stdout }}"
        dest: "{{ root }}/f"
"#,
    );
    let (s, _) = apply(d.path(), RunOptions::default());
    assert_eq!(s.exit_code(), 0);
    let text = std::fs::read_to_string(d.path().join("out/f")).unwrap();
    assert_eq!(text, "{{ 7 * 6 }} {{ 7 * 6 }}");
}

#[test]
fn unsupported_connections_and_ssh_passwords_are_refused() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  tasks:\n    - file: path={{ root }} state=directory\n",
    );
    write(
        d.path(),
        "inv.ini",
        "win1 ansible_connection=winrm\nweb1 ansible_password=hunter2\nweb2 ansible_port=http\nlocalhost\n",
    );
    let mut s = settings(d.path(), RunOptions::default());
    s.inventories = vec![d.path().join("inv.ini").display().to_string()];
    let err = refusal(s, "three hosts cannot be reached as written");
    assert!(
        err.contains("host `win1` uses the `winrm` connection"),
        "{err}"
    );
    assert!(err.contains("host `web1` sets `ansible_password`"), "{err}");
    assert!(
        err.contains("ansible_port `http` is not a port number"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(!err.contains("`localhost`"), "{err}");
    assert!(!d.path().join("out").exists());
}

#[test]
fn a_failed_module_keeps_the_fields_it_registered() {
    // ansible-core: a command that cannot start fails with rc=2 and its cmd, and both are
    // registered beside msg.
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - file: path={{ root }} state=directory
    - command: /nonexistent/tend-no-such-program --flag
      register: missing
      ignore_errors: true
    - copy:
        content: "{{ missing.rc }} {{ missing.cmd | join(' ') }} {{ missing.failed }}"
        dest: "{{ root }}/f"
"#,
    );
    let (s, _) = apply(d.path(), RunOptions::default());
    assert_eq!(s.exit_code(), 0);
    let text = std::fs::read_to_string(d.path().join("out/f")).unwrap();
    assert_eq!(text, "2 /nonexistent/tend-no-such-program --flag True");
}
