//! Keeping the host cache small: every tend upgrade leaves an agent binary (~9 MB) and every
//! change of the playbook tree an unpacked bundle. Each session marks what it uses (mtime) and
//! removes what is both old and not among the newest few: the running agent and anything used
//! within [`KEEP_FRESH`] (a run of another controller may be using it) always stay.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Used more recently than this: kept, whatever else is there.
pub const KEEP_FRESH: Duration = Duration::from_secs(3600);
/// The newest this many agents, and bundles, are kept however old.
pub const KEEP_RECENT: usize = 3;

/// Marks `path` (a cached agent or bundle directory) as used now.
pub fn touch(path: &Path) {
    if let Ok(f) = fs::File::open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Removes old agents (`agent-<hex>` in `cache_dir`), old bundles (`<hex>` in `bundles_dir`)
/// and leftovers of cut uploads (`.agent-*`, `.*.partial-*`, older than [`KEEP_FRESH`]); never
/// `running`. Best effort: a file that cannot be removed stays. Returns what was removed.
pub fn prune(cache_dir: &Path, bundles_dir: &Path, running: Option<&Path>) -> Vec<PathBuf> {
    let now = SystemTime::now();
    let mut removed = Vec::new();
    let agents = entries(cache_dir, |n| hex_after(n, "agent-"));
    let bundles = entries(bundles_dir, |n| hex_after(n, ""));
    for (mut list, dir) in [(agents, false), (bundles, true)] {
        // Newest first.
        list.sort_by_key(|e| std::cmp::Reverse(e.1));
        for (path, mtime) in list.into_iter().skip(KEEP_RECENT) {
            let fresh = now
                .duration_since(mtime)
                .map_or(true, |age| age < KEEP_FRESH);
            let is_running = running.is_some_and(|r| same_file(r, &path));
            if fresh || is_running {
                continue;
            }
            if remove(&path, dir) {
                removed.push(path);
            }
        }
    }
    for (dir, is_dir) in [(cache_dir, false), (bundles_dir, true)] {
        let leftovers = entries(dir, |n| {
            n.starts_with(".agent-") || (n.starts_with('.') && n.contains(".partial-"))
        });
        for (path, mtime) in leftovers {
            if now.duration_since(mtime).is_ok_and(|age| age >= KEEP_FRESH) && remove(&path, is_dir)
            {
                removed.push(path);
            }
        }
    }
    removed
}

/// A bundle directory is first renamed away (one atomic step: the boot script never sees a
/// half-removed bundle with its manifest still there), then removed.
fn remove(path: &Path, dir: bool) -> bool {
    if !dir {
        return fs::remove_file(path).is_ok();
    }
    let Some(name) = path.file_name() else {
        return false;
    };
    let trash = path.with_file_name(format!(
        ".{}.partial-prune-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    fs::rename(path, &trash).is_ok() && fs::remove_dir_all(&trash).is_ok()
}

fn hex_after(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|h| h.len() >= 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The entries of `dir` whose names pass `keep`, with their mtimes (not following symlinks).
fn entries(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(PathBuf, SystemTime)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .filter_map(|e| {
            let m = e.path().symlink_metadata().ok()?;
            Some((e.path(), m.modified().ok()?))
        })
        .collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path, secs: u64) {
        let f = fs::File::open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn old_agents_and_bundles_go_the_newest_and_the_running_one_stay() {
        let cache = tempfile::tempdir().unwrap();
        let bundles = cache.path().join("bundles");
        fs::create_dir(&bundles).unwrap();
        let agent = |i: usize| cache.path().join(format!("agent-{i:032x}"));
        let bundle = |i: usize| bundles.join(format!("{i:064x}"));
        // Six agents and six bundles, i days old (0 = just used).
        for i in 0..6 {
            fs::write(agent(i), b"agent").unwrap();
            fs::create_dir(bundle(i)).unwrap();
            fs::write(bundle(i).join("manifest.json"), b"{}").unwrap();
            aged(&agent(i), i as u64 * 86400);
            aged(&bundle(i), i as u64 * 86400);
        }
        // A cut upload of yesterday, one in progress, and an unrelated file.
        fs::write(cache.path().join(".agent-00ff.123"), b"x").unwrap();
        aged(&cache.path().join(".agent-00ff.123"), 86400);
        fs::write(cache.path().join(".agent-00ff.456"), b"x").unwrap();
        fs::write(cache.path().join("notes.txt"), b"mine").unwrap();
        // The running agent is the oldest.
        let removed = prune(cache.path(), &bundles, Some(&agent(5)));
        for i in 0..3 {
            assert!(agent(i).exists() && bundle(i).exists(), "newest {i} kept");
        }
        assert!(!agent(3).exists() && !agent(4).exists());
        assert!(agent(5).exists(), "the running agent is never removed");
        for i in 3..6 {
            assert!(!bundle(i).exists(), "old bundle {i} removed");
        }
        assert!(!cache.path().join(".agent-00ff.123").exists());
        assert!(
            cache.path().join(".agent-00ff.456").exists(),
            "fresh upload kept"
        );
        assert!(cache.path().join("notes.txt").exists());
        assert_eq!(removed.len(), 6, "{removed:?}");
        let left: Vec<_> = fs::read_dir(&bundles).unwrap().collect();
        assert_eq!(left.len(), 3, "no trash left behind");
    }

    #[test]
    fn recently_used_entries_stay_even_beyond_the_newest_few() {
        let cache = tempfile::tempdir().unwrap();
        let bundles = cache.path().join("bundles");
        for i in 0..6 {
            let a = cache.path().join(format!("agent-{i:032x}"));
            fs::write(&a, b"agent").unwrap();
            aged(&a, 60 * i as u64);
        }
        assert!(prune(cache.path(), &bundles, None).is_empty());
        // Touching marks as used.
        let old = cache.path().join(format!("agent-{:032x}", 9));
        fs::write(&old, b"agent").unwrap();
        aged(&old, 86400);
        touch(&old);
        assert!(prune(cache.path(), &bundles, None).is_empty());
    }
}
