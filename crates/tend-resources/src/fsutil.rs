//! File-system helpers shared by the file modules: what a path is now ([`PathInfo`]), modes
//! (octal and symbolic, as ansible-core parses them), owners and groups (read from
//! `/etc/passwd` and `/etc/group`, no process spawned), checksums, backups named like
//! ansible-core's, atomic writes, and setting owner/group/mode/times on a path.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha1::{Digest, Sha1};
use tend_proto::{Value, Vars};

use crate::ModuleError;

/// The permission bits ansible-core manages (`PERM_BITS`: rwx for all, setuid, setgid, sticky).
pub const PERM_BITS: u32 = 0o7777;

// ---------------------------------------------------------------------------------------------
// What a path is

/// The kind of thing at a path, named as ansible-core's `file` module names states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Absent,
    File,
    Directory,
    Link,
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Absent => "absent",
            Kind::File => "file",
            Kind::Directory => "directory",
            Kind::Link => "link",
            Kind::Other => "file",
        }
    }
}

/// What `lstat` (or `stat`, when following links) says about a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathInfo {
    pub kind: Kind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u64,
    pub ino: u64,
    pub dev: u64,
    pub mtime: (i64, i64),
    pub atime: (i64, i64),
    pub ctime: (i64, i64),
    /// Raw `st_mode`.
    pub raw_mode: u32,
}

impl PathInfo {
    pub fn absent() -> Self {
        PathInfo {
            kind: Kind::Absent,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            nlink: 0,
            ino: 0,
            dev: 0,
            mtime: (0, 0),
            atime: (0, 0),
            ctime: (0, 0),
            raw_mode: 0,
        }
    }

    pub fn exists(&self) -> bool {
        self.kind != Kind::Absent
    }

    fn from_meta(m: &fs::Metadata) -> Self {
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            Kind::Link
        } else if ft.is_dir() {
            Kind::Directory
        } else if ft.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        PathInfo {
            kind,
            mode: m.mode() & PERM_BITS,
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            nlink: m.nlink(),
            ino: m.ino(),
            dev: m.dev(),
            mtime: (m.mtime(), m.mtime_nsec()),
            atime: (m.atime(), m.atime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            raw_mode: m.mode(),
        }
    }
}

/// `lstat(path)`; a missing path (or one under a non-directory) is `Kind::Absent`.
pub fn lstat(path: &Path) -> Result<PathInfo, ModuleError> {
    info(path, false)
}

/// `stat` (follow) or `lstat` (don't) of a path; missing is `Kind::Absent`.
pub fn info(path: &Path, follow: bool) -> Result<PathInfo, ModuleError> {
    let r = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    match r {
        Ok(m) => Ok(PathInfo::from_meta(&m)),
        Err(e) if is_missing(&e) => Ok(PathInfo::absent()),
        Err(e) => Err(ModuleError::io("cannot stat", path, e)),
    }
}

fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Opens a file for reading without updating its access time where the kernel allows it.
pub fn open_noatime(path: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        r => r,
    }
}

/// Reads a whole file without touching its atime.
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = open_noatime(path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads a file if it is there: `Ok(None)` when it does not exist.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, ModuleError> {
    match read_file(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(ModuleError::io("cannot read", path, e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Checksums

/// The sha1 of some bytes as hex, ansible-core's `checksum` field.
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// A file's digest with `algorithm` (md5, sha1, sha224, sha256, sha384, sha512), streamed.
pub fn file_digest(path: &Path, algorithm: &str) -> Result<String, ModuleError> {
    let mut f = open_noatime(path).map_err(|e| ModuleError::io("cannot read", path, e))?;
    macro_rules! stream {
        ($h:expr) => {{
            let mut h = $h;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| ModuleError::io("cannot read", path, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            hex::encode(h.finalize())
        }};
    }
    Ok(match algorithm {
        "sha1" => stream!(Sha1::new()),
        "md5" => stream!(md5::Md5::new()),
        "sha224" => stream!(sha2::Sha224::new()),
        "sha256" => stream!(sha2::Sha256::new()),
        "sha384" => stream!(sha2::Sha384::new()),
        "sha512" => stream!(sha2::Sha512::new()),
        other => {
            return Err(ModuleError::new(format!(
                "unsupported checksum algorithm: {other}"
            )))
        }
    })
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(md5::Md5::digest(data))
}

// ---------------------------------------------------------------------------------------------
// Modes

/// A `mode:` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Octal(u32),
    /// `u+rwx,g-w` — resolved against the current mode.
    Symbolic(String),
    /// `preserve` (copy/template): the source file's mode.
    Preserve,
}

impl Mode {
    /// Parses a mode the way ansible-core does: an integer is the mode itself (YAML `0644` is
    /// 420), a string of octal digits is octal, anything else is symbolic.
    pub fn parse(v: &Value) -> Result<Mode, ModuleError> {
        match v {
            Value::Number(n) => match n.as_u64() {
                Some(m) if m <= u32::MAX as u64 => Ok(Mode::Octal(m as u32 & PERM_BITS)),
                _ => Err(ModuleError::new(format!(
                    "mode must be in octal or symbolic form: {n}"
                ))),
            },
            Value::String(s) => Mode::parse_str(s),
            other => Err(ModuleError::new(format!(
                "mode must be in octal or symbolic form: {other}"
            ))),
        }
    }

    pub fn parse_str(s: &str) -> Result<Mode, ModuleError> {
        let t = s.trim();
        if t == "preserve" {
            return Ok(Mode::Preserve);
        }
        if !t.is_empty() && t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return u32::from_str_radix(t, 8)
                .map(|m| Mode::Octal(m & PERM_BITS))
                .map_err(|_| {
                    ModuleError::new(format!("mode must be in octal or symbolic form: {s}"))
                });
        }
        // Validate now so the error comes before anything is touched.
        symbolic_to_octal(t, 0, false)?;
        Ok(Mode::Symbolic(t.to_string()))
    }

    /// The permission bits to set, given the current ones. `None` for `preserve` without a
    /// source mode.
    pub fn resolve(
        &self,
        current: u32,
        is_dir: bool,
        src_mode: Option<u32>,
    ) -> Result<Option<u32>, ModuleError> {
        match self {
            Mode::Octal(m) => Ok(Some(*m)),
            Mode::Symbolic(s) => symbolic_to_octal(s, current, is_dir).map(Some),
            Mode::Preserve => Ok(src_mode),
        }
    }
}

/// `0644` as ansible-core formats modes in results (`'0%03o'`).
pub fn mode_str(m: u32) -> String {
    format!("0{:03o}", m & PERM_BITS)
}

/// Applies a symbolic mode (`u+rwx,g-w,o=`, `a+X`, `g=u`) to `current`, as ansible-core does.
pub fn symbolic_to_octal(spec: &str, current: u32, is_dir: bool) -> Result<u32, ModuleError> {
    let bad = || ModuleError::new(format!("bad symbolic permission for mode: {spec}"));
    let mut mode = current & PERM_BITS;
    for clause in spec.split(',') {
        let op_at = clause.find(['+', '-', '=']).ok_or_else(bad)?;
        let (users, mut rest) = clause.split_at(op_at);
        if !users.bytes().all(|b| b"ugoa".contains(&b)) {
            return Err(bad());
        }
        let (users, umask) = if users.is_empty() || users.contains('a') {
            ("ugo", if users.is_empty() { 0o022 } else { 0 })
        } else {
            (users, 0)
        };
        // One or more `op perms` groups: `u+r-w`.
        while !rest.is_empty() {
            let op = rest.as_bytes()[0];
            rest = &rest[1..];
            let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
            let perms = &rest[..end];
            rest = &rest[end..];
            for user in users.bytes() {
                let bits = perm_bits(perms, user, mode, is_dir).ok_or_else(bad)? & !umask;
                let mask = match user {
                    b'u' => 0o4700,
                    b'g' => 0o2070,
                    _ => 0o1007,
                };
                mode = match op {
                    b'=' => (mode & !mask) | bits,
                    b'+' => mode | bits,
                    _ => mode & !bits,
                };
            }
        }
    }
    Ok(mode)
}

/// The bits `perms` stands for when applied to `user`.
fn perm_bits(perms: &str, user: u8, current: u32, is_dir: bool) -> Option<u32> {
    let shift = match user {
        b'u' => 6,
        b'g' => 3,
        _ => 0,
    };
    // Copying another class's bits: `g=u`.
    if perms.len() == 1 && b"ugo".contains(&perms.as_bytes()[0]) {
        let from = match perms.as_bytes()[0] {
            b'u' => (current >> 6) & 7,
            b'g' => (current >> 3) & 7,
            _ => current & 7,
        };
        return Some(from << shift);
    }
    let mut rwx = 0;
    let mut special = 0;
    for c in perms.bytes() {
        match c {
            b'r' => rwx |= 4,
            b'w' => rwx |= 2,
            b'x' => rwx |= 1,
            b'X' => {
                if is_dir || current & 0o111 != 0 {
                    rwx |= 1
                }
            }
            b's' => {
                special |= match user {
                    b'u' => 0o4000,
                    b'g' => 0o2000,
                    _ => 0,
                }
            }
            b't' => {
                if user == b'o' {
                    special |= 0o1000
                }
            }
            b'-' => {}
            _ => return None,
        }
    }
    Some((rwx << shift) | special)
}

// ---------------------------------------------------------------------------------------------
// Users and groups

type DbEntries = std::sync::Arc<Vec<(String, u32)>>;

/// Names and ids of `/etc/passwd` or `/etc/group`, parsed once and kept until the file changes
/// (its size or mtime), so a run with hundreds of file resources reads each database once.
fn db_entries(file: &'static str) -> DbEntries {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    type Stamp = (Option<std::time::SystemTime>, u64);
    static CACHE: OnceLock<Mutex<HashMap<&'static str, (Stamp, DbEntries)>>> = OnceLock::new();
    let stamp: Stamp = match fs::metadata(file) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => return Arc::new(Vec::new()),
    };
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(c) = cache.lock() {
        if let Some((s, entries)) = c.get(file) {
            if *s == stamp {
                return entries.clone();
            }
        }
    }
    let entries: DbEntries = Arc::new(match fs::read_to_string(file) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut it = l.split(':');
                let name = it.next()?;
                let _pw = it.next()?;
                let id = it.next()?.parse().ok()?;
                Some((name.to_string(), id))
            })
            .collect(),
        Err(_) => Vec::new(),
    });
    if let Ok(mut c) = cache.lock() {
        c.insert(file, (stamp, entries.clone()));
    }
    entries
}

/// A user name or numeric id → uid (numeric first, as ansible-core does).
pub fn resolve_user(name: &str) -> Option<u32> {
    if let Ok(id) = name.parse() {
        return Some(id);
    }
    db_entries("/etc/passwd")
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, id)| *id)
}

/// A group name or numeric id → gid.
pub fn resolve_group(name: &str) -> Option<u32> {
    if let Ok(id) = name.parse() {
        return Some(id);
    }
    db_entries("/etc/group")
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, id)| *id)
}

/// uid → user name, or the number as text when unknown (ansible-core's `owner` field).
pub fn user_name(uid: u32) -> String {
    db_entries("/etc/passwd")
        .iter()
        .find(|(_, id)| *id == uid)
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| uid.to_string())
}

pub fn group_name(gid: u32) -> String {
    db_entries("/etc/group")
        .iter()
        .find(|(_, id)| *id == gid)
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| gid.to_string())
}

/// A user's home directory (for `~user`), from `/etc/passwd`.
pub fn home_of(user: &str) -> Option<String> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 5 && f[0] == user).then(|| f[5].to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// Owner, group, mode as declared

/// The common file arguments: `owner`, `group`, `mode` (ansible-core's file common args).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    pub owner: Option<(String, u32)>,
    pub group: Option<(String, u32)>,
    pub mode: Option<Mode>,
}

impl Attrs {
    /// Reads `owner`, `group`, `mode` from the arguments and resolves names to ids.
    pub fn from_args(args: &crate::Args) -> Result<Attrs, ModuleError> {
        for k in [
            "seuser",
            "serole",
            "setype",
            "selevel",
            "attributes",
            "attr",
        ] {
            if args.has(k) {
                return Err(ModuleError::new(format!(
                    "tend does not support the '{k}' argument (SELinux contexts and file \
                     attributes) yet"
                )));
            }
        }
        let owner = match args.str("owner")? {
            Some(o) if !o.is_empty() => {
                Some(resolve_user(&o).map(|id| (o.clone(), id)).ok_or_else(|| {
                    ModuleError::new(format!("chown failed: failed to look up user {o}"))
                })?)
            }
            _ => None,
        };
        let group = match args.str("group")? {
            Some(g) if !g.is_empty() => {
                Some(resolve_group(&g).map(|id| (g.clone(), id)).ok_or_else(|| {
                    ModuleError::new(format!("chgrp failed: failed to look up group {g}"))
                })?)
            }
            _ => None,
        };
        let mode = args.raw("mode").map(Mode::parse).transpose()?;
        Ok(Attrs { owner, group, mode })
    }

    pub fn with_mode(&self, mode: Option<Mode>) -> Attrs {
        Attrs {
            mode,
            ..self.clone()
        }
    }

    /// The mode to set on a thing whose mode is now `current`.
    pub fn target_mode(
        &self,
        current: u32,
        is_dir: bool,
        src_mode: Option<u32>,
    ) -> Result<Option<u32>, ModuleError> {
        match &self.mode {
            None => Ok(None),
            Some(m) => m.resolve(current, is_dir, src_mode),
        }
    }

    /// Adds the owner/group/mode differences between `info` and this declaration to `change`.
    /// Values are recorded the way ansible-core's diff records them (`owner`/`group` as ids,
    /// `mode` as `"0644"`).
    pub fn diff_into(
        &self,
        mut change: crate::Change,
        info: &PathInfo,
        src_mode: Option<u32>,
    ) -> crate::Change {
        if let Some((_, uid)) = &self.owner {
            change = change.field_if("owner", info.uid, *uid);
        }
        if let Some((_, gid)) = &self.group {
            change = change.field_if("group", info.gid, *gid);
        }
        let is_dir = info.kind == Kind::Directory;
        if info.kind != Kind::Link {
            if let Ok(Some(m)) = self.target_mode(info.mode, is_dir, src_mode) {
                change = change.field_if("mode", mode_str(info.mode), mode_str(m));
            }
        }
        change
    }

    /// Whether `info` already satisfies this declaration.
    pub fn satisfied_by(&self, info: &PathInfo, src_mode: Option<u32>) -> bool {
        self.diff_into(crate::Change::none(""), info, src_mode)
            .is_none()
    }

    /// Sets owner, group and mode on `path` where they differ. Links get `lchown` and no chmod
    /// unless `follow` (Linux cannot chmod a link itself).
    pub fn apply(
        &self,
        path: &Path,
        follow: bool,
        src_mode: Option<u32>,
    ) -> Result<bool, ModuleError> {
        let info = info(path, follow)?;
        if !info.exists() {
            return Err(ModuleError::new(format!(
                "path {} does not exist",
                path.display()
            )));
        }
        let mut changed = false;
        let uid = self.owner.as_ref().map(|o| o.1).filter(|u| *u != info.uid);
        let gid = self.group.as_ref().map(|g| g.1).filter(|g| *g != info.gid);
        if uid.is_some() || gid.is_some() {
            let r = if follow || info.kind != Kind::Link {
                std::os::unix::fs::chown(path, uid, gid)
            } else {
                std::os::unix::fs::lchown(path, uid, gid)
            };
            r.map_err(|e| {
                ModuleError::io(
                    if uid.is_some() {
                        "chown failed:"
                    } else {
                        "chgrp failed:"
                    },
                    path,
                    e,
                )
            })?;
            changed = true;
        }
        if info.kind != Kind::Link {
            // chown clears setuid/setgid bits: read the mode again.
            let info = if changed {
                self::info(path, follow)?
            } else {
                info
            };
            if let Some(m) = self.target_mode(info.mode, info.kind == Kind::Directory, src_mode)? {
                if m != info.mode {
                    fs::set_permissions(path, fs::Permissions::from_mode(m))
                        .map_err(|e| ModuleError::io("chmod failed:", path, e))?;
                    changed = true;
                }
            }
        }
        Ok(changed)
    }
}

/// ansible-core's path info in results: `path` (or `dest`), `state`, `mode`, `owner`,
/// `group`, `uid`, `gid`, `size`.
pub fn path_fields(key: &str, path: &Path, follow: bool) -> Vars {
    let mut v = Vars::new();
    v.insert(key.into(), Value::String(path.display().to_string()));
    let Ok(i) = info(path, follow) else { return v };
    if !i.exists() {
        v.insert("state".into(), "absent".into());
        return v;
    }
    v.insert("uid".into(), i.uid.into());
    v.insert("gid".into(), i.gid.into());
    v.insert("owner".into(), user_name(i.uid).into());
    v.insert("group".into(), group_name(i.gid).into());
    v.insert("mode".into(), mode_str(i.mode).into());
    let state = match i.kind {
        Kind::Directory => "directory",
        Kind::Link => "link",
        _ if i.nlink > 1 => "hard",
        _ => "file",
    };
    v.insert("state".into(), state.into());
    v.insert("size".into(), i.size.into());
    v
}

// ---------------------------------------------------------------------------------------------
// Times

/// A timestamp to set: keep it, now, or a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    Preserve,
    Now,
    At(i64),
}

/// Sets atime/mtime on a path (not following a final link when `follow` is false).
pub fn set_times(path: &Path, atime: Stamp, mtime: Stamp, follow: bool) -> Result<(), ModuleError> {
    fn ts(s: Stamp) -> libc::timespec {
        match s {
            Stamp::Preserve => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            Stamp::Now => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            Stamp::At(t) => libc::timespec {
                tv_sec: t as libc::time_t,
                tv_nsec: 0,
            },
        }
    }
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| ModuleError::new(format!("path contains a NUL byte: {}", path.display())))?;
    let times = [ts(atime), ts(mtime)];
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    #[allow(unsafe_code)]
    // SAFETY: `c` is a valid NUL-terminated string and `times` an array of two timespecs, both
    // alive for the duration of the call; utimensat does not keep the pointers.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flags) };
    if rc != 0 {
        return Err(ModuleError::io(
            "cannot set times of",
            path,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Broken-down local time: (year, month, day, hour, minute, second).
pub fn local_time(secs: i64) -> (i32, u32, u32, u32, u32, u32) {
    let t = secs as libc::time_t;
    #[allow(unsafe_code)]
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are valid; localtime_r writes
    // only into it and reads only `t`, both of which outlive the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            tm = std::mem::zeroed();
            tm.tm_year = 70;
            tm.tm_mday = 1;
        }
        tm
    };
    (
        tm.tm_year + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
    )
}

/// Local broken-down time → seconds since the epoch (`mktime`).
pub fn local_to_epoch(year: i32, mon: u32, day: u32, hour: u32, min: u32, sec: u32) -> Option<i64> {
    #[allow(unsafe_code)]
    // SAFETY: `tm` is a plain C struct, all-zero is valid; mktime reads and normalises it.
    let t = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = year - 1900;
        tm.tm_mon = mon as i32 - 1;
        tm.tm_mday = day as i32;
        tm.tm_hour = hour as i32;
        tm.tm_min = min as i32;
        tm.tm_sec = sec as i32;
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    };
    (t != -1).then_some(t as i64)
}

/// Now as seconds and microseconds since the epoch.
pub fn now() -> (i64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_micros())
}

/// Python's `str(datetime.now())`: `2024-05-01 12:00:00.123456`.
pub fn datetime_str(secs: i64, micros: u32) -> String {
    let (y, mo, d, h, mi, s) = local_time(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{micros:06}")
}

// ---------------------------------------------------------------------------------------------
// Backups and atomic writes

/// Copies `path` to `path.<pid>.<YYYY-MM-DD@HH:MM:SS~>` keeping mode, owner and times, as
/// ansible-core's `backup_local` does. Returns the backup's path.
///
/// ansible-core names a backup `<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~`, and each of its module
/// runs is a new process. tend runs every module in one process, so two backups of one file in
/// the same second would get the same name; the number is then raised until the name is free
/// (later backups still sort after earlier ones, by time then number).
pub fn backup(path: &Path) -> Result<PathBuf, ModuleError> {
    let (y, mo, d, h, mi, s) = local_time(now().0);
    let src = lstat(path)?;
    let mut number = u64::from(std::process::id());
    let dest = loop {
        let dest = PathBuf::from(format!(
            "{}.{number}.{y:04}-{mo:02}-{d:02}@{h:02}:{mi:02}:{s:02}~",
            path.display(),
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
        {
            Ok(_) => break dest,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => number += 1,
            Err(e) => return Err(ModuleError::io("Could not make backup of", path, e)),
        }
    };
    fs::copy(path, &dest).map_err(|e| ModuleError::io("Could not make backup of", path, e))?;
    let _ = std::os::unix::fs::chown(&dest, Some(src.uid), Some(src.gid));
    let _ = fs::set_permissions(&dest, fs::Permissions::from_mode(src.mode));
    let _ = set_times(&dest, Stamp::At(src.atime.0), Stamp::At(src.mtime.0), true);
    Ok(dest)
}

/// A check run on the written temporary file before it replaces the real one (`validate`).
pub type Validator<'a> = &'a dyn Fn(&Path) -> Result<(), ModuleError>;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, exclusively created file in `dir` (mode 0666 minus umask, like a new file).
pub fn create_temp_in(dir: &Path, hint: &str) -> Result<(PathBuf, File), ModuleError> {
    for _ in 0..100 {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = dir.join(format!(
            ".tend-tmp-{}-{n}-{nanos:x}-{hint}",
            std::process::id()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(ModuleError::io("cannot create a temporary file in", dir, e)),
        }
    }
    Err(ModuleError::new(format!(
        "cannot create a temporary file in {}",
        dir.display()
    )))
}

/// Removes a temporary file when dropped unless disarmed.
pub struct TempGuard(pub Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same directory is written,
/// fsynced, given the existing file's owner, group and mode (or `attrs`), checked with
/// `validate` (called with the temporary path), renamed over `path`, and the directory is
/// fsynced. A new file gets mode 0666 minus the umask, as ansible-core's atomic move does.
pub fn atomic_write(
    path: &Path,
    data: &[u8],
    attrs: &Attrs,
    src_mode: Option<u32>,
    validate: Option<Validator>,
) -> Result<(), ModuleError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let hint: String = path
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(40).collect())
        .unwrap_or_default();
    let (tmp, mut f) = create_temp_in(&dir, &hint)?;
    let mut guard = TempGuard(Some(tmp.clone()));
    f.write_all(data)
        .map_err(|e| ModuleError::io("cannot write", &tmp, e))?;
    f.sync_all()
        .map_err(|e| ModuleError::io("cannot fsync", &tmp, e))?;
    drop(f);
    commit_temp(&tmp, path, attrs, src_mode, validate)?;
    guard.0 = None;
    Ok(())
}

/// Puts a written temporary file (in `path`'s directory) in place of `path`: it gets the
/// existing file's owner, group and mode (or `attrs`), is checked with `validate`, renamed
/// over `path` (through a final link, as ansible-core does), and the directory is fsynced.
/// The temporary file is removed if anything fails.
pub fn commit_temp(
    tmp: &Path,
    path: &Path,
    attrs: &Attrs,
    src_mode: Option<u32>,
    validate: Option<Validator>,
) -> Result<(), ModuleError> {
    let mut guard = TempGuard(Some(tmp.to_path_buf()));
    let existing = info(path, true)?;
    if existing.kind == Kind::File {
        let _ = std::os::unix::fs::chown(tmp, Some(existing.uid), Some(existing.gid));
        fs::set_permissions(tmp, fs::Permissions::from_mode(existing.mode))
            .map_err(|e| ModuleError::io("chmod failed:", tmp, e))?;
    }
    attrs.apply(tmp, true, src_mode)?;
    if let Some(v) = validate {
        v(tmp)?;
    }
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    fs::rename(tmp, &target).map_err(|e| ModuleError::io("cannot replace", path, e))?;
    guard.0 = None;
    if let Some(d) = target.parent() {
        if let Ok(d) = File::open(if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// `access(2)`: whether the running user may read (`R_OK`), write (`W_OK`) or execute
/// (`X_OK`) a path.
pub fn access(path: &Path, mode: libc::c_int) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    #[allow(unsafe_code)]
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::access(c.as_ptr(), mode) };
    rc == 0
}

/// Whether bytes look binary (a NUL byte, as ansible-core's diff guesses).
pub fn is_binary(data: &[u8]) -> bool {
    data.contains(&0)
}

/// Creates `path` and missing parents; returns the directories created, outermost first.
pub fn create_dirs(path: &Path) -> Result<Vec<PathBuf>, ModuleError> {
    let mut missing = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || lstat(p)?.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    missing.reverse();
    for d in &missing {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(ModuleError::io("There was an issue creating", d, e)),
        }
    }
    Ok(missing)
}

/// `~` and `~user` at the start of a path, as Python's `os.path.expanduser`.
pub fn expand_user(s: &str) -> String {
    let Some(rest) = s.strip_prefix('~') else {
        return s.to_string();
    };
    let (user, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let home = if user.is_empty() {
        std::env::var("HOME")
            .ok()
            .or_else(|| home_of(&user_name(current_uid())))
    } else {
        home_of(user)
    };
    match home {
        Some(h) => {
            let r = format!("{}{tail}", h.trim_end_matches('/'));
            if r.is_empty() {
                "/".into()
            } else {
                r
            }
        }
        None => s.to_string(),
    }
}

fn current_uid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// A `path`-typed argument: `~` expanded, as ansible-core's `type='path'` does (it also
/// expands `$VARS`).
pub fn path_arg(s: &str) -> PathBuf {
    PathBuf::from(expand_vars(&expand_user(s), &|k| std::env::var(k).ok()))
}

/// `$NAME` and `${NAME}` replaced by `lookup`; unknown names are left as written (Python's
/// `os.path.expandvars`).
pub fn expand_vars(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'{' {
                if let Some(close) = s[i + 2..].find('}') {
                    let name = &s[i + 2..i + 2 + close];
                    if let Some(v) = lookup(name) {
                        out.push_str(&v);
                        i += close + 3;
                        continue;
                    }
                }
            } else if is_name(b[i + 1]) {
                let mut j = i + 1;
                while j < b.len() && is_name(b[j]) {
                    j += 1;
                }
                if let Some(v) = lookup(&s[i + 1..j]) {
                    out.push_str(&v);
                    i = j;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backups_in_the_same_second_do_not_overwrite_each_other() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f.conf");
        fs::write(&f, "one\n").unwrap();
        let b1 = backup(&f).unwrap();
        fs::write(&f, "two\n").unwrap();
        let b2 = backup(&f).unwrap();
        assert_ne!(b1, b2);
        assert_eq!(fs::read_to_string(&b1).unwrap(), "one\n");
        assert_eq!(fs::read_to_string(&b2).unwrap(), "two\n");
    }

    #[test]
    fn modes_parse_like_ansible() {
        assert_eq!(Mode::parse(&json!(420)).unwrap(), Mode::Octal(0o644));
        assert_eq!(Mode::parse(&json!("0644")).unwrap(), Mode::Octal(0o644));
        assert_eq!(Mode::parse(&json!("644")).unwrap(), Mode::Octal(0o644));
        assert_eq!(Mode::parse(&json!("1777")).unwrap(), Mode::Octal(0o1777));
        assert_eq!(Mode::parse(&json!("preserve")).unwrap(), Mode::Preserve);
        assert!(matches!(
            Mode::parse(&json!("u+rwx,g-w")).unwrap(),
            Mode::Symbolic(_)
        ));
        assert!(Mode::parse(&json!("u+q")).is_err());
        assert!(Mode::parse(&json!("0999")).is_err());
    }

    #[test]
    fn symbolic_modes() {
        assert_eq!(symbolic_to_octal("u+rwx,g-w", 0o664, false).unwrap(), 0o744);
        assert_eq!(
            symbolic_to_octal("u=rw,g=r,o=", 0o777, false).unwrap(),
            0o640
        );
        assert_eq!(symbolic_to_octal("a+X", 0o644, true).unwrap(), 0o755);
        assert_eq!(symbolic_to_octal("a+X", 0o644, false).unwrap(), 0o644);
        assert_eq!(symbolic_to_octal("a+X", 0o744, false).unwrap(), 0o755);
        assert_eq!(symbolic_to_octal("g=u", 0o700, false).unwrap(), 0o770);
        assert_eq!(symbolic_to_octal("u+s,o+t", 0o755, true).unwrap(), 0o5755);
        assert_eq!(symbolic_to_octal("u+r-w", 0o600, false).unwrap(), 0o400);
        assert_eq!(symbolic_to_octal("+x", 0o644, false).unwrap(), 0o755);
    }

    #[test]
    fn users_and_groups_resolve() {
        assert_eq!(resolve_user("root"), Some(0));
        assert_eq!(resolve_user("1234"), Some(1234));
        assert_eq!(resolve_group("root"), Some(0));
        assert_eq!(resolve_user("no-such-user-tend"), None);
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(987_654), "987654");
    }

    #[test]
    fn sha1_matches_ansible_checksum() {
        assert_eq!(
            sha1_hex(b"hello\n"),
            "f572d396fae9206628714fb2ce00f72e94f2258f"
        );
    }

    #[test]
    fn atomic_write_keeps_mode_and_names_backups() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        atomic_write(&p, b"new", &Attrs::default(), None, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(lstat(&p).unwrap().mode, 0o600);
        let b = backup(&p).unwrap();
        let name = b.file_name().unwrap().to_string_lossy().to_string();
        assert!(name.starts_with(&format!("f.{}.", std::process::id())));
        assert!(name.ends_with('~') && name.contains('@'));
        assert_eq!(fs::read(&b).unwrap(), b"new");
        // Nothing else left behind.
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 2);
        let q = t.path().join("new");
        atomic_write(&q, b"x", &Attrs::default(), None, None).unwrap();
        assert_eq!(lstat(&q).unwrap().mode, 0o644);
    }

    #[test]
    fn vars_expand_like_python() {
        let l = |k: &str| (k == "A").then(|| "1".to_string());
        assert_eq!(expand_vars("$A/${A}/$B/${B}/$", &l), "1/1/$B/${B}/$");
    }
}
