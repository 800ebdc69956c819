//! One host: its directory (overlay upper and work layers, fstab, console log), its identity
//! written into the upper layer before first boot, how it boots and how commands run in it.
//!
//! A host boots as `sh (joins the host's cgroup) → nsenter --net → unshare --mount --uts
//! --ipc --pid --fork → sh BOOT_SCRIPT`: the boot script is PID 1 of the new pid namespace;
//! it gives eth0 its address, mounts the overlay, /proc, /sys, /dev/pts and /dev/shm from
//! the host's fstab (one `mount -a`), pivots into the overlay and becomes the lab's init
//! (`rootfs::INIT_PATH`). The
//! mounts exist only in the host's mount namespace: they vanish with its last process.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{IoContext, Result};
use crate::{net, tool, LabHost};

/// First argument: a cgroup.procs file. Moves this shell into that cgroup, then execs the
/// rest of its arguments: everything the command starts is in the host's cgroup.
const ENTER_CGROUP: &str = r#"echo $$ > "$1" && shift && exec "$@""#;

/// Runs as PID 1 of a host's new namespaces (see the module doc). $1: host dir, $2: address.
pub(crate) const BOOT_SCRIPT: &str = r#"# tend-lab: boot one lab host (see crates/tend-lab/src/host.rs)
set -e
d=$1
ip -batch - <<END
link set lo up
addr replace $2 dev eth0
link set eth0 up
END
mount -a -T "$d/fstab"
cd "$d/root"
pivot_root . .
umount -l .
cd /
exec /usr/lib/tend-lab/init
"#;

/// A host's directory in the lab's state dir.
#[derive(Debug, Clone)]
pub(crate) struct HostDir(pub PathBuf);

impl HostDir {
    pub fn upper(&self) -> PathBuf {
        self.0.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.0.join("work")
    }
    pub fn root(&self) -> PathBuf {
        self.0.join("root")
    }
    pub fn fstab(&self) -> PathBuf {
        self.0.join("fstab")
    }
    pub fn console(&self) -> PathBuf {
        self.0.join("console.log")
    }
    pub fn host_key(&self) -> PathBuf {
        self.upper().join("etc/ssh/ssh_host_ed25519_key")
    }
}

/// Users whose `~/.ssh/authorized_keys` hold the lab's key: (home relative to /).
const LOGIN_HOMES: &[&str] = &["root", "home/deploy", "home/nopw"];

/// Make the host's directories and the upper-layer directories its identity files go in.
pub(crate) fn prepare_dirs(
    lower: &Path,
    dir: &HostDir,
    mode: Mode,
    repo: Option<&Path>,
) -> Result<()> {
    for d in [dir.upper(), dir.work(), dir.root()] {
        fs::create_dir_all(&d).at(&d)?;
    }
    let upper = dir.upper();
    upper_dir(lower, &upper, Path::new("etc/ssh"))?;
    upper_dir(lower, &upper, Path::new("etc/apt"))?;
    for home in LOGIN_HOMES {
        upper_dir(lower, &upper, &Path::new(home).join(".ssh"))?;
    }
    if repo.is_some() {
        upper_dir(lower, &upper, Path::new("srv"))?;
        let mount_point = upper.join(REPO_MOUNT.trim_start_matches('/'));
        fs::create_dir_all(&mount_point).at(&mount_point)?;
        // The lab's repository and nothing else (hosts reach no mirror).
        let sources = upper.join("etc/apt/sources.list");
        fs::write(&sources, crate::repo::SOURCES_LIST).at(&sources)?;
        fs::set_permissions(&sources, fs::Permissions::from_mode(0o644)).at(&sources)?;
    }
    let fstab = fstab(lower, dir, mode, repo);
    fs::write(dir.fstab(), fstab).at(dir.fstab())
}

/// Create `rel` in the upper layer with the owner and mode the lower layer gives it, so the
/// merged view keeps them.
fn upper_dir(lower: &Path, upper: &Path, rel: &Path) -> Result<()> {
    let mut sub = PathBuf::new();
    for part in rel.components() {
        sub.push(part);
        let target = upper.join(&sub);
        if target.exists() {
            continue;
        }
        let source = lower.join(&sub);
        let meta = fs::symlink_metadata(&source).at(&source)?;
        fs::create_dir(&target).at(&target)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .at(&target)?;
        chown(&target, Some(meta.uid()), Some(meta.gid())).at(&target)?;
    }
    Ok(())
}

/// The mounts the boot script makes: the overlay; in raw mode also the kernel filesystems and
/// the package repository (systemd-nspawn mounts those itself in systemd mode).
fn fstab(lower: &Path, dir: &HostDir, mode: Mode, repo: Option<&Path>) -> String {
    let root = dir.root();
    let r = root.display();
    let mut text = format!(
        "# tend-lab: mounted by the host's boot script, in the host's own mount namespace\n\
         overlay {r} overlay lowerdir={},upperdir={},workdir={} 0 0\n",
        lower.display(),
        dir.upper().display(),
        dir.work().display(),
    );
    if mode == Mode::Raw {
        text.push_str(&format!(
            "proc {r}/proc proc nosuid,nodev,noexec 0 0\n\
             sysfs {r}/sys sysfs ro,nosuid,nodev,noexec 0 0\n\
             devpts {r}/dev/pts devpts newinstance,ptmxmode=0666,mode=0620,gid=5 0 0\n\
             tmpfs {r}/dev/shm tmpfs nosuid,nodev,mode=1777 0 0\n"
        ));
        if let Some(repo) = repo {
            text.push_str(&format!(
                "{} {r}{REPO_MOUNT} none bind,ro 0 0\n",
                repo.display()
            ));
        }
    }
    text
}

/// Start `ssh-keygen` for a new ed25519 key at `path` (no passphrase); wait with [`keygen_wait`].
pub(crate) fn keygen(path: &Path, comment: &str) -> Result<Child> {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    tool::command("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool::spawn_error("ssh-keygen", "ssh-keygen", e))
}

pub(crate) fn keygen_wait(child: Child, path: &Path) -> Result<String> {
    let out = child
        .wait_with_output()
        .map_err(|e| tool::spawn_error("ssh-keygen", "ssh-keygen", e))?;
    if !out.status.success() {
        return Err(tool::failed(
            &format!("ssh-keygen {}", path.display()),
            &out,
            "check that openssh-client is installed and the state dir is writable",
        ));
    }
    let public = path.with_extension("pub");
    fs::read_to_string(&public).at(public)
}

/// Write the host's identity into its upper layer: hostname, hosts file, machine-id and the
/// lab's key in root's, deploy's and nopw's authorized_keys. (Its host key is already there.)
pub(crate) fn write_identity(
    lower: &Path,
    dir: &HostDir,
    host: &LabHost,
    all: &[LabHost],
    client_public: &str,
) -> Result<()> {
    let upper = dir.upper();
    let write = |rel: &str, text: &str, mode: u32| -> Result<()> {
        let path = upper.join(rel);
        fs::write(&path, text).at(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).at(&path)
    };
    write("etc/hostname", &format!("{}\n", host.name), 0o644)?;
    write("etc/hosts", &hosts_file(all), 0o644)?;
    write("etc/machine-id", &format!("{}\n", random_hex(16)?), 0o444)?;
    for home in LOGIN_HOMES {
        let ssh = Path::new(home).join(".ssh");
        let rel = ssh.join("authorized_keys");
        let rel = rel.to_string_lossy();
        write(&rel, client_public, 0o600)?;
        let owner = fs::metadata(lower.join(&ssh)).at(lower.join(&ssh))?;
        let path = upper.join(&*rel);
        chown(&path, Some(owner.uid()), Some(owner.gid())).at(&path)?;
    }
    Ok(())
}

/// /etc/hosts of every host: itself and its lab mates by name.
pub(crate) fn hosts_file(all: &[LabHost]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for h in all {
        out.push_str(&format!("{}\t{}\n", h.ip, h.name));
    }
    out
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    let path = "/dev/urandom";
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .at(path)?;
    Ok(hex::encode(buf))
}

/// How a host runs: raw (the lab's init in plain namespaces) or under systemd-nspawn with
/// systemd as PID 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Raw,
    Systemd,
}

/// What a host boots with besides its directory.
pub(crate) struct Boot<'a> {
    pub mode: Mode,
    /// The raw boot script (written in the lab's state dir).
    pub script: &'a Path,
    /// The host's network namespace (also the root side of its veth pair).
    pub netns: &'a str,
    pub ip: Ipv4Addr,
    pub cgroup: &'a Path,
    /// `<prefix>-<host>`: the nspawn machine name.
    pub machine: &'a str,
    pub hostname: &'a str,
    /// The local package repository, bound read-only at [`REPO_MOUNT`].
    pub repo: Option<&'a Path>,
}

/// Where every host sees the lab's package repository (read-only).
pub const REPO_MOUNT: &str = "/srv/tend-lab-repo";

/// systemd mode: $1 host dir, $2 address, $3 netns, then systemd-nspawn's arguments. The
/// overlay is mounted in this process's private mount namespace (made by `unshare`), so it
/// vanishes with the host; nspawn then boots systemd on it inside the host's netns.
pub(crate) const SYSTEMD_BOOT_SCRIPT: &str = r#"# tend-lab: boot one systemd-mode lab host (see crates/tend-lab/src/host.rs)
set -e
d=$1 ip=$2 ns=$3
shift 3
ip -n "$ns" -batch - <<END
link set lo up
addr replace $ip dev eth0
link set eth0 up
END
mount -a -T "$d/fstab"
exec systemd-nspawn "$@"
"#;

/// systemd-nspawn's arguments for a host (after the script's own three).
fn nspawn_args(dir: &HostDir, b: &Boot) -> Vec<String> {
    let mut args = vec![
        "--quiet".to_string(),
        "--boot".into(),
        format!("--directory={}", dir.root().display()),
        format!("--network-namespace-path=/run/netns/{}", b.netns),
        format!("--machine={}", b.machine),
        format!("--hostname={}", b.hostname),
        // No machined, no scope unit: the host stays in the lab's cgroup, where
        // cgroup.kill stops it, and nothing is registered anywhere else.
        "--register=no".into(),
        "--keep-unit".into(),
        "--link-journal=no".into(),
        "--resolv-conf=off".into(),
        "--timezone=off".into(),
        "--settings=no".into(),
        // The console is the host's console.log.
        "--console=read-only".into(),
    ];
    if let Some(repo) = b.repo {
        args.push(format!("--bind-ro={}:{REPO_MOUNT}", repo.display()));
    }
    args
}

/// Boot a prepared host: its processes all join `cgroup`; its console output goes to
/// `console.log` in its dir.
pub(crate) fn boot(dir: &HostDir, b: &Boot) -> Result<Child> {
    let console = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.console())
        .at(dir.console())?;
    let console_err = console.try_clone().at(dir.console())?;
    let mut cmd = tool::command("sh");
    cmd.args(["-c", ENTER_CGROUP, "tend-lab-boot"])
        .arg(b.cgroup.join("cgroup.procs"));
    match b.mode {
        Mode::Raw => {
            cmd.arg("nsenter")
                .arg(format!("--net=/run/netns/{}", b.netns))
                .args(["unshare", "--mount", "--uts", "--ipc", "--pid", "--fork"])
                .args(["--propagation", "private", "sh"])
                .arg(b.script)
                .arg(&dir.0)
                .arg(format!("{}/24", b.ip));
        }
        Mode::Systemd => {
            cmd.args(["unshare", "--mount", "--propagation", "private"])
                .args(["sh", "-c", SYSTEMD_BOOT_SCRIPT, "tend-lab-boot"])
                .arg(&dir.0)
                .arg(format!("{}/24", b.ip))
                .arg(b.netns)
                .args(nspawn_args(dir, b))
                // The host gets its own cgroup2 tree (a cgroup namespace rooted at the
                // host's group), also on machines whose systemd hierarchy is cgroup v1.
                .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1");
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(console)
        .stderr(console_err)
        // Its own process group: a Ctrl-C meant for the caller does not stop the hosts.
        .process_group(0)
        .spawn()
        .map_err(|e| tool::spawn_error("sh", "booting a host", e))
}

/// The host's PID 1 (as the root pid namespace numbers it), if the host is running.
pub(crate) fn init_pid(cgroup: &Path) -> Option<u32> {
    // systemd (systemd mode) moves itself into `init.scope` below the host's group.
    crate::cgroup::procs_tree(cgroup).into_iter().find(|pid| {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("NSpid:"))?;
                let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
                Some(ids.len() == 2 && ids[1] == "1")
            })
            .unwrap_or(false)
    })
}

/// Run `argv` inside a running host (all its namespaces, its root, its cgroup): not over
/// ssh, so it works while sshd is down.
pub(crate) fn exec(
    init: u32,
    cgroup: &Path,
    mode: Mode,
    argv: &[&str],
    stdin: Option<&[u8]>,
    what: &str,
) -> Result<Output> {
    tool::output(
        tool::command("sh")
            .args(["-c", ENTER_CGROUP, "tend-lab-exec"])
            .arg(cgroup.join("cgroup.procs"))
            .arg("nsenter")
            .args([
                "-t",
                &init.to_string(),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "-r",
                "-w",
            ])
            // systemd mode: also the host's cgroup namespace, so the command sees the
            // cgroup tree the host's systemd sees.
            .args(if mode == Mode::Systemd {
                &["-C"][..]
            } else {
                &[]
            })
            .arg("--")
            .args(argv)
            .env("HOME", "/root"),
        stdin,
        what,
    )
}

/// Wait until `ip`:22 accepts (`open`) or refuses (`!open`) connections; false at `deadline`.
pub(crate) fn wait_port(ip: Ipv4Addr, open: bool, deadline: Instant) -> bool {
    loop {
        if port_open(ip) == open {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn port_open(ip: Ipv4Addr) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, 22)), Duration::from_millis(300)).is_ok()
}

/// The host's name for `n` of `count` hosts: h01, h02, ... (h001 past 99 hosts).
pub fn host_name(n: usize, count: usize) -> String {
    if count > 99 {
        format!("h{n:03}")
    } else {
        format!("h{n:02}")
    }
}

/// The hosts of lab `index`.
pub(crate) fn plan_hosts(index: u8, count: usize) -> Vec<LabHost> {
    (1..=count)
        .map(|n| LabHost {
            name: host_name(n, count),
            ip: net::host_ip(index, n),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zero_padded_to_sort() {
        assert_eq!(host_name(1, 3), "h01");
        assert_eq!(host_name(50, 50), "h50");
        assert_eq!(host_name(7, 120), "h007");
        let hosts = plan_hosts(5, 2);
        assert_eq!(hosts[1].name, "h02");
        assert_eq!(hosts[1].ip.to_string(), "10.250.5.12");
    }

    #[test]
    fn fstab_mounts_the_overlay_first_then_the_kernel_filesystems() {
        let dir = HostDir(PathBuf::from("/run/tend-lab/tl1/hosts/h01"));
        let repo = Path::new("/var/cache/tend-lab/repo-x");
        let text = fstab(
            Path::new("/var/lib/tend-lab/rootfs-x"),
            &dir,
            Mode::Raw,
            Some(repo),
        );
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines[0],
            "overlay /run/tend-lab/tl1/hosts/h01/root overlay lowerdir=/var/lib/tend-lab/rootfs-x,\
             upperdir=/run/tend-lab/tl1/hosts/h01/upper,workdir=/run/tend-lab/tl1/hosts/h01/work 0 0"
        );
        assert!(lines[1].starts_with("proc /run/tend-lab/tl1/hosts/h01/root/proc proc "));
        assert!(lines[3].contains("devpts newinstance"));
        assert_eq!(
            lines[5],
            "/var/cache/tend-lab/repo-x /run/tend-lab/tl1/hosts/h01/root/srv/tend-lab-repo none bind,ro 0 0"
        );
        // systemd-nspawn mounts the rest itself.
        let text = fstab(Path::new("/l"), &dir, Mode::Systemd, Some(repo));
        assert_eq!(text.lines().skip(1).count(), 1);
    }

    #[test]
    fn raw_boot_ends_in_the_labs_init_not_systemd() {
        let last = BOOT_SCRIPT.trim_end().lines().last().unwrap();
        assert_eq!(last, format!("exec {}", crate::rootfs::INIT_PATH));
    }

    #[test]
    fn hosts_file_names_every_lab_host() {
        let text = hosts_file(&plan_hosts(2, 2));
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.ends_with("10.250.2.11\th01\n10.250.2.12\th02\n"));
    }
}
