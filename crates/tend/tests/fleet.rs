//! tend against real hosts over SSH: lab hosts (crates/tend-lab) with their own root
//! filesystem, network namespace and sshd. Faults are real: sshd stopped, a host killed
//! mid-run, host keys rotated or forgotten, a wrong sudo password.
//!
//! Needs root (as CI runs); each test starts and stops its own lab.

mod common;
use common::{recap_line, text};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tend_lab::Lab;

fn lab(n: usize) -> Lab {
    Lab::start(n).expect("the lab starts (these tests need root and tests/setup.sh)")
}

fn tend(dir: &Path, args: &[&str]) -> Command {
    common::tend_command(dir, args)
}

/// Starts `tend ARGS` in `dir` with its output captured.
fn spawn(dir: &Path, args: &[&str]) -> Child {
    tend(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// In the background: once `host` of the lab `prefix` has the file `marker` (the play got
/// there), runs `fault` on it. The handle says whether the marker ever appeared (within 60 s).
fn on_marker(
    prefix: &str,
    host: &'static str,
    marker: &'static str,
    fault: fn(&Lab, &str) -> tend_lab::Result<()>,
) -> std::thread::JoinHandle<bool> {
    let prefix = prefix.to_string();
    std::thread::spawn(move || {
        let lab = Lab::attach(&prefix).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let there = lab
                .exec(host, &["test", "-e", marker])
                .map(|o| o.status.success())
                .unwrap_or(false);
            if there {
                fault(&lab, host).unwrap();
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })
}

/// Waits for a child with a deadline: nothing in these tests may hang.
fn wait(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
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

/// Every process's command line on this machine (lab hosts' processes included: they live in
/// child PID namespaces, visible from here).
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

/// Watches command lines while `child` runs; returns the output and every line that
/// contained one of `secrets`.
fn run_watching(child: Child, secrets: &[&str], limit: Duration) -> (Output, Vec<String>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::thread::scope(|s| {
        let stop2 = stop.clone();
        let watcher = s.spawn(move || {
            let mut leaks = Vec::new();
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                for l in command_lines() {
                    if secrets.iter().any(|x| l.contains(x)) {
                        leaks.push(l);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            leaks
        });
        let out = wait(child, limit);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (out, watcher.join().unwrap())
    });
    seen
}

const CANARY: &str = "canary-payload-7f3a9c";

/// One host's sshd is down before the run, another host dies mid-run: both UNREACHABLE with
/// their reason, everyone else converges, and no payload ever shows in a command line.
#[test]
fn unreachable_hosts_are_reported_and_the_rest_converge() {
    let lab = lab(5);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.yml"),
        format!(
            "- hosts: all\n  gather_facts: false\n  vars:\n    token: {CANARY}\n  tasks:\n    - copy: content=\"{{{{ token }}}}\" dest=/root/token mode=0600\n    - copy: content=go dest=/root/started\n    - command: sleep 4\n      when: inventory_hostname == 'h05'\n    - template: src=motd.j2 dest=/etc/motd\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("motd.j2"),
        "managed by tend on {{ inventory_hostname }}\n",
    )
    .unwrap();
    lab.stop_sshd("h04").unwrap();
    let inv = lab.inventory_path();
    let child = spawn(
        dir.path(),
        &["apply", "site.yml", "-i", inv.to_str().unwrap()],
    );
    // Kill h05 once it is inside its long task.
    let killer = on_marker(lab.prefix(), "h05", "/root/started", |lab, h| {
        std::thread::sleep(Duration::from_millis(300));
        lab.kill_host(h)
    });
    let (out, leaks) = run_watching(child, &[CANARY], Duration::from_secs(120));
    assert!(killer.join().unwrap(), "h05 never started its play");
    let t = text(&out);
    assert!(
        leaks.is_empty(),
        "payload visible in a command line: {leaks:?}"
    );
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(
        t.contains("fatal: [h04]: UNREACHABLE!") && t.contains("port 22: Connection refused"),
        "{t}"
    );
    assert!(t.contains("fatal: [h05]: UNREACHABLE!"), "{t}");
    assert!(
        recap_line(&t, "h04").contains("ok=0    changed=0    unreachable=1"),
        "{t}"
    );
    assert!(recap_line(&t, "h05").contains("unreachable=1"), "{t}");
    for h in ["h01", "h02", "h03"] {
        assert!(
            recap_line(&t, h)
                .contains("ok=3    changed=3    unreachable=0    failed=0    skipped=1"),
            "{t}"
        );
        assert_eq!(
            lab.run(h, &["cat", "/etc/motd"]).unwrap(),
            format!("managed by tend on {h}\n")
        );
        assert_eq!(lab.run(h, &["cat", "/root/token"]).unwrap(), CANARY);
    }

    // The converged hosts stay converged; `tend ping` tells who is reachable.
    let again = tend(
        dir.path(),
        &[
            "apply",
            "site.yml",
            "-i",
            inv.to_str().unwrap(),
            "-l",
            "h01:h02:h03",
        ],
    )
    .output()
    .unwrap();
    let t = text(&again);
    assert_eq!(again.status.code(), Some(0), "{t}");
    assert!(recap_line(&t, "h01").contains("changed=0"), "{t}");
    let ping = tend(dir.path(), &["ping", "-i", inv.to_str().unwrap()])
        .output()
        .unwrap();
    let t = text(&ping);
    assert_eq!(ping.status.code(), Some(4), "{t}");
    assert!(t.contains("h01 | SUCCESS => {"), "{t}");
    assert!(t.contains("\"ping\": \"pong\""), "{t}");
    assert!(t.contains("h04 | UNREACHABLE! => {"), "{t}");
}

/// A changed host key aborts that host; an unknown one is refused unless the user opts in,
/// and then it is recorded; a changed key is refused even with the opt-in.
#[test]
fn host_keys_are_checked_strictly() {
    let lab = lab(3);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - file: path=/root/touched state=touch\n",
    )
    .unwrap();
    lab.rotate_host_key("h01").unwrap();
    lab.forget_host_key("h02").unwrap();
    let inv = lab.inventory_path();
    let run = |extra: &[&str]| {
        let mut args = vec!["apply", "site.yml", "-i", inv.to_str().unwrap()];
        args.extend_from_slice(extra);
        let child = spawn(dir.path(), &args);
        wait(child, Duration::from_secs(120))
    };
    let out = run(&[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("the host key of h01 has CHANGED"), "{t}");
    assert!(t.contains("the host key of h02 is not known"), "{t}");
    assert!(t.contains("--accept-new-host-keys"), "{t}");
    assert!(
        recap_line(&t, "h03").contains("changed=1    unreachable=0"),
        "{t}"
    );
    for h in ["h01", "h02"] {
        let touched = lab.exec(h, &["test", "-e", "/root/touched"]).unwrap();
        assert!(
            !touched.status.success(),
            "{h} was changed despite its host key"
        );
    }

    let out = run(&["--accept-new-host-keys"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("the host key of h01 has CHANGED"), "{t}");
    assert!(
        recap_line(&t, "h02").contains("changed=1    unreachable=0"),
        "{t}"
    );
    assert!(
        t.contains("h02: new host key accepted and recorded (--accept-new-host-keys)"),
        "{t}"
    );
    // Recorded in the known_hosts file the host uses (names may be hashed: ask ssh-keygen).
    let h02 = lab.host("h02").unwrap().ip.to_string();
    let found = Command::new("ssh-keygen")
        .args(["-F", &h02, "-f"])
        .arg(lab.known_hosts_path())
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "the accepted key of h02 is recorded"
    );

    // Recorded: the next strict run trusts it.
    let out = run(&[]);
    let t = text(&out);
    assert!(recap_line(&t, "h02").contains("unreachable=0"), "{t}");
}

/// Log in as an unprivileged user and become root with sudo: right password, wrong password
/// (a clean, quick failure), a passwordless sudo rule; the password is never in a command line.
#[test]
fn become_over_ssh() {
    let lab = lab(2);
    let dir = tempfile::tempdir().unwrap();
    let key = lab.key_path();
    let known = lab.known_hosts_path();
    let line = |h: &tend_lab::LabHost, user: &str, extra: &str| {
        format!(
            "{} ansible_host={} ansible_user={user} ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile={} -o IdentitiesOnly=yes'{extra}\n",
            h.name,
            h.ip,
            key.display(),
            known.display()
        )
    };
    let hosts = lab.hosts();
    let password = tend_lab::DEPLOY_PASSWORD;
    std::fs::write(
        dir.path().join("good.ini"),
        format!(
            "{}{}",
            line(
                &hosts[0],
                tend_lab::DEPLOY_USER,
                &format!(" ansible_become_password={password}")
            ),
            line(&hosts[1], tend_lab::NOPW_USER, "")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.ini"),
        line(
            &hosts[0],
            tend_lab::DEPLOY_USER,
            " ansible_become_password=not-the-password",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: whoami\n      register: plain\n    - command: whoami\n      register: root\n      become: true\n    - copy: content=\"{{ plain.stdout }} {{ root.stdout }}\" dest=/root/who\n      become: true\n",
    )
    .unwrap();
    let child = spawn(dir.path(), &["apply", "site.yml", "-i", "good.ini"]);
    let (out, leaks) = run_watching(child, &[password], Duration::from_secs(120));
    let t = text(&out);
    assert!(
        leaks.is_empty(),
        "password visible in a command line: {leaks:?}"
    );
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(!t.contains(password), "{t}");
    assert_eq!(
        lab.run(&hosts[0].name, &["cat", "/root/who"]).unwrap(),
        format!("{} root", tend_lab::DEPLOY_USER)
    );
    assert_eq!(
        lab.run(&hosts[1].name, &["cat", "/root/who"]).unwrap(),
        format!("{} root", tend_lab::NOPW_USER)
    );

    let started = Instant::now();
    let child = spawn(dir.path(), &["apply", "site.yml", "-i", "bad.ini"]);
    let (out, leaks) = run_watching(child, &["not-the-password"], Duration::from_secs(90));
    let t = text(&out);
    assert!(
        leaks.is_empty(),
        "password visible in a command line: {leaks:?}"
    );
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("Incorrect sudo password"), "{t}");
    assert!(!t.contains("not-the-password"), "{t}");
    assert!(
        recap_line(&t, &hosts[0].name).contains("ok=1    changed=1    unreachable=0    failed=1"),
        "{t}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a wrong password must fail fast, took {:?}",
        started.elapsed()
    );
}

/// A host that goes silent (its network cable pulled) is given up on by the keepalives, and a
/// host that cannot be reached at all by the connect timeout: nothing waits forever.
#[test]
fn silent_hosts_time_out() {
    let lab = lab(3);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: content=go dest=/root/started\n    - command: sleep 60\n      when: inventory_hostname == 'h02'\n    - copy: content=done dest=/root/done\n",
    )
    .unwrap();
    lab.unplug("h03").unwrap();
    let inv = lab.inventory_path();
    let started = Instant::now();
    let child = spawn(
        dir.path(),
        &["apply", "site.yml", "-i", inv.to_str().unwrap(), "-T", "3"],
    );
    let unplugger = on_marker(lab.prefix(), "h02", "/root/started", |lab, h| lab.unplug(h));
    let out = wait(child, Duration::from_secs(90));
    assert!(unplugger.join().unwrap(), "h02 never started");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("fatal: [h02]: UNREACHABLE!"), "{t}");
    assert!(t.contains("fatal: [h03]: UNREACHABLE!"), "{t}");
    assert!(
        recap_line(&t, "h01").contains("ok=2    changed=2    unreachable=0"),
        "{t}"
    );
    // Keepalives every 5 s, three missed: well before the 60 s task would have ended.
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "took {:?}",
        started.elapsed()
    );
}

/// The user's ssh configuration is honoured: a host alias that exists only in an ssh config
/// file, reached through a jump host (ProxyJump).
#[test]
fn ssh_config_and_proxyjump_are_honoured() {
    let lab = lab(2);
    let dir = tempfile::tempdir().unwrap();
    let h02 = lab.host("h02").unwrap().ip;
    let h01 = lab.host("h01").unwrap().ip;
    let mut cfg = std::fs::read_to_string(lab.ssh_config_path()).unwrap();
    cfg.push_str(&format!(
        "\nHost behind-the-jump\n    HostName {h02}\n    User root\n    ProxyJump h01\n    IdentityFile {}\n    UserKnownHostsFile {}\n    IdentitiesOnly yes\n",
        lab.key_path().display(),
        lab.known_hosts_path().display()
    ));
    std::fs::write(dir.path().join("ssh_config"), cfg).unwrap();
    std::fs::write(
        dir.path().join("inv.ini"),
        format!(
            "web ansible_host=behind-the-jump ansible_ssh_common_args='-F {}'\n",
            dir.path().join("ssh_config").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: printenv SSH_CONNECTION\n      register: conn\n    - copy: content=\"{{ conn.stdout.split()[0] }}\" dest=/root/came-from\n",
    )
    .unwrap();
    let child = spawn(dir.path(), &["apply", "site.yml", "-i", "inv.ini"]);
    let out = wait(child, Duration::from_secs(120));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    // h02 saw the connection come from h01: the jump was taken.
    assert_eq!(
        lab.run("h02", &["cat", "/root/came-from"]).unwrap(),
        h01.to_string()
    );
}

/// Failures before the agent runs say what went wrong in the user's terms: a name that does
/// not resolve, a key the host does not accept.
#[test]
fn dns_and_authentication_failures_are_unreachable_with_their_reason() {
    let lab = lab(1);
    let dir = tempfile::tempdir().unwrap();
    let h = lab.host("h01").unwrap();
    let wrong_key = dir.path().join("wrong_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&wrong_key)
        .status()
        .unwrap();
    assert!(made.success());
    let common = format!(
        "ansible_ssh_common_args='-o UserKnownHostsFile={} -o IdentitiesOnly=yes'",
        lab.known_hosts_path().display()
    );
    std::fs::write(
        dir.path().join("inv.ini"),
        format!(
            "nowhere ansible_host=no-such-host.invalid {common}\nlocked ansible_host={} ansible_user=root ansible_ssh_private_key_file={} {common}\n",
            h.ip,
            wrong_key.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  tasks:\n    - debug: msg=hi\n",
    )
    .unwrap();
    let child = spawn(dir.path(), &["apply", "site.yml", "-i", "inv.ini"]);
    let out = wait(child, Duration::from_secs(60));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("fatal: [nowhere]: UNREACHABLE!"), "{t}");
    assert!(
        t.contains("Could not resolve hostname no-such-host.invalid"),
        "{t}"
    );
    assert!(t.contains("fatal: [locked]: UNREACHABLE!"), "{t}");
    assert!(
        t.contains("Failed to authenticate to the host via ssh"),
        "{t}"
    );
    assert!(t.contains("Permission denied (publickey"), "{t}");
    // Ansible names the task that could not run: here the implicit fact gathering.
    assert!(t.contains("TASK [Gathering Facts]"), "{t}");
}

/// `--ssh-persist`: each host's master connection outlives the run, in a private directory, and
/// the next run goes through it (the host sees the same TCP connection: the same client port in
/// SSH_CONNECTION); `tend ssh-close` closes them, and a new master checks the host key again.
/// Without it, a run leaves no master and no socket behind, even for a host in two plays.
#[test]
fn ssh_persist_keeps_connections_for_the_next_run() {
    let lab = lab(2);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let play = |suffix: &str| {
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: printenv SSH_CONNECTION\n      register: conn\n    - copy: content=\"{{{{ conn.stdout }}}}\" dest=/root/conn-{{{{ run }}}}{suffix}\n"
        )
    };
    std::fs::write(
        dir.path().join("site.yml"),
        format!("{}{}", play(""), play("-2")),
    )
    .unwrap();
    let inv = lab.inventory_path();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = tend(dir.path(), args);
        c.env("XDG_RUNTIME_DIR", runtime.path())
            .env_remove("TEND_SSH_PERSIST");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (out.status.code(), text(&out))
    };
    let apply = |id: &str, extra: &[&str], env: &[(&str, &str)]| {
        let var = format!("run={id}");
        let mut args = vec!["apply", "site.yml", "-i", inv.to_str().unwrap(), "-e", &var];
        args.extend_from_slice(extra);
        run(&args, env)
    };
    let masters = || {
        let marker = runtime.path().to_str().unwrap().to_string();
        command_lines()
            .into_iter()
            .filter(|l| l.contains(&marker))
            .count()
    };
    let conn = |h: &str, id: &str| lab.run(h, &["cat", &format!("/root/conn-{id}")]).unwrap();

    // Default: the master is shared by the two plays of the run, and closed at its end.
    let (code, t) = apply("a", &[], &[]);
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(
        conn("h01", "a"),
        conn("h01", "a-2"),
        "one connection per run"
    );
    assert_eq!(masters(), 0, "a master outlived a default run");
    assert_eq!(
        std::fs::read_dir(runtime.path()).unwrap().count(),
        0,
        "socket directory left behind"
    );

    // --ssh-persist: the masters stay, in a private directory of stable sockets.
    let (code, t) = apply("b", &["--ssh-persist", "600"], &[]);
    assert_eq!(code, Some(0), "{t}");
    let sockets = runtime.path().join("tend/ssh");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sockets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(
        std::fs::read_dir(&sockets).unwrap().count(),
        2,
        "one socket per host"
    );
    assert_eq!(masters(), 2, "one master per host kept running");
    // The next run (set by the environment this time) goes through them.
    let (code, t) = apply("c", &[], &[("TEND_SSH_PERSIST", "600")]);
    assert_eq!(code, Some(0), "{t}");
    for h in ["h01", "h02"] {
        assert_eq!(
            conn(h, "b"),
            conn(h, "c"),
            "{h}: the second run reconnected"
        );
        assert_ne!(conn(h, "a"), conn(h, "b"));
    }
    assert_eq!(masters(), 2);

    let (code, t) = run(&["ssh-close", "-i", inv.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{t}");
    assert!(
        t.contains("h01 | closed") && t.contains("h02 | closed"),
        "{t}"
    );
    let start = Instant::now();
    while masters() > 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(masters(), 0, "ssh-close left a master running");
    let (_, t) = run(&["ssh-close", "-i", inv.to_str().unwrap(), "h01"], &[]);
    assert!(t.contains("h01 | no open connection"), "{t}");

    // A new master is checked like any connection: a changed host key is refused.
    lab.rotate_host_key("h01").unwrap();
    let (code, t) = apply("d", &["--ssh-persist", "600"], &[]);
    assert_eq!(code, Some(4), "{t}");
    assert!(t.contains("the host key of h01 has CHANGED"), "{t}");
    assert!(recap_line(&t, "h02").contains("unreachable=0"), "{t}");
    let (code, t) = run(&["ssh-close", "-i", inv.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{t}");
}

/// The slim agent (crates/tend-agentd, what release builds embed) on a real host: pushed over
/// SSH to an unprivileged login, runs the play, and starts itself as the become worker
/// (`EXE agent-worker` through sudo) for the root tasks.
#[test]
#[allow(clippy::print_stderr)]
fn the_slim_agent_runs_plays_and_become_over_ssh() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the lab needs root");
        return;
    }
    let slim = common::slim_agent();
    let lab = lab(1);
    let dir = tempfile::tempdir().unwrap();
    let h = &lab.hosts()[0];
    std::fs::write(
        dir.path().join("inv.ini"),
        format!(
            "{} ansible_host={} ansible_user={} ansible_become_password={} ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile={} -o IdentitiesOnly=yes'\n",
            h.name,
            h.ip,
            tend_lab::DEPLOY_USER,
            tend_lab::DEPLOY_PASSWORD,
            lab.key_path().display(),
            lab.known_hosts_path().display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: whoami\n      register: plain\n      changed_when: false\n    - command: whoami\n      register: root\n      changed_when: false\n      become: true\n    - copy: content=\"{{ plain.stdout }} {{ root.stdout }}\" dest=/root/who mode=0600\n      become: true\n    - file: path=/tmp/slim-{{ plain.stdout }} state=directory\n",
    )
    .unwrap();
    let run = || {
        let child = tend(dir.path(), &["apply", "site.yml", "-i", "inv.ini"])
            .env("TEND_AGENT_BINARY", &slim)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait(child, Duration::from_secs(120))
    };
    let out = run();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(recap_line(&t, &h.name).contains("ok=4    changed=2"), "{t}");
    assert_eq!(
        lab.run(&h.name, &["cat", "/root/who"]).unwrap(),
        format!("{} root", tend_lab::DEPLOY_USER)
    );
    // What the login's cache holds is tend-agentd, byte for byte (so the worker was it too).
    let cached = lab
        .run(
            &h.name,
            &[
                "sh",
                "-c",
                &format!(
                    "sha256sum /home/{}/.cache/tend/agent-* | cut -d' ' -f1",
                    tend_lab::DEPLOY_USER
                ),
            ],
        )
        .unwrap();
    let local = Command::new("sha256sum").arg(&slim).output().unwrap();
    let local = String::from_utf8_lossy(&local.stdout);
    assert_eq!(cached.trim(), local.split_whitespace().next().unwrap());

    let again = run();
    let t = text(&again);
    assert_eq!(again.status.code(), Some(0), "{t}");
    assert!(recap_line(&t, &h.name).contains("ok=4    changed=0"), "{t}");
}
