//! `file`: a path's state (file, directory, link, hard link, touched, absent), owner, group,
//! mode and times, as ansible-core's `file` module keeps them.

use std::fs;
use std::path::{Path, PathBuf};

use tend_proto::{Value, Vars};

use crate::fsutil::{self, Attrs, Kind, PathInfo, Stamp};
use crate::{Args, Change, ChangeKind, ModuleCtx, ModuleError, Resource};

pub struct File;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    File,
    Directory,
    Link,
    Hard,
    Touch,
    Absent,
}

impl State {
    fn parse(s: &str) -> Option<State> {
        Some(match s {
            "file" => State::File,
            "directory" => State::Directory,
            "link" => State::Link,
            "hard" => State::Hard,
            "touch" => State::Touch,
            "absent" => State::Absent,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            State::File => "file",
            State::Directory => "directory",
            State::Link => "link",
            State::Hard => "hard",
            State::Touch => "touch",
            State::Absent => "absent",
        }
    }
}

/// `access_time` / `modification_time` as declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    Preserve,
    Now,
    At(i64),
}

#[derive(Clone, Debug)]
pub struct Desired {
    pub path: PathBuf,
    /// `None`: keep whatever is there (ansible-core's default), `file` when nothing is.
    pub state: Option<State>,
    pub recurse: bool,
    pub force: bool,
    pub follow: bool,
    pub src: Option<String>,
    pub attrs: Attrs,
    pub atime: TimeSpec,
    pub mtime: TimeSpec,
}

#[derive(Clone, Debug)]
pub struct Observed {
    /// `lstat` of the path.
    pub info: PathInfo,
    /// The state that will be enforced (the declared one, or the default for what is there).
    pub state: State,
    /// `stat` through a link when `follow` is set (the thing whose attributes are managed).
    pub target: Option<PathInfo>,
    /// `readlink` of the path when it is a link.
    pub link: Option<String>,
    /// For `hard`: whether the path is the same inode as `src`.
    pub same_inode: bool,
    /// For `recurse`: paths below whose owner/group/mode differ.
    pub recurse_drift: Vec<String>,
    /// Set by `apply` when it set times to "now" (so the re-diff does not ask again).
    pub touched: bool,
}

pub const PARAMS: &[&str] = with_file_args![
    "path",
    "dest",
    "name",
    "state",
    "recurse",
    "force",
    "follow",
    "src",
    "modification_time",
    "modification_time_format",
    "access_time",
    "access_time_format",
];

/// Parses a time with a strftime-like format of `%Y %m %d %H %M %S` (ansible-core's default
/// format is `%Y%m%d%H%M.%S`), as local time.
pub fn parse_time(text: &str, format: &str) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut s) = (1900, 1, 1, 0, 0, 0);
    let t = text.as_bytes();
    let f = format.as_bytes();
    let (mut i, mut j) = (0, 0);
    while j < f.len() {
        if f[j] == b'%' && j + 1 < f.len() {
            let (width, slot): (usize, &mut i64) = match f[j + 1] {
                b'Y' => (4, &mut y),
                b'm' => (2, &mut mo),
                b'd' => (2, &mut d),
                b'H' => (2, &mut h),
                b'M' => (2, &mut mi),
                b'S' => (2, &mut s),
                b'%' => {
                    if t.get(i) != Some(&b'%') {
                        return None;
                    }
                    i += 1;
                    j += 2;
                    continue;
                }
                _ => return None,
            };
            let start = i;
            while i < t.len() && i - start < width && t[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return None;
            }
            *slot = std::str::from_utf8(&t[start..i]).ok()?.parse().ok()?;
            j += 2;
        } else {
            if t.get(i) != Some(&f[j]) {
                return None;
            }
            i += 1;
            j += 1;
        }
    }
    if i != t.len()
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || s > 61
    {
        return None;
    }
    fsutil::local_to_epoch(y as i32, mo as u32, d as u32, h as u32, mi as u32, s as u32)
}

fn time_arg(args: &Args, key: &str, state: Option<State>) -> Result<TimeSpec, ModuleError> {
    let fmt_key = format!("{key}_format");
    let format = args
        .str(&fmt_key)?
        .unwrap_or_else(|| "%Y%m%d%H%M.%S".into());
    match args.str(key)?.as_deref() {
        None => Ok(if state == Some(State::Touch) {
            TimeSpec::Now
        } else {
            TimeSpec::Preserve
        }),
        Some("preserve") => Ok(TimeSpec::Preserve),
        Some("now") => Ok(TimeSpec::Now),
        Some(t) => parse_time(t, &format).map(TimeSpec::At).ok_or_else(|| {
            ModuleError::new(format!(
                "Error while obtaining timestamp for time {t} using format {format}: \
                 time data '{t}' does not match format '{format}'"
            ))
        }),
    }
}

fn stamp(t: TimeSpec) -> Stamp {
    match t {
        TimeSpec::Preserve => Stamp::Preserve,
        TimeSpec::Now => Stamp::Now,
        TimeSpec::At(s) => Stamp::At(s),
    }
}

impl Desired {
    /// The link's target as it resolves from the link's directory.
    fn abs_src(&self) -> Option<PathBuf> {
        let src = self.src.as_deref()?;
        let base = self.path.parent().unwrap_or(Path::new("/"));
        Some(base.join(src))
    }

    fn times_wanted(&self) -> bool {
        self.atime != TimeSpec::Preserve || self.mtime != TimeSpec::Preserve
    }
}

/// What `state` is enforced when none is declared: what is there, else `directory` for
/// `recurse`, else `file`.
fn effective_state(d: &Desired, info: &PathInfo) -> State {
    d.state.unwrap_or(match info.kind {
        Kind::Absent if d.recurse => State::Directory,
        Kind::Absent => State::File,
        Kind::Directory => State::Directory,
        Kind::Link => State::Link,
        _ => State::File,
    })
}

/// ansible-core's name for what is at a path (`hard` for a file with several links).
fn prev_state(info: &PathInfo) -> &'static str {
    match info.kind {
        Kind::File | Kind::Other if info.nlink > 1 => "hard",
        k => k.as_str(),
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ModuleError> {
    let rd = fs::read_dir(dir).map_err(|e| ModuleError::io("cannot list", dir, e))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let is_dir = fsutil::lstat(&p)?.kind == Kind::Directory;
        out.push(p.clone());
        if is_dir {
            walk(&p, out)?;
        }
    }
    Ok(())
}

fn time_matches(spec: TimeSpec, actual: (i64, i64), touched: bool) -> bool {
    match spec {
        TimeSpec::Preserve => true,
        TimeSpec::Now => touched,
        TimeSpec::At(t) => actual == (t, 0),
    }
}

impl Resource for File {
    type Desired = Desired;
    type Observed = Observed;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, _ctx: &ModuleCtx) -> Result<Desired, ModuleError> {
        let path = args
            .str_any(&["path", "dest", "name"])?
            .ok_or_else(|| ModuleError::new("missing required arguments: path"))?;
        let state = args
            .choice(
                "state",
                &["absent", "directory", "file", "hard", "link", "touch"],
            )?
            .and_then(|s| State::parse(&s));
        let recurse = args.bool_or("recurse", false)?;
        if recurse && !matches!(state, None | Some(State::Directory)) {
            return Err(ModuleError::new(
                "recurse option requires state to be 'directory'",
            ));
        }
        let src = args.str("src")?;
        if src.is_some() && !matches!(state, None | Some(State::Link) | Some(State::Hard)) {
            return Err(ModuleError::new(
                "src option requires state to be 'link' or 'hard'",
            ));
        }
        Ok(Desired {
            path: fsutil::path_arg(&path),
            state,
            recurse,
            force: args.bool_or("force", false)?,
            follow: args.bool_or("follow", true)?,
            src: src.map(|s| fsutil::expand_user(&s)),
            attrs: Attrs::from_args(args)?,
            atime: time_arg(args, "access_time", state)?,
            mtime: time_arg(args, "modification_time", state)?,
        })
    }

    fn observe(&self, d: &Desired) -> Result<Observed, ModuleError> {
        let info = fsutil::lstat(&d.path)?;
        let state = effective_state(d, &info);
        let path = d.path.display();
        if recurse_invalid(d, state) {
            return Err(ModuleError::new(
                "recurse option requires state to be 'directory'",
            ));
        }
        if d.src.is_some() && !matches!(state, State::Link | State::Hard) {
            return Err(ModuleError::new(
                "src option requires state to be 'link' or 'hard'",
            ));
        }
        let link = if info.kind == Kind::Link {
            fs::read_link(&d.path)
                .ok()
                .map(|l| l.to_string_lossy().into_owned())
        } else {
            None
        };
        let target = if d.follow && info.kind == Kind::Link {
            Some(fsutil::info(&d.path, true)?).filter(|t| t.exists())
        } else {
            None
        };
        let managed = target.as_ref().unwrap_or(&info);
        match state {
            State::File => {
                if !matches!(managed.kind, Kind::File | Kind::Other) {
                    return Err(ModuleError::new(format!(
                        "file ({path}) is {}, cannot continue",
                        prev_state(managed)
                    )));
                }
            }
            State::Directory => {
                if managed.exists() && managed.kind != Kind::Directory {
                    return Err(ModuleError::new(format!(
                        "{path} already exists as a {}",
                        prev_state(&info)
                    )));
                }
            }
            State::Link => {
                let Some(abs) = d.abs_src() else {
                    if info.kind != Kind::Link {
                        return Err(ModuleError::new(
                            "src is required for creating new symlinks",
                        ));
                    }
                    return Ok(observed(info, state, target, link));
                };
                if !d.force && !fsutil::lstat(&abs)?.exists() && fs::metadata(&abs).is_err() {
                    return Err(ModuleError::new(format!(
                        "src file does not exist, use 'force=yes' if you really want to create the link: {}",
                        abs.display()
                    )));
                }
                match info.kind {
                    Kind::Directory if !d.force => {
                        return Err(ModuleError::new(format!(
                            "refusing to convert from directory to symlink for {path}"
                        )))
                    }
                    Kind::Directory => {
                        let empty = fs::read_dir(&d.path)
                            .map(|mut r| r.next().is_none())
                            .unwrap_or(false);
                        if !empty {
                            return Err(ModuleError::new(format!(
                                "the directory {path} is not empty, refusing to convert it"
                            )));
                        }
                    }
                    Kind::File | Kind::Other if !d.force => {
                        return Err(ModuleError::new(format!(
                            "refusing to convert from {} to symlink for {path}",
                            prev_state(&info)
                        )))
                    }
                    _ => {}
                }
            }
            State::Hard => {
                let Some(src) = d.src.as_deref() else {
                    return Err(ModuleError::new(
                        "src is required for creating new hardlinks",
                    ));
                };
                let src_info = fsutil::lstat(Path::new(src))?;
                if !src_info.exists() {
                    return Err(ModuleError::new("src does not exist"));
                }
                match info.kind {
                    Kind::Absent => {}
                    Kind::File | Kind::Other => {
                        let same = info.ino == src_info.ino && info.dev == src_info.dev;
                        if !same && !d.force {
                            return Err(ModuleError::new(if info.nlink > 1 {
                                "Cannot link, different hard link exists at destination".to_string()
                            } else {
                                format!("Cannot link, {} exists at destination", prev_state(&info))
                            }));
                        }
                        let mut o = observed(info, state, target, link);
                        o.same_inode = same;
                        return Ok(o);
                    }
                    _ if !d.force => {
                        return Err(ModuleError::new(format!(
                            "Cannot link, {} exists at destination",
                            prev_state(&info)
                        )))
                    }
                    _ => {}
                }
            }
            State::Touch | State::Absent => {}
        }
        let mut o = observed(info, state, target, link);
        if d.recurse && o.info.kind == Kind::Directory {
            let mut paths = Vec::new();
            walk(&d.path, &mut paths)?;
            for p in paths {
                let i = fsutil::info(&p, false)?;
                let attrs = if i.kind == Kind::Link {
                    d.attrs.with_mode(None)
                } else {
                    d.attrs.clone()
                };
                if !attrs.satisfied_by(&i, None) {
                    o.recurse_drift.push(p.display().to_string());
                }
            }
        }
        Ok(o)
    }

    fn diff(&self, d: &Desired, o: &Observed) -> Change {
        let subject = d.path.display().to_string();
        let before = prev_state(&o.info);
        let managed = o.target.as_ref().unwrap_or(&o.info);
        let mut c = Change::none(subject);
        match o.state {
            State::Absent => {
                if o.info.exists() {
                    c = c.field("state", before, "absent");
                    c.kind = ChangeKind::Delete;
                }
            }
            State::Directory | State::Touch if !o.info.exists() => {
                c = c.field("state", "absent", o.state.as_str());
                c.kind = ChangeKind::Create;
            }
            State::Link => {
                let want = d.src.as_deref();
                match (&o.link, want) {
                    (Some(have), Some(want)) if have != want => {
                        c = c.field("src", have.as_str(), want);
                    }
                    (None, _) => {
                        c = c.field("state", before, "link");
                        if let Some(w) = want {
                            c = c.field("src", Value::Null, w);
                        }
                        c.kind = if o.info.exists() {
                            ChangeKind::Update
                        } else {
                            ChangeKind::Create
                        };
                    }
                    _ => {}
                }
                if c.is_none() {
                    let attrs = if o.target.is_some() {
                        d.attrs.clone()
                    } else {
                        d.attrs.with_mode(None)
                    };
                    c = attrs.diff_into(c, managed, None);
                }
            }
            State::Hard => {
                if !o.same_inode {
                    c = c.field("state", before, "hard");
                    if let Some(src) = &d.src {
                        c = c.field("src", Value::Null, src.as_str());
                    }
                    c.kind = if o.info.exists() {
                        ChangeKind::Update
                    } else {
                        ChangeKind::Create
                    };
                } else {
                    c = d.attrs.diff_into(c, managed, None);
                }
            }
            State::File | State::Directory | State::Touch => {
                if o.state == State::Touch && before != "file" && before != "hard" {
                    c = c.field("state", before, "touch");
                }
                c = d.attrs.diff_into(c, managed, None);
            }
        }
        if matches!(
            o.state,
            State::File | State::Directory | State::Touch | State::Hard | State::Link
        ) && o.info.exists()
            && d.times_wanted()
        {
            if !time_matches(d.mtime, managed.mtime, o.touched) {
                c = c.field("mtime", managed.mtime.0 as f64, time_value(d.mtime));
            }
            if !time_matches(d.atime, managed.atime, o.touched) {
                c = c.field("atime", managed.atime.0 as f64, time_value(d.atime));
            }
        }
        if !o.recurse_drift.is_empty() {
            c = c.field("recurse", Value::from(o.recurse_drift.clone()), Value::Null);
        }
        c
    }

    fn apply(
        &self,
        d: &Desired,
        o: &Observed,
        _change: &Change,
        _ctx: &ModuleCtx,
    ) -> Result<Observed, ModuleError> {
        let path = &d.path;
        let mut touched = false;
        match o.state {
            State::Absent => {
                if o.info.kind == Kind::Directory {
                    fs::remove_dir_all(path)
                        .map_err(|e| ModuleError::new(format!("rmtree failed: {e}")))?;
                } else if o.info.exists() {
                    fs::remove_file(path)
                        .map_err(|e| ModuleError::io("Unlinking failed.", path, e))?;
                }
            }
            State::Directory => {
                let created = fsutil::create_dirs(path)?;
                for dir in &created {
                    d.attrs.apply(dir, true, None)?;
                }
                d.attrs.apply(path, d.follow, None)?;
                if d.recurse {
                    let mut paths = Vec::new();
                    walk(path, &mut paths)?;
                    for p in paths {
                        let i = fsutil::lstat(&p)?;
                        let attrs = if i.kind == Kind::Link {
                            d.attrs.with_mode(None)
                        } else {
                            d.attrs.clone()
                        };
                        attrs.apply(&p, false, None).map_err(|e| {
                            ModuleError::new(format!(
                                "Could not recursively set attributes on {}. Original error was: '{}'",
                                path.display(),
                                e.msg
                            ))
                        })?;
                    }
                }
            }
            State::File => {
                d.attrs.apply(path, d.follow, None)?;
            }
            State::Touch => {
                if !o.info.exists() {
                    fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(path)
                        .map_err(|e| {
                            ModuleError::new(format!("Error, could not touch target.: {e}"))
                        })?;
                }
                d.attrs.apply(path, d.follow, None)?;
            }
            State::Link => {
                if o.link.as_deref() != d.src.as_deref() {
                    let Some(src) = d.src.as_deref() else {
                        return Err(ModuleError::new(
                            "src is required for creating new symlinks",
                        ));
                    };
                    replace_with(path, &o.info, |tmp| std::os::unix::fs::symlink(src, tmp))?;
                }
                let attrs = if d.follow {
                    d.attrs.clone()
                } else {
                    d.attrs.with_mode(None)
                };
                if fsutil::info(path, d.follow)?.exists() {
                    attrs.apply(path, d.follow, None)?;
                } else {
                    attrs.with_mode(None).apply(path, false, None)?;
                }
            }
            State::Hard => {
                if !o.same_inode {
                    let src = d.src.clone().unwrap_or_default();
                    replace_with(path, &o.info, |tmp| fs::hard_link(&src, tmp))?;
                }
                d.attrs.apply(path, d.follow, None)?;
            }
        }
        if o.state != State::Absent && d.times_wanted() {
            fsutil::set_times(path, stamp(d.atime), stamp(d.mtime), d.follow).map_err(|e| {
                ModuleError::new(format!(
                    "Error while updating modification or access time: {}",
                    e.msg
                ))
            })?;
            touched = true;
        }
        let mut after = self.observe(d)?;
        after.touched = touched;
        Ok(after)
    }

    fn restore(
        &self,
        d: &Desired,
        o: &Observed,
        _change: &Change,
    ) -> Result<Option<crate::journal::Restore>, ModuleError> {
        use crate::journal::{self, Restore};
        let p = d.path.display();
        if d.recurse {
            return Ok(Some(Restore::Cannot(format!(
                "recursive changes under {p} are not journaled"
            ))));
        }
        if o.state == State::Absent
            && o.info.kind == Kind::Directory
            && journal::dir_has_entries(&d.path)
        {
            return Ok(Some(Restore::Cannot(format!(
                "{p} was a directory with contents; tend does not keep removed trees"
            ))));
        }
        // Attributes of a link's target are what `follow` changes; a link itself, or its
        // removal, is about the path.
        let follow = d.follow && !matches!(o.state, State::Link | State::Absent | State::Hard);
        journal::restore_path(&d.path, follow).map(Some)
    }

    fn result(&self, d: &Desired, o: &Observed, _change: &Change) -> Vars {
        let key = match o.state {
            State::Link | State::Hard | State::Touch => "dest",
            _ => "path",
        };
        let follow = d.follow && o.state != State::Link;
        let mut v = if o.info.exists() || o.state == State::Absent {
            fsutil::path_fields(key, &d.path, follow)
        } else {
            // Check mode: what would be.
            let mut v = Vars::new();
            v.insert(key.into(), d.path.display().to_string().into());
            v.insert("state".into(), o.state.as_str().into());
            v
        };
        if o.state == State::Absent {
            v.insert("state".into(), "absent".into());
        }
        if let (State::Link | State::Hard, Some(src)) = (o.state, &d.src) {
            v.insert("src".into(), src.clone().into());
        }
        v
    }
}

fn recurse_invalid(d: &Desired, state: State) -> bool {
    d.recurse && state != State::Directory
}

fn observed(
    info: PathInfo,
    state: State,
    target: Option<PathInfo>,
    link: Option<String>,
) -> Observed {
    Observed {
        info,
        state,
        target,
        link,
        same_inode: false,
        recurse_drift: Vec::new(),
        touched: false,
    }
}

fn time_value(t: TimeSpec) -> Value {
    match t {
        TimeSpec::Preserve => Value::Null,
        TimeSpec::Now => "now".into(),
        TimeSpec::At(s) => (s as f64).into(),
    }
}

/// Puts a new link at `path` atomically: made beside it under a temporary name, then renamed
/// over it (an empty directory in the way is removed first).
fn replace_with(
    path: &Path,
    info: &PathInfo,
    make: impl Fn(&Path) -> std::io::Result<()>,
) -> Result<(), ModuleError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".tend-tmp-{}-{name}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    make(&tmp).map_err(|e| ModuleError::new(format!("Error while linking: {e}")))?;
    if info.kind == Kind::Directory {
        if let Err(e) = fs::remove_dir(path) {
            let _ = fs::remove_file(&tmp);
            return Err(ModuleError::new(format!("Error while replacing: {e}")));
        }
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ModuleError::new(format!("Error while replacing: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn diff_fixtures() {
        let d = |state| Desired {
            path: "/x".into(),
            state,
            recurse: false,
            force: false,
            follow: true,
            src: None,
            attrs: Attrs {
                mode: Some(fsutil::Mode::Octal(0o700)),
                ..Default::default()
            },
            atime: TimeSpec::Preserve,
            mtime: TimeSpec::Preserve,
        };
        let absent = observed(PathInfo::absent(), State::Directory, None, None);
        let c = File.diff(&d(Some(State::Directory)), &absent);
        assert_eq!(c.kind, ChangeKind::Create);
        assert_eq!(
            c.diff_records()[0],
            json!({"before": {"path": "/x", "state": "absent"},
                   "after": {"path": "/x", "state": "directory"}})
        );
        let dir = PathInfo {
            kind: Kind::Directory,
            mode: 0o700,
            nlink: 2,
            ..PathInfo::absent()
        };
        let o = observed(dir.clone(), State::Directory, None, None);
        assert!(File.diff(&d(Some(State::Directory)), &o).is_none());
        let o = observed(dir, State::Absent, None, None);
        let c = File.diff(&d(Some(State::Absent)), &o);
        assert_eq!(c.kind, ChangeKind::Delete);
        assert_eq!(c.fields[0].before, json!("directory"));
    }

    #[test]
    fn times_parse_with_ansible_format() {
        let t = parse_time("202401021304.05", "%Y%m%d%H%M.%S").unwrap();
        assert_eq!(fsutil::local_time(t), (2024, 1, 2, 13, 4, 5));
        assert!(parse_time("2024", "%Y%m%d%H%M.%S").is_none());
    }

    #[test]
    fn directory_converges() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a/b");
        let args = json!({"path": p, "state": "directory", "mode": "0750"});
        let out = run("file", args.clone());
        assert!(out.changed, "{out:?}");
        assert_eq!(out.fields["mode"], json!("0750"));
        assert_eq!(out.fields["state"], json!("directory"));
        assert!(!run("file", args.clone()).changed);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(run_check("file", args.clone()).changed);
        assert_eq!(fsutil::lstat(&p).unwrap().mode, 0o777);
        assert!(run("file", args).changed);
        assert_eq!(fsutil::lstat(&p).unwrap().mode, 0o750);
    }

    #[test]
    fn check_mode_changes_nothing() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        let before = snapshot(t.path());
        for args in [
            json!({"path": t.path().join("d"), "state": "directory"}),
            json!({"path": t.path().join("f"), "state": "touch"}),
            json!({"path": t.path().join("f"), "state": "absent"}),
            json!({"path": t.path().join("f"), "mode": "0600"}),
            json!({"path": t.path().join("l"), "state": "link", "src": "f"}),
        ] {
            assert!(run_check("file", args).changed);
        }
        assert_eq!(snapshot(t.path()), before);
    }

    #[test]
    fn links_touch_absent_and_errors() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        let l = t.path().join("l");
        let out = run("file", json!({"path": f, "state": "touch", "mode": "0600"}));
        assert!(out.changed);
        assert_eq!(out.fields["dest"], json!(f.display().to_string()));
        // touch always changes (times set to now), like ansible-core.
        assert!(run("file", json!({"path": f, "state": "touch"})).changed);
        let preserve = json!({"path": f, "state": "touch", "modification_time": "preserve", "access_time": "preserve"});
        assert!(!run("file", preserve).changed);

        let link = json!({"path": l, "state": "link", "src": "f"});
        let out = run("file", link.clone());
        assert!(out.changed);
        assert_eq!(out.fields["src"], json!("f"));
        assert_eq!(fs::read_link(&l).unwrap(), Path::new("f"));
        assert!(!run("file", link).changed);

        let e = run_err(
            "file",
            json!({"path": l, "state": "link", "src": "missing"}),
        );
        assert!(
            e.starts_with("src file does not exist, use 'force=yes'"),
            "{e}"
        );
        let e = run_err("file", json!({"path": f, "state": "directory"}));
        assert_eq!(e, format!("{} already exists as a file", f.display()));
        let e = run_err(
            "file",
            json!({"path": t.path().join("nope"), "state": "file"}),
        );
        assert_eq!(
            e,
            format!(
                "file ({}) is absent, cannot continue",
                t.path().join("nope").display()
            )
        );

        let h = t.path().join("h");
        assert!(run("file", json!({"path": h, "state": "hard", "src": f})).changed);
        assert!(!run("file", json!({"path": h, "state": "hard", "src": f})).changed);

        let out = run("file", json!({"path": l, "state": "absent"}));
        assert!(out.changed);
        assert_eq!(out.fields["state"], json!("absent"));
        assert!(!run("file", json!({"path": l, "state": "absent"})).changed);
    }

    #[test]
    fn recurse_sets_modes_below() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/f"), "x").unwrap();
        let args =
            json!({"path": d, "state": "directory", "recurse": true, "mode": "u=rwX,g=rX,o="});
        assert!(run("file", args.clone()).changed);
        assert_eq!(fsutil::lstat(&d.join("sub/f")).unwrap().mode, 0o640);
        assert_eq!(fsutil::lstat(&d.join("sub")).unwrap().mode, 0o750);
        assert!(!run("file", args.clone()).changed);
        fs::set_permissions(d.join("sub/f"), fs::Permissions::from_mode(0o666)).unwrap();
        assert!(run("file", args).changed);
    }
}
