//! The rollback journal: before a change is made, what it replaces, written on the host.
//!
//! A run that may change hosts carries its run id ([`tend_proto::RunOptions::run_id`]); the
//! process that applies a change (the agent, or its become worker) appends one [`Entry`] to
//! `<base>/<run_id>/entries.jsonl` and fsyncs it *before* the change is made. The base is
//! `/var/lib/tend/journal` when that process is root, else `~/.cache/tend/journal`
//! (`TEND_JOURNAL_DIR` overrides it, for tests). Directories are 0700 and files 0600: the
//! journal holds old file contents, which may be secret. Contents are kept as
//! content-addressed blobs (`blobs/<sha256>`) beside the entries.
//!
//! An entry says what puts the old state back, as desired states of tend's own modules
//! ([`UndoStep`]: a `copy` of the old content with its mode and owner, `file state=absent` for
//! a file the run created, `apt name=pkg=1.2`, `service state=started enabled=false` …), so a
//! rollback is an ordinary observe → diff → apply of those modules, with diffs, and applying it
//! twice changes nothing. What tend cannot put back (a `command` that ran, a removed directory
//! tree) is an entry that says so ([`Entry::cannot`]).
//!
//! The file is append-only: after the change, a change that turned out to be none is marked
//! `unchanged`; a rollback marks what it restored `restored`. [`read`] folds the marks in.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tend_proto::{Value, Vars};

use crate::fsutil::{self, Kind};
use crate::ModuleError;

/// Overrides where journals are kept (tests).
pub const JOURNAL_DIR_ENV: &str = "TEND_JOURNAL_DIR";
/// Journals of at most this many runs are kept on a host …
pub const KEEP_RUNS: usize = 20;
/// … and none older than this.
pub const KEEP_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

const ENTRIES: &str = "entries.jsonl";
const BLOBS: &str = "blobs";

/// What a change is part of: the run, the host (several local hosts share one machine), the
/// play and the task. The agent makes one per task; the become worker gets it with the call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalCtx {
    pub run_id: String,
    pub host: String,
    pub play: usize,
    pub task: String,
    /// `file:line:col` of the task.
    pub loc: String,
    /// The task is `no_log`: a rollback shows no diff of it.
    #[serde(default)]
    pub no_log: bool,
}

/// What puts back the state a change replaces.
#[derive(Clone, Debug, PartialEq)]
pub enum Restore {
    /// Apply these, in order.
    Steps(Vec<UndoStep>),
    /// It cannot be put back, and why (a whole sentence's tail: "cannot restore: …").
    Cannot(String),
}

/// A desired state of one of tend's modules.
#[derive(Clone, Debug, PartialEq)]
pub struct UndoStep {
    pub module: String,
    pub args: Vars,
    /// Old file content: kept as a blob, whose path becomes the step's `src`.
    pub blob: Option<Vec<u8>>,
}

impl UndoStep {
    pub fn new(module: &str, args: Value) -> UndoStep {
        UndoStep {
            module: module.into(),
            args: args.as_object().cloned().unwrap_or_default(),
            blob: None,
        }
    }
}

/// One change, as journaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Milliseconds since the epoch.
    pub at: u64,
    pub host: String,
    pub play: usize,
    pub task: String,
    pub loc: String,
    #[serde(default)]
    pub no_log: bool,
    /// `module[subject]`, e.g. `file[/etc/app.conf]`.
    pub resource: String,
    /// What puts it back (empty when it cannot be).
    #[serde(default)]
    pub steps: Vec<StoredStep>,
    /// Why it cannot be put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cannot: Option<String>,
    /// Folded in by [`read`]: the change changed nothing.
    #[serde(skip)]
    pub unchanged: bool,
    /// Folded in by [`read`]: a rollback restored it.
    #[serde(skip)]
    pub restored: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredStep {
    pub module: String,
    pub args: Vars,
}

/// One line of `entries.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Entry(Entry),
    Unchanged { seq: u64 },
    Restored { seq: u64 },
}

/// Where this process keeps journals: `TEND_JOURNAL_DIR`; as root `/var/lib/tend/journal`;
/// else `~/.cache/tend/journal` — or, for a user without a usable home (a service account a
/// task becomes, whose home is `/nonexistent`), `/tmp/tend-journal-<uid>` (0700, refused if
/// another user made it).
pub fn base_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(JOURNAL_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        return PathBuf::from("/var/lib/tend/journal");
    }
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        Some(x) => Some(PathBuf::from(x)),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cache")),
    };
    let preferred = cache.map(|c| c.join("tend").join("journal"));
    match preferred {
        Some(p) if usable(&p) => p,
        _ => PathBuf::from(format!("/tmp/tend-journal-{}", uid.as_raw())),
    }
}

/// Whether `dir` exists or its nearest existing ancestor lets this user make it.
fn usable(dir: &Path) -> bool {
    let mut p = dir;
    loop {
        if p.is_dir() {
            return p == dir || fsutil::access(p, libc::W_OK | libc::X_OK);
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

/// The journal directory of run `run_id` under `base`. A run id is a file name: anything
/// else is refused.
pub fn run_dir(base: &Path, run_id: &str) -> Result<PathBuf, ModuleError> {
    let ok = !run_id.is_empty()
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !run_id.starts_with('.');
    if !ok {
        return Err(ModuleError::new(format!(
            "`{run_id}` is not a run id tend makes; nothing was journaled"
        )));
    }
    Ok(base.join(run_id))
}

/// Makes `dir` (and missing parents) with mode 0700; refuses one another user owns.
fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let m = fs::symlink_metadata(dir)?;
    use std::os::unix::fs::MetadataExt;
    if !m.is_dir() || m.uid() != rustix::process::geteuid().as_raw() {
        return Err(io::Error::other(format!(
            "{} is not a directory this user owns",
            dir.display()
        )));
    }
    Ok(())
}

/// Next sequence number per journal file, for writers in this process (local hosts share
/// one machine and so one journal).
static NEXT_SEQ: Mutex<Vec<(PathBuf, u64)>> = Mutex::new(Vec::new());

fn journal_err(dir: &Path, e: impl std::fmt::Display) -> ModuleError {
    ModuleError::new(format!(
        "cannot write the rollback journal in {}: {e} (free space, or fix the directory's \
         permissions, or set {JOURNAL_DIR_ENV})",
        dir.display()
    ))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn append(path: &Path, line: &Line) -> io::Result<()> {
    let mut text = serde_json::to_string(line).map_err(io::Error::other)?;
    text.push('\n');
    let new = !path.exists();
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    // One write of a whole line: appends from several threads never interleave.
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    if new {
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// Journals a change of `resource` (`module[subject]`) before it is made: blobs first, then
/// the entry, each fsynced. Returns the entry's sequence number (for [`mark_unchanged`]).
pub fn record(ctx: &JournalCtx, resource: &str, restore: Restore) -> Result<u64, ModuleError> {
    record_in(&base_dir(), ctx, resource, restore)
}

/// [`record`] before a change: if the journal cannot be written, the change is not made.
pub fn record_before(
    ctx: &JournalCtx,
    resource: &str,
    restore: Restore,
) -> Result<u64, ModuleError> {
    record(ctx, resource, restore)
        .map_err(|e| ModuleError::new(format!("{}; nothing was changed", e.msg)))
}

pub fn record_in(
    base: &Path,
    ctx: &JournalCtx,
    resource: &str,
    restore: Restore,
) -> Result<u64, ModuleError> {
    let dir = run_dir(base, &ctx.run_id)?;
    let first = !dir.exists();
    private_dir(&dir.join(BLOBS)).map_err(|e| journal_err(&dir, e))?;
    if first {
        // A new run's journal: the time to let old ones go.
        prune(base, &ctx.run_id);
    }
    let (steps, cannot) = match restore {
        Restore::Cannot(why) => (Vec::new(), Some(why)),
        Restore::Steps(steps) => {
            let mut stored = Vec::with_capacity(steps.len());
            for s in steps {
                let mut args = s.args;
                if let Some(data) = s.blob {
                    let path = store_blob(&dir, &data).map_err(|e| journal_err(&dir, e))?;
                    args.insert("src".into(), Value::String(path.display().to_string()));
                    args.insert("remote_src".into(), Value::Bool(true));
                }
                stored.push(StoredStep {
                    module: s.module,
                    args,
                });
            }
            (stored, None)
        }
    };
    let file = dir.join(ENTRIES);
    let mut next = NEXT_SEQ.lock().unwrap_or_else(|e| e.into_inner());
    let seq = match next.iter_mut().find(|(p, _)| *p == file) {
        Some((_, n)) => n,
        None => {
            let last = read_lines(&file)
                .map_err(|e| journal_err(&dir, e))?
                .iter()
                .filter_map(|l| match l {
                    Line::Entry(e) => Some(e.seq),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            next.push((file.clone(), last + 1));
            &mut next.last_mut().expect("just pushed").1
        }
    };
    let entry = Entry {
        seq: *seq,
        at: now_ms(),
        host: ctx.host.clone(),
        play: ctx.play,
        task: ctx.task.clone(),
        loc: ctx.loc.clone(),
        no_log: ctx.no_log,
        resource: resource.to_string(),
        steps,
        cannot,
        unchanged: false,
        restored: false,
    };
    append(&file, &Line::Entry(entry)).map_err(|e| journal_err(&dir, e))?;
    *seq += 1;
    Ok(*seq - 1)
}

/// Content-addressed: a blob already there is the same content.
fn store_blob(dir: &Path, data: &[u8]) -> io::Result<PathBuf> {
    use sha2::Digest;
    let name = hex::encode(sha2::Sha256::digest(data));
    let path = dir.join(BLOBS).join(&name);
    if path.exists() {
        return Ok(path);
    }
    // Unique per writer: local hosts in this process may journal the same content at once.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir
        .join(BLOBS)
        .join(format!(".{name}.{}.{n}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &path)?;
    // The name is what the entry refers to: it must survive a crash too.
    fs::File::open(dir.join(BLOBS))?.sync_all()?;
    Ok(path)
}

/// The change journaled as `seq` turned out to change nothing.
pub fn mark_unchanged(ctx: &JournalCtx, seq: u64) -> Result<(), ModuleError> {
    let dir = run_dir(&base_dir(), &ctx.run_id)?;
    append(&dir.join(ENTRIES), &Line::Unchanged { seq }).map_err(|e| journal_err(&dir, e))
}

/// A rollback restored entry `seq` of run `run_id`'s journal in `base`.
pub fn mark_restored(base: &Path, run_id: &str, seq: u64) -> Result<(), ModuleError> {
    let dir = run_dir(base, run_id)?;
    append(&dir.join(ENTRIES), &Line::Restored { seq }).map_err(|e| journal_err(&dir, e))
}

fn read_lines(file: &Path) -> io::Result<Vec<Line>> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    // A line cut short by a crash mid-write is the last one; it journaled nothing usable.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The entries of run `run_id`'s journal in `base`, in the order they were made, with the
/// marks folded in. `None`: this host has no journal of that run.
pub fn read(base: &Path, run_id: &str) -> Result<Option<Vec<Entry>>, ModuleError> {
    let dir = run_dir(base, run_id)?;
    let file = dir.join(ENTRIES);
    if !file.exists() {
        return Ok(None);
    }
    let lines = read_lines(&file)
        .map_err(|e| ModuleError::io("cannot read the rollback journal", &file, e))?;
    let mut entries: Vec<Entry> = Vec::new();
    for l in lines {
        match l {
            Line::Entry(e) => entries.push(e),
            Line::Unchanged { seq } => {
                if let Some(e) = entries.iter_mut().find(|e| e.seq == seq) {
                    e.unchanged = true;
                }
            }
            Line::Restored { seq } => {
                if let Some(e) = entries.iter_mut().find(|e| e.seq == seq) {
                    e.restored = true;
                }
            }
        }
    }
    entries.sort_by_key(|e| e.seq);
    Ok(Some(entries))
}

/// What a rollback of `host` (only `plays`, when given) still has to restore from run
/// `run_id`'s journal in `base`, oldest first: entries neither unchanged nor restored, with
/// something to put back or to report.
pub fn pending(
    base: &Path,
    run_id: &str,
    host: &str,
    plays: Option<&[usize]>,
) -> Result<Vec<Entry>, ModuleError> {
    Ok(read(base, run_id)?
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.host == host
                && !e.unchanged
                && !e.restored
                // Nothing to put back (a unit that did not exist, an apt cache update).
                && (!e.steps.is_empty() || e.cannot.is_some())
                && plays.is_none_or(|p| p.contains(&e.play))
        })
        .collect())
}

/// Removes journals beyond the [`KEEP_RUNS`] newest and those older than [`KEEP_FOR`]
/// (by the directory's modification time); `keep` (the run writing now) always stays.
/// Best effort: a journal that cannot be removed stays.
pub fn prune(base: &Path, keep: &str) {
    let Ok(rd) = fs::read_dir(base) else { return };
    let mut runs: Vec<(SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_name() != keep && e.path().is_dir())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.0));
    let now = SystemTime::now();
    for (i, (when, path)) in runs.iter().enumerate() {
        let old = now.duration_since(*when).is_ok_and(|age| age > KEEP_FOR);
        // The run writing now is one of the KEEP_RUNS.
        if i + 1 >= KEEP_RUNS || old {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// The undo of a change to `path`: what is there now (before the change), as the desired
/// state of `copy` (a file: its content, mode, owner, group), `file` (a directory, a link
/// and its target, or nothing: `state=absent`). `follow`: the change writes through a final
/// symlink (`copy`, `lineinfile` …), so what it replaces is the link's target.
pub fn restore_path(path: &Path, follow: bool) -> Result<Restore, ModuleError> {
    let path = if follow {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    let info = fsutil::lstat(&path)?;
    let p = path.display().to_string();
    let attrs = |v: &mut Value| {
        v["mode"] = Value::String(format!("0{:o}", info.mode));
        v["owner"] = Value::String(info.uid.to_string());
        v["group"] = Value::String(info.gid.to_string());
    };
    let step = match info.kind {
        Kind::Absent => UndoStep::new("file", serde_json::json!({"path": p, "state": "absent"})),
        Kind::File => {
            let data = fsutil::read_file(&path)
                .map_err(|e| ModuleError::io("cannot read (to journal it)", &path, e))?;
            let mut v = serde_json::json!({"dest": p});
            attrs(&mut v);
            let mut s = UndoStep::new("copy", v);
            s.blob = Some(data);
            s
        }
        Kind::Directory => {
            let mut v = serde_json::json!({"path": p, "state": "directory"});
            attrs(&mut v);
            UndoStep::new("file", v)
        }
        Kind::Link => {
            let target = fs::read_link(&path)
                .map_err(|e| ModuleError::io("cannot read the link", &path, e))?;
            UndoStep::new(
                "file",
                serde_json::json!({
                    "path": p, "state": "link", "src": target.display().to_string(),
                    "force": true,
                }),
            )
        }
        Kind::Other => {
            return Ok(Restore::Cannot(format!(
                "{p} is neither a file, a directory nor a link"
            )))
        }
    };
    Ok(Restore::Steps(vec![step]))
}

/// Whether `dir` holds anything.
pub fn dir_has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut rd| rd.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::PermissionsExt;

    fn ctx(run: &str) -> JournalCtx {
        JournalCtx {
            run_id: run.into(),
            host: "h1".into(),
            play: 0,
            task: "write it".into(),
            loc: "site.yml:3:7".into(),
            no_log: false,
        }
    }

    #[test]
    fn entries_blobs_and_marks_round_trip_privately() {
        let base = tempfile::tempdir().unwrap();
        let f = base.path().join("app.conf");
        fs::write(&f, b"secret=1\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        let r = restore_path(&f, true).unwrap();
        let seq = record_in(base.path(), &ctx("r1"), "copy[app.conf]", r).unwrap();
        let seq2 = record_in(
            base.path(),
            &ctx("r1"),
            "command[echo]",
            Restore::Cannot("`command` ran at site.yml:9:7".into()),
        )
        .unwrap();
        assert_eq!(seq2, seq + 1);
        mark_restored(base.path(), "r1", seq).unwrap();

        let dir = base.path().join("r1");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(BLOBS)), 0o700);
        assert_eq!(mode(&dir.join(ENTRIES)), 0o600);

        let entries = read(base.path(), "r1").unwrap().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].restored && !entries[1].restored);
        let step = &entries[0].steps[0];
        assert_eq!(step.module, "copy");
        assert_eq!(step.args["mode"], "0640");
        assert_eq!(step.args["remote_src"], true);
        let blob = PathBuf::from(step.args["src"].as_str().unwrap());
        assert_eq!(fs::read(&blob).unwrap(), b"secret=1\n");
        assert_eq!(mode(&blob), 0o600);
        assert_eq!(
            entries[1].cannot.as_deref(),
            Some("`command` ran at site.yml:9:7")
        );
        assert!(read(base.path(), "r2").unwrap().is_none());
    }

    #[test]
    fn a_missing_path_is_restored_by_removing_it_and_a_link_by_its_target() {
        let base = tempfile::tempdir().unwrap();
        let missing = base.path().join("new");
        let Restore::Steps(s) = restore_path(&missing, true).unwrap() else {
            panic!()
        };
        assert_eq!(s[0].module, "file");
        assert_eq!(s[0].args["state"], "absent");
        let link = base.path().join("current");
        std::os::unix::fs::symlink("releases/1", &link).unwrap();
        let Restore::Steps(s) = restore_path(&link, false).unwrap() else {
            panic!()
        };
        assert_eq!(s[0].args["state"], "link");
        assert_eq!(s[0].args["src"], "releases/1");
    }

    #[test]
    fn run_ids_are_file_names_only() {
        let base = Path::new("/nonexistent");
        for bad in ["", "..", "../x", "a/b", ".hidden"] {
            assert!(run_dir(base, bad).is_err(), "{bad}");
        }
        assert!(run_dir(base, "20250102-030405-9f1c2a").is_ok());
    }

    #[test]
    fn pruning_keeps_the_newest_runs_and_the_current_one() {
        let base = tempfile::tempdir().unwrap();
        for i in 0..(KEEP_RUNS + 3) {
            let d = base.path().join(format!("run{i:02}"));
            fs::create_dir(&d).unwrap();
            let t = SystemTime::now() - Duration::from_secs(1000 - i as u64);
            File::open(&d).unwrap().set_modified(t).unwrap();
        }
        let old = base.path().join("ancient");
        fs::create_dir(&old).unwrap();
        File::open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - KEEP_FOR - Duration::from_secs(60))
            .unwrap();
        prune(base.path(), "run00");
        let mut left: Vec<String> = fs::read_dir(base.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert!(left.contains(&"run00".to_string()), "{left:?}");
        assert!(!left.contains(&"ancient".to_string()));
        assert_eq!(left.len(), KEEP_RUNS, "{left:?}");
        assert!(left.contains(&format!("run{:02}", KEEP_RUNS + 2)));
    }
}
