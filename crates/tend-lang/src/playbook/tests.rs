use super::*;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn body(play: &Play) -> &[Task] {
    match &play.tasks[0].kind {
        TaskKind::Block { block, .. } => block,
        _ => panic!("play body is a block"),
    }
}

#[test]
fn parses_a_play_with_roles_and_handlers() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "roles/web/tasks/main.yml",
        "- name: conf\n  copy: content=x dest=/tmp/x\n  notify: restart\n",
    );
    write(
        d.path(),
        "roles/web/handlers/main.yml",
        "- name: restart\n  debug: msg=r\n",
    );
    write(d.path(), "roles/web/defaults/main.yml", "port: 80\n");
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  roles:\n    - role: web\n      port: 81\n  tasks:\n    - debug: msg=hi\n",
    );
    let pb = load(&d.path().join("site.yml")).unwrap();
    let play = &pb.plays[0];
    assert_eq!(play.roles.len(), 1);
    assert_eq!(play.roles[0].defaults["port"], 80);
    assert_eq!(play.roles[0].params["port"], 81);
    assert_eq!(play.handlers.len(), 1);
    // pre_tasks flush, role block, debug, flush, flush
    let names: Vec<String> = body(play).iter().map(|t| t.display_name()).collect();
    assert_eq!(names, ["meta", "block", "debug", "meta", "meta"]);
}

#[test]
fn unknown_keyword_is_located() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  tasks:\n    - name: x\n      debug: msg=hi\n      whne: true\n",
    );
    let e = load(&d.path().join("site.yml")).unwrap_err();
    let d0 = &e.0[0];
    assert_eq!(d0.loc.line, 5);
    assert!(
        d0.msg
            .contains("conflicting action statements: debug, whne"),
        "{}",
        d0.msg
    );
    assert_eq!(
        d0.hint.as_deref(),
        Some("`whne` is not a task keyword; did you mean `when`?")
    );
}

#[test]
fn refused_keyword_names_the_reason() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  tasks:\n    - command: sleep 1\n      async: 10\n",
    );
    let e = load(&d.path().join("site.yml")).unwrap_err();
    assert!(e.0[0].msg.contains("`async` is not supported"));
    assert_eq!(e.0[0].loc.line, 4);
}

#[test]
fn all_errors_are_reported_at_once() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  tasks:\n    - name: a\n    - name: b\n      async: 1\n      command: x\n",
    );
    let e = load(&d.path().join("site.yml")).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
}

#[test]
fn import_tasks_are_static_and_inherit_when() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "more.yml", "- debug: msg=a\n- debug: msg=b\n");
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  tasks:\n    - import_tasks: more.yml\n      when: x\n",
    );
    let pb = load(&d.path().join("site.yml")).unwrap();
    let t = &body(&pb.plays[0])[1];
    assert_eq!(t.when, vec![Value::String("x".into())]);
    match &t.kind {
        TaskKind::Block { block, .. } => assert_eq!(block.len(), 2),
        _ => panic!(),
    }
}

#[test]
fn fqcn_and_free_form() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  tasks:\n    - ansible.builtin.command: echo hi chdir=/tmp\n",
    );
    let pb = load(&d.path().join("site.yml")).unwrap();
    match &body(&pb.plays[0])[1].kind {
        TaskKind::Module(m) => {
            assert_eq!(m.name, "command");
            assert_eq!(m.args["_raw_params"], "echo hi");
            assert_eq!(m.args["chdir"], "/tmp");
        }
        _ => panic!(),
    }
}

#[test]
fn become_keywords_are_read_at_play_role_block_and_task_level() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "roles/db/tasks/main.yml", "- debug: msg=db\n");
    write(
        d.path(),
        "site.yml",
        r#"
- hosts: all
  become: yes
  become_method: su
  roles:
    - role: db
      become_user: postgres
  tasks:
    - block:
        - command: id
          become_user: "{{ who }}"
          become_flags: -H -E
          become_exe: /usr/bin/sudo
      become: false
"#,
    );
    let pb = load(&d.path().join("site.yml")).unwrap();
    let play = &pb.plays[0];
    let b = &play.tasks[0].become_;
    assert_eq!(b.enabled, Some(Value::Bool(true)));
    assert_eq!(b.method, Some(Value::String("su".into())));
    let tasks = body(play);
    let role = tasks
        .iter()
        .find(|t| t.become_.user.is_some() && matches!(t.kind, TaskKind::Block { .. }))
        .expect("the role's block");
    assert_eq!(role.become_.user, Some(Value::String("postgres".into())));
    let block = tasks
        .iter()
        .find(|t| t.become_.enabled == Some(Value::Bool(false)))
        .expect("the block");
    let TaskKind::Block { block: inner, .. } = &block.kind else {
        panic!("a block");
    };
    assert_eq!(
        inner[0].become_.user,
        Some(Value::String("{{ who }}".into()))
    );
    assert_eq!(inner[0].become_.flags, Some(Value::String("-H -E".into())));
    assert_eq!(
        inner[0].become_.exe,
        Some(Value::String("/usr/bin/sudo".into()))
    );
}

#[test]
fn a_become_method_tend_does_not_run_is_refused_where_it_is_written() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  tasks:\n    - command: id\n      become: true\n      become_method: doas\n",
    );
    let e = load(&d.path().join("site.yml")).unwrap_err().0[0].render();
    assert!(e.contains("site.yml:5:22"), "{e}");
    assert!(e.contains("become_method `doas` is not supported"), "{e}");
    assert!(e.contains("sudo"), "{e}");
}

#[test]
fn parses_rollout_keywords() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  serial: [1, \"25%\", \"3\"]\n  max_fail_percentage: 30\n  any_errors_fatal: true\n  order: reverse_sorted\n  tasks: []\n- hosts: all\n  serial: \"50 %\"\n  tasks: []\n",
    );
    let pb = load(&d.path().join("site.yml")).unwrap();
    let r = &pb.plays[0].rollout;
    assert_eq!(
        r.serial,
        vec![
            BatchSize::Count(1),
            BatchSize::Percent(25),
            BatchSize::Count(3)
        ]
    );
    assert_eq!(r.max_fail_percentage, Some(30.0));
    assert!(r.any_errors_fatal);
    assert_eq!(r.order, HostOrder::ReverseSorted);
    assert_eq!(
        pb.plays[1].rollout,
        Rollout {
            serial: vec![BatchSize::Percent(50)],
            ..Default::default()
        }
    );
}

#[test]
fn bad_rollout_values_are_refused_where_they_are() {
    for (text, says) in [
        (
            "serial: lots",
            "`serial` takes a number of hosts or a percentage",
        ),
        ("serial: \"{{ n }}\"", "tend does not template `serial` yet"),
        ("order: random", "`order` must be one of"),
        (
            "max_fail_percentage: [1]",
            "`max_fail_percentage` takes a number",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "site.yml",
            &format!("- hosts: all\n  {text}\n  tasks: []\n"),
        );
        let e = load(&d.path().join("site.yml")).unwrap_err().to_string();
        assert!(e.contains(says), "{text}: {e}");
        assert!(e.contains("site.yml:2:"), "{text}: {e}");
    }
}

#[test]
fn any_errors_fatal_on_tasks_and_blocks_but_not_on_includes() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  tasks:\n    - command: /bin/true\n      any_errors_fatal: true\n    - block:\n        - debug: msg=x\n      any_errors_fatal: \"{{ strict }}\"\n",
    );
    let pb = load(&d.path().join("site.yml")).unwrap();
    let tasks: Vec<&Task> = body(&pb.plays[0]).iter().filter(|t| !t.implicit).collect();
    assert_eq!(tasks[0].any_errors_fatal, Some(Value::Bool(true)));
    assert_eq!(
        tasks[1].any_errors_fatal,
        Some(Value::String("{{ strict }}".into()))
    );
    for include in [
        "include_tasks: t.yml",
        "import_tasks: t.yml",
        "include_role: name=r",
    ] {
        write(d.path(), "t.yml", "- debug: msg=t\n");
        write(
            d.path(),
            "bad.yml",
            &format!("- hosts: all\n  tasks:\n    - {include}\n      any_errors_fatal: true\n"),
        );
        let e = load(&d.path().join("bad.yml")).unwrap_err().to_string();
        assert!(
            e.contains("'any_errors_fatal' is not a valid attribute"),
            "{include}: {e}"
        );
    }
}

#[test]
fn needs_takes_a_name_or_a_list_of_names_with_their_locations() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- name: db\n  hosts: all\n  needs: []\n- name: app\n  hosts: all\n  needs: db\n- name: lb\n  hosts: all\n  needs: [db, app]\n- hosts: all\n",
    );
    let pb = load(&d.path().join("site.yml")).unwrap();
    let needs: Vec<Option<Vec<String>>> = pb
        .plays
        .iter()
        .map(|p| {
            p.needs
                .as_ref()
                .map(|n| n.names.iter().map(|(s, _)| s.clone()).collect())
        })
        .collect();
    assert_eq!(
        needs,
        vec![
            Some(vec![]),
            Some(vec!["db".to_string()]),
            Some(vec!["db".to_string(), "app".to_string()]),
            None
        ]
    );
    let lb = pb.plays[2].needs.as_ref().unwrap();
    assert_eq!((lb.loc.line, lb.loc.col), (9, 3));
    assert_eq!((lb.names[1].1.line, lb.names[1].1.col), (9, 15));
}

#[test]
fn needs_refuses_what_is_not_a_play_name() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- name: app\n  hosts: all\n  needs: {db: 1}\n",
    );
    let err = load(&d.path().join("site.yml")).unwrap_err();
    let text = err.0[0].render();
    assert!(text.contains("`needs` takes play names"), "{text}");
    assert!(text.contains(":3:10"), "{text}");
}

#[test]
fn throttle_run_once_and_health_on_plays_blocks_and_tasks() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  throttle: 3\n  run_once: true\n  become: true\n  tasks:\n    - command: /bin/true\n      throttle: 1\n    - block:\n        - debug: msg=x\n      throttle: \"{{ n }}\"\n  health:\n    - name: probe\n      uri: url=http://127.0.0.1/\n",
    );
    let pb = load(&d.path().join("site.yml")).unwrap();
    let play = &pb.plays[0];
    let wrapper = &play.tasks[0];
    assert_eq!(wrapper.throttle, Some(Value::from(3)));
    assert_eq!(wrapper.run_once, Some(Value::Bool(true)));
    let tasks: Vec<&Task> = body(play).iter().filter(|t| !t.implicit).collect();
    assert_eq!(tasks[0].throttle, Some(Value::from(1)));
    assert_eq!(tasks[1].throttle, Some(Value::String("{{ n }}".into())));
    // The gate is its own implicit block with the play's keywords, and a handler flush.
    let [gate] = play.health.as_slice() else {
        panic!("one gate block: {:?}", play.health)
    };
    assert!(gate.implicit);
    assert_eq!(gate.run_once, Some(Value::Bool(true)));
    assert!(gate.become_.enabled.is_some());
    assert!(gate.tags.contains(&"always".to_string()));
    let TaskKind::Block { block, .. } = &gate.kind else {
        panic!("the gate is a block")
    };
    assert_eq!(block[0].name.as_deref(), Some("probe"));
    assert!(block[1].implicit);
}

#[test]
fn bad_throttle_values_are_refused_where_they_are() {
    for text in ["throttle: -1", "throttle: lots", "throttle: [1]"] {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "site.yml",
            &format!("- hosts: all\n  tasks:\n    - command: /bin/true\n      {text}\n"),
        );
        let e = load(&d.path().join("site.yml")).unwrap_err().to_string();
        assert!(e.contains("throttle must be a whole number"), "{text}: {e}");
        assert!(e.contains("site.yml:4:"), "{text}: {e}");
    }
}
