//! `group_vars/` and `host_vars/` directories, as ansible-core's `host_group_vars` plugin reads
//! them: next to every inventory source, and next to the playbook.
//!
//! For an entity (group or host) `name`, the first of `name`, `name.yml`, `name.yaml`,
//! `name.json` that exists is used; a directory contributes all its files (sorted, recursively,
//! skipping hidden files, backups `~` and other extensions), later files overriding earlier ones
//! key by key. Empty files count as nothing.
//!
//! Files are read and parsed when the directory is loaded, but a broken file only becomes an
//! error when its group or host exists ([`VarsDirs::check`]), as in Ansible, which never opens
//! files of entities it does not know.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tend_proto::{Loc, Value, Vars};

use super::{Inventory, LOCALHOST_NAMES};
use crate::diag::Diag;

const EXTENSIONS: [&str; 3] = ["yml", "yaml", "json"];

/// The variables of one directory's `group_vars/` and `host_vars/`, by entity name.
#[derive(Clone, Debug, Default)]
pub struct VarsDirs {
    /// The directory holding `group_vars/` and `host_vars/`.
    pub base: PathBuf,
    groups: BTreeMap<String, Result<Vars, Diag>>,
    hosts: BTreeMap<String, Result<Vars, Diag>>,
    warnings: Vec<String>,
}

/// Reads `base/group_vars/` and `base/host_vars/` (either may be missing).
pub fn load_vars_dirs(base: &Path) -> Result<VarsDirs, Diag> {
    let mut vd = VarsDirs {
        base: base.to_path_buf(),
        ..Default::default()
    };
    for (sub, is_group) in [("group_vars", true), ("host_vars", false)] {
        let dir = base.join(sub);
        if !dir.exists() {
            continue;
        }
        if !dir.is_dir() {
            vd.warnings.push(format!(
                "Found {sub} that is not a directory, skipping: {}",
                dir.display()
            ));
            continue;
        }
        let mut names: Vec<String> = Vec::new();
        for entry in read_dir_sorted(&dir)? {
            let Some(file_name) = entry.file_name().map(|n| n.to_string_lossy().into_owned())
            else {
                continue;
            };
            if file_name.starts_with('.') {
                continue;
            }
            names.push(file_name.clone());
            if let Some((stem, ext)) = file_name.rsplit_once('.') {
                if EXTENSIONS.contains(&ext) && !stem.is_empty() {
                    names.push(stem.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        for name in names {
            let vars = load_entity(&dir, &name);
            let map = if is_group {
                &mut vd.groups
            } else {
                &mut vd.hosts
            };
            map.insert(name, vars);
        }
    }
    Ok(vd)
}

impl VarsDirs {
    /// `group_vars/<group>`, if there is one (and it could be read).
    pub fn group(&self, name: &str) -> Option<&Vars> {
        self.groups.get(name).and_then(|r| r.as_ref().ok())
    }

    /// `host_vars/<host>`, if there is one (and it could be read).
    pub fn host(&self, name: &str) -> Option<&Vars> {
        self.hosts.get(name).and_then(|r| r.as_ref().ok())
    }

    /// Warnings about the directories themselves (`group_vars` that is a file).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The first problem in a file that belongs to a group or host of `inv`.
    pub fn check(&self, inv: &Inventory) -> Result<(), Diag> {
        for (name, r) in &self.groups {
            if let Err(e) = r {
                if inv.group(name).is_some() {
                    return Err(e.clone());
                }
            }
        }
        for (name, r) in &self.hosts {
            if let Err(e) = r {
                if inv.hosts.contains_key(name) || LOCALHOST_NAMES.contains(&name.as_str()) {
                    return Err(e.clone());
                }
            }
        }
        Ok(())
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, Diag> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Diag::new(
            Loc::new(dir.to_string_lossy().as_ref(), 0, 0),
            format!("cannot read directory: {e}"),
        )
        .with_hint("check the directory's permissions")
    })?;
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// Ansible's `find_vars_files` + loading: the first of `name`, `name.yml`, `name.yaml`,
/// `name.json`; a directory gives all its files.
fn load_entity(dir: &Path, name: &str) -> Result<Vars, Diag> {
    let mut files = Vec::new();
    for ext in ["", ".yml", ".yaml", ".json"] {
        let p = dir.join(format!("{name}{ext}"));
        if p.exists() {
            if p.is_dir() {
                dir_files(&p, &mut files, 0)?;
            } else {
                files.push(p);
            }
            break;
        }
    }
    let mut vars = Vars::new();
    for f in files {
        for (k, v) in load_vars_file(&f)? {
            vars.insert(k, v);
        }
    }
    Ok(vars)
}

fn dir_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), Diag> {
    if depth > 32 {
        return Ok(());
    }
    for p in read_dir_sorted(dir)? {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let ext = p.extension().map(|e| e.to_string_lossy().into_owned());
        if p.is_dir() {
            if ext.is_none() {
                dir_files(&p, out, depth + 1)?;
            }
        } else if p.is_file() && ext.as_deref().is_none_or(|e| EXTENSIONS.contains(&e)) {
            out.push(p);
        }
    }
    Ok(())
}

/// One vars file: a mapping, or empty.
pub(crate) fn load_vars_file(path: &Path) -> Result<Vars, Diag> {
    let file = path.to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diag::new(
            Loc::new(file.as_str(), 0, 0),
            format!("cannot read variables file: {e}"),
        )
        .with_hint("check the file's permissions and that it is UTF-8 text")
    })?;
    // A vault-encrypted file is decrypted by the YAML reader.
    let node = crate::yaml::parse(&file, &text)?;
    match node.to_value() {
        Value::Null => Ok(Vars::new()),
        Value::Object(m) => Ok(m),
        _ => Err(Diag::new(
            node.loc.clone(),
            format!(
                "variables must be a mapping of names to values, found {}",
                node.kind()
            ),
        )
        .with_hint("write the file as `name: value` lines")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_dir_and_extension_order() {
        let t = tempfile::tempdir().unwrap();
        let gv = t.path().join("group_vars");
        std::fs::create_dir_all(gv.join("web")).unwrap();
        std::fs::write(gv.join("web/a.yml"), "x: 1\nw: 1\n").unwrap();
        std::fs::write(gv.join("web/b"), "w: 2\n").unwrap();
        std::fs::write(gv.join("web/c.txt"), "w: 3\n").unwrap();
        std::fs::write(gv.join("web.yml"), "z: ignored because web/ exists\n").unwrap();
        std::fs::write(gv.join("db.yaml"), "d: 1\n").unwrap();
        std::fs::write(gv.join("db.json"), "{\"d\": 2}").unwrap();
        std::fs::write(gv.join("empty.yml"), "").unwrap();
        std::fs::write(gv.join("broken.yml"), "a: [\n").unwrap();
        let vd = load_vars_dirs(t.path()).unwrap();
        assert_eq!(
            Value::Object(vd.group("web").unwrap().clone()),
            serde_json::json!({"x": 1, "w": 2})
        );
        assert_eq!(vd.group("db").unwrap()["d"], 1);
        assert!(vd.group("empty").unwrap().is_empty());
        assert!(vd.group("broken").is_none());
        let inv = Inventory::empty();
        assert!(vd.check(&inv).is_ok());
    }
}
