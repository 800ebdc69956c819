//! `sysctl` and `uri` over SSH on a real lab host (crates/tend-lab): kernel parameters of the
//! host's own namespaces (`net.*` of its network namespace, `kernel.msgmax` of its IPC
//! namespace — nothing of the machine running the test), an HTTP server (python3 -m
//! http.server) on the host's loopback. First run converges, second run changes nothing,
//! check mode predicts a new value and changes nothing, and an unknown key and a missing page
//! are their tasks' own failures, handled by `rescue`.
//!
//! Needs root (it starts a lab); skips with a note otherwise.

mod common;
use common::{is_root, recap_line, text};
use std::path::Path;

use tend_lab::Lab;

fn tend(dir: &Path, args: &[&str]) -> std::process::Output {
    common::run_tend(dir, args)
}

const SETUP: &str = r#"set -e
mkdir -p /srv/www
printf '<h1>hello from the lab</h1>\n' > /srv/www/index.html
printf '{"app": "demo", "replicas": 2}\n' > /srv/www/status.json
cd /srv/www
setsid python3 -m http.server 8000 --bind 127.0.0.1 </dev/null >/dev/null 2>&1 &
for i in $(seq 1 50); do
  python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8000/")' 2>/dev/null && exit 0
  sleep 0.1
done
echo "http.server did not start" >&2
exit 1
"#;

const SITE: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - name: forwarding, in a file of its own
      sysctl:
        name: net.ipv4.ip_forward
        value: "{{ forward | default('1') }}"
        sysctl_file: /etc/sysctl.d/60-tend.conf
    - name: a two-word value
      ansible.posix.sysctl:
        name: net.ipv4.ip_local_port_range
        value: 20000 40000
        sysctl_file: /etc/sysctl.d/60-tend.conf
    - name: set now with sysctl -w, the file not reloaded
      sysctl:
        name: kernel.msgmax
        value: 16384
        sysctl_set: true
        reload: false
        sysctl_file: /etc/sysctl.d/60-tend.conf
    - name: the status API
      uri:
        url: http://127.0.0.1:8000/status.json
      register: api
    - name: the page
      uri:
        url: http://127.0.0.1:8000/
        return_content: true
      register: page
    - assert:
        that:
          - api.status == 200
          - api.json.app == 'demo'
          - "'hello from the lab' in page.content"
          - page.msg == 'OK (28 bytes)'
      when: not ansible_check_mode
"#;

const BAD: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - block:
        - sysctl:
            name: net.ipv4.no_such_key
            value: 1
            sysctl_file: /etc/sysctl.d/61-bad.conf
      rescue:
        - debug:
            msg: "sysctl said: {{ ansible_failed_result.msg }}"
    - block:
        - uri:
            url: http://127.0.0.1:8000/missing.html
      rescue:
        - debug:
            msg: "uri said: {{ ansible_failed_result.msg }} ({{ ansible_failed_result.status }})"
    - command: echo after
"#;

#[test]
fn sysctl_and_uri_converge_over_ssh() {
    if !is_root() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("note: system_sysctl_uri needs root (it starts a lab host); skipped");
        }
        return;
    }
    let lab = Lab::start(1).expect("the lab starts (needs root and tests/setup.sh)");
    lab.run("h01", &["sh", "-c", SETUP]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.yml"), SITE).unwrap();
    std::fs::write(dir.path().join("bad.yml"), BAD).unwrap();
    let inv = lab.inventory_path();
    let inv = inv.to_str().unwrap();
    let proc = |key: &str| {
        lab.run("h01", &["cat", &format!("/proc/sys/{key}")])
            .unwrap()
    };
    assert_eq!(proc("net/ipv4/ip_forward"), "0\n");

    // Check mode first: the changes are predicted, nothing is written, uri is skipped.
    let o = tend(dir.path(), &["apply", "site.yml", "-i", inv, "--check"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        recap_line(&t, "h01")
            .contains("ok=3    changed=3    unreachable=0    failed=0    skipped=3"),
        "{t}"
    );
    assert_eq!(proc("net/ipv4/ip_forward"), "0\n");
    assert!(lab
        .run("h01", &["test", "!", "-e", "/etc/sysctl.d/60-tend.conf"])
        .is_ok());

    let o = tend(dir.path(), &["apply", "site.yml", "-i", inv]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        recap_line(&t, "h01").contains("ok=6    changed=3    unreachable=0    failed=0"),
        "{t}"
    );
    assert_eq!(proc("net/ipv4/ip_forward"), "1\n");
    assert_eq!(proc("net/ipv4/ip_local_port_range"), "20000\t40000\n");
    assert_eq!(proc("kernel/msgmax"), "16384\n");
    assert_eq!(
        lab.run(
            "h01",
            &["stat", "-c", "%a %U", "/etc/sysctl.d/60-tend.conf"]
        )
        .unwrap(),
        "644 root\n"
    );
    assert_eq!(
        lab.run("h01", &["cat", "/etc/sysctl.d/60-tend.conf"])
            .unwrap(),
        "net.ipv4.ip_forward=1\nnet.ipv4.ip_local_port_range=20000 40000\nkernel.msgmax=16384\n"
    );

    // Second run: nothing to do.
    let o = tend(dir.path(), &["apply", "site.yml", "-i", inv]);
    let t = text(&o);
    assert!(
        recap_line(&t, "h01").contains("ok=6    changed=0    unreachable=0    failed=0"),
        "{t}"
    );

    // Drift in the kernel only (the file is right): reload puts it back.
    lab.run("h01", &["sysctl", "-w", "net.ipv4.ip_forward=0"])
        .unwrap();
    let o = tend(dir.path(), &["apply", "site.yml", "-i", inv, "--check"]);
    assert!(
        recap_line(&text(&o), "h01").contains("changed=1"),
        "{}",
        text(&o)
    );
    assert_eq!(proc("net/ipv4/ip_forward"), "0\n");
    let o = tend(dir.path(), &["apply", "site.yml", "-i", inv]);
    assert!(
        recap_line(&text(&o), "h01").contains("changed=1"),
        "{}",
        text(&o)
    );
    assert_eq!(proc("net/ipv4/ip_forward"), "1\n");

    // A new value: check mode predicts it, the run makes it.
    let o = tend(
        dir.path(),
        &["apply", "site.yml", "-i", inv, "--check", "-e", "forward=0"],
    );
    assert!(
        recap_line(&text(&o), "h01").contains("changed=1"),
        "{}",
        text(&o)
    );
    assert_eq!(proc("net/ipv4/ip_forward"), "1\n");
    let o = tend(
        dir.path(),
        &["apply", "site.yml", "-i", inv, "-e", "forward=0"],
    );
    assert!(
        recap_line(&text(&o), "h01").contains("changed=1"),
        "{}",
        text(&o)
    );
    assert_eq!(proc("net/ipv4/ip_forward"), "0\n");

    // Bad input: each its own task's failure with ansible's message, rescued.
    let o = tend(dir.path(), &["apply", "bad.yml", "-i", inv]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains(
            "sysctl said: Failed to reload sysctl: sysctl: cannot stat \
             /proc/sys/net/ipv4/no_such_key: No such file or directory"
        ),
        "{t}"
    );
    assert!(
        t.contains(
            "uri said: Status code was 404 and not [200]: HTTP Error 404: File not found (404)"
        ),
        "{t}"
    );
    assert!(
        recap_line(&t, "h01").contains("ok=3    changed=1    unreachable=0    failed=0")
            && recap_line(&t, "h01").contains("rescued=2"),
        "{t}"
    );
}
