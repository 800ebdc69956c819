//! The git commit a playbook was run from: read from `.git` itself (HEAD, loose refs,
//! packed-refs; worktrees' `gitdir:` files and `commondir`), and the dirty flag from
//! `git status --porcelain` (an argument vector, one process).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::records::GitInfo;

/// The repository containing `dir`, if any.
pub fn git_info(dir: &Path) -> Option<GitInfo> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let (work, gitdir) = find_gitdir(&dir)?;
    let common = std::fs::read_to_string(gitdir.join("commondir"))
        .ok()
        .map(|c| gitdir.join(c.trim()))
        .unwrap_or_else(|| gitdir.clone());
    let head = std::fs::read_to_string(gitdir.join("HEAD")).ok()?;
    let head = head.trim();
    let (commit, branch) = match head.strip_prefix("ref:") {
        Some(r) => {
            let r = r.trim();
            let branch = r.strip_prefix("refs/heads/").map(str::to_string);
            (resolve_ref(&gitdir, &common, r), branch)
        }
        None => (Some(head.to_string()), None),
    };
    Some(GitInfo {
        commit,
        branch,
        dirty: dirty(&work),
    })
}

/// Walks up from `dir` to the first `.git` (a directory, or a file saying `gitdir: …`).
fn find_gitdir(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    for d in dir.ancestors() {
        let dot = d.join(".git");
        if dot.is_dir() {
            return Some((d.to_path_buf(), dot));
        }
        if dot.is_file() {
            let text = std::fs::read_to_string(&dot).ok()?;
            let target = text.trim().strip_prefix("gitdir:")?.trim();
            return Some((d.to_path_buf(), d.join(target)));
        }
    }
    None
}

fn is_hash(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn resolve_ref(gitdir: &Path, common: &Path, name: &str) -> Option<String> {
    for base in [gitdir, common] {
        if let Ok(v) = std::fs::read_to_string(base.join(name)) {
            let v = v.trim();
            if let Some(next) = v.strip_prefix("ref:") {
                return resolve_ref(gitdir, common, next.trim());
            }
            if is_hash(v) {
                return Some(v.to_string());
            }
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .filter_map(|l| l.split_once(' '))
        .find(|(_, r)| *r == name)
        .map(|(h, _)| h.to_string())
        .filter(|h| is_hash(h))
}

/// `None` when git is missing or fails (the record then says "unknown", never "clean").
fn dirty(work: &Path) -> Option<bool> {
    let out = Command::new("git")
        .arg("-C")
        .arg(work)
        .args(["status", "--porcelain", "--ignore-submodules=dirty"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(!out.stdout.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_loose_and_packed_refs() {
        let t = tempfile::tempdir().unwrap();
        let git = t.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let a = "a".repeat(40);
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs with: peeled\n{a} refs/heads/main\n"),
        )
        .unwrap();
        let sub = t.path().join("play/roles");
        std::fs::create_dir_all(&sub).unwrap();
        let info = git_info(&sub).unwrap();
        assert_eq!(info.commit.as_deref(), Some(a.as_str()));
        assert_eq!(info.branch.as_deref(), Some("main"));
        let b = "b".repeat(40);
        std::fs::write(git.join("refs/heads/main"), format!("{b}\n")).unwrap();
        assert_eq!(git_info(&sub).unwrap().commit, Some(b));
    }

    #[test]
    fn a_real_repository_with_git() {
        let t = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(t.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .output()
        };
        if git(&["init", "-q", "-b", "main"]).is_err() {
            return; // no git here: the file-reading test above still runs
        }
        std::fs::write(t.path().join("site.yml"), "- hosts: all\n").unwrap();
        git(&["add", "."]).unwrap();
        git(&["commit", "-qm", "one"]).unwrap();
        let head = git(&["rev-parse", "HEAD"]).unwrap();
        let head = String::from_utf8(head.stdout).unwrap().trim().to_string();
        let info = git_info(t.path()).unwrap();
        assert_eq!(info.commit, Some(head));
        assert_eq!(info.dirty, Some(false));
        std::fs::write(t.path().join("site.yml"), "- hosts: web\n").unwrap();
        assert_eq!(git_info(t.path()).unwrap().dirty, Some(true));
    }
}
