//! `unarchive`: an archive's members unpacked into `dest`, as ansible-core's `unarchive`
//! action and module together do.
//!
//! Like ansible-core, tend unpacks with the host's GNU `tar` (tar.gz, tar.xz, tar.bz2, tar)
//! and `unzip` (zip), so modes, owners and times come out the same, and decides whether
//! anything is to do the same way: `tar --diff` for tar archives; for zip archives, each
//! member's type, size, mtime, CRC-32, mode and owner compared with what is on disk (read
//! from the archive's central directory here, where ansible-core parses `zipinfo`).
//! As in ansible-core, check mode predicts zip archives and skips tar archives.
//!
//! `src` is a controller file (shipped with the playbook), a host path with `remote_src`, or
//! an `http://` URL with `remote_src`. Members with absolute paths or `..` are refused.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use tend_lang::ctlfs;
use tend_proto::{Value, Vars};

use crate::fsutil::{self, Attrs};
use crate::process::Runner;
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Unarchive;

pub const PARAMS: &[&str] = with_file_args![
    "src",
    "dest",
    "remote_src",
    "copy",
    "creates",
    "list_files",
    "keep_newer",
    "exclude",
    "include",
    "extra_opts",
    "validate_certs",
    "io_buffer_size",
    "decrypt",
];

/// What kind of archive a file is, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Zip,
    /// gzip'd tar (`tar -z`).
    Tgz,
    /// Any other tar; GNU tar recognises the compression (xz, bzip2, zstd) itself.
    Tar,
}

impl Format {
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Format::Zip
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Format::Tgz
        } else {
            Format::Tar
        }
    }

    /// ansible-core's handler class name (the `handler` result field).
    pub fn handler(self) -> &'static str {
        match self {
            Format::Zip => "ZipArchive",
            Format::Tgz => "TgzArchive",
            Format::Tar => "TarArchive",
        }
    }
}

/// A member path that would land outside `dest`.
pub fn escapes(name: &str) -> bool {
    let p = Path::new(name);
    p.is_absolute()
        || p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
}

fn refuse_escapes(src: &str, names: &[String]) -> Result<(), ModuleError> {
    if let Some(bad) = names.iter().find(|n| escapes(n)) {
        return Err(ModuleError::new(format!(
            "{src} has a member outside the destination ({bad}); tend refuses archives with \
             absolute or '..' member paths"
        )));
    }
    Ok(())
}

struct Params {
    dest: PathBuf,
    list_files: bool,
    keep_newer: bool,
    excludes: Vec<String>,
    includes: Vec<String>,
    attrs: Attrs,
}

impl Action for Unarchive {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        if args.has("copy") && args.has("remote_src") {
            return Err(ModuleError::new(
                "parameters are mutually exclusive: ('copy', 'remote_src')",
            ));
        }
        let remote_src = match args.bool("copy")? {
            Some(c) => !c,
            None => args.bool_or("remote_src", false)?,
        };
        if !args.list("extra_opts")?.unwrap_or_default().is_empty() {
            return Err(ModuleError::new(
                "tend's unarchive does not support extra_opts (they are passed to tar or \
                 unzip unchecked); use include/exclude, or run this task with ansible",
            ));
        }
        let (Some(src), Some(dest)) = (args.str("src")?, args.str("dest")?) else {
            return Err(ModuleError::new("src (or content) and dest are required"));
        };
        let excludes = args.list("exclude")?.unwrap_or_default();
        let includes = args.list("include")?.unwrap_or_default();
        if !excludes.is_empty() && !includes.is_empty() {
            return Err(ModuleError::new(
                "parameters are mutually exclusive: include|exclude",
            ));
        }
        if let Some(c) = args.str("creates")? {
            if Path::new(&fsutil::expand_user(&c)).exists() {
                return Ok(ModuleOutput {
                    skipped: true,
                    msg: Some(format!("skipped, since {c} exists")),
                    ..Default::default()
                });
            }
        }
        let dest = fsutil::path_arg(&dest);
        let p = Params {
            dest: dest.clone(),
            list_files: args.bool_or("list_files", false)?,
            keep_newer: args.bool_or("keep_newer", false)?,
            excludes: excludes
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            includes,
            attrs: Attrs::from_args(args)?,
        };
        // Where this host reads the archive, what results call it, and a download to remove.
        let mut download: Option<fsutil::TempGuard> = None;
        let (at, label) = if !remote_src {
            let found = ctx
                .find_file("files", &fsutil::expand_user(&src))
                .ok_or_else(|| crate::copy::not_found(&src, "files", ctx))?;
            (ctlfs::local(&found), found.display().to_string())
        } else {
            let path = fsutil::path_arg(&src);
            if path.exists() {
                (path, src.clone())
            } else if src.contains("://") {
                let f = fetch(
                    &src,
                    args.int("timeout")?.unwrap_or(10),
                    crate::http::Tls::from_args(args)?,
                    crate::http::Proxies::from_env(ctx.environment, true)
                        .map_err(ModuleError::new)?,
                )?;
                download = Some(fsutil::TempGuard(Some(f.clone())));
                (f, src.clone())
            } else {
                return Err(ModuleError::new(format!("Source '{src}' does not exist")));
            }
        };
        let info = fsutil::info(&dest, true)?;
        if info.kind != fsutil::Kind::Directory {
            return Err(ModuleError::new(format!(
                "dest '{}' must be an existing dir",
                dest.display()
            )));
        }
        let mut head = [0u8; 8];
        let n = fs::File::open(&at)
            .and_then(|mut f| f.read(&mut head))
            .map_err(|e| ModuleError::new(format!("Source '{src}' not readable, {e}")))?;
        if n == 0 {
            return Err(ModuleError::new(format!(
                "Invalid archive '{label}', the file is 0 bytes"
            )));
        }
        let format = Format::sniff(&head[..n]);
        let run = Runner::new(ctx);
        let mut fields = Vars::new();
        fields.insert("handler".into(), format.handler().into());
        fields.insert("dest".into(), dest.display().to_string().into());
        fields.insert("src".into(), label.clone().into());
        let mut out = ModuleOutput::ok();
        let files = match format {
            Format::Zip => {
                let members = zip_members(&at).map_err(|e| {
                    ModuleError::new(format!(
                        "Failed to find handler for \"{label}\". Make sure the required command \
                         to extract the file is installed.\n{e}"
                    ))
                })?;
                let members: Vec<ZipMember> = members
                    .into_iter()
                    .filter(|m| !excluded(&m.name, &p.excludes))
                    .filter(|m| {
                        p.includes.is_empty() || p.includes.iter().any(|i| glob_match(i, &m.name))
                    })
                    .collect();
                let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
                refuse_escapes(&label, &names)?;
                let diff = zip_diff(&p, &members)?;
                if ctx.diff && !diff.is_empty() {
                    out.diffs
                        .push(serde_json::json!({ "prepared": diff.clone() }));
                }
                if ctx.check {
                    out.changed = !diff.is_empty();
                } else if !diff.is_empty() {
                    let mut argv = vec!["unzip".to_string(), "-o".into(), at.display().to_string()];
                    if !p.excludes.is_empty() {
                        argv.push("-x".into());
                        argv.extend(p.excludes.iter().cloned());
                    }
                    argv.extend(p.includes.iter().cloned());
                    argv.extend(["-d".into(), dest.display().to_string()]);
                    let o = run.run(&argv, None)?;
                    fields.insert("extract_results".into(), extract_results(&o));
                    if !o.ok() {
                        return Err(failed_unpack(&label, &dest, fields));
                    }
                    out.changed = true;
                    set_attrs(&p, &names, &mut out.changed)?;
                }
                names
            }
            Format::Tgz | Format::Tar => {
                let z: &[&str] = if format == Format::Tgz { &["-z"] } else { &[] };
                let tar = |op: &str, extra: &[String]| -> Vec<String> {
                    let mut argv = vec![
                        "tar".to_string(),
                        op.to_string(),
                        "-C".into(),
                        dest.display().to_string(),
                    ];
                    argv.extend(z.iter().map(|s| s.to_string()));
                    argv.extend(extra.iter().cloned());
                    argv.extend(p.excludes.iter().map(|e| format!("--exclude={e}")));
                    argv.extend(["-f".into(), at.display().to_string()]);
                    argv.extend(p.includes.iter().cloned());
                    argv
                };
                let o = run.run(&tar("--list", &[]), Some(&dest))?;
                if !o.ok() {
                    return Err(ModuleError::new(format!(
                        "Failed to find handler for \"{label}\". Make sure the required command \
                         to extract the file is installed.\nCommand \"tar\" could not handle \
                         archive: Unable to list files in the archive: {}",
                        o.stderr
                    )));
                }
                let names: Vec<String> = o
                    .stdout
                    .lines()
                    .map(|l| l.to_string())
                    .filter(|l| !excluded(l.trim_start_matches('/'), &p.excludes))
                    .collect();
                if names.is_empty() {
                    return Err(ModuleError::new(format!(
                        "Failed to find handler for \"{label}\". Make sure the required command \
                         to extract the file is installed.\nCommand \"tar\" found no files in \
                         archive. Empty archive files are not supported."
                    )));
                }
                refuse_escapes(&label, &names)?;
                if ctx.check {
                    return Ok(ModuleOutput {
                        skipped: true,
                        msg: Some(
                            "remote module (unarchive) does not support check mode when using \
                             gtar"
                                .into(),
                        ),
                        ..Default::default()
                    });
                }
                let mut flags = Vec::new();
                if let Some((o, _)) = &p.attrs.owner {
                    flags.push(format!("--owner={o}"));
                }
                if let Some((g, _)) = &p.attrs.group {
                    flags.push(format!("--group={g}"));
                }
                if p.keep_newer {
                    flags.push("--keep-newer-files".into());
                }
                let d = run.run(&tar("--diff", &flags), Some(&dest))?;
                if tar_differs(&d.stdout, &d.stderr, &p.attrs, is_root()) {
                    let x = run.run(&tar("--extract", &flags), Some(&dest))?;
                    fields.insert("extract_results".into(), extract_results(&x));
                    if !x.ok() {
                        return Err(failed_unpack(&label, &dest, fields));
                    }
                    out.changed = true;
                }
                let names: Vec<String> = names
                    .iter()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .collect();
                set_attrs(&p, &names, &mut out.changed)?;
                names
            }
        };
        drop(download);
        fields.extend(fsutil::path_fields("dest", &dest, true));
        fields.insert("dest".into(), dest.display().to_string().into());
        if p.list_files {
            fields.insert("files".into(), Value::from(files));
        }
        out.fields = fields;
        Ok(out)
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn extract_results(o: &crate::process::Output) -> Value {
    serde_json::json!({"cmd": o.argv, "rc": o.rc, "out": o.stdout, "err": o.stderr})
}

fn failed_unpack(label: &str, dest: &Path, fields: Vars) -> ModuleError {
    let mut e = ModuleError::new(format!("failed to unpack {label} to {}", dest.display()));
    e.fields = fields;
    e
}

fn glob_match(pattern: &str, name: &str) -> bool {
    glob::Pattern::new(pattern)
        .map(|p| p.matches(name))
        .unwrap_or(pattern == name)
}

fn excluded(name: &str, excludes: &[String]) -> bool {
    excludes.iter().any(|e| glob_match(e, name))
}

/// Whether `tar --diff` output says the archive is not (fully) unpacked, read as
/// ansible-core reads it: owner and group differences count only for root and when not
/// declared, mode differences only when `mode` is not declared.
pub fn tar_differs(stdout: &str, stderr: &str, attrs: &Attrs, root: bool) -> bool {
    stdout.lines().chain(stderr.lines()).any(|l| {
        if l.ends_with(": : Warning: Cannot stat: No such file or directory") {
            return false;
        }
        (root && attrs.owner.is_none() && l.ends_with(": Uid differs"))
            || (root && attrs.group.is_none() && l.ends_with(": Gid differs"))
            || (attrs.mode.is_none() && l.ends_with(": Mode differs"))
            || [
                ": Mod time differs",
                ": Warning: Cannot stat: No such file or directory",
                ": Symlink differs",
                ": Contents differ",
                ": Size differs",
            ]
            .iter()
            .any(|s| l.ends_with(s))
            || l.contains(": Invalid owner")
            || l.contains(": Invalid group")
    })
}

/// owner/group/mode on every unpacked member and the top directories, as ansible-core's
/// `set_fs_attributes_if_different` after unpacking.
fn set_attrs(p: &Params, names: &[String], changed: &mut bool) -> Result<(), ModuleError> {
    if p.attrs == Attrs::default() {
        return Ok(());
    }
    let mut tops: Vec<&str> = Vec::new();
    for n in names {
        let path = p.dest.join(n);
        if fsutil::lstat(&path)?.exists() {
            *changed |= p.attrs.apply(&path, false, None)?;
        }
        if let Some((top, _)) = n.split_once('/') {
            if !tops.contains(&top) {
                tops.push(top);
            }
        }
    }
    for t in tops {
        *changed |= p.attrs.apply(&p.dest.join(t), false, None)?;
    }
    Ok(())
}

/// Downloads a `remote_src` URL into a temporary file.
fn fetch(
    url: &str,
    timeout: i64,
    tls: crate::http::Tls,
    proxies: crate::http::Proxies,
) -> Result<PathBuf, ModuleError> {
    let dir = std::env::temp_dir();
    let (path, mut f) = fsutil::create_temp_in(&dir, "unarchive")?;
    let guard = fsutil::TempGuard(Some(path.clone()));
    let mut req = crate::http::Request::get(url, Duration::from_secs(timeout.max(1) as u64));
    req.tls = tls;
    req.proxies = proxies;
    let resp = crate::http::send(&req, &mut f)
        .map_err(|e| ModuleError::new(format!("Failure downloading {url}, {e}")))?;
    if resp.status != 200 {
        return Err(ModuleError::new(format!(
            "Failure downloading {url}, {}",
            crate::http::http_error_msg(&resp)
        )));
    }
    std::mem::forget(guard);
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// zip

/// One entry of a zip's central directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipMember {
    pub name: String,
    pub crc32: u32,
    pub size: u64,
    /// Seconds since the epoch: the extended timestamp if present, else the DOS time read as
    /// local time (what `unzip` sets).
    pub mtime: i64,
    /// Permission bits, when the archive was made on Unix.
    pub unix_mode: Option<u32>,
    pub is_dir: bool,
    pub is_link: bool,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads the central directory of a zip file.
pub fn zip_members(path: &Path) -> Result<Vec<ZipMember>, String> {
    let mut f = fs::File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let tail_len = len.min(65_557);
    f.seek(SeekFrom::Start(len - tail_len))
        .map_err(|e| e.to_string())?;
    let mut tail = vec![0; tail_len as usize];
    f.read_exact(&mut tail).map_err(|e| e.to_string())?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
        .ok_or("not a zip file (no end of central directory)")?;
    let count = le16(&tail, eocd + 10) as usize;
    let cd_size = le32(&tail, eocd + 12) as u64;
    let cd_off = le32(&tail, eocd + 16) as u64;
    if cd_off == 0xffff_ffff || count == 0xffff {
        return Err("zip64 archives are not supported".into());
    }
    if cd_off + cd_size > len {
        return Err("truncated zip file".into());
    }
    f.seek(SeekFrom::Start(cd_off)).map_err(|e| e.to_string())?;
    let mut cd = vec![0; cd_size as usize];
    f.read_exact(&mut cd).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(count);
    let mut at = 0;
    for _ in 0..count {
        if at + 46 > cd.len() || !cd[at..].starts_with(b"PK\x01\x02") {
            return Err("corrupt central directory".into());
        }
        let made_by = cd[at + 5];
        let time = le16(&cd, at + 12);
        let date = le16(&cd, at + 14);
        let crc32 = le32(&cd, at + 16);
        let size = le32(&cd, at + 24) as u64;
        let name_len = le16(&cd, at + 28) as usize;
        let extra_len = le16(&cd, at + 30) as usize;
        let comment_len = le16(&cd, at + 32) as usize;
        let ext = le32(&cd, at + 38);
        let end = at + 46 + name_len + extra_len + comment_len;
        if end > cd.len() {
            return Err("corrupt central directory".into());
        }
        let name = String::from_utf8_lossy(&cd[at + 46..at + 46 + name_len]).into_owned();
        let extra = &cd[at + 46 + name_len..at + 46 + name_len + extra_len];
        let mut mtime = None;
        let mut i = 0;
        while i + 4 <= extra.len() {
            let id = le16(extra, i);
            let n = le16(extra, i + 2) as usize;
            let data = &extra[i + 4..(i + 4 + n).min(extra.len())];
            if id == 0x5455 && data.len() >= 5 && data[0] & 1 == 1 {
                mtime = Some(le32(data, 1) as i32 as i64);
            }
            i += 4 + n;
        }
        let mtime = mtime.unwrap_or_else(|| {
            fsutil::local_to_epoch(
                1980 + (date >> 9) as i32,
                ((date >> 5) & 0xf) as u32,
                (date & 0x1f) as u32,
                (time >> 11) as u32,
                ((time >> 5) & 0x3f) as u32,
                ((time & 0x1f) * 2) as u32,
            )
            .unwrap_or(0)
        });
        let unix = ext >> 16;
        let unix_mode = (made_by == 3 && unix != 0).then_some(unix & 0o7777);
        out.push(ZipMember {
            is_dir: name.ends_with('/'),
            is_link: made_by == 3 && unix & 0o170000 == 0o120000,
            name,
            crc32,
            size,
            mtime,
            unix_mode,
        });
        at = end;
    }
    Ok(out)
}

fn file_crc32(path: &Path) -> Result<u32, ModuleError> {
    let mut f = fsutil::open_noatime(path).map_err(|e| ModuleError::io("cannot read", path, e))?;
    let mut crc = flate2::Crc::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| ModuleError::io("cannot read", path, e))?;
        if n == 0 {
            return Ok(crc.sum());
        }
        crc.update(&buf[..n]);
    }
}

fn umask() -> u32 {
    // Read the process's umask without changing it (Linux reports it in /proc).
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// ansible-core's itemized list of what differs between the zip's members and `dest`
/// (empty when everything is unpacked as declared).
fn zip_diff(p: &Params, members: &[ZipMember]) -> Result<String, ModuleError> {
    let mask = umask();
    let fut_uid = p
        .attrs
        .owner
        .as_ref()
        .map(|o| o.1)
        .unwrap_or_else(|| fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0));
    let fut_gid = p
        .attrs
        .group
        .as_ref()
        .map(|g| g.1)
        .unwrap_or_else(|| fs::metadata("/proc/self").map(|m| m.gid()).unwrap_or(0));
    let mut diff = String::new();
    for m in members {
        let ftype = if m.is_dir {
            'd'
        } else if m.is_link {
            'L'
        } else {
            'f'
        };
        let path = p.dest.join(&m.name);
        let st = match fs::symlink_metadata(&path) {
            Ok(st) => st,
            Err(_) => {
                diff.push_str(&format!(">{ftype}++++++.?? {}\n", m.name));
                continue;
            }
        };
        let ft = st.file_type();
        let wrong_type = match ftype {
            'd' => !ft.is_dir(),
            'L' => !ft.is_symlink(),
            _ => !ft.is_file(),
        };
        if wrong_type {
            diff.push_str(&format!("c{ftype}++++++.?? {}\n", m.name));
            continue;
        }
        let mut item: Vec<char> = format!(".{ftype}.......??").chars().collect();
        let mut change = false;
        if ft.is_file() {
            let on_disk = st.mtime();
            if p.keep_newer {
                if m.mtime > on_disk {
                    change = true;
                    item[4] = 't';
                } else if m.mtime < on_disk {
                    continue;
                }
            } else if m.mtime != on_disk || st.mtime_nsec() != 0 {
                change = true;
                item[4] = 't';
            }
            if m.size != st.size() {
                change = true;
                item[3] = 's';
            }
            if file_crc32(&path)? != m.crc32 {
                change = true;
                item[2] = 'c';
            }
        }
        if ftype != 'L' {
            let have = st.mode() & fsutil::PERM_BITS;
            let want = match &p.attrs.mode {
                Some(mode) => mode.resolve(have, ftype == 'd', None)?.unwrap_or(have),
                None => match m.unix_mode {
                    Some(u) => u,
                    None if ftype == 'd' => 0o777 & !mask,
                    None => 0o666 & !mask,
                },
            };
            if want != have {
                change = true;
                item[5] = 'p';
            }
        }
        if st.uid() != fut_uid {
            change = true;
            item[6] = 'o';
        }
        if st.gid() != fut_gid {
            change = true;
            item[6] = 'g';
        }
        if change {
            diff.push_str(&format!("{} {}\n", item.iter().collect::<String>(), m.name));
        }
    }
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::json;
    use std::process::Command;

    fn python(script: &str, dir: &Path) {
        let o = Command::new("python3")
            .args(["-c", script])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// `site/index.html` (0644), `site/bin/run` (0755) and `site/empty/` as app.tar.gz,
    /// app.tar.xz and app.zip, all dated 2020-01-02.
    fn archives(dir: &Path) {
        python(
            r##"
import io, tarfile, zipfile, time
files = [("site/", None, 0o755), ("site/index.html", b"<h1>hi</h1>\n", 0o644),
         ("site/bin/", None, 0o755), ("site/bin/run", b"#!/bin/sh\necho run\n", 0o755),
         ("site/empty/", None, 0o700)]
t = 1577923200
for name, mode in (("app.tar.gz", "w:gz"), ("app.tar.xz", "w:xz")):
    with tarfile.open(name, mode) as tf:
        for n, data, m in files:
            ti = tarfile.TarInfo(n.rstrip("/"))
            ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = t, m, 0, 0, "root", "root"
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
with zipfile.ZipFile("app.zip", "w", zipfile.ZIP_DEFLATED) as zf:
    for n, data, m in files:
        zi = zipfile.ZipInfo(n, time.localtime(t)[:6])
        zi.create_system = 3
        zi.external_attr = ((0o40000 if data is None else 0o100000) | m) << 16
        zf.writestr(zi, data or b"")
with tarfile.open("evil.tar.gz", "w:gz") as tf:
    ti = tarfile.TarInfo("../escape"); ti.size = 1
    tf.addfile(ti, io.BytesIO(b"x"))
"##,
            dir,
        );
    }

    fn is_root_here() -> bool {
        super::is_root()
    }

    #[test]
    fn tar_and_zip_unpack_then_rerun_is_quiet() {
        if !Path::new("/usr/bin/unzip").exists() && !Path::new("/bin/unzip").exists() {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("note: unzip is not installed here; skipping");
            }
            return;
        }
        let t = tempfile::tempdir().unwrap();
        archives(t.path());
        for name in ["app.tar.gz", "app.tar.xz", "app.zip"] {
            let dest = t.path().join(format!("out-{name}"));
            fs::create_dir(&dest).unwrap();
            let args = json!({"src": t.path().join(name), "dest": dest, "remote_src": true,
                              "list_files": true});
            let o = run_check("unarchive", args.clone());
            if name.ends_with(".zip") {
                assert!(o.changed, "{name}");
            } else {
                assert!(o.skipped, "{name}: {o:?}");
            }
            assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
            let o = run("unarchive", args.clone());
            assert!(o.changed, "{name}");
            assert_eq!(
                fs::read_to_string(dest.join("site/index.html")).unwrap(),
                "<h1>hi</h1>\n"
            );
            let run_mode = fs::metadata(dest.join("site/bin/run")).unwrap().mode() & 0o7777;
            assert_eq!(run_mode, 0o755, "{name}");
            assert_eq!(
                fs::metadata(dest.join("site/index.html")).unwrap().mtime(),
                1577923200,
                "{name}"
            );
            assert!(o.fields["files"].as_array().unwrap().len() >= 4, "{o:?}");
            let o = run("unarchive", args.clone());
            assert!(!o.changed, "{name}: second run {o:?}");
            if name.ends_with(".zip") {
                assert!(!run_check("unarchive", args.clone()).changed);
            }
            // Drift: a changed file is put back.
            fs::write(dest.join("site/index.html"), "edited\n").unwrap();
            assert!(run("unarchive", args.clone()).changed);
            assert_eq!(
                fs::read_to_string(dest.join("site/index.html")).unwrap(),
                "<h1>hi</h1>\n"
            );
            // A declared mode is applied to every member, then holds.
            if is_root_here() || name.ends_with(".zip") {
                let a = json!({"src": t.path().join(name), "dest": dest, "remote_src": true,
                               "mode": "u+rwX,go+rX"});
                run("unarchive", a.clone());
                assert!(!run("unarchive", a).changed, "{name} with mode");
            }
        }
    }

    #[test]
    fn creates_skips_and_bad_input_fails_clearly() {
        let t = tempfile::tempdir().unwrap();
        archives(t.path());
        let dest = t.path().join("out");
        fs::create_dir(&dest).unwrap();
        let o = run(
            "unarchive",
            json!({"src": t.path().join("app.tar.gz"), "dest": dest,
                                        "remote_src": true, "creates": t.path().join("app.zip")}),
        );
        assert!(o.skipped);
        assert_eq!(
            o.msg.unwrap(),
            format!(
                "skipped, since {} exists",
                t.path().join("app.zip").display()
            )
        );
        let e = run_err(
            "unarchive",
            json!({"src": t.path().join("evil.tar.gz"), "dest": dest,
                                            "remote_src": true}),
        );
        assert!(
            e.contains("member outside the destination (../escape)"),
            "{e}"
        );
        assert!(!t.path().join("escape").exists());
        let e = run_err(
            "unarchive",
            json!({"src": t.path().join("app.zip"), "dest": t.path().join("nodir"),
                                            "remote_src": true}),
        );
        assert_eq!(
            e,
            format!(
                "dest '{}' must be an existing dir",
                t.path().join("nodir").display()
            )
        );
        let e = run_err(
            "unarchive",
            json!({"src": t.path().join("nope.zip"), "dest": dest,
                                            "remote_src": true}),
        );
        assert_eq!(
            e,
            format!(
                "Source '{}' does not exist",
                t.path().join("nope.zip").display()
            )
        );
        let e = run_err(
            "unarchive",
            json!({"src": t.path().join("app.zip"), "dest": dest,
                                            "remote_src": true, "extra_opts": ["--strip=1"]}),
        );
        assert!(e.contains("does not support extra_opts"), "{e}");
        fs::write(t.path().join("empty.zip"), "").unwrap();
        let e = run_err(
            "unarchive",
            json!({"src": t.path().join("empty.zip"), "dest": dest,
                                            "remote_src": true}),
        );
        assert!(e.ends_with("the file is 0 bytes"), "{e}");
    }

    #[test]
    fn tar_diff_lines_read_as_ansible_reads_them() {
        let none = Attrs::default();
        assert!(!tar_differs("", "", &none, true));
        assert!(tar_differs("a: Mod time differs\n", "", &none, false));
        assert!(!tar_differs("a: Uid differs\n", "", &none, false));
        assert!(tar_differs("a: Uid differs\n", "", &none, true));
        let with_mode = Attrs {
            mode: Some(fsutil::Mode::Octal(0o600)),
            ..Attrs::default()
        };
        assert!(!tar_differs("a: Mode differs\n", "", &with_mode, true));
        assert!(tar_differs(
            "",
            "tar: a: Warning: Cannot stat: No such file or directory\n",
            &none,
            true
        ));
        assert!(escapes("../x") && escapes("/etc/passwd") && escapes("a/../../b"));
        assert!(!escapes("a/b") && !escapes("./a"));
    }
}
