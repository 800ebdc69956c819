//! Remote hosts read the controller's files from a shipped bundle: a real playbook is compiled,
//! bundled and unpacked, the original directory is moved away, and the programs still run.
//!
//! The controller-path view (`tend_lang::ctlfs`) is process-global, so these tests have their
//! own file and take turns (`VIEW`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tend_agent::bundle::{unpack, Bundle};
use tend_engine::{bundle_roots, compile, prepare, Settings};
use tend_proto::{Event, HostStats, Program, ResultStatus, RunOptions, Vars};

static VIEW: Mutex<()> = Mutex::new(());

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Compiles every play of `play/site.yml` for localhost (with `root` = `out`).
fn programs(play: &Path, out: &Path) -> (Vec<Program>, Vec<PathBuf>) {
    let mut extra = Vars::new();
    extra.insert("root".into(), out.to_string_lossy().into());
    let prep = prepare(Settings {
        playbook: play.join("site.yml"),
        inventories: vec!["localhost,".into()],
        extra_vars: extra,
        limit: None,
        options: RunOptions::default(),
        forks: 1,
        ..Default::default()
    })
    .expect("inputs are valid");
    let hosts = vec!["localhost".to_string()];
    let programs = (0..prep.playbook.plays.len())
        .map(|i| compile(&prep, i, "localhost", &hosts).expect("compiles"))
        .collect();
    (programs, bundle_roots(&prep))
}

/// Bundles `roots`, unpacks the bundle under `cache`, moves `moved.0` to `moved.1` (so the
/// controller paths are gone), installs the view and runs the programs. Returns every task
/// result and the counters of the last play.
fn run_remote(
    programs: &[Program],
    roots: &[PathBuf],
    cache: &Path,
    moved: Option<(&Path, &Path)>,
) -> (Vec<tend_proto::TaskResult>, HostStats) {
    let bundle = Bundle::build(roots).unwrap();
    assert!(bundle.warnings().is_empty(), "{:?}", bundle.warnings());
    let unpacked = unpack(bundle.bytes(), &cache.join(bundle.hash())).unwrap();
    if let Some((from, to)) = moved {
        std::fs::rename(from, to).unwrap();
    }
    unpacked.install();
    assert!(tend_lang::ctlfs::is_remote());
    let mut results = Vec::new();
    let mut stats = HostStats::default();
    for p in programs {
        let mut sink = |e: Event| {
            if let Event::TaskResult(r) = e {
                results.push(r);
            }
        };
        stats = tend_agent::run(p, &mut sink, None).0;
    }
    tend_lang::ctlfs::uninstall();
    (results, stats)
}

fn failures(results: &[tend_proto::TaskResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| r.status == ResultStatus::Failed)
        .map(|r| format!("{}: {}", r.task, r.result["msg"]))
        .collect()
}

#[test]
fn a_playbook_runs_from_its_bundle_after_the_controller_copy_is_gone() {
    let _turn = VIEW.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let ctl = t.path().join("ctl");
    let play = ctl.join("play");
    let shared = ctl.join("shared-roles");
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    write(
        &play,
        "site.yml",
        r#"
- hosts: localhost
  gather_facts: false
  vars:
    greeting: hello
  roles:
    - web
  tasks:
    - include_vars: extra.yml
    - copy: src=motd.txt dest={{ root }}/motd.txt
    - copy: src=conf.d dest={{ root }}/
    - copy: src={{ item }} dest={{ root }}/globbed/
      with_fileglob: ["conf.d/*.conf"]
    - template: src=app.conf.j2 dest={{ root }}/app.conf
    - include_tasks: tasks/more.yml
    - include_role: name=db
    - copy:
        content: "{{ query('fileglob', 'conf.d/*.conf') | join('\n') }}\n{{ lookup('first_found', ['nope.txt', 'motd.txt']) }}\n"
        dest: "{{ root }}/paths.txt"
    - copy:
        content: "{{ (playbook_dir ~ '/files/motd.txt') is file }}\n"
        dest: "{{ root }}/is_file.txt"
"#,
    );
    write(&play, "files/motd.txt", "message of the day\n");
    write(&play, "files/secret.txt", "s3cret\n");
    write(&play, "files/conf.d/a.conf", "a=1\n");
    write(&play, "files/conf.d/b.conf", "b=2\n");
    write(&play, "files/conf.d/sub/c.conf", "c=3\n");
    write(&play, "vars/extra.yml", "extra_var: from-vars\n");
    write(
        &play,
        "templates/app.conf.j2",
        "greeting={{ greeting }} secret={{ lookup('file', 'secret.txt') }} extra={{ extra_var }} inner={{ lookup('template', 'inner.j2') }}\n",
    );
    write(&play, "templates/inner.j2", "[{{ greeting }}]");
    write(
        &play,
        "tasks/more.yml",
        "- copy: content=\"included {{ greeting }}\" dest={{ root }}/included.txt\n- import_tasks: nested.yml\n",
    );
    write(
        &play,
        "tasks/nested.yml",
        "- copy: content=\"nested\" dest={{ root }}/nested.txt\n",
    );
    write(&play, "roles/web/defaults/main.yml", "web_port: 8080\n");
    write(
        &play,
        "roles/web/tasks/main.yml",
        "- template: src=web.j2 dest={{ root }}/web.txt\n- copy: src=role.txt dest={{ root }}/role.txt mode=preserve\n- include_tasks: extra.yml\n",
    );
    write(&play, "roles/web/templates/web.j2", "web {{ web_port }}\n");
    write(&play, "roles/web/files/role.txt", "role file\n");
    std::fs::set_permissions(
        play.join("roles/web/files/role.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    write(
        &play,
        "roles/web/tasks/extra.yml",
        "- copy: content=\"role include {{ role_path | basename }}\" dest={{ root }}/role-include.txt\n",
    );
    // A role found at run time on ANSIBLE_ROLES_PATH, outside the playbook directory.
    write(
        &shared,
        "db/tasks/main.yml",
        "- copy: src=db.txt dest={{ root }}/db.txt\n- include_vars: db.yml\n- copy: content=\"{{ db_name }}\" dest={{ root }}/db_name.txt\n",
    );
    write(&shared, "db/files/db.txt", "db file\n");
    write(&shared, "db/vars/db.yml", "db_name: inventory\n");

    std::env::set_var("ANSIBLE_ROLES_PATH", &shared);
    let (programs, roots) = programs(&play, &out);
    std::env::remove_var("ANSIBLE_ROLES_PATH");
    assert_eq!(roots, vec![play.clone(), shared.clone()]);

    let moved = t.path().join("ctl-moved-away");
    let (results, stats) = run_remote(
        &programs,
        &roots,
        &t.path().join("cache"),
        Some((&ctl, &moved)),
    );
    assert!(!play.exists());
    assert_eq!(failures(&results), Vec::<String>::new());
    assert_eq!(stats.failed, 0);

    let read =
        |rel: &str| std::fs::read_to_string(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(read("motd.txt"), "message of the day\n");
    assert_eq!(read("conf.d/a.conf"), "a=1\n");
    assert_eq!(read("conf.d/sub/c.conf"), "c=3\n");
    assert_eq!(read("globbed/a.conf"), "a=1\n");
    assert_eq!(read("globbed/b.conf"), "b=2\n");
    assert!(!out.join("globbed/sub").exists());
    assert_eq!(
        read("app.conf"),
        "greeting=hello secret=s3cret extra=from-vars inner=[hello]\n"
    );
    assert_eq!(read("included.txt"), "included hello");
    assert_eq!(read("nested.txt"), "nested");
    assert_eq!(read("web.txt"), "web 8080\n");
    assert_eq!(read("role.txt"), "role file\n");
    let mode = std::fs::metadata(out.join("role.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "mode=preserve keeps the shipped mode");
    assert_eq!(read("role-include.txt"), "role include web");
    assert_eq!(read("db.txt"), "db file\n");
    assert_eq!(read("db_name.txt"), "inventory");
    assert_eq!(read("is_file.txt"), "True");
    // Values and results name the controller's paths, never the cache.
    let files = play.join("files");
    assert_eq!(
        read("paths.txt"),
        format!(
            "{0}/conf.d/a.conf\n{0}/conf.d/b.conf\n{0}/motd.txt\n",
            files.display()
        )
    );
    let motd = results
        .iter()
        .find(|r| {
            r.result["dest"]
                .as_str()
                .is_some_and(|d| d.ends_with("/motd.txt"))
        })
        .expect("the motd copy reported");
    assert_eq!(
        motd.result["src"].as_str(),
        Some(files.join("motd.txt").to_str().unwrap())
    );
    let included = results
        .iter()
        .find_map(|r| {
            r.result["include"]
                .as_str()
                .filter(|i| i.ends_with("more.yml"))
        })
        .expect("include_tasks reported");
    assert_eq!(included, play.join("tasks/more.yml").to_str().unwrap());
}

#[test]
fn controller_files_outside_the_bundle_fail_naming_the_path_and_what_to_do() {
    let _turn = VIEW.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let play = t.path().join("play");
    let elsewhere = t.path().join("elsewhere");
    let out = t.path().join("out");
    write(&elsewhere, "x.txt", "not shipped\n");
    write(&elsewhere, "x.yml", "x: 1\n");
    write(&elsewhere, "tasks.yml", "- debug: msg=x\n");
    let e = elsewhere.display();
    write(
        &play,
        "site.yml",
        &format!(
            r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - copy: src={e}/x.txt dest={{{{ root }}}}/x.txt
      ignore_errors: true
    - template: src={e}/x.txt dest={{{{ root }}}}/y.txt
      ignore_errors: true
    - debug: msg="{{{{ lookup('file', '{e}/x.txt') }}}}"
      ignore_errors: true
    - include_vars: {e}/x.yml
      ignore_errors: true
    - debug: msg="{{{{ '{e}/x.txt' is file }}}}"
      ignore_errors: true
    - debug: msg="{{{{ query('fileglob', '{e}/*.txt') }}}}"
      ignore_errors: true
    - include_tasks: {e}/tasks.yml
"#
        ),
    );
    // The controller still has everything: only the host lacks what was not shipped.
    let (programs, roots) = programs(&play, &out);
    assert_eq!(roots, vec![play.clone()]);
    let (results, stats) = run_remote(&programs, &roots, &t.path().join("cache"), None);
    let msgs = failures(&results);
    assert_eq!(msgs.len(), 7, "{msgs:#?}");
    assert_eq!(stats.failed, 1, "the last one is not ignored");
    for (i, m) in msgs.iter().enumerate() {
        // fileglob names the directory of its pattern.
        let what = [
            "/x.txt",
            "/x.txt",
            "/x.txt",
            "/x.yml",
            "/x.txt",
            "",
            "/tasks.yml",
        ][i];
        let path = format!("{e}{what}");
        assert!(
            m.contains(&format!("{path} is outside the playbook directory and its roles, which is what tend ships to SSH hosts; move it under {}", play.display())),
            "{i}: {m}"
        );
    }
    assert!(
        msgs[4].contains("the `file` test looks at the controller's files"),
        "{}",
        msgs[4]
    );
    assert!(!out.join("x.txt").exists());
}

#[test]
fn what_ansible_runs_on_the_controller_is_refused_on_remote_hosts() {
    let _turn = VIEW.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let play = t.path().join("play");
    let out = t.path().join("out");
    write(
        &play,
        "site.yml",
        r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - debug: msg="{{ lookup('env', 'HOME') }}"
      ignore_errors: true
    - debug: msg="{{ lookup('pipe', 'hostname', errors='ignore') }}"
      ignore_errors: true
    - debug: msg="{{ query('lines', 'cat /etc/hostname') }}"
      ignore_errors: true
    - command: hostname
      delegate_to: localhost
      ignore_errors: true
    - local_action: command hostname
      ignore_errors: true
    - block:
        - command: hostname
      delegate_to: localhost
      ignore_errors: true
    - include_tasks: more.yml
      delegate_to: localhost
      ignore_errors: true
    - debug: msg="still running"
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - debug: msg=never
"#,
    );
    write(&play, "more.yml", "- debug: msg=included\n");
    let (programs, roots) = programs(&play, &out);
    let (results, stats) = run_remote(&programs, &roots, &t.path().join("cache"), None);
    let msgs = failures(&results);
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    for (i, what) in ["env", "pipe", "lines"].iter().enumerate() {
        assert!(
            msgs[i].contains(&format!("lookup('{what}') runs on the controller in Ansible; tend renders templates on the host, so it refuses it for SSH hosts")),
            "{}",
            msgs[i]
        );
    }
    // The host is `localhost` itself: delegating to it is no delegation (on a remote host,
    // `delegate_to: localhost` goes to the controller: crates/tend/tests/delegation.rs).
    assert!(
        msgs[3].contains("this play has `connection: local`: Ansible runs it on the controller"),
        "{}",
        msgs[3]
    );
    assert!(results.iter().any(|r| r.result["msg"] == "still running"));
    assert!(results.iter().any(|r| r.result["msg"] == "included"));
    assert!(!results.iter().any(|r| r.result["msg"] == "never"));
    assert_eq!(stats.failed, 1);

    // The same playbook runs locally, where the controller is the host.
    let mut ok = 0;
    for p in &programs {
        let mut sink = |e: Event| {
            if let Event::TaskResult(r) = e {
                assert_ne!(r.status, ResultStatus::Failed, "{:?}", r.result);
                ok += 1;
            }
        };
        tend_agent::run(p, &mut sink, None);
    }
    assert!(ok >= 9, "{ok}");
}

#[test]
fn diagnostics_quote_the_shipped_source() {
    let _turn = VIEW.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let ctl = t.path().join("ctl");
    let play = ctl.join("play");
    write(
        &play,
        "site.yml",
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - include_tasks: broken.yml\n",
    );
    write(&play, "broken.yml", "- debug: msg=x\n  bogus_keyword: 1\n");
    let (programs, roots) = programs(&play, &t.path().join("out"));
    let (results, _) = run_remote(
        &programs,
        &roots,
        &t.path().join("cache"),
        Some((&ctl, &t.path().join("moved"))),
    );
    let msgs = failures(&results);
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    let m = &msgs[0];
    // Named as the controller knows it, quoted from the bundle.
    assert!(
        m.contains(&format!("{}:2:3", play.join("broken.yml").display())),
        "{m}"
    );
    assert!(m.contains("2 |   bogus_keyword: 1"), "{m}");
}
