//! The controller's files, as this process sees them.
//!
//! Some files of a run are read on the controller in Ansible even though the task runs on the
//! target: `copy src=`, `template src=`, `include_tasks` files, `include_role`, `include_vars`,
//! `with_fileglob`, the `file`/`template`/`fileglob`/`first_found` lookups, and the snippets of
//! diagnostics. Every such read goes through this module, with the path the controller knows
//! (the one the user wrote, the one messages show).
//!
//! Locally (the engine running hosts in-process) nothing is installed and every path is itself.
//! A remote agent installs the map of controller roots to the directories it unpacked the
//! bundle into (`tend_agent::bundle`); then a controller path under a root reads the unpacked
//! copy, and any other path reads nothing: [`resolve`] says why, in words for the user.
//!
//! Target-side paths (`dest`, `remote_src`, `stat`, `find` …) never come here.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The installed view: controller root → local directory.
struct Map {
    /// Most specific root first, for matching.
    by_depth: Vec<(PathBuf, PathBuf)>,
    /// The roots in the order given (the playbook directory first), for messages.
    roots: Vec<PathBuf>,
}

impl Map {
    fn new(map: Vec<(PathBuf, PathBuf)>) -> Self {
        let map: Vec<(PathBuf, PathBuf)> = map
            .into_iter()
            .map(|(root, dir)| (normalize(&root).unwrap_or(root), dir))
            .collect();
        let roots = map.iter().map(|(r, _)| r.clone()).collect();
        let mut by_depth = map;
        by_depth.sort_by_key(|(root, _)| std::cmp::Reverse(root.components().count()));
        Map { by_depth, roots }
    }
}

static VIEW: RwLock<Option<Arc<Map>>> = RwLock::new(None);

/// Where [`local`] points a controller path that was not shipped: a path that does not exist
/// (`/nonexistent` is Debian's home of users without one, never created).
const NOWHERE: &str = "/nonexistent/tend-not-shipped";

/// Makes controller paths under each root read from its local copy, for the rest of the
/// process (a later call replaces the map). The first root is the playbook directory (messages
/// tell users to move files there); when roots nest, the most specific one wins.
pub fn install(map: Vec<(PathBuf, PathBuf)>) {
    let map = Map::new(map);
    let mut view = VIEW.write().unwrap_or_else(|e| e.into_inner());
    *view = Some(Arc::new(map));
}

/// Back to reading the controller's paths as they are (the local engine's case).
pub fn uninstall() {
    let mut view = VIEW.write().unwrap_or_else(|e| e.into_inner());
    *view = None;
}

/// Whether controller files come from a shipped bundle: this process runs on a remote host.
pub fn is_remote() -> bool {
    view().is_some()
}

/// The controller roots that were shipped (empty when nothing is installed).
pub fn roots() -> Vec<PathBuf> {
    view().map(|m| m.roots.clone()).unwrap_or_default()
}

fn view() -> Option<Arc<Map>> {
    VIEW.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A controller path that was not shipped to this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotShipped {
    pub path: PathBuf,
    /// The shipped roots, first the playbook directory.
    pub roots: Vec<PathBuf>,
}

impl fmt::Display for NotShipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self
            .roots
            .first()
            .map(|r| r.display().to_string())
            .unwrap_or_else(|| "the playbook directory".into());
        if self.path.is_relative() {
            write!(
                f,
                "{} is a relative path, and on SSH hosts tend can only read controller files under the playbook directory and its roles; write it relative to a search directory (files/, templates/, vars/) or under {first}",
                self.path.display()
            )
        } else {
            write!(
                f,
                "{} is outside the playbook directory and its roles, which is what tend ships to SSH hosts; move it under {first}",
                self.path.display()
            )
        }
    }
}

impl std::error::Error for NotShipped {}

impl From<NotShipped> for io::Error {
    fn from(e: NotShipped) -> Self {
        io::Error::new(io::ErrorKind::NotFound, e)
    }
}

/// Where this process reads the controller path `p`: `p` itself when nothing is installed, the
/// unpacked copy when `p` lies under a shipped root, and an error saying so otherwise.
pub fn resolve(p: &Path) -> Result<PathBuf, NotShipped> {
    let Some(map) = view() else {
        return Ok(p.to_path_buf());
    };
    resolve_in(&map, p)
}

fn resolve_in(map: &Map, p: &Path) -> Result<PathBuf, NotShipped> {
    let not_shipped = || NotShipped {
        path: p.to_path_buf(),
        roots: map.roots.clone(),
    };
    let norm = normalize(p).ok_or_else(not_shipped)?;
    for (root, dir) in &map.by_depth {
        if let Ok(rel) = norm.strip_prefix(root) {
            return Ok(if rel.as_os_str().is_empty() {
                dir.clone()
            } else {
                dir.join(rel)
            });
        }
    }
    Err(not_shipped())
}

/// [`resolve`], with a path that does not exist for a path that was not shipped (so reading it
/// fails the way a missing file does). Use [`resolve`] where the error is shown to the user.
pub fn local(p: &Path) -> PathBuf {
    resolve(p).unwrap_or_else(|e| {
        let rel: PathBuf = e
            .path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        Path::new(NOWHERE).join(rel)
    })
}

/// Why `p` cannot be found on this host beyond "it does not exist", for "not found" messages:
/// `Some` only on a remote host, for a path outside what was shipped.
pub fn not_shipped(p: &Path) -> Option<NotShipped> {
    resolve(p).err()
}

/// An absolute path without `.` and `..` components (resolved lexically, as the bundle, which
/// holds no symlinks, is laid out); `None` for a relative path.
pub fn normalize(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Reads a controller file.
pub fn read(p: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(resolve(p)?)
}

/// Reads a controller file as UTF-8 text.
pub fn read_to_string(p: &Path) -> io::Result<String> {
    std::fs::read_to_string(resolve(p)?)
}

/// Metadata of a controller file (following symlinks).
pub fn metadata(p: &Path) -> io::Result<std::fs::Metadata> {
    std::fs::metadata(resolve(p)?)
}

pub fn exists(p: &Path) -> bool {
    local(p).exists()
}

pub fn is_file(p: &Path) -> bool {
    local(p).is_file()
}

pub fn is_dir(p: &Path) -> bool {
    local(p).is_dir()
}

pub fn is_symlink(p: &Path) -> bool {
    local(p).is_symlink()
}

/// The entries of a controller directory, as controller paths, sorted by name.
pub fn read_dir(p: &Path) -> io::Result<Vec<PathBuf>> {
    let mut names: Vec<_> = std::fs::read_dir(resolve(p)?)?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| p.join(n)).collect())
}

/// Why [`glob`] could not run.
#[derive(Clone, Debug, thiserror::Error)]
pub enum GlobError {
    #[error("invalid glob pattern '{pattern}': {msg}")]
    Pattern { pattern: String, msg: String },
    #[error("{0}")]
    NotShipped(NotShipped),
}

/// The controller paths matching a glob pattern (unsorted; unreadable entries left out).
///
/// On a remote host the pattern's literal directory part must lie under a shipped root: the
/// pattern is moved onto the unpacked copy, and the matches back onto the controller's paths.
pub fn glob(pattern: &str) -> Result<Vec<PathBuf>, GlobError> {
    let run = |pat: &str| {
        glob::glob(pat)
            .map(|paths| paths.filter_map(Result::ok).collect::<Vec<_>>())
            .map_err(|e| GlobError::Pattern {
                pattern: pattern.to_string(),
                msg: e.to_string(),
            })
    };
    let Some(map) = view() else {
        return run(pattern);
    };
    // The leading components without wildcards name a directory that must have been shipped.
    let is_magic = |s: &str| s.contains(['*', '?', '[']);
    let parts: Vec<&str> = pattern.split('/').collect();
    let literal = parts.iter().take_while(|s| !is_magic(s)).count();
    let (fixed, rest) = parts.split_at(literal);
    let fixed = if fixed.len() == 1 && fixed[0].is_empty() {
        "/".to_string()
    } else {
        fixed.join("/")
    };
    let fixed = Path::new(&fixed);
    let root_local = resolve_in(&map, fixed).map_err(GlobError::NotShipped)?;
    let norm = normalize(fixed).unwrap_or_else(|| fixed.to_path_buf());
    let mut local_pattern = glob::Pattern::escape(&root_local.to_string_lossy());
    for part in rest {
        local_pattern.push('/');
        local_pattern.push_str(part);
    }
    Ok(run(&local_pattern)?
        .into_iter()
        .filter_map(|m| m.strip_prefix(&root_local).ok().map(|rel| norm.join(rel)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Map {
        Map::new(vec![
            (PathBuf::from("/srv/play/"), PathBuf::from("/cache/b/r0")),
            (
                PathBuf::from("/srv/play/roles/x"),
                PathBuf::from("/cache/b/r1"),
            ),
            (PathBuf::from("/opt"), PathBuf::from("/cache/b/r2")),
        ])
    }

    #[test]
    fn paths_under_a_root_map_to_its_copy_and_the_most_specific_root_wins() {
        let m = map();
        let r = |p: &str| resolve_in(&m, Path::new(p));
        assert_eq!(
            r("/srv/play/site.yml"),
            Ok(PathBuf::from("/cache/b/r0/site.yml"))
        );
        assert_eq!(r("/srv/play"), Ok(PathBuf::from("/cache/b/r0")));
        assert_eq!(
            r("/srv/play/roles/x/tasks/main.yml"),
            Ok(PathBuf::from("/cache/b/r1/tasks/main.yml"))
        );
        assert_eq!(
            r("/srv/play/./files/../templates/a.j2"),
            Ok(PathBuf::from("/cache/b/r0/templates/a.j2"))
        );
        assert_eq!(
            r("/opt/y/files/f"),
            Ok(PathBuf::from("/cache/b/r2/y/files/f"))
        );
    }

    #[test]
    fn paths_outside_every_root_say_where_to_move_them() {
        let m = map();
        let e = resolve_in(&m, Path::new("/srv/play/../secrets/key")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/srv/play/../secrets/key is outside the playbook directory and its roles, which is what tend ships to SSH hosts; move it under /srv/play"), "{msg}");
        // A sibling with a common string prefix is not under the root.
        assert!(resolve_in(&m, Path::new("/srv/playground/x")).is_err());
        let rel = resolve_in(&m, Path::new("files/x"))
            .unwrap_err()
            .to_string();
        assert!(rel.contains("is a relative path"), "{rel}");
    }
}
