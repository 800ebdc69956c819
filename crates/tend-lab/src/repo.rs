//! The hosts' package repository. Hosts have no route out, so every package a test installs
//! comes from here: a flat apt repository built once per rootfs and package list, cached under
//! /var/cache/tend-lab, and bound read-only into every host at [`REPO_MOUNT`] with
//! `/etc/apt/sources.list` = [`SOURCES_LIST`] (and no other source).
//!
//! It holds [`PACKAGES`] with the dependency closure they need *on top of the rootfs* (found
//! by apt itself, run in a throwaway overlay of the rootfs in the root network namespace,
//! against the mirror this machine's apt uses), plus two versions of a tiny package built here,
//! [`DEMO_PACKAGE`] ([`DEMO_VERSIONS`]), so tests of `state: latest` and `name=version` do not
//! depend on what the mirror serves today.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{IoContext, LabError, Result};
use crate::lock::FileLock;
use crate::rootfs::{self, Prepared};
use crate::tool;

pub use crate::host::REPO_MOUNT;

/// Packages from the mirror, with what they depend on and recommend (apt installs
/// recommends by default, and so do ansible's and tend's apt modules). Adding one changes
/// [`key`], so the next lab downloads a fresh repository.
pub const PACKAGES: &[&str] = &[
    "nginx",        // the issue's web server: a daemon with a unit, a conffile and a reload
    "hello",        // tiny, no dependencies beyond libc
    "tree",         // tiny, a second name for list installs
    "redis-server", // the database tier of examples/three-tier
];

/// The locally built package: its versions are fixed, whatever the mirror does.
pub const DEMO_PACKAGE: &str = "tend-demo";
/// Its versions: apt's candidate is the last one.
pub const DEMO_VERSIONS: &[&str] = &["1.0", "2.0"];

/// Every host's `/etc/apt/sources.list`.
pub const SOURCES_LIST: &str = "deb [trusted=yes] file:/srv/tend-lab-repo ./\n";

/// The file in the repository that maps each mirror package to its version (see [`versions`]).
pub const VERSIONS_FILE: &str = "versions.json";

/// Bump when the way the repository is built changes.
const REVISION: u32 = 1;

/// apt-get inside the throwaway overlay: $1 the rootfs, $2 the build dir, then the packages.
/// In a private mount namespace (`unshare --mount`): the mounts vanish with it.
const DOWNLOAD_SCRIPT: &str = r#"set -e
lower=$1 b=$2
shift 2
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$b/upper,workdir=$b/work" "$b/root"
mount -t proc proc "$b/root/proc"
mkdir -p "$b/root/var/cache/apt/archives"
mount --bind "$b/debs" "$b/root/var/cache/apt/archives"
chroot "$b/root" apt-get -q update
chroot "$b/root" apt-get -q -y --download-only install "$@"
"#;

/// A built repository.
#[derive(Debug, Clone)]
pub struct Repo {
    pub key: String,
    pub dir: PathBuf,
}

impl Repo {
    /// The repository's `Packages` index.
    pub fn packages_file(&self) -> PathBuf {
        self.dir.join("Packages")
    }
}

/// What goes into the repository: the rootfs it completes, the package lists, the demo recipe.
pub fn key() -> String {
    let mut h = Sha256::new();
    h.update(rootfs::version());
    for p in PACKAGES {
        h.update([0]);
        h.update(p);
    }
    for v in DEMO_VERSIONS {
        h.update([1]);
        h.update(demo_control(v));
        h.update(demo_script(v));
    }
    h.update(DOWNLOAD_SCRIPT);
    let digest = hex::encode(h.finalize());
    format!("r{REVISION}-{}", &digest[..12])
}

/// Where the current repository lives.
pub fn dir() -> PathBuf {
    Path::new(rootfs::CACHE_DIR).join(format!("repo-{}", key()))
}

/// Make sure the current repository exists: download and publish it (a minute) if needed.
/// Needs the rootfs ([`rootfs::ensure`]). Concurrent callers wait on a file lock.
pub fn ensure(progress: &dyn Fn(&str)) -> Result<(Repo, Prepared)> {
    let repo = Repo {
        key: key(),
        dir: dir(),
    };
    if repo.dir.join(VERSIONS_FILE).exists() {
        return Ok((repo, Prepared::Ready));
    }
    let (rootfs, _) = rootfs::ensure(progress)?;
    fs::create_dir_all(rootfs::CACHE_DIR).at(rootfs::CACHE_DIR)?;
    let _lock = FileLock::exclusive(&Path::new(rootfs::CACHE_DIR).join(".repo.lock"))?;
    if repo.dir.join(VERSIONS_FILE).exists() {
        return Ok((repo, Prepared::Ready));
    }
    tool::require(&["unshare", "chroot", "dpkg-deb", "apt-ftparchive"])?;
    let mirror = rootfs::mirror();
    progress(&format!(
        "building the lab's package repository {} ({} and their dependencies from {mirror}, {DEMO_PACKAGE} {})",
        repo.key,
        PACKAGES.join(", "),
        DEMO_VERSIONS.join(" and "),
    ));
    build(&rootfs.dir, &repo.dir, &mirror)?;
    Ok((repo, Prepared::Built))
}

fn build(lower: &Path, dir: &Path, mirror: &str) -> Result<()> {
    let b = dir.with_extension("build");
    rootfs::remove_tree(&b)?;
    let debs = b.join("debs");
    for d in [b.join("upper/etc/apt"), b.join("work"), b.join("root")] {
        fs::create_dir_all(&d).at(&d)?;
    }
    fs::create_dir_all(debs.join("partial")).at(&debs)?;
    let sources = b.join("upper/etc/apt/sources.list");
    fs::write(&sources, format!("deb {mirror} {} main\n", rootfs::SUITE)).at(&sources)?;
    // The rootfs has no DNS (hosts have no route out); this apt runs in the root netns.
    let resolv = b.join("upper/etc/resolv.conf");
    let text = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    fs::write(&resolv, text).at(&resolv)?;

    let mut cmd = tool::command("unshare");
    for (k, v) in std::env::vars_os() {
        let k_str = k.to_string_lossy().to_ascii_lowercase();
        if matches!(k_str.as_str(), "http_proxy" | "https_proxy" | "no_proxy") {
            cmd.env(&k, v);
        }
    }
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["--mount", "--propagation", "private"])
        .args(["sh", "-c", DOWNLOAD_SCRIPT, "tend-lab-repo"])
        .arg(lower)
        .arg(&b)
        .args(PACKAGES);
    tool::run(
        &mut cmd,
        None,
        &format!("downloading {} from {mirror}", PACKAGES.join(", ")),
        &format!("check that `apt-get update` reaches {mirror} from this machine"),
    )?;
    rootfs::remove_tree(&debs.join("partial"))?;
    let _ = fs::remove_file(debs.join("lock"));

    for v in DEMO_VERSIONS {
        build_demo(&b, &debs, v)?;
    }
    publish(&debs)?;
    rootfs::remove_tree(dir)?;
    fs::rename(&debs, dir).at(dir)?;
    rootfs::remove_tree(&b)
}

fn demo_control(version: &str) -> String {
    format!(
        "Package: {DEMO_PACKAGE}\n\
         Version: {version}\n\
         Architecture: all\n\
         Maintainer: tend-lab <tend-lab@localhost>\n\
         Section: misc\n\
         Priority: optional\n\
         Description: tend's lab demo package, version {version}\n \
         Built by tend-lab with fixed content, so tests of versions do not depend on a mirror.\n"
    )
}

fn demo_script(version: &str) -> String {
    format!("#!/bin/sh\necho \"{DEMO_PACKAGE} {version}\"\n")
}

/// `tend-demo_<version>_all.deb`: `/usr/bin/tend-demo` prints its version and
/// `/usr/share/tend-demo/VERSION` holds it; the same bytes every time.
fn build_demo(build: &Path, debs: &Path, version: &str) -> Result<()> {
    let stage = build.join(format!("{DEMO_PACKAGE}-{version}"));
    let put = |rel: &str, text: &str, mode: u32| -> Result<()> {
        let path = stage.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        fs::write(&path, text).at(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).at(&path)
    };
    put("DEBIAN/control", &demo_control(version), 0o644)?;
    put(
        &format!("usr/bin/{DEMO_PACKAGE}"),
        &demo_script(version),
        0o755,
    )?;
    put(
        &format!("usr/share/{DEMO_PACKAGE}/VERSION"),
        &format!("{version}\n"),
        0o644,
    )?;
    for d in [
        "DEBIAN",
        "usr",
        "usr/bin",
        "usr/share",
        "usr/share/tend-demo",
    ] {
        let path = stage.join(d);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).at(&path)?;
    }
    let deb = debs.join(format!("{DEMO_PACKAGE}_{version}_all.deb"));
    tool::run(
        tool::command("dpkg-deb")
            // Fixed timestamps and owners: the same .deb on every machine.
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
        None,
        &format!("dpkg-deb --build {}", deb.display()),
        "check that dpkg-deb (package dpkg) works",
    )?;
    Ok(())
}

/// `Packages`, `Release` and [`VERSIONS_FILE`] for the .debs in `debs`.
fn publish(debs: &Path) -> Result<()> {
    let out = tool::run(
        tool::command("apt-ftparchive")
            .current_dir(debs)
            .args(["packages", "."]),
        None,
        &format!("apt-ftparchive packages in {}", debs.display()),
        "run tests/setup.sh (it installs apt-utils)",
    )?;
    let packages = debs.join("Packages");
    fs::write(&packages, &out.stdout).at(&packages)?;
    let out = tool::run(
        tool::command("apt-ftparchive")
            .current_dir(debs)
            .args(["release", "."]),
        None,
        &format!("apt-ftparchive release in {}", debs.display()),
        "run tests/setup.sh (it installs apt-utils)",
    )?;
    let release = debs.join("Release");
    fs::write(&release, &out.stdout).at(&release)?;
    let index = String::from_utf8_lossy(&fs::read(&packages).at(&packages)?).into_owned();
    let versions = VersionsFile {
        candidates: candidates(&index),
        local: vec![DEMO_PACKAGE.to_string()],
    };
    let path = debs.join(VERSIONS_FILE);
    let text = serde_json::to_string_pretty(&versions).expect("versions serialize") + "\n";
    fs::write(&path, text).at(&path)
}

/// [`VERSIONS_FILE`]: what a judge needs to normalise versions that follow the mirror.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct VersionsFile {
    /// Every package in the repository and the version apt would install (the highest).
    pub candidates: BTreeMap<String, String>,
    /// Packages built by the lab, with fixed versions (never normalised).
    pub local: Vec<String>,
}

/// The repository's packages and their candidate versions, from its [`VERSIONS_FILE`].
pub fn versions(dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = dir.join(VERSIONS_FILE);
    let text = fs::read_to_string(&path).at(&path)?;
    let file: VersionsFile = serde_json::from_str(&text).map_err(|e| LabError::BadRecord {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(file.candidates)
}

/// Each package of a `Packages` index with its highest version.
fn candidates(index: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for stanza in index.split("\n\n") {
        let field = |key: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
        };
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        match out.get(&name) {
            Some(have) if compare_versions(have, &version).is_ge() => {}
            _ => {
                out.insert(name, version);
            }
        }
    }
    out
}

/// Debian's version order (deb-version(7)): epoch, then upstream version and revision, each
/// compared as alternating non-digit parts (letters before non-letters, `~` before all, even
/// the end) and numbers.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((up, rev)) => (epoch, up, rev),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(mut a: &[u8], mut b: &[u8]) -> std::cmp::Ordering {
        use std::cmp::Ordering::Equal;
        while !a.is_empty() || !b.is_empty() {
            // Non-digit prefixes, character by character.
            loop {
                let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
                let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
                if ca.is_none() && cb.is_none() {
                    break;
                }
                let o = order(ca).cmp(&order(cb));
                if o != Equal {
                    return o;
                }
                a = &a[1..];
                b = &b[1..];
            }
            // Then numbers.
            let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
            let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let num = |s: &[u8]| {
                std::str::from_utf8(s)
                    .ok()
                    .and_then(|s| s.parse::<u128>().ok())
                    .unwrap_or(0)
            };
            let o = num(&a[..na]).cmp(&num(&b[..nb]));
            if o != Equal {
                return o;
            }
            a = &a[na..];
            b = &b[nb..];
        }
        Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| part(ra.as_bytes(), rb.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn debian_version_order() {
        assert_eq!(compare_versions("1.0", "2.0"), Less);
        assert_eq!(compare_versions("1.22.1-9", "1.22.1-9+deb12u1"), Less);
        assert_eq!(compare_versions("1.0~rc1", "1.0"), Less);
        assert_eq!(compare_versions("1:0.9", "2.0"), Greater);
        assert_eq!(compare_versions("1.10", "1.9"), Greater);
        assert_eq!(compare_versions("1.0a", "1.0+"), Less);
        assert_eq!(compare_versions("2.12-1", "2.12-1"), Equal);
        assert_eq!(compare_versions("2.12-1", "2.12-1"), Equal);
    }

    #[test]
    fn candidates_are_the_highest_version_of_each_package() {
        let index = "Package: tend-demo\nVersion: 2.0\nArchitecture: all\n\n\
                     Package: hello\nVersion: 2.10-3\n\n\
                     Package: tend-demo\nVersion: 1.0\n";
        let c = candidates(index);
        assert_eq!(c["tend-demo"], "2.0");
        assert_eq!(c["hello"], "2.10-3");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn the_key_follows_the_rootfs_and_the_lists() {
        let k = key();
        assert!(k.starts_with(&format!("r{REVISION}-")), "{k}");
        assert_eq!(k, key());
        assert!(dir().ends_with(format!("repo-{k}")));
        assert!(demo_control("2.0").contains("\nVersion: 2.0\n"));
    }
}
