//! Which controller directories a remote host needs: what goes into its bundle
//! (`tend_agent::bundle`).

use std::path::{Path, PathBuf};

use tend_lang::playbook::Loader;

use crate::Prepared;

/// The directories to ship to remote hosts, the playbook directory first: the directory of
/// every playbook file, every role the plays use, and the role search path (for
/// `include_role` at run time) where it exists. Absolute, and none inside another.
pub fn bundle_roots(prep: &Prepared) -> Vec<PathBuf> {
    if prep.adhoc {
        // `tend ping` and other one-module runs read no controller files.
        return Vec::new();
    }
    let mut dirs: Vec<PathBuf> = vec![prep.playbook.dir.clone()];
    let mut search = Loader::new(&prep.playbook.dir).roles_paths;
    for play in &prep.playbook.plays {
        dirs.push(play.dir.clone());
        dirs.extend(play.roles.iter().map(|r| PathBuf::from(&r.path)));
        search.extend(Loader::new(&play.dir).roles_paths);
    }
    dirs.extend(search.into_iter().filter(|d| d.is_dir()));
    outermost(dirs.iter().map(|d| absolute(d)).collect())
}

/// The paths not inside another one of them, first occurrence order kept.
fn outermost(dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for d in &dirs {
        if dirs.iter().any(|o| o != d && d.starts_with(o)) || out.contains(d) {
            continue;
        }
        out.push(d.clone());
    }
    out
}

/// Absolute, without `.` and `..` (lexically: the path the user means, which is also how a
/// remote host's view of controller paths resolves them).
fn absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    tend_lang::ctlfs::normalize(&abs).unwrap_or(abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_repeated_roots_are_dropped_keeping_the_playbook_dir_first() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            outermost(vec![
                p("/srv/play"),
                p("/srv/play"),
                p("/srv/play/roles/web"),
                p("/opt/roles/db"),
                p("/opt/roles"),
                p("/srv/playground"),
            ]),
            vec![p("/srv/play"), p("/opt/roles"), p("/srv/playground")]
        );
        assert_eq!(
            absolute(Path::new("/srv/play/roles/../x/.")),
            p("/srv/play/x")
        );
    }
}
