//! The digests of every input a run reads on the controller, for plans: `tend apply PLAN`
//! refuses to run when one of them changed since the plan was made.
//!
//! What counts as an input:
//! - every file of the directories shipped to SSH hosts ([`crate::bundle_roots`]): the
//!   playbook directory (imported playbooks, `group_vars/`, `host_vars/`, `vars_files`,
//!   `files/`, `templates/`, included task files) and every role directory and role search
//!   path — the agents may read any of them at run time (`include_tasks`, `template`,
//!   `with_fileglob`), so any of them may shape the run;
//! - every inventory source that is a file or a directory (with the `group_vars/` and
//!   `host_vars/` beside an inventory file);
//! - every `-e @FILE`.
//!
//! Left out: `.git` and `.tend` (the history) directories, and the paths the caller names
//! (the plan file itself). Symbolic links are followed, as the bundle follows them; a
//! directory reached twice (a link loop) is read once.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::Prepared;

/// An input that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct InputError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// Every input's sha256 (hex), by path: relative to the playbook directory inside it,
/// absolute outside it. Sorted by path.
pub fn input_digests(
    prep: &Prepared,
    extra_var_files: &[PathBuf],
    skip: &[PathBuf],
) -> Result<BTreeMap<String, String>, InputError> {
    let base = absolute(&prep.playbook.dir);
    let skip: Vec<PathBuf> = skip.iter().map(|p| absolute(p)).collect();
    let mut w = Walk {
        base: base.clone(),
        skip,
        out: BTreeMap::new(),
        dirs: HashSet::new(),
    };
    // The playbook itself, also when it is a single file outside a directory of its own.
    w.file(&absolute(&prep.settings.playbook))?;
    for root in crate::bundle_roots(prep) {
        w.dir(&root)?;
    }
    for inv in &prep.settings.inventories {
        let p = absolute(Path::new(inv));
        if p.is_dir() {
            w.dir(&p)?;
        } else if p.is_file() {
            w.file(&p)?;
            if let Some(parent) = p.parent() {
                for sub in ["group_vars", "host_vars"] {
                    let d = parent.join(sub);
                    if d.is_dir() {
                        w.dir(&d)?;
                    }
                }
            }
        }
        // Anything else is a host list (`web1,web2`): no file.
    }
    for f in extra_var_files {
        w.file(&absolute(f))?;
    }
    Ok(w.out)
}

struct Walk {
    base: PathBuf,
    skip: Vec<PathBuf>,
    out: BTreeMap<String, String>,
    dirs: HashSet<PathBuf>,
}

impl Walk {
    fn name(&self, p: &Path) -> String {
        match p.strip_prefix(&self.base) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => p.display().to_string(),
        }
    }

    fn file(&mut self, p: &Path) -> Result<(), InputError> {
        if self.skip.iter().any(|s| s == p) {
            return Ok(());
        }
        let name = self.name(p);
        if self.out.contains_key(&name) {
            return Ok(());
        }
        let err = |source| InputError {
            path: p.display().to_string(),
            source,
        };
        let mut f = std::fs::File::open(p).map_err(err)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        self.out.insert(name, hex::encode(h.finalize()));
        Ok(())
    }

    fn dir(&mut self, d: &Path) -> Result<(), InputError> {
        let real = std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf());
        if !self.dirs.insert(real) {
            return Ok(());
        }
        let err = |source| InputError {
            path: d.display().to_string(),
            source,
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let file_name = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
            if matches!(file_name, ".git" | ".tend") {
                continue;
            }
            // Follows links; a dangling link is not an input anyone can read.
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                self.dir(&p)?;
            } else if meta.is_file() {
                self.file(&p)?;
            }
        }
        Ok(())
    }
}

fn absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    tend_lang::ctlfs::normalize(&abs).unwrap_or(abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(dir: &Path) -> Prepared {
        std::fs::write(
            dir.join("site.yml"),
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n",
        )
        .unwrap();
        crate::prepare(crate::Settings {
            playbook: dir.join("site.yml"),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn every_file_of_the_playbook_tree_is_named_and_history_and_skipped_paths_are_not() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("templates")).unwrap();
        std::fs::create_dir_all(d.join(".tend")).unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        std::fs::write(d.join("templates/motd.j2"), "hello\n").unwrap();
        std::fs::write(d.join(".tend/history.db"), "x").unwrap();
        std::fs::write(d.join(".git/HEAD"), "x").unwrap();
        std::fs::write(d.join("plan.json"), "{}").unwrap();
        let extra = d.join("extra.yml");
        std::fs::write(&extra, "a: 1\n").unwrap();
        let prep = prepared(d);
        let got =
            input_digests(&prep, std::slice::from_ref(&extra), &[d.join("plan.json")]).unwrap();
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(names, vec!["extra.yml", "site.yml", "templates/motd.j2"]);
        // sha256("hello\n")
        assert_eq!(
            got["templates/motd.j2"],
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        std::fs::write(d.join("templates/motd.j2"), "hello!\n").unwrap();
        let again = input_digests(&prep, &[extra], &[d.join("plan.json")]).unwrap();
        assert_ne!(got["templates/motd.j2"], again["templates/motd.j2"]);
        assert_eq!(got["site.yml"], again["site.yml"]);
    }

    #[test]
    fn an_unreadable_input_is_named() {
        let t = tempfile::tempdir().unwrap();
        let prep = prepared(t.path());
        let missing = t.path().join("gone.yml");
        let e = input_digests(&prep, &[missing], &[]).unwrap_err();
        assert!(e.to_string().contains("gone.yml"), "{e}");
    }
}
