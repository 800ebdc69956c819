//! cgroup v2 groups: `<cgroup2 mount>/tend-lab/<prefix>/<host>`. Every process of a host
//! lives in its group, so `cgroup.kill` stops exactly that host (race-free, forks included)
//! and an empty group proves nothing of it is left.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{IoContext, LabError, Result};

/// The lab's parent group under the cgroup2 root.
const PARENT: &str = "tend-lab";

/// Where cgroup v2 is mounted (`/sys/fs/cgroup` on a systemd machine,
/// `/sys/fs/cgroup/unified` on a hybrid one).
pub fn root() -> Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").at("/proc/self/mountinfo")?;
    cgroup2_mount(&text).ok_or(LabError::NoCgroup2)
}

fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mount_point = left.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
pub(crate) fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d[0] <= b'3' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// On a hybrid machine (cgroup v1 controllers, `name=systemd` v1 hierarchy), systemd-nspawn
/// mirrors a systemd-mode host's group into the `name=systemd` hierarchy: the same path below
/// that hierarchy's mount. `None` where there is no such hierarchy.
pub fn legacy_mirror(dir: &Path, root: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = legacy_systemd_mount(&text)?;
    Some(mount.join(dir.strip_prefix(root).ok()?))
}

fn legacy_systemd_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_whitespace();
        if r.next()? != "cgroup" {
            return None;
        }
        let options = r.nth(1)?;
        if !options.split(',').any(|o| o == "name=systemd") {
            return None;
        }
        Some(PathBuf::from(unescape(left.split_whitespace().nth(4)?)))
    })
}

/// The parent of every lab's group.
pub fn parent(root: &Path) -> PathBuf {
    root.join(PARENT)
}

/// A lab's group.
pub fn lab(root: &Path, prefix: &str) -> PathBuf {
    parent(root).join(prefix)
}

/// Create `dir` and its parents.
pub fn create(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).at(dir)
}

/// Kill every process in `dir` and its descendants (SIGKILL, by the kernel).
pub fn kill(dir: &Path) -> Result<()> {
    let file = dir.join("cgroup.kill");
    match fs::write(&file, "1") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(e).at(file).map_err(|e| LabError::Command {
                what: "cgroup.kill".into(),
                status: e.to_string(),
                stderr: String::new(),
                hint: "the lab needs Linux 5.14 or later (cgroup.kill)".into(),
            })
        }
        other => other.at(file),
    }
}

/// Is any process left in `dir` or below? (A missing group is empty.)
pub fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Wait until `dir` holds no process; false if some are still there at `timeout`.
pub fn wait_empty(dir: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !populated(dir) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes directly in `dir` (pids as the root pid namespace sees them).
pub fn procs(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The processes in `dir` and every group below it.
pub fn procs_tree(dir: &Path) -> Vec<u32> {
    let mut all = procs(dir);
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                all.extend(procs_tree(&e.path()));
            }
        }
    }
    all
}

/// Remove `dir` and the (empty) groups below it. A missing group is fine.
pub fn remove(dir: &Path) -> Result<()> {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&e.path())?;
            }
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(dir),
        _ => Ok(()),
    }
}

/// Remove the parent group if no lab uses it any more (callers hold the registry lock).
pub fn remove_parent_if_unused(root: &Path) {
    let _ = fs::remove_dir(parent(root));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_in_a_hybrid_layout() {
        let info = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            cgroup2_mount(info),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount("31 30 0:27 / /x rw - cgroup cgroup rw\n"),
            None
        );
    }

    #[test]
    fn finds_the_legacy_systemd_hierarchy() {
        let info = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
33 30 0:29 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd\n";
        assert_eq!(
            legacy_systemd_mount(info),
            Some(PathBuf::from("/sys/fs/cgroup/systemd"))
        );
        assert_eq!(
            legacy_systemd_mount(&info[..info.find("33 30").unwrap()]),
            None
        );
    }

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape(r"/run/a\040b"), "/run/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/tail\04"), r"/tail\04");
    }
}
