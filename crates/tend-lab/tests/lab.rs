//! Real hosts on this machine: these tests need root (CI runs as root) and fail, saying so,
//! without it. The first run builds the rootfs (minutes); tests/setup.sh does that up front.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tend_lab::{Lab, LabError};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "tend-lab's tests start real hosts (network namespaces, mounts, cgroups) and need root: \
         run them as root, as CI does"
    );
}

fn start(hosts: usize) -> Lab {
    require_root();
    Lab::start(hosts).unwrap_or_else(|e| panic!("starting a lab of {hosts}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ssh -F ssh_config HOST ARGS...`
fn ssh(lab: &Lab, host: &str, args: &[&str]) -> Output {
    lab.ssh(host)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn assert_ssh_ok(lab: &Lab, host: &str, args: &[&str]) -> String {
    let out = ssh(lab, host, args);
    assert!(
        out.status.success(),
        "ssh {host} {args:?} failed ({}): {}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn assert_ssh_fails_with(lab: &Lab, host: &str, needles: &[&str]) {
    let out = ssh(lab, host, &["true"]);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(255),
        "ssh {host} should fail: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "ssh {host}: expected {n:?} in: {err}");
    }
}

/// Where cgroup v2 is mounted here (as the lab finds it, but independently).
fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| PathBuf::from(left.split_whitespace().nth(4).unwrap()))
        })
        .expect("a cgroup2 mount")
}

/// Nothing of lab `prefix` is left: no netns, link, mount, cgroup, state dir, or any of
/// `pids` alive.
fn assert_nothing_left(prefix: &str, pids: &[u32]) {
    let ours = format!("{prefix}-");
    let netns = text(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        !netns.lines().any(|l| l.starts_with(&ours)),
        "netns left: {netns}"
    );
    let links = text(
        &Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!links.contains(&format!(": {ours}")), "links left: {links}");
    let state = PathBuf::from(tend_lab::STATE_ROOT).join(prefix);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&state.display().to_string())
            && !mounts.contains(&format!("/run/netns/{ours}")),
        "mounts left: {mounts}"
    );
    assert!(!state.exists(), "state dir left: {}", state.display());
    let cg = cgroup2_root().join("tend-lab").join(prefix);
    assert!(!cg.exists(), "cgroup left: {}", cg.display());
    // systemd-nspawn's mirror in a hybrid machine's name=systemd hierarchy (systemd mode).
    let mirror = PathBuf::from("/sys/fs/cgroup/systemd/tend-lab").join(prefix);
    assert!(!mirror.exists(), "cgroup left: {}", mirror.display());
    let nspawns = text(
        &Command::new("pgrep")
            .args(["-f", &format!("systemd-nspawn .*--machine={ours}")])
            .output()
            .unwrap()
            .stdout,
    );
    assert_eq!(nspawns, "", "systemd-nspawn left running");
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "process {pid} of the lab still runs: {stat}"
        );
    }
}

#[test]
fn each_host_answers_strict_ssh_with_its_own_name_and_cannot_reach_outside() {
    let lab = start(3);
    assert_eq!(lab.hosts().len(), 3);
    for h in lab.hosts() {
        assert_eq!(assert_ssh_ok(&lab, &h.name, &["hostname"]).trim(), h.name);
        // Its own /etc and dpkg database, on the lab's subnet.
        let ip = assert_ssh_ok(&lab, &h.name, &["ip", "-4", "-o", "addr", "show", "eth0"]);
        assert!(ip.contains(&format!("inet {}/24", h.ip)), "{ip}");
    }
    // No default route: a packet for the outside has nowhere to go.
    assert_eq!(
        lab.run("h01", &["ip", "route", "show", "default"]).unwrap(),
        ""
    );
    let out = lab
        .exec(
            "h02",
            &[
                "python3",
                "-c",
                "import socket; socket.create_connection(('1.1.1.1', 80), 3)",
            ],
        )
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Network is unreachable"),
        "{}",
        text(&out.stderr)
    );
    // Hosts reach each other by name.
    let peer = lab
        .exec(
            "h01",
            &[
                "python3",
                "-c",
                "import socket; socket.create_connection(('h03', 22), 3); print('ok')",
            ],
        )
        .unwrap();
    assert_eq!(text(&peer.stdout).trim(), "ok", "{}", text(&peer.stderr));
    // exec runs inside the host: its pid namespace, with init as PID 1.
    let comm = lab.run("h03", &["cat", "/proc/1/comm"]).unwrap();
    assert_eq!(comm.trim(), "init");
    assert_eq!(lab.run("h03", &["hostname"]).unwrap().trim(), "h03");
    // The inventory names every host in group lab.
    let inv = std::fs::read_to_string(lab.inventory_path()).unwrap();
    assert!(inv.contains("[lab]\nh01 ansible_host="), "{inv}");
    let key_mode = std::fs::metadata(lab.key_path()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn become_users_deploy_needs_its_password_and_nopw_does_not() {
    let lab = start(1);
    let as_nopw = lab
        .ssh("h01")
        .args(["-l", "nopw", "sudo", "-n", "id", "-u"])
        .output()
        .unwrap();
    assert_eq!(
        text(&as_nopw.stdout).trim(),
        "0",
        "{}",
        text(&as_nopw.stderr)
    );
    let no_password = lab
        .ssh("h01")
        .args(["-l", "deploy", "sudo", "-n", "true"])
        .output()
        .unwrap();
    assert!(!no_password.status.success());
    assert!(text(&no_password.stderr).contains("password is required"));
    let mut with_password = lab
        .ssh("h01")
        // One remote command line: ssh would drop an empty argument.
        .args(["-l", "deploy", "sudo -S -p '' id -u"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    with_password
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", tend_lab::DEPLOY_PASSWORD).as_bytes())
        .unwrap();
    let out = with_password.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout).trim(), "0");
    // Key-only: sshd offers no password authentication.
    let pw = lab
        .ssh("h01")
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PasswordAuthentication=yes",
            "-l",
            "deploy",
            "true",
        ])
        .output()
        .unwrap();
    assert!(
        text(&pw.stderr).contains("Permission denied (publickey)"),
        "{}",
        text(&pw.stderr)
    );
}

#[test]
fn stop_sshd_refuses_connections_until_it_starts_again() {
    let lab = start(1);
    lab.run("h01", &["touch", "/root/still-here"]).unwrap();
    lab.stop_sshd("h01").unwrap();
    assert_ssh_fails_with(&lab, "h01", &["Connection refused"]);
    // The host itself is up: exec still works.
    assert_eq!(
        lab.run("h01", &["ls", "/root/still-here"]).unwrap().trim(),
        "/root/still-here"
    );
    lab.start_sshd("h01").unwrap();
    assert_ssh_ok(&lab, "h01", &["true"]);
}

#[test]
fn a_rotated_host_key_fails_verification_and_a_forgotten_one_is_unknown() {
    let lab = start(2);
    lab.rotate_host_key("h01").unwrap();
    assert_ssh_fails_with(
        &lab,
        "h01",
        &[
            "REMOTE HOST IDENTIFICATION HAS CHANGED",
            "Host key verification failed",
        ],
    );
    // The other host is untouched.
    assert_ssh_ok(&lab, "h02", &["true"]);
    lab.trust_host_key("h01").unwrap();
    assert_ssh_ok(&lab, "h01", &["true"]);

    lab.forget_host_key("h02").unwrap();
    assert_ssh_fails_with(
        &lab,
        "h02",
        &[
            "No ED25519 host key is known",
            "Host key verification failed",
        ],
    );
    assert_ssh_ok(&lab, "h01", &["true"]);
}

#[test]
fn kill_host_drops_an_open_session_and_boot_host_brings_it_back() {
    let lab = start(1);
    lab.run("h01", &["sh", "-c", "echo kept > /root/mark"])
        .unwrap();
    let mut session = lab
        .ssh("h01")
        .args(["echo started; exec sleep 60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(session.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "started");

    let killed_at = Instant::now();
    lab.kill_host("h01").unwrap();
    let status = session.wait().unwrap();
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "the session should drop at once"
    );
    assert_eq!(status.code(), Some(255), "ssh reports a dropped connection");
    assert!(matches!(
        lab.exec("h01", &["true"]),
        Err(LabError::HostDown { .. })
    ));
    assert_ssh_fails_with(&lab, "h01", &["Connection refused"]);

    lab.boot_host("h01").unwrap();
    assert_eq!(
        assert_ssh_ok(&lab, "h01", &["cat", "/root/mark"]).trim(),
        "kept"
    );
}

#[test]
fn an_unplugged_host_is_unreachable_until_plugged_back() {
    let lab = start(1);
    lab.unplug("h01").unwrap();
    let out = lab
        .ssh("h01")
        .args(["-o", "ConnectTimeout=2", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let err = text(&out.stderr);
    assert!(
        err.contains("timed out") || err.contains("No route to host"),
        "{err}"
    );
    lab.plug("h01").unwrap();
    assert_ssh_ok(&lab, "h01", &["true"]);
}

#[test]
fn stop_leaves_nothing_behind_and_is_idempotent() {
    let mut lab = start(2);
    let prefix = lab.prefix().to_string();
    let pids = lab.processes();
    assert!(
        pids.len() >= 2 * 3,
        "init, sshd and more per host: {pids:?}"
    );
    // An extra process started inside a host dies with it too.
    lab.run(
        "h02",
        &[
            "sh",
            "-c",
            "setsid sleep 600 > /dev/null 2>&1 < /dev/null &",
        ],
    )
    .unwrap();
    let pids = lab.processes();
    lab.stop().unwrap();
    lab.stop().unwrap();
    assert_nothing_left(&prefix, &pids);
}

#[test]
fn two_labs_run_at_once_on_separate_subnets() {
    require_root();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Lab::start(2).unwrap());
        let b = s.spawn(|| Lab::start(2).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.prefix(), b.prefix());
    assert_ne!(a.subnet(), b.subnet());
    for lab in [&a, &b] {
        for h in lab.hosts() {
            assert_eq!(assert_ssh_ok(lab, &h.name, &["hostname"]).trim(), h.name);
        }
    }
    // One lab's key opens no host of the other.
    let cross = Command::new("ssh")
        .arg("-F")
        .arg(a.ssh_config_path())
        .args([
            "-o",
            &format!("HostName={}", b.hosts()[0].ip),
            "h01",
            "true",
        ])
        .output()
        .unwrap();
    assert!(!cross.status.success());
    let (pa, pb) = (a.prefix().to_string(), b.prefix().to_string());
    drop(a);
    assert_nothing_left(&pa, &[]);
    assert_ssh_ok(&b, "h01", &["true"]);
    drop(b);
    assert_nothing_left(&pb, &[]);
}

#[test]
fn a_kept_lab_outlives_its_handle_until_stopped_by_prefix() {
    require_root();
    let lab = Lab::builder().hosts(1).keep_running(true).start().unwrap();
    let prefix = lab.prefix().to_string();
    drop(lab);
    let attached = Lab::attach(&prefix).unwrap();
    assert_eq!(attached.run("h01", &["hostname"]).unwrap().trim(), "h01");
    let pids = attached.processes();
    drop(attached);
    assert!(tend_lab::list()
        .iter()
        .any(|l| l.prefix == prefix && !l.stale));
    tend_lab::down(&prefix).unwrap();
    assert_nothing_left(&prefix, &pids);
    assert!(matches!(
        tend_lab::down(&prefix),
        Err(LabError::NoSuchLab(_))
    ));
}

#[test]
fn bad_requests_are_refused_before_anything_starts() {
    require_root();
    let too_many = Lab::builder()
        .hosts(tend_lab::MAX_HOSTS + 1)
        .start()
        .unwrap_err();
    assert!(
        matches!(too_many, LabError::BadHostCount { .. }),
        "{too_many}"
    );
    let bad = Lab::builder().prefix("Bad-Name").start().unwrap_err();
    assert!(bad.to_string().contains("hint:"), "{bad}");
    let lab = start(1);
    let unknown = lab.exec("h09", &["true"]).unwrap_err();
    assert!(
        unknown.to_string().contains("h01"),
        "names the hosts there are: {unknown}"
    );
}

/// Run by the next test in a child process: start a lab, then die without any cleanup.
#[test]
#[ignore = "helper of a_lab_left_by_a_crashed_process_is_cleaned_up_by_the_next_start"]
#[allow(clippy::print_stdout)]
fn crash_helper_starts_a_lab_and_aborts() {
    if std::env::var_os("TEND_LAB_CRASH_HELPER").is_none() {
        return;
    }
    // A prefix of its own, so the slot the next start may reuse is not mistaken for it.
    let lab = Lab::builder().hosts(2).prefix("crashed").start().unwrap();
    println!("PREFIX={}", lab.prefix());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::abort();
}

#[test]
fn a_lab_left_by_a_crashed_process_is_cleaned_up_by_the_next_start() {
    require_root();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_helper_starts_a_lab_and_aborts",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("TEND_LAB_CRASH_HELPER", "1")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let prefix = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PREFIX="))
        .unwrap_or_else(|| panic!("helper printed no prefix: {stdout}\n{}", text(&out.stderr)))
        .to_string();
    assert!(!out.status.success(), "the helper aborts");
    // Its hosts outlived it (and another test's start may already be cleaning them up).
    let pids: Vec<u32> = tend_lab::list()
        .iter()
        .filter(|l| l.prefix == prefix)
        .inspect(|l| assert!(l.stale, "a lab whose owner died is stale"))
        .flat_map(|_| {
            let dir = cgroup2_root().join("tend-lab").join(&prefix);
            ["h01", "h02"]
                .iter()
                .flat_map(|h| {
                    std::fs::read_to_string(dir.join(h).join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect::<Vec<u32>>()
        })
        .collect();
    let next = start(1);
    assert_ne!(next.prefix(), prefix);
    assert_nothing_left(&prefix, &pids);
}

/// `systemctl is-system-running --wait` inside `host`: "running", or why not.
fn system_state(lab: &Lab, host: &str) -> String {
    let out = lab
        .exec(host, &["systemctl", "is-system-running", "--wait"])
        .unwrap();
    let state = text(&out.stdout).trim().to_string();
    if state == "running" {
        return state;
    }
    let failed = lab
        .exec(host, &["systemctl", "--failed", "--no-legend", "--plain"])
        .unwrap();
    format!("{state}; failed units: {}", text(&failed.stdout))
}

#[test]
fn a_systemd_host_runs_systemd_units_and_ssh_and_leaves_nothing_on_stop() {
    require_root();
    let mut lab = Lab::builder()
        .hosts(2)
        .systemd(true)
        .start()
        .unwrap_or_else(|e| panic!("starting a systemd lab: {e}"));
    assert!(lab.is_systemd());
    let prefix = lab.prefix().to_string();
    for h in lab.hosts() {
        assert_eq!(system_state(&lab, &h.name), "running", "{}", h.name);
        assert_eq!(assert_ssh_ok(&lab, &h.name, &["hostname"]).trim(), h.name);
        assert_eq!(
            lab.run(&h.name, &["cat", "/proc/1/comm"]).unwrap().trim(),
            "systemd"
        );
    }
    // sshd is systemd's ssh.service, with the lab's host key (strict ssh above) and users.
    assert_eq!(
        lab.run("h01", &["systemctl", "is-active", "ssh.service"])
            .unwrap()
            .trim(),
        "active"
    );
    let as_nopw = lab
        .ssh("h02")
        .args(["-l", "nopw", "sudo", "-n", "id", "-u"])
        .output()
        .unwrap();
    assert_eq!(
        text(&as_nopw.stdout).trim(),
        "0",
        "{}",
        text(&as_nopw.stderr)
    );

    // A unit of our own: enabled, started, running, and its process in the lab's cgroup.
    let unit = "[Unit]\nDescription=tend-lab test unit\n\n[Service]\nExecStart=/bin/sleep 3141\n\n\
                [Install]\nWantedBy=multi-user.target\n";
    lab.exec_with_input(
        "h01",
        &[
            "sh",
            "-c",
            "cat > /etc/systemd/system/tend-lab-test.service",
        ],
        unit.as_bytes(),
    )
    .unwrap();
    lab.run("h01", &["systemctl", "daemon-reload"]).unwrap();
    lab.run(
        "h01",
        &["systemctl", "enable", "--now", "tend-lab-test.service"],
    )
    .unwrap();
    assert_eq!(
        lab.run("h01", &["systemctl", "is-active", "tend-lab-test.service"])
            .unwrap()
            .trim(),
        "active"
    );
    assert_eq!(
        lab.run("h01", &["systemctl", "is-enabled", "tend-lab-test.service"])
            .unwrap()
            .trim(),
        "enabled"
    );
    let sleeper = lab.processes().into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c == "/bin/sleep\x003141\x00")
    });
    assert!(
        sleeper.is_some(),
        "the unit's process is in the lab's cgroup"
    );
    // A packaged daemon: its maintainer script enables and starts its unit under systemd.
    let install = lab
        .exec(
            "h02",
            &[
                "sh",
                "-c",
                "apt-get update -q && apt-get install -y -q nginx",
            ],
        )
        .unwrap();
    assert!(
        install.status.success(),
        "{}{}",
        text(&install.stdout),
        text(&install.stderr)
    );
    assert_eq!(
        lab.run("h02", &["systemctl", "is-active", "nginx.service"])
            .unwrap()
            .trim(),
        "active"
    );
    // The host's own pid namespace: the other host does not see it.
    let other = lab.exec("h02", &["pgrep", "-f", "sleep 3141"]).unwrap();
    assert!(!other.status.success());

    // Faults work as in raw mode.
    lab.stop_sshd("h02").unwrap();
    assert_ssh_fails_with(&lab, "h02", &["Connection refused"]);
    lab.start_sshd("h02").unwrap();
    assert_ssh_ok(&lab, "h02", &["true"]);
    lab.kill_host("h01").unwrap();
    assert!(matches!(
        lab.exec("h01", &["true"]),
        Err(LabError::HostDown { .. })
    ));
    lab.boot_host("h01").unwrap();
    assert_eq!(system_state(&lab, "h01"), "running");
    // Its files survived the kill: the unit is enabled, so it runs again after the boot.
    assert_eq!(
        lab.run("h01", &["systemctl", "is-active", "tend-lab-test.service"])
            .unwrap()
            .trim(),
        "active"
    );

    let pids = lab.processes();
    lab.stop().unwrap();
    assert_nothing_left(&prefix, &pids);
}

#[test]
fn hosts_install_packages_from_the_labs_repository_offline() {
    let lab = start(1);
    let versions = lab.repo_versions().unwrap();
    assert_eq!(versions.get("tend-demo").map(String::as_str), Some("2.0"));
    assert!(versions.contains_key("hello"), "{versions:?}");
    assert!(versions.contains_key("nginx"), "{versions:?}");
    // Only the lab's repository: nothing else is configured.
    let sources = lab.run("h01", &["cat", "/etc/apt/sources.list"]).unwrap();
    assert_eq!(sources, tend_lab::repo::SOURCES_LIST);
    let update = lab.run("h01", &["apt-get", "update"]).unwrap();
    assert!(update.contains("file:/srv/tend-lab-repo"), "{update}");
    let install = lab
        .exec(
            "h01",
            &["apt-get", "install", "-y", "-q", "hello", "tend-demo=1.0"],
        )
        .unwrap();
    assert!(
        install.status.success(),
        "{}{}",
        text(&install.stdout),
        text(&install.stderr)
    );
    assert_eq!(lab.run("h01", &["hello"]).unwrap().trim(), "Hello, world!");
    assert_eq!(
        lab.run("h01", &["tend-demo"]).unwrap().trim(),
        "tend-demo 1.0"
    );
    // The repository is read-only inside the host.
    let write = lab.exec("h01", &["touch", "/srv/tend-lab-repo/x"]).unwrap();
    assert!(!write.status.success());
    // An upgrade to the candidate, and a daemon started by its package's maintainer script
    // (invoke-rc.d, raw mode: init.d, not systemctl).
    let upgrade = lab
        .exec(
            "h01",
            &["apt-get", "install", "-y", "-q", "tend-demo", "nginx"],
        )
        .unwrap();
    assert!(
        upgrade.status.success(),
        "{}{}",
        text(&upgrade.stdout),
        text(&upgrade.stderr)
    );
    assert_eq!(
        lab.run(
            "h01",
            &["dpkg-query", "-W", "-f", "${Version}", "tend-demo"]
        )
        .unwrap(),
        "2.0"
    );
    lab.run("h01", &["pgrep", "-x", "nginx"]).unwrap();
}
