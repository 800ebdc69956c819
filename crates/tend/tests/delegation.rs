//! `delegate_to`, `delegate_facts` and `hostvars` of other hosts, from the controller's side:
//! delegates that cannot be reached, delegates the inventory does not have, and (as root, on
//! lab hosts) tasks of one SSH host whose module runs on another SSH host or on the controller.

mod common;
use common::{recap_line, run_tend, text};

use std::path::Path;
use std::time::Duration;

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

/// A port nothing listens on, on this machine.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_delegate_that_cannot_be_reached_makes_the_task_unreachable_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    write(
        dir.path(),
        "inv.ini",
        &format!(
            "web ansible_connection=local\ndead ansible_host=127.0.0.1 ansible_port={port} ansible_user=nobody\n"
        ),
    );
    write(
        dir.path(),
        "site.yml",
        "- hosts: web\n  gather_facts: false\n  tasks:\n    - copy: content=x dest={{ playbook_dir }}/never\n      delegate_to: dead\n    - copy: content=y dest={{ playbook_dir }}/after\n",
    );
    let out = run_tend(
        dir.path(),
        &["apply", "site.yml", "-i", "inv.ini", "-T", "5"],
    );
    let t = text(&out);
    // ansible-core: the delegating host is unreachable for that task and goes no further.
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("fatal: [web -> dead]: UNREACHABLE!"), "{t}");
    assert!(t.contains("delegate `dead`"), "{t}");
    assert!(t.contains("Connection refused"), "{t}");
    assert!(recap_line(&t, "web").contains("unreachable=1"), "{t}");
    assert!(!dir.path().join("never").exists());
    assert!(!dir.path().join("after").exists(), "{t}");
}

#[test]
fn delegate_to_a_host_the_inventory_does_not_have_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "inv.ini", "web ansible_connection=local\n");
    // Literal: refused before anything runs, located, with the next step.
    write(
        dir.path(),
        "site.yml",
        "- hosts: web\n  gather_facts: false\n  tasks:\n    - copy: content=x dest={{ playbook_dir }}/first\n    - command: hostname\n      delegate_to: db9.example.com\n",
    );
    let out = run_tend(dir.path(), &["apply", "site.yml", "-i", "inv.ini"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(t.contains("site.yml:5:7"), "{t}");
    assert!(
        t.contains("delegate_to: `db9.example.com` is not a host of the inventory"),
        "{t}"
    );
    assert!(t.contains("add `db9.example.com` to the inventory"), "{t}");
    assert!(!dir.path().join("first").exists(), "nothing may run: {t}");

    // Templated: known only when the task runs; that task fails with the same words.
    write(
        dir.path(),
        "site.yml",
        "- hosts: web\n  gather_facts: false\n  vars:\n    db: db9.example.com\n  tasks:\n    - command: hostname\n      delegate_to: \"{{ db }}\"\n",
    );
    let out = run_tend(dir.path(), &["apply", "site.yml", "-i", "inv.ini"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("fatal: [web -> db9.example.com]: FAILED!"),
        "{t}"
    );
    assert!(
        t.contains("delegate_to: `db9.example.com` is not a host of the inventory"),
        "{t}"
    );
}

#[test]
fn hostvars_of_other_hosts_come_from_the_controller_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    // Enough hosts that sending every host's variables to every host would be the old limit.
    let mut inv = String::from("[fleet]\n");
    for i in 0..250 {
        inv.push_str(&format!("n{i:03} ansible_connection=local idx={i}\n"));
    }
    write(dir.path(), "inv.ini", &inv);
    write(
        dir.path(),
        "site.yml",
        "- hosts: fleet\n  gather_facts: false\n  tasks:\n    - set_fact:\n        doubled: \"{{ idx | int * 2 }}\"\n- hosts: n000\n  gather_facts: false\n  tasks:\n    - copy:\n        dest: \"{{ playbook_dir }}/seen\"\n        content: \"{{ hostvars['n249'].idx }} {{ hostvars['n249'].doubled }} {{ hostvars | length }} {{ hostvars['nope'] is defined }}\"\n",
    );
    let out = run_tend(
        dir.path(),
        &["apply", "site.yml", "-i", "inv.ini", "-f", "50"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seen")).unwrap(),
        "249 498 250 False"
    );
}

/// h01 (SSH) delegates to h02 (SSH), to the controller and to h03 (sshd stopped); a later play
/// reads h02's facts through hostvars on h01.
#[test]
#[allow(clippy::print_stderr)]
fn delegation_between_ssh_hosts_and_to_the_controller() {
    if !common::is_root() {
        eprintln!("skipped: the lab needs root");
        return;
    }
    let mut lab = tend_lab::Lab::builder()
        .hosts(3)
        .prefix("deleg")
        .start()
        .expect("the lab starts");
    let dir = tempfile::tempdir().unwrap();
    let inv = lab.inventory_path();
    let ctl = dir.path().join("on-controller");
    write(
        dir.path(),
        "site.yml",
        &format!(
            "- hosts: h01\n  gather_facts: false\n  tasks:\n\
             \x20   - copy: content=\"from {{{{ inventory_hostname }}}}\" dest=/root/delegated\n\
             \x20     delegate_to: h02\n\
             \x20   - command: cat /root/delegated\n\
             \x20     delegate_to: \"{{{{ groups['lab'][1] }}}}\"\n\
             \x20     register: read_back\n\
             \x20     changed_when: false\n\
             \x20   - copy: content=\"{{{{ read_back.stdout }}}}\" dest={ctl}\n\
             \x20     delegate_to: localhost\n\
             \x20   - set_fact:\n\
             \x20       tier: database\n\
             \x20     delegate_to: h02\n\
             \x20     delegate_facts: true\n\
             - hosts: h02\n  gather_facts: false\n  tasks:\n\
             \x20   - copy: content=\"{{{{ tier }}}} {{{{ hostvars['h01'].read_back.stdout }}}}\" dest=/root/tier\n\
             - hosts: h01\n  gather_facts: false\n  tasks:\n\
             \x20   - command: hostname\n\
             \x20     delegate_to: h03\n\
             \x20   - copy: content=never dest=/root/never\n",
            ctl = ctl.display()
        ),
    );
    lab.stop_sshd("h03").unwrap();
    let child = common::tend_command(
        dir.path(),
        &["apply", "site.yml", "-i", inv.to_str().unwrap(), "-T", "5"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let out = wait(child, Duration::from_secs(180));
    let t = text(&out);
    assert_eq!(
        lab.run("h02", &["cat", "/root/delegated"]).unwrap(),
        "from h01",
        "{t}"
    );
    assert!(
        lab.exec("h01", &["test", "-e", "/root/delegated"])
            .unwrap()
            .status
            .code()
            == Some(1),
        "the delegating host must not get the file: {t}"
    );
    assert_eq!(std::fs::read_to_string(&ctl).unwrap(), "from h01", "{t}");
    assert_eq!(
        lab.run("h02", &["cat", "/root/tier"]).unwrap(),
        "database from h01"
    );
    assert!(
        lab.exec("h01", &["test", "-e", "/root/never"])
            .unwrap()
            .status
            .code()
            == Some(1),
        "an unreachable delegate stops the host: {t}"
    );
    assert!(t.contains("changed: [h01 -> h02]"), "{t}");
    assert!(t.contains("fatal: [h01 -> h03]: UNREACHABLE!"), "{t}");
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(recap_line(&t, "h01").contains("unreachable=1"), "{t}");
    assert!(recap_line(&t, "h02").contains("changed=1"), "{t}");
    lab.stop().unwrap();
}

/// Become on the delegate follows the task's become: h01 (logged in as `deploy`) delegates to
/// h02 (also `deploy`), once plainly and once with `become: true` (sudo with the password).
#[test]
#[allow(clippy::print_stderr)]
fn become_on_the_delegate_follows_the_task() {
    if !common::is_root() {
        eprintln!("skipped: the lab needs root");
        return;
    }
    let mut lab = tend_lab::Lab::builder()
        .hosts(2)
        .prefix("delbe")
        .start()
        .expect("the lab starts");
    let dir = tempfile::tempdir().unwrap();
    let mut inv = String::new();
    for h in lab.hosts() {
        inv.push_str(&format!(
            "{} ansible_host={} ansible_user={} ansible_become_password={} ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile={} -o IdentitiesOnly=yes'\n",
            h.name,
            h.ip,
            tend_lab::DEPLOY_USER,
            tend_lab::DEPLOY_PASSWORD,
            lab.key_path().display(),
            lab.known_hosts_path().display()
        ));
    }
    write(dir.path(), "inv.ini", &inv);
    write(
        dir.path(),
        "site.yml",
        "- hosts: h01\n  gather_facts: false\n  tasks:\n    - command: whoami\n      delegate_to: h02\n      register: plain\n      changed_when: false\n    - command: whoami\n      delegate_to: h02\n      become: true\n      register: root\n      changed_when: false\n    - copy: content=\"{{ plain.stdout }} {{ root.stdout }}\" dest=/tmp/who\n      delegate_to: h02\n      become: true\n",
    );
    let child = common::tend_command(dir.path(), &["apply", "site.yml", "-i", "inv.ini"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait(child, Duration::from_secs(180));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert_eq!(
        lab.run("h02", &["cat", "/tmp/who"]).unwrap(),
        "deploy root",
        "{t}"
    );
    assert!(
        lab.run("h02", &["stat", "-c", "%U", "/tmp/who"])
            .unwrap()
            .trim()
            == "root",
        "{t}"
    );
    assert!(!t.contains("deploy-pw"), "the password never shows: {t}");
    lab.stop().unwrap();
}

fn wait(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("tend did not finish within {limit:?}:\n{}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
