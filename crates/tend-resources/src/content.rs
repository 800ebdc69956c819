//! The resource `copy` and `template` share: given bytes (and directories) at given paths, with
//! owner, group and mode. The two modules only differ in where the bytes come from.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tend_proto::{Value, Vars};

use crate::fsutil::{self, Attrs, Kind, PathInfo};
use crate::{Change, ChangeKind, ModuleError};

/// ansible-core does not diff files bigger than this (`MAX_FILE_SIZE_FOR_DIFF`).
pub const MAX_DIFF_SIZE: usize = 104_448;

/// One thing to have on the host.
#[derive(Clone, Debug)]
pub enum Entry {
    Dir {
        path: PathBuf,
    },
    File {
        path: PathBuf,
        data: Vec<u8>,
        src_mode: Option<u32>,
    },
}

impl Entry {
    pub fn path(&self) -> &Path {
        match self {
            Entry::Dir { path } | Entry::File { path, .. } => path,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Desired {
    /// What the task is about (the `dest` as resolved), the diff subject.
    pub dest: PathBuf,
    pub entries: Vec<Entry>,
    /// Owner, group and mode of files.
    pub attrs: Attrs,
    /// Owner, group and mode of directories (`directory_mode`).
    pub dir_attrs: Attrs,
    /// Replace existing files whose content differs (`force`).
    pub force: bool,
    pub backup: bool,
    /// `validate` command, with `%s` for the file to check.
    pub validate: Option<String>,
    /// What the content comes from (result `src`, diff `after_header`).
    pub src_label: Option<String>,
    /// Directories to create before the entries (dest ending in `/`).
    pub make_parents: bool,
}

#[derive(Clone, Debug)]
pub struct EntryObs {
    pub info: PathInfo,
    /// Content of an existing regular file.
    pub data: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub entries: Vec<EntryObs>,
    /// Set by `apply` when it made a backup.
    pub backup_file: Option<String>,
}

/// What writing `d` replaces: each entry's path as it is now (through a final link, as the
/// write goes).
pub fn restore(d: &Desired) -> Result<crate::journal::Restore, ModuleError> {
    let mut steps = Vec::new();
    for e in &d.entries {
        match crate::journal::restore_path(e.path(), true)? {
            crate::journal::Restore::Steps(s) => steps.extend(s),
            cannot => return Ok(cannot),
        }
    }
    Ok(crate::journal::Restore::Steps(steps))
}

/// Reads what is at each entry's path (following a final link, as writes go through it).
pub fn observe(d: &Desired) -> Result<Observed, ModuleError> {
    let mut entries = Vec::with_capacity(d.entries.len());
    for e in &d.entries {
        let info = fsutil::info(e.path(), true)?;
        let data = match (e, info.kind) {
            (Entry::File { .. }, Kind::File) => Some(
                fsutil::read_file(e.path())
                    .map_err(|err| ModuleError::io("cannot read", e.path(), err))?,
            ),
            _ => None,
        };
        entries.push(EntryObs { info, data });
    }
    Ok(Observed {
        entries,
        backup_file: None,
    })
}

/// Text for a diff record, or `None` when binary or too large (ansible-core leaves those out).
fn diff_text(data: &[u8]) -> Option<String> {
    if data.len() > MAX_DIFF_SIZE || fsutil::is_binary(data) {
        return None;
    }
    Some(String::from_utf8_lossy(data).into_owned())
}

fn entry_change(d: &Desired, e: &Entry, o: &EntryObs) -> Change {
    let subject = e.path().display().to_string();
    let mut c = Change::none(subject.clone());
    match e {
        Entry::Dir { .. } => match o.info.kind {
            Kind::Absent => {
                c = c.field("state", "absent", "directory");
                c.kind = ChangeKind::Create;
            }
            Kind::Directory => c = d.dir_attrs.diff_into(c, &o.info, None),
            _ => c = c.field("state", o.info.kind.as_str(), "directory"),
        },
        Entry::File { data, src_mode, .. } => match (&o.data, o.info.kind) {
            (None, Kind::Absent) => {
                let header = d.src_label.clone().unwrap_or_else(|| subject.clone());
                c = match diff_text(data) {
                    Some(t) if !t.is_empty() => {
                        c.with_content_headers(String::new(), t, (String::new(), header))
                    }
                    _ => c.field("state", "absent", "file"),
                };
                c.kind = ChangeKind::Create;
            }
            (Some(have), _) => {
                if have != data && d.force {
                    let header = d.src_label.clone().unwrap_or_else(|| subject.clone());
                    match (diff_text(have), diff_text(data)) {
                        (Some(b), Some(a)) if b != a => {
                            c = c.with_content_headers(b, a, (subject, header))
                        }
                        _ => {
                            c = c.field("checksum", fsutil::sha1_hex(have), fsutil::sha1_hex(data))
                        }
                    }
                }
                if have == data || d.force {
                    c = d.attrs.diff_into(c, &o.info, *src_mode);
                }
            }
            (None, kind) => c = c.field("state", kind.as_str(), "file"),
        },
    }
    c
}

/// Pure: what differs between the declared entries and the observation.
pub fn diff(d: &Desired, o: &Observed) -> Change {
    if d.entries.len() == 1 {
        if let Some(oe) = o.entries.first() {
            let mut c = entry_change(d, &d.entries[0], oe);
            c.subject = d.dest.display().to_string();
            return c;
        }
    }
    let mut top = Change::none(d.dest.display().to_string());
    for (e, oe) in d.entries.iter().zip(&o.entries) {
        top = top.child(entry_change(d, e, oe));
    }
    top
}

/// Makes the entries so; returns the new observation (with the backup's path, if one was made).
/// A file whose directory does not exist cannot be written (Ansible's copy does not create
/// parents). Checked when applying, not when observing: in check mode an earlier task may be
/// the one that would have created the directory, and Ansible then reports a change.
fn check_parent_dirs(d: &Desired, o: &Observed) -> Result<(), ModuleError> {
    if d.make_parents {
        return Ok(());
    }
    for (e, o) in d.entries.iter().zip(&o.entries) {
        if let (Entry::File { path, .. }, Kind::Absent) = (e, o.info.kind) {
            let dir = path.parent().unwrap_or(Path::new("/"));
            if !dir.as_os_str().is_empty()
                && !dir.is_dir()
                && !d.entries.iter().any(|x| x.path() == dir)
            {
                return Err(ModuleError::new(format!(
                    "Destination directory {} does not exist",
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}

pub fn apply(d: &Desired, o: &Observed) -> Result<Observed, ModuleError> {
    check_parent_dirs(d, o)?;
    let mut backup_file = None;
    for (e, oe) in d.entries.iter().zip(&o.entries) {
        match e {
            Entry::Dir { path } => {
                if oe.info.kind == Kind::Absent {
                    for created in fsutil::create_dirs(path)? {
                        d.dir_attrs.apply(&created, true, None)?;
                    }
                } else if oe.info.kind != Kind::Directory {
                    return Err(ModuleError::new(format!(
                        "{} already exists as a {}",
                        path.display(),
                        oe.info.kind.as_str()
                    )));
                }
                d.dir_attrs.apply(path, true, None)?;
            }
            Entry::File {
                path,
                data,
                src_mode,
            } => {
                if !matches!(oe.info.kind, Kind::Absent | Kind::File) {
                    return Err(ModuleError::new(format!(
                        "cannot write {}: it is a {}",
                        path.display(),
                        oe.info.kind.as_str()
                    )));
                }
                if oe.info.kind == Kind::Absent && d.make_parents {
                    if let Some(parent) = path.parent() {
                        for created in fsutil::create_dirs(parent)? {
                            d.dir_attrs.apply(&created, true, None)?;
                        }
                    }
                }
                let rewrite = oe.data.as_deref() != Some(data.as_slice());
                if rewrite && (d.force || oe.data.is_none()) {
                    if d.backup && oe.data.is_some() {
                        backup_file = Some(fsutil::backup(path)?.display().to_string());
                    }
                    let check = |tmp: &Path| run_validate(d.validate.as_deref(), tmp);
                    let validate: Option<fsutil::Validator> = if d.validate.is_some() {
                        Some(&check)
                    } else {
                        None
                    };
                    fsutil::atomic_write(path, data, &d.attrs, *src_mode, validate)?;
                } else if rewrite && !d.force {
                    continue;
                } else {
                    d.attrs.apply(path, true, *src_mode)?;
                }
            }
        }
    }
    let mut after = observe(d)?;
    after.backup_file = backup_file;
    Ok(after)
}

/// Runs a `validate` command on `path`: the command is split like a shell would (no shell is
/// run), and `%s` in it is the path. ansible-core's messages.
pub fn run_validate(validate: Option<&str>, path: &Path) -> Result<(), ModuleError> {
    let Some(v) = validate else { return Ok(()) };
    if !v.contains("%s") {
        return Err(ModuleError::new(format!("validate must contain %s: {v}")));
    }
    let words = crate::command::shlex_split(v).map_err(ModuleError::new)?;
    let p = path.display().to_string();
    let argv: Vec<String> = words
        .iter()
        .map(|w| w.replace("%s", &p).replace("%%", "%"))
        .collect();
    let Some((prog, rest)) = argv.split_first() else {
        return Err(ModuleError::new(format!("validate must contain %s: {v}")));
    };
    let out = Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ModuleError::new(format!("failed to validate: cannot run {prog}: {e}")))?;
    if !out.status.success() {
        let mut err = ModuleError::new("failed to validate");
        err.fields
            .insert("exit_status".into(), out.status.code().unwrap_or(-1).into());
        err.fields.insert(
            "stdout".into(),
            String::from_utf8_lossy(&out.stdout).into_owned().into(),
        );
        err.fields.insert(
            "stderr".into(),
            String::from_utf8_lossy(&out.stderr).into_owned().into(),
        );
        return Err(err);
    }
    Ok(())
}

/// ansible-core's `copy`/`template` result fields for the final state.
pub fn result(d: &Desired, o: &Observed) -> Vars {
    let mut v = Vars::new();
    if d.entries.len() == 1 {
        if let Entry::File { path, data, .. } = &d.entries[0] {
            v = fsutil::path_fields("dest", path, true);
            if v.get("state") == Some(&Value::String("absent".into())) {
                // Check mode on a new file: what would be there.
                v.insert("state".into(), "file".into());
                v.insert("size".into(), data.len().into());
            }
            v.insert("checksum".into(), fsutil::sha1_hex(data).into());
            v.insert("md5sum".into(), fsutil::md5_hex(data).into());
        }
    }
    v.insert("dest".into(), d.dest.display().to_string().into());
    if let Some(src) = &d.src_label {
        v.insert("src".into(), src.clone().into());
    }
    if let Some(b) = &o.backup_file {
        v.insert("backup_file".into(), b.clone().into());
    }
    v
}
