//! Packages and services on real hosts: `tend apply` over SSH against lab hosts (their own
//! rootfs with the lab's offline apt repository; systemd hosts where services need it), the
//! end state checked inside the host with `lab.run`. These tests change packages and units:
//! they only ever run inside lab hosts, never on this machine.
//!
//! Needs root (labs do); without it each test prints a note and passes.

mod common;
use common::{recap_line, text};
use std::path::Path;
use std::process::{Command, Output};

use tend_lab::Lab;

/// A lab, or `None` (with a note) when this process cannot start one.
#[allow(clippy::print_stderr)]
fn lab(systemd: bool) -> Option<Lab> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("note: skipped: lab hosts need root (run as root, as CI does)");
        return None;
    }
    Some(
        Lab::builder()
            .hosts(1)
            .systemd(systemd)
            .start()
            .expect("the lab starts (these tests need root and tests/setup.sh)"),
    )
}

fn apply(lab: &Lab, dir: &Path, extra: &[&str]) -> (Output, String) {
    let inv = lab.inventory_path();
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["apply", "site.yml", "-i", inv.to_str().unwrap()])
        .args(extra)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let t = text(&out);
    (out, t)
}

fn playbook(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.yml"), body).unwrap();
    dir
}

/// `Package Version Status` of each package dpkg knows, or "absent".
fn dpkg(lab: &Lab, pkgs: &[&str]) -> Vec<String> {
    pkgs.iter()
        .map(|p| {
            let out = lab
                .exec(
                    "h01",
                    &["dpkg-query", "-W", "-f", "${Version} ${Status}", p],
                )
                .unwrap();
            if out.status.success() {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                "absent".into()
            }
        })
        .collect()
}

/// How many apt-get transactions installed something so far (apt's history log).
fn install_transactions(lab: &Lab) -> usize {
    let log = lab
        .exec("h01", &["cat", "/var/log/apt/history.log"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    log.lines().filter(|l| l.starts_with("Install: ")).count()
}

const PACKAGES: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - apt:
        update_cache: true
      changed_when: false
    - name: a list, one transaction
      apt:
        name: [hello, tree, tend-demo=1.0]
"#;

#[test]
fn apt_list_in_one_transaction_check_mode_predicts_and_rerun_changes_nothing() {
    let Some(lab) = lab(false) else { return };
    let dir = playbook(PACKAGES);
    // Check mode does not update the cache: give apt its lists first.
    lab.run("h01", &["apt-get", "update", "-q"]).unwrap();
    let before = install_transactions(&lab);

    let (out, t) = apply(&lab, dir.path(), &["--check"]);
    assert!(out.status.success(), "{t}");
    assert!(recap_line(&t, "h01").contains("changed=1 "), "{t}");
    assert_eq!(dpkg(&lab, &["hello", "tree", "tend-demo"]), ["absent"; 3]);

    let (out, t) = apply(&lab, dir.path(), &[]);
    assert!(out.status.success(), "{t}");
    assert!(recap_line(&t, "h01").contains("changed=1 "), "{t}");
    let state = dpkg(&lab, &["hello", "tree", "tend-demo"]);
    assert!(
        state.iter().all(|s| s.ends_with("install ok installed")),
        "{state:?}"
    );
    assert!(state[2].starts_with("1.0 "), "{state:?}");
    assert_eq!(
        install_transactions(&lab),
        before + 1,
        "one apt-get for the list"
    );

    let (out, t) = apply(&lab, dir.path(), &[]);
    assert!(out.status.success(), "{t}");
    assert!(recap_line(&t, "h01").contains("changed=0 "), "{t}");
    assert_eq!(install_transactions(&lab), before + 1);
}

#[test]
fn latest_remove_purge_and_a_missing_package_is_rescued() {
    let Some(lab) = lab(false) else { return };
    let dir = playbook(
        r#"- hosts: all
  gather_facts: false
  tasks:
    - apt: {name: "tend-demo=1.0", update_cache: true}
    - apt: {name: tend-demo, state: latest}
      register: latest
    - apt: {name: hello}
    - apt: {name: hello, state: absent, purge: true}
    - block:
        - apt: {name: tend-no-such-package}
      rescue:
        - copy:
            content: "{{ ansible_failed_result.msg }}"
            dest: /root/failure
"#,
    );
    let (out, t) = apply(&lab, dir.path(), &[]);
    assert!(out.status.success(), "{t}");
    assert!(
        recap_line(&t, "h01").contains("failed=0") && recap_line(&t, "h01").contains("rescued=1"),
        "{t}"
    );
    assert!(dpkg(&lab, &["tend-demo"])[0].starts_with("2.0 "));
    assert_eq!(dpkg(&lab, &["hello"]), ["absent"]);
    assert_eq!(
        lab.run("h01", &["cat", "/root/failure"]).unwrap(),
        "No package matching 'tend-no-such-package' is available"
    );
}

#[test]
fn deb_files_install_once_and_refuse_a_downgrade() {
    let Some(lab) = lab(false) else { return };
    let build = "set -e; for v in 1.0 2.0; do d=/tmp/mini-$v; mkdir -p $d/DEBIAN $d/usr/share/mini; \
        printf 'Package: tend-mini\\nVersion: %s\\nArchitecture: all\\nMaintainer: t <t@t>\\nDescription: mini\\n' $v > $d/DEBIAN/control; \
        echo $v > $d/usr/share/mini/version; dpkg-deb -b $d /root/tend-mini_$v.deb >/dev/null; done";
    lab.run("h01", &["sh", "-c", build]).unwrap();
    let dir = playbook(
        r#"- hosts: all
  gather_facts: false
  tasks:
    - apt: {deb: /root/tend-mini_2.0.deb}
    - apt: {deb: /root/tend-mini_1.0.deb}
      ignore_errors: true
      register: down
    - assert: {that: ["down.msg == 'A later version is already installed'"]}
"#,
    );
    let (out, t) = apply(&lab, dir.path(), &[]);
    assert!(out.status.success(), "{t}");
    assert!(recap_line(&t, "h01").contains("changed=1 "), "{t}");
    assert!(recap_line(&t, "h01").contains("ignored=1"), "{t}");
    assert!(dpkg(&lab, &["tend-mini"])[0].starts_with("2.0 "));
    let (_, t) = apply(&lab, dir.path(), &[]);
    assert!(recap_line(&t, "h01").contains("changed=0 "), "{t}");
}

/// nginx's main PID, as systemd knows it.
fn main_pid(lab: &Lab) -> String {
    lab.run(
        "h01",
        &["systemctl", "show", "-p", "MainPID", "--value", "nginx"],
    )
    .unwrap()
    .trim()
    .to_string()
}

fn unit_state(lab: &Lab, unit: &str) -> (String, String) {
    let active = lab
        .exec("h01", &["systemctl", "is-active", unit])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap();
    let enabled = lab
        .exec("h01", &["systemctl", "is-enabled", unit])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap();
    (active, enabled)
}

fn web(port: u16) -> String {
    format!(
        r#"- hosts: all
  gather_facts: false
  tasks:
    - apt: {{name: nginx, update_cache: true}}
    - copy:
        dest: /etc/nginx/conf.d/tend.conf
        content: "server {{ listen {port}; }}\n"
      notify: restart nginx
    - service: {{name: nginx, state: started, enabled: true}}
  handlers:
    - name: restart nginx
      service: {{name: nginx, state: restarted}}
"#
    )
}

#[test]
fn a_handler_restarts_nginx_only_when_its_config_changed() {
    let Some(lab) = lab(true) else { return };
    let dir = playbook(&web(8081));
    let (out, t) = apply(&lab, dir.path(), &[]);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("RUNNING HANDLER [restart nginx]"), "{t}");
    assert_eq!(
        unit_state(&lab, "nginx"),
        ("active".into(), "enabled".into())
    );
    let pid = main_pid(&lab);
    assert_ne!(pid, "0");

    // Same config: nothing changes, nothing restarts.
    let (_, t) = apply(&lab, dir.path(), &[]);
    assert!(recap_line(&t, "h01").contains("changed=0 "), "{t}");
    assert_eq!(main_pid(&lab), pid);

    // Check mode predicts the config change and the restart, and touches neither.
    std::fs::write(dir.path().join("site.yml"), web(8082)).unwrap();
    let (_, t) = apply(&lab, dir.path(), &["--check"]);
    assert!(recap_line(&t, "h01").contains("changed=2 "), "{t}");
    assert_eq!(main_pid(&lab), pid);

    // A changed config restarts it: a new main process.
    let (out, t) = apply(&lab, dir.path(), &[]);
    assert!(out.status.success(), "{t}");
    assert!(recap_line(&t, "h01").contains("changed=2 "), "{t}");
    let new_pid = main_pid(&lab);
    assert!(new_pid != pid && new_pid != "0", "{pid} -> {new_pid}");
}

#[test]
fn services_stop_disable_mask_and_a_missing_unit_fails_clearly() {
    let Some(lab) = lab(true) else { return };
    let dir = playbook(
        r#"- hosts: all
  gather_facts: true
  tasks:
    - service: {name: cron, state: stopped, enabled: false}
    - systemd_service: {name: cron, masked: true}
    - service: {name: tend-no-such-unit, state: started}
      ignore_errors: true
      register: missing
    - copy: {content: "{{ missing.msg }}", dest: /root/missing}
"#,
    );
    let (out, t) = apply(&lab, dir.path(), &[]);
    assert!(out.status.success(), "{t}");
    assert!(recap_line(&t, "h01").contains("ignored=1"), "{t}");
    assert_eq!(
        unit_state(&lab, "cron"),
        ("inactive".into(), "masked".into())
    );
    assert_eq!(
        lab.run("h01", &["cat", "/root/missing"]).unwrap(),
        "Could not find the requested service tend-no-such-unit: host"
    );
    let (_, t) = apply(&lab, dir.path(), &[]);
    assert!(recap_line(&t, "h01").contains("changed=0 "), "{t}");
}

#[test]
fn sysvinit_hosts_run_init_scripts() {
    let Some(lab) = lab(false) else { return };
    let dir = playbook(
        r#"- hosts: all
  gather_facts: true
  tasks:
    - service: {name: cron, state: stopped}
    - service: {name: cron, state: stopped}
      register: again
    - assert: {that: [again is not changed]}
"#,
    );
    let (out, t) = apply(&lab, dir.path(), &[]);
    assert!(out.status.success(), "{t}");
    assert!(recap_line(&t, "h01").contains("changed=1 "), "{t}");
    let st = lab.exec("h01", &["/etc/init.d/cron", "status"]).unwrap();
    assert!(!st.status.success(), "cron still runs");
}
