//! The hosts' shared root filesystem: a Debian bookworm minbase built once with debootstrap,
//! cached as a zstd tarball under /var/cache/tend-lab and unpacked under /var/lib/tend-lab,
//! where every host mounts it as the read-only lower layer of its overlay.
//!
//! Nothing host-specific lives here (no ssh host keys, machine-id, hostname, hosts file):
//! each host gets those in its own upper layer (`host.rs`).

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, LabError, Result};
use crate::lock::FileLock;
use crate::tool;

/// The Debian release of every host.
pub const SUITE: &str = "bookworm";

/// Packages on top of minbase. Adding one here changes [`version`], so the next lab builds a
/// fresh rootfs (1-5 minutes) and caches it.
pub const PACKAGES: &[&str] = &[
    "openssh-server",
    "python3",
    "python3-apt", // ansible-core's apt module needs it on the target
    "sudo",
    "iproute2",
    "procps",
    "cron",
    "git",
    "unzip",
    "xz-utils",
    // systemd mode (`LabBuilder::systemd`): systemd-nspawn boots systemd as the host's PID 1.
    // Raw mode keeps its own init (`INIT_PATH`) and ignores these.
    "systemd",
    "systemd-sysv",
    "dbus",
];

/// Bump when what [`customize`] does changes (the scripts and files below are hashed anyway).
const REVISION: u32 = 2;

/// Where unpacked root filesystems live (one directory per version).
pub const LIB_DIR: &str = "/var/lib/tend-lab";
/// Where the tarballs are cached.
pub const CACHE_DIR: &str = "/var/cache/tend-lab";

/// Used when the machine's apt sources name no bookworm mirror.
const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";

/// Users for become tests: (name, uid, sudoers rule). Their passwords are in [`customize`].
pub const DEPLOY_USER: &str = "deploy";
/// `deploy`'s password: sudo asks for it.
pub const DEPLOY_PASSWORD: &str = "deploy-pw";
/// A user whose sudo needs no password.
pub const NOPW_USER: &str = "nopw";
const USERS: &[(&str, u32)] = &[(DEPLOY_USER, 1000), (NOPW_USER, 1001)];
const SUDOERS: &str = "# tend-lab: users for become tests\n\
deploy ALL=(ALL:ALL) ALL\n\
nopw ALL=(ALL:ALL) NOPASSWD: ALL\n";

/// Where raw mode's init lives in the rootfs (`/sbin/init` is systemd's, for systemd mode).
/// Its base name stays `init`, so /proc/1/comm reads `init` and service managers are
/// detected as on a sysvinit host (ansible's `service_mgr` fact: `sysvinit`).
pub(crate) const INIT_PATH: &str = "/usr/lib/tend-lab/init";

/// PID 1 of every raw-mode host: set the hostname, start runlevel 2's services (sshd, cron,
/// ...) the way sysvinit would, then reap orphans until the lab kills the host's cgroup.
/// dbus is skipped: only systemd mode needs it.
pub(crate) const INIT_SCRIPT: &str = r#"#!/bin/sh
# tend-lab init: PID 1 of a raw-mode lab host (see crates/tend-lab).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
read -r name < /etc/hostname && echo "$name" > /proc/sys/kernel/hostname
for s in /etc/rc2.d/S*; do
    case "$s" in *dbus) continue ;; esac
    [ -x "$s" ] && "$s" start
done
# The lab stops a host with cgroup.kill; ignore polite signals like sysvinit does.
trap : TERM INT HUP
# `wait` reaps every child, orphans included.
while :; do
    sleep 2147483647 &
    wait
done
"#;

/// `runlevel` for invoke-rc.d (package maintainer scripts start their daemons with it): raw
/// hosts are always in runlevel 2; under systemd, systemd-sysv's own (diverted) runlevel.
const RUNLEVEL_SHIM: &str = "#!/bin/bash\n\
# tend-lab: raw-mode hosts always run in runlevel 2; systemd-mode hosts ask systemd\n\
if [ -d /run/systemd/system ]; then exec -a runlevel /usr/sbin/runlevel.systemd \"$@\"; fi\n\
echo N 2\n";

/// Units systemd-mode hosts never run: no console login (the console is a log file), and no
/// apt timers (they would take the dpkg lock in the middle of a test).
const MASKED_UNITS: &[&str] = &[
    "console-getty.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
];

/// sshd settings of every host (read before sshd_config's own lines, so they win).
pub(crate) const SSHD_CONFIG: &str = "# tend-lab: key-only logins, one ed25519 host key per host\n\
HostKey /etc/ssh/ssh_host_ed25519_key\n\
PasswordAuthentication no\n\
KbdInteractiveAuthentication no\n\
PermitRootLogin prohibit-password\n\
UseDNS no\n";

/// Keep later package installs small too (docs, man pages and translations are not installed).
const DPKG_EXCLUDES: &str = "# tend-lab: slim hosts\n\
path-exclude /usr/share/doc/*\n\
path-include /usr/share/doc/*/copyright\n\
path-exclude /usr/share/man/*\n\
path-exclude /usr/share/info/*\n\
path-exclude /usr/share/locale/*\n\
path-include /usr/share/locale/locale.alias\n";

/// A root filesystem ready to be an overlay's lower layer.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub version: String,
    pub dir: PathBuf,
}

/// What [`ensure`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// It was unpacked already.
    Ready,
    /// Unpacked from the cached tarball.
    Unpacked,
    /// Built with debootstrap, then cached.
    Built,
}

/// The rootfs version: the suite, the revision and a digest of everything that goes into it.
pub fn version() -> String {
    let mut h = Sha256::new();
    h.update(SUITE);
    for p in PACKAGES {
        h.update([0]);
        h.update(p);
    }
    for part in [
        INIT_SCRIPT,
        RUNLEVEL_SHIM,
        SSHD_CONFIG,
        SUDOERS,
        DPKG_EXCLUDES,
        DEPLOY_PASSWORD,
        INIT_PATH,
    ] {
        h.update([1]);
        h.update(part);
    }
    for (name, uid) in USERS {
        h.update(format!("{name}:{uid}"));
    }
    for unit in MASKED_UNITS {
        h.update([2]);
        h.update(unit);
    }
    let digest = hex::encode(h.finalize());
    format!("{SUITE}-r{REVISION}-{}", &digest[..12])
}

/// The unpacked directory of the current version.
pub fn dir() -> PathBuf {
    Path::new(LIB_DIR).join(format!("rootfs-{}", version()))
}

/// The cached tarball of the current version.
pub fn tarball() -> PathBuf {
    Path::new(CACHE_DIR).join(format!("rootfs-{}.tar.zst", version()))
}

fn ready_marker(dir: &Path) -> PathBuf {
    dir.with_extension("ready")
}

/// Make sure the current rootfs is unpacked: build it (debootstrap, minutes) or unpack the
/// cached tarball (seconds) if needed. Concurrent callers wait on a file lock; `progress`
/// hears what is going on (the library never prints).
pub fn ensure(progress: &dyn Fn(&str)) -> Result<(Rootfs, Prepared)> {
    let rootfs = Rootfs {
        version: version(),
        dir: dir(),
    };
    let marker = ready_marker(&rootfs.dir);
    if marker.exists() {
        return Ok((rootfs, Prepared::Ready));
    }
    fs::create_dir_all(LIB_DIR).at(LIB_DIR)?;
    fs::create_dir_all(CACHE_DIR).at(CACHE_DIR)?;
    let _lock = FileLock::exclusive(&Path::new(LIB_DIR).join(".lock"))?;
    if marker.exists() {
        return Ok((rootfs, Prepared::Ready));
    }
    let tarball = tarball();
    let how = if tarball.exists() {
        progress(&format!(
            "unpacking the lab rootfs {} from {}",
            rootfs.version,
            tarball.display()
        ));
        unpack(&tarball, &rootfs.dir)?;
        Prepared::Unpacked
    } else {
        tool::require(&["debootstrap", "unshare", "chroot", "tar", "zstd"])?;
        let mirror = mirror();
        progress(&format!(
            "building the lab rootfs {} with debootstrap from {mirror} (1-5 minutes)",
            rootfs.version
        ));
        build(&rootfs.dir, &tarball, &mirror, progress)?;
        Prepared::Built
    };
    fs::write(&marker, format!("{}\n", rootfs.version)).at(&marker)?;
    Ok((rootfs, how))
}

fn build(dir: &Path, tarball: &Path, mirror: &str, progress: &dyn Fn(&str)) -> Result<()> {
    let build = dir.with_extension("build");
    remove_tree(&build)?;
    let log = dir.with_extension("log");
    let started = Instant::now();
    let log_file = fs::File::create(&log).at(&log)?;
    let log_err = log_file.try_clone().at(&log)?;
    // debootstrap mounts /proc and /sys inside the target: in a private mount namespace,
    // so no other namespace keeps copies of those mounts.
    let mut debootstrap = tool::command("unshare");
    // debootstrap downloads with wget: keep the machine's proxy settings.
    for (k, v) in std::env::vars_os() {
        let k_str = k.to_string_lossy().to_ascii_lowercase();
        if matches!(k_str.as_str(), "http_proxy" | "https_proxy" | "no_proxy") {
            debootstrap.env(&k, v);
        }
    }
    let status = debootstrap
        .args(["--mount", "--propagation", "private", "debootstrap"])
        .arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .args([SUITE, &build.to_string_lossy(), mirror])
        .stdin(std::process::Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .status()
        .map_err(|e| tool::spawn_error("unshare", "debootstrap", e))?;
    if !status.success() {
        let text = fs::read_to_string(&log).unwrap_or_default();
        return Err(LabError::Command {
            what: format!("debootstrap {SUITE} from {mirror}"),
            status: status.to_string(),
            stderr: tool::tail(&text, 8),
            hint: format!(
                "see {}; check that `apt-get update` reaches {mirror}",
                log.display()
            ),
        });
    }
    progress(&format!(
        "debootstrap done in {:.0} s; customizing",
        started.elapsed().as_secs_f64()
    ));
    customize(&build)?;
    progress(&format!("caching it as {}", tarball.display()));
    pack(&build, tarball)?;
    remove_tree(dir)?;
    fs::rename(&build, dir).at(dir)?;
    Ok(())
}

/// Turn debootstrap's output into the lab's rootfs: no host identity, the become users,
/// sshd and init as the lab runs them, no caches.
fn customize(root: &Path) -> Result<()> {
    // Host identity comes from each host's own layer.
    for rel in [
        "etc/machine-id",
        "var/lib/dbus/machine-id",
        "etc/hostname",
        "etc/hosts",
    ] {
        remove_file(&root.join(rel))?;
    }
    let ssh = root.join("etc/ssh");
    for entry in fs::read_dir(&ssh).at(&ssh)? {
        let entry = entry.at(&ssh)?;
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            remove_file(&entry.path())?;
        }
    }
    write(
        root,
        "etc/resolv.conf",
        "# tend-lab hosts have no DNS and no route out\n",
        0o644,
    )?;

    // Users for become tests.
    for (name, uid) in USERS {
        tool::run(
            tool::command("chroot").arg(root).args([
                "useradd",
                "--create-home",
                "--shell",
                "/bin/bash",
                "--uid",
                &uid.to_string(),
                "--user-group",
                name,
            ]),
            None,
            &format!("useradd {name} in the rootfs"),
            "see the message above",
        )?;
    }
    // The password goes on stdin, never in argv.
    tool::run(
        tool::command("chroot").arg(root).arg("chpasswd"),
        Some(format!("{DEPLOY_USER}:{DEPLOY_PASSWORD}\n").as_bytes()),
        "chpasswd in the rootfs",
        "see the message above",
    )?;
    // nopw: no password at all, but not "locked" either ("*", not "!"), so sshd lets it in.
    let shadow = root.join("etc/shadow");
    let text = fs::read_to_string(&shadow).at(&shadow)?;
    let text = text.replace(&format!("\n{NOPW_USER}:!:"), &format!("\n{NOPW_USER}:*:"));
    fs::write(&shadow, text).at(&shadow)?;
    write(root, "etc/sudoers.d/tend-lab", SUDOERS, 0o440)?;
    ssh_dir(root, Path::new("root"), 0, 0)?;
    for (name, uid) in USERS {
        ssh_dir(root, &Path::new("home").join(name), *uid, *uid)?;
    }

    // sshd and init.
    write(
        root,
        "etc/ssh/sshd_config.d/tend-lab.conf",
        SSHD_CONFIG,
        0o644,
    )?;
    let run_sshd = root.join("run/sshd");
    fs::create_dir_all(&run_sshd).at(&run_sshd)?;
    write(root, INIT_PATH.trim_start_matches('/'), INIT_SCRIPT, 0o755)?;
    // systemd-sysv's runlevel (a systemctl link) moves aside for the shim, as dpkg knows.
    tool::run(
        tool::command("chroot").arg(root).args([
            "dpkg-divert",
            "--local",
            "--rename",
            "--divert",
            "/usr/sbin/runlevel.systemd",
            "--add",
            "/usr/sbin/runlevel",
        ]),
        None,
        "dpkg-divert runlevel in the rootfs",
        "see the message above",
    )?;
    write(root, "usr/sbin/runlevel", RUNLEVEL_SHIM, 0o755)?;
    let units = root.join("etc/systemd/system");
    fs::create_dir_all(&units).at(&units)?;
    for unit in MASKED_UNITS {
        let link = units.join(unit);
        remove_file(&link)?;
        std::os::unix::fs::symlink("/dev/null", &link).at(&link)?;
    }

    // Slim: no package lists or caches (hosts reach no mirror anyway), docs or translations.
    write(
        root,
        "etc/dpkg/dpkg.cfg.d/tend-lab-slim",
        DPKG_EXCLUDES,
        0o644,
    )?;
    for rel in [
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/man",
        "usr/share/info",
    ] {
        empty_dir(&root.join(rel), &["partial", "lock"])?;
    }
    empty_dir(&root.join("usr/share/locale"), &["locale.alias"])?;
    let doc = root.join("usr/share/doc");
    for entry in fs::read_dir(&doc).at(&doc)? {
        let entry = entry.at(&doc)?;
        let path = entry.path();
        if entry.file_type().at(&path)?.is_dir() {
            empty_dir(&path, &["copyright"])?;
        } else {
            remove_file(&path)?;
        }
    }
    Ok(())
}

fn ssh_dir(root: &Path, home: &Path, uid: u32, gid: u32) -> Result<()> {
    let dir = root.join(home).join(".ssh");
    fs::create_dir_all(&dir).at(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).at(&dir)?;
    chown(&dir, Some(uid), Some(gid)).at(&dir)
}

fn write(root: &Path, rel: &str, text: &str, mode: u32) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    fs::write(&path, text).at(&path)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).at(&path)
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}

pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}

/// Remove everything in `dir` except the entries named in `keep`.
fn empty_dir(dir: &Path, keep: &[&str]) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(dir),
    };
    for entry in entries {
        let entry = entry.at(dir)?;
        if keep.iter().any(|k| entry.file_name() == **k) {
            continue;
        }
        let path = entry.path();
        if entry.file_type().at(&path)?.is_dir() {
            remove_tree(&path)?;
        } else {
            remove_file(&path)?;
        }
    }
    Ok(())
}

fn pack(root: &Path, tarball: &Path) -> Result<()> {
    let tmp = tarball.with_extension("zst.tmp");
    tool::run(
        tool::command("tar")
            .arg("-C")
            .arg(root)
            .args(["--numeric-owner", "--xattrs", "--xattrs-include=*"])
            .args(["-I", "zstd -T0 -3", "-cf"])
            .arg(&tmp)
            .arg("."),
        None,
        &format!("packing {}", root.display()),
        "check the free space under /var/cache",
    )?;
    fs::rename(&tmp, tarball).at(tarball)
}

fn unpack(tarball: &Path, dir: &Path) -> Result<()> {
    tool::require(&["tar", "zstd"])?;
    let tmp = dir.with_extension("unpack");
    remove_tree(&tmp)?;
    fs::create_dir_all(&tmp).at(&tmp)?;
    tool::run(
        tool::command("tar")
            .arg("-C")
            .arg(&tmp)
            .args(["--numeric-owner", "--xattrs", "--xattrs-include=*"])
            .args(["-I", "zstd -d -T0", "-xpf"])
            .arg(tarball),
        None,
        &format!("unpacking {}", tarball.display()),
        "delete the tarball to rebuild it: `rm` it and run `tend-lab rootfs`",
    )?;
    remove_tree(dir)?;
    fs::rename(&tmp, dir).at(dir)
}

/// The mirror this machine's apt uses for the suite, else deb.debian.org.
pub fn mirror() -> String {
    let mut sources = Vec::new();
    let main = Path::new("/etc/apt/sources.list");
    if let Ok(text) = fs::read_to_string(main) {
        sources.push(("sources.list".to_string(), text));
    }
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".list") || name.ends_with(".sources") {
                if let Ok(text) = fs::read_to_string(&f) {
                    sources.push((name, text));
                }
            }
        }
    }
    mirror_in(&sources, SUITE).unwrap_or_else(|| FALLBACK_MIRROR.to_string())
}

/// The first http(s) URI that apt sources (one-line `.list` or deb822 `.sources`) give for
/// binary packages of exactly `suite` (not `suite-updates` or `suite-security`).
fn mirror_in(files: &[(String, String)], suite: &str) -> Option<String> {
    let web = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    for (name, text) in files {
        if name.ends_with(".sources") {
            for stanza in text.split("\n\n") {
                let field = |key: &str| {
                    stanza
                        .lines()
                        .filter(|l| !l.trim_start().starts_with('#'))
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim()
                                .eq_ignore_ascii_case(key)
                                .then(|| v.trim().to_string())
                        })
                };
                let types = field("Types").unwrap_or_default();
                let enabled = field("Enabled").is_none_or(|v| v != "no");
                let suites = field("Suites").unwrap_or_default();
                if enabled
                    && types.split_whitespace().any(|t| t == "deb")
                    && suites.split_whitespace().any(|s| s == suite)
                {
                    if let Some(uri) = field("URIs")
                        .unwrap_or_default()
                        .split_whitespace()
                        .find(|u| web(u))
                    {
                        return Some(uri.trim_end_matches('/').to_string());
                    }
                }
            }
        } else {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                let mut words = line.split_whitespace();
                if words.next() != Some("deb") {
                    continue;
                }
                // Skip options like [arch=amd64 signed-by=...].
                let mut rest: Vec<&str> = words.collect();
                if rest.first().is_some_and(|w| w.starts_with('[')) {
                    let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
                    rest.drain(..=end);
                }
                if let [uri, s, ..] = rest.as_slice() {
                    if *s == suite && web(uri) {
                        return Some(uri.trim_end_matches('/').to_string());
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, text: &str) -> (String, String) {
        (name.to_string(), text.to_string())
    }

    #[test]
    fn mirror_from_deb822_sources_skips_security_and_updates() {
        let files = [f(
            "debian.sources",
            "Types: deb\n# snapshot\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n\
             Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n",
        )];
        assert_eq!(
            mirror_in(&files, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn mirror_from_one_line_list_with_options() {
        let files = [
            f("a.list", "# deb http://nope.example/debian bookworm main\n"),
            f(
                "sources.list",
                "deb-src http://src.example/debian bookworm main\n\
                 deb [arch=amd64 signed-by=/k.gpg] https://m.example/debian bookworm main contrib\n",
            ),
        ];
        assert_eq!(
            mirror_in(&files, "bookworm").as_deref(),
            Some("https://m.example/debian")
        );
    }

    #[test]
    fn no_mirror_for_other_suites_or_disabled_stanzas() {
        let files = [
            f("x.list", "deb http://m.example/debian trixie main\n"),
            f(
                "y.sources",
                "Types: deb\nEnabled: no\nURIs: http://m.example/debian\nSuites: bookworm\n",
            ),
        ];
        assert_eq!(mirror_in(&files, "bookworm"), None);
    }

    #[test]
    fn version_is_stable_and_names_the_suite() {
        let v = version();
        assert!(v.starts_with("bookworm-r"), "{v}");
        assert_eq!(v, version());
        assert!(dir().ends_with(format!("rootfs-{v}")));
    }
}
