//! `user`, `group`, `authorized_key` and `cron` against a real lab host over SSH: the host's
//! accounts, keys and crontabs are read back with `lab.run`, a second run changes nothing,
//! a check run first changes nothing and reports the changes the real run then makes, and
//! bad input fails its task with the tool's message while the play goes on.
//!
//! Needs root (the lab); without it each test prints a note and returns.

mod common;
use common::{recap_line, text};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tend_lab::Lab;

// The skip note is for whoever runs the tests without root.
#[allow(clippy::print_stderr)]
fn lab() -> Option<Lab> {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        eprintln!("note: skipped: the lab needs root (run as root after tests/setup.sh)");
        return None;
    }
    Some(Lab::start(1).expect("the lab starts (these tests need root and tests/setup.sh)"))
}

/// Every process's command line on this machine (lab hosts' processes included).
fn command_lines() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .collect()
}

/// Runs `tend ARGS` in `dir` (at most 180 s); returns its output and every command line seen
/// meanwhile that contained one of `secrets`.
fn tend(dir: &Path, args: &[&str], secrets: &[&str]) -> (Output, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut leaks = Vec::new();
    loop {
        for l in command_lines() {
            if secrets.iter().any(|s| l.contains(s)) {
                leaks.push(l);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("tend did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), leaks)
}

/// (task name, status) for every task result line of a run, in order.
fn statuses(out: &str) -> Vec<(String, String)> {
    let mut task = String::new();
    let mut v = Vec::new();
    for l in out.lines() {
        if let Some(rest) = l.strip_prefix("TASK [") {
            task = rest.split(']').next().unwrap_or_default().to_string();
        } else if let Some((status, _)) = l.split_once(": [h01]") {
            v.push((task.clone(), status.to_string()));
        }
    }
    v
}

const HASH: &str =
    "$6$tendsalt$LpdXhopqxrsOz8Aj8rlCvxCOECvo/2o4t.nfK.rlM/W3SqyckW/pATQBopNxK27soKBQdlggQmmXwh3sQSJxE0";
const PASSPHRASE: &str = "pass-phrase-5c1e";
const KEY1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOneForTendTests one@example";
const KEY2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyTwoForTendTests";

fn site() -> String {
    format!(
        r#"- hosts: all
  gather_facts: false
  vars:
    hash: '{HASH}'
    passphrase: {PASSPHRASE}
  tasks:
    - name: group web
      group: name=web gid=1500
    - name: group ops
      group: name=ops system=true
    - name: user alice
      user:
        name: alice
        uid: 2001
        groups: [web]
        shell: /bin/bash
        comment: Alice
        password: "{{{{ hash }}}}"
    - name: user bob
      user:
        name: bob
        groups: ops
        append: true
        home: /srv/bob
        generate_ssh_key: true
        ssh_key_type: ed25519
        ssh_key_passphrase: "{{{{ passphrase }}}}"
      register: bob
    - name: bob's key is reported
      when: not ansible_check_mode
      assert:
        that:
          - bob.ssh_public_key is none or bob.ssh_public_key.startswith('ssh-ed25519 ')
          - bob.ssh_key_file == '/srv/bob/.ssh/id_ed25519'
    - name: user olduser
      user: name=olduser state=absent remove=true
    - name: keys of alice
      authorized_key:
        user: alice
        path: /home/alice/.ssh/authorized_keys
        key: "{KEY1}\n{KEY2}"
        exclusive: true
        key_options: no-port-forwarding
    - name: keys of bob
      ansible.posix.authorized_key:
        user: bob
        path: /srv/bob/.ssh/authorized_keys
        key: "{KEY1}"
    - name: cron backup
      cron: name=backup minute=5 hour=2 job=/usr/local/bin/backup user=alice
    - name: cron path
      cron: name=PATH env=true job=/usr/bin:/bin user=alice
    - name: cron reboot
      cron: name=reboot special_time=reboot job=/bin/true
    - name: cron deploy
      cron: name=deploy cron_file=deploy user=bob job=/bin/deploy minute=*/10
    - name: cron stale
      cron: name=stale state=absent
"#
    )
}

/// What the test looks at on the host.
fn state(lab: &Lab) -> String {
    let sh = |c: &str| {
        let o = lab.exec("h01", &["sh", "-c", c]).unwrap();
        format!("$ {c}\n{}", String::from_utf8_lossy(&o.stdout))
    };
    [
        sh("grep -E '^(alice|bob|olduser):' /etc/passwd"),
        sh("grep -E '^(alice|bob|olduser):' /etc/shadow | cut -d: -f1,2"),
        sh("grep -E '^(web|ops|alice|bob):' /etc/group"),
        sh("crontab -l -u alice; crontab -l -u root; cat /etc/cron.d/deploy"),
        sh("stat -c '%n %a %U' /home/alice/.ssh /home/alice/.ssh/authorized_keys /srv/bob /srv/bob/.ssh/id_ed25519 /etc/cron.d/deploy"),
        sh("cat /home/alice/.ssh/authorized_keys /srv/bob/.ssh/authorized_keys"),
    ]
    .join("")
}

#[test]
fn accounts_keys_and_crontabs_converge_and_check_mode_predicts_them() {
    let Some(lab) = lab() else { return };
    lab.run("h01", &["useradd", "-m", "olduser"]).unwrap();
    let o = lab
        .exec_with_input(
            "h01",
            &["crontab", "-"],
            b"#Ansible: stale\n* * * * * /bin/stale\n",
        )
        .unwrap();
    assert!(o.status.success());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.yml"), site()).unwrap();
    let inv = lab.inventory_path();
    let inv = inv.to_str().unwrap();
    let secrets = [HASH, PASSPHRASE];

    // Check mode first: nothing changes, and it says what the real run will change.
    let before = state(&lab);
    let (check, leaks) = tend(
        dir.path(),
        &["apply", "site.yml", "-i", inv, "--check"],
        &secrets,
    );
    let tc = text(&check);
    assert_eq!(check.status.code(), Some(0), "{tc}");
    assert!(leaks.is_empty(), "secret in a command line: {leaks:?}");
    assert_eq!(state(&lab), before, "check mode changed the host\n{tc}");

    let (real, leaks) = tend(dir.path(), &["apply", "site.yml", "-i", inv], &secrets);
    let t = text(&real);
    assert_eq!(real.status.code(), Some(0), "{t}");
    assert!(leaks.is_empty(), "secret in a command line: {leaks:?}");
    assert!(
        !t.contains(HASH) && !t.contains(PASSPHRASE),
        "secret in the output\n{t}"
    );
    // The assert task is the only one that sees registered values the check run lacks.
    let pred: Vec<_> = statuses(&tc)
        .into_iter()
        .filter(|(n, _)| !n.contains("reported"))
        .collect();
    let done: Vec<_> = statuses(&t)
        .into_iter()
        .filter(|(n, _)| !n.contains("reported"))
        .collect();
    assert_eq!(pred, done, "check mode predicted other changes\n{tc}\n{t}");
    assert!(
        recap_line(&t, "h01").contains("ok=13   changed=12   unreachable=0    failed=0"),
        "{t}"
    );

    let passwd = lab
        .run("h01", &["getent", "passwd", "alice", "bob"])
        .unwrap();
    assert!(passwd.contains("alice:x:2001:"), "{passwd}");
    assert!(passwd.contains(":Alice:/home/alice:/bin/bash"), "{passwd}");
    assert!(passwd.contains(":/srv/bob:"), "{passwd}");
    assert!(
        lab.exec("h01", &["getent", "passwd", "olduser"])
            .unwrap()
            .status
            .code()
            == Some(2)
    );
    assert!(!lab
        .exec("h01", &["test", "-e", "/home/olduser"])
        .unwrap()
        .status
        .success());
    let shadow = lab.run("h01", &["getent", "shadow", "alice"]).unwrap();
    assert!(shadow.starts_with(&format!("alice:{HASH}:")), "{shadow}");
    assert_eq!(
        lab.run("h01", &["getent", "group", "web"]).unwrap(),
        "web:x:1500:alice\n"
    );
    let ops = lab.run("h01", &["getent", "group", "ops"]).unwrap();
    let gid: u32 = ops.split(':').nth(2).unwrap().parse().unwrap();
    assert!(gid < 1000 && ops.trim_end().ends_with(":bob"), "{ops}");

    assert_eq!(
        lab.run("h01", &["cat", "/home/alice/.ssh/authorized_keys"])
            .unwrap(),
        format!("no-port-forwarding {KEY1}\nno-port-forwarding {KEY2} \n")
    );
    assert_eq!(
        lab.run(
            "h01",
            &[
                "stat",
                "-c",
                "%a %U %G",
                "/home/alice/.ssh",
                "/home/alice/.ssh/authorized_keys"
            ]
        )
        .unwrap(),
        "700 alice alice\n600 alice alice\n"
    );
    // The generated key is bob's and opens with the passphrase only.
    assert_eq!(
        lab.run(
            "h01",
            &[
                "stat",
                "-c",
                "%a %U",
                "/srv/bob/.ssh",
                "/srv/bob/.ssh/id_ed25519"
            ]
        )
        .unwrap(),
        "700 bob\n600 bob\n"
    );
    let opens = |p: &str| {
        lab.exec(
            "h01",
            &[
                "ssh-keygen",
                "-y",
                "-P",
                p,
                "-f",
                "/srv/bob/.ssh/id_ed25519",
            ],
        )
        .unwrap()
        .status
        .success()
    };
    assert!(opens(PASSPHRASE) && !opens(""));

    assert_eq!(
        lab.run("h01", &["crontab", "-l", "-u", "alice"]).unwrap(),
        "PATH=\"/usr/bin:/bin\"\n#Ansible: backup\n5 2 * * * /usr/local/bin/backup\n"
    );
    assert_eq!(
        lab.run("h01", &["crontab", "-l", "-u", "root"]).unwrap(),
        "#Ansible: reboot\n@reboot /bin/true\n"
    );
    assert_eq!(
        lab.run("h01", &["cat", "/etc/cron.d/deploy"]).unwrap(),
        "#Ansible: deploy\n*/10 * * * * bob /bin/deploy\n"
    );
    assert_eq!(
        lab.run("h01", &["stat", "-c", "%a %U", "/etc/cron.d/deploy"])
            .unwrap(),
        "644 root\n"
    );

    // Converged: nothing to do, in check mode or not.
    let after = state(&lab);
    for extra in [&["--check"][..], &[]] {
        let mut args = vec!["apply", "site.yml", "-i", inv];
        args.extend_from_slice(extra);
        let (again, _) = tend(dir.path(), &args, &[]);
        let t = text(&again);
        assert_eq!(again.status.code(), Some(0), "{t}");
        assert!(recap_line(&t, "h01").contains("changed=0"), "{t}");
    }
    assert_eq!(state(&lab), after);

    // Changes behind tend's back are put back, and removals converge too.
    lab.run("h01", &["usermod", "-s", "/bin/sh", "-G", "", "alice"])
        .unwrap();
    lab.run(
        "h01",
        &[
            "sh",
            "-c",
            "echo 'ssh-rsa AAAAB3intruder x' >> /home/alice/.ssh/authorized_keys",
        ],
    )
    .unwrap();
    let (fix, _) = tend(dir.path(), &["apply", "site.yml", "-i", inv], &[]);
    let t = text(&fix);
    assert!(recap_line(&t, "h01").contains("changed=2"), "{t}");
    assert_eq!(state(&lab), after);
    std::fs::write(
        dir.path().join("down.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - user: name=bob state=absent remove=true force=true\n    - group: name=ops state=absent\n    - cron: name=deploy cron_file=deploy state=absent\n    - cron: name=PATH env=true state=absent user=alice\n",
    )
    .unwrap();
    for changed in ["changed=4", "changed=0"] {
        let (down, _) = tend(dir.path(), &["apply", "down.yml", "-i", inv], &[]);
        let t = text(&down);
        assert!(recap_line(&t, "h01").contains(changed), "{t}");
    }
    assert!(!lab
        .exec("h01", &["test", "-e", "/etc/cron.d/deploy"])
        .unwrap()
        .status
        .success());
    assert!(!lab
        .exec("h01", &["test", "-e", "/srv/bob"])
        .unwrap()
        .status
        .success());
    assert_eq!(
        lab.run("h01", &["crontab", "-l", "-u", "alice"]).unwrap(),
        "#Ansible: backup\n5 2 * * * /usr/local/bin/backup\n"
    );
}

#[test]
fn bad_input_fails_its_task_with_the_tools_message_and_the_play_goes_on() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.yml"),
        r#"- hosts: all
  gather_facts: false
  tasks:
    - block:
        - name: invalid name
          user: name="bad name!"
      rescue:
        - copy: content="{{ ansible_failed_result.msg }}" dest=/root/rescued
    - name: missing group
      user: name=carol groups=nosuchgroup
      ignore_errors: true
      register: carol
    - name: removing a user that does not exist
      user: name=ghost state=absent
    - name: removing a group that does not exist
      group: name=ghost state=absent
    - name: a key that is no key
      authorized_key: user=root key="not a key"
      ignore_errors: true
    - name: a key for nobody
      authorized_key: user=nobody-here key="ssh-ed25519 AAAA x"
      ignore_errors: true
    - name: special time and hours
      cron: name=x special_time=daily hour=1 job=/bin/true
      ignore_errors: true
    - copy: content="{{ carol.msg }}" dest=/root/done
"#,
    )
    .unwrap();
    let inv = lab.inventory_path();
    let (out, _) = tend(
        dir.path(),
        &["apply", "site.yml", "-i", inv.to_str().unwrap()],
        &[],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        recap_line(&t, "h01").contains(
            "ok=8    changed=2    unreachable=0    failed=0    skipped=0    rescued=1    ignored=4"
        ),
        "{t}"
    );
    let rescued = lab.run("h01", &["cat", "/root/rescued"]).unwrap();
    assert!(
        rescued.contains("useradd: invalid user name 'bad name!'"),
        "{rescued}"
    );
    assert_eq!(
        lab.run("h01", &["cat", "/root/done"]).unwrap(),
        "Group nosuchgroup does not exist"
    );
    assert!(t.contains("invalid key specified: not a key"), "{t}");
    assert!(
        t.contains(
            r#"Failed to lookup user nobody-here: \"getpwnam(): name not found: 'nobody-here'\""#
        ) || t.contains(
            r#"Failed to lookup user nobody-here: "getpwnam(): name not found: 'nobody-here'""#
        ),
        "{t}"
    );
    assert!(
        t.contains("You must specify time and date fields or special time."),
        "{t}"
    );
    assert!(
        lab.exec("h01", &["getent", "passwd", "carol"])
            .unwrap()
            .status
            .code()
            == Some(2)
    );
}
