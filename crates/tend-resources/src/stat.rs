//! `stat`: what a path is, as ansible-core's `stat` module reports it (`get_mime` and
//! `get_attributes` are not implemented: those fields are left out).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tend_proto::{Value, Vars};

use crate::fsutil;
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Stat;

pub const PARAMS: &[&str] = &[
    "path",
    "dest",
    "name",
    "follow",
    "get_checksum",
    "checksum_algorithm",
    "checksum",
    "checksum_algo",
    "get_mime",
    "mime",
    "mime_type",
    "mime-type",
    "get_attributes",
    "attr",
    "attributes",
    "get_selinux_context",
];

pub const ALGORITHMS: &[&str] = &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

fn secs(s: i64, ns: i64) -> Value {
    Value::from(s as f64 + ns as f64 / 1e9)
}

/// The fields ansible-core's `find` reports per file (`statinfo`).
pub fn statinfo(m: &std::fs::Metadata) -> Vars {
    let mut v = Vars::new();
    let mode = m.mode();
    let ft = m.file_type();
    v.insert("mode".into(), fsutil::mode_str(mode).into());
    v.insert("isdir".into(), ft.is_dir().into());
    v.insert("ischr".into(), ft.is_char_device().into());
    v.insert("isblk".into(), ft.is_block_device().into());
    v.insert("isreg".into(), ft.is_file().into());
    v.insert("isfifo".into(), ft.is_fifo().into());
    v.insert("islnk".into(), ft.is_symlink().into());
    v.insert("issock".into(), ft.is_socket().into());
    v.insert("uid".into(), m.uid().into());
    v.insert("gid".into(), m.gid().into());
    v.insert("size".into(), m.size().into());
    v.insert("inode".into(), m.ino().into());
    v.insert("dev".into(), m.dev().into());
    v.insert("nlink".into(), m.nlink().into());
    v.insert("atime".into(), secs(m.atime(), m.atime_nsec()));
    v.insert("mtime".into(), secs(m.mtime(), m.mtime_nsec()));
    v.insert("ctime".into(), secs(m.ctime(), m.ctime_nsec()));
    v.insert("gr_name".into(), fsutil::group_name(m.gid()).into());
    v.insert("pw_name".into(), fsutil::user_name(m.uid()).into());
    for (name, bit) in [
        ("wusr", 0o200),
        ("rusr", 0o400),
        ("xusr", 0o100),
        ("wgrp", 0o020),
        ("rgrp", 0o040),
        ("xgrp", 0o010),
        ("woth", 0o002),
        ("roth", 0o004),
        ("xoth", 0o001),
        ("isuid", 0o4000),
        ("isgid", 0o2000),
    ] {
        v.insert(name.into(), (mode & bit != 0).into());
    }
    v
}

/// ansible-core's `stat` dict for a path.
pub fn stat_dict(path: &Path, follow: bool, checksum: Option<&str>) -> Result<Vars, ModuleError> {
    let r = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let m = match r {
        Ok(m) => m,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            let mut v = Vars::new();
            v.insert("exists".into(), false.into());
            return Ok(v);
        }
        Err(e) => return Err(ModuleError::io("cannot stat", path, e)),
    };
    let mut v = Vars::new();
    v.insert("exists".into(), true.into());
    v.insert("path".into(), path.display().to_string().into());
    v.extend(statinfo(&m));
    v.insert("blocks".into(), m.blocks().into());
    v.insert("block_size".into(), m.blksize().into());
    v.insert("device_type".into(), m.rdev().into());
    v.insert("readable".into(), fsutil::access(path, libc::R_OK).into());
    v.insert("writeable".into(), fsutil::access(path, libc::W_OK).into());
    v.insert("executable".into(), fsutil::access(path, libc::X_OK).into());
    if m.file_type().is_symlink() {
        let target = std::fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let source = std::fs::canonicalize(path)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| {
                Path::new(path)
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .join(&target)
                    .display()
                    .to_string()
            });
        v.insert("lnk_source".into(), source.into());
        v.insert("lnk_target".into(), target.into());
    }
    if let Some(algo) = checksum {
        if m.file_type().is_file() && fsutil::access(path, libc::R_OK) {
            v.insert("checksum".into(), fsutil::file_digest(path, algo)?.into());
        }
    }
    Ok(v)
}

impl Action for Stat {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn run(&self, args: &Args, _ctx: &ModuleCtx) -> ModuleResult {
        let path = args
            .str_any(&["path", "dest", "name"])?
            .ok_or_else(|| ModuleError::new("missing required arguments: path"))?;
        let algo = match args.first(&["checksum_algorithm", "checksum", "checksum_algo"]) {
            Some((k, v)) => {
                let a = crate::args::to_str(k, v)?;
                if !ALGORITHMS.contains(&a.as_str()) {
                    return Err(ModuleError::new(format!(
                        "value of checksum_algorithm must be one of: {}, got: {a}",
                        ALGORITHMS.join(", ")
                    )));
                }
                a
            }
            None => "sha1".into(),
        };
        let get_checksum = args.bool_or("get_checksum", true)?;
        let stat = stat_dict(
            &fsutil::path_arg(&path),
            args.bool_or("follow", false)?,
            get_checksum.then_some(algo.as_str()),
        )?;
        Ok(ModuleOutput::ok().field("stat", Value::Object(stat)))
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;
    use std::fs;

    #[test]
    fn stat_reports_like_ansible() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "hi").unwrap();
        std::os::unix::fs::symlink("f", t.path().join("l")).unwrap();
        let before = snapshot(t.path());
        let s = &run("stat", json!({"path": f})).fields["stat"];
        assert_eq!(s["exists"], json!(true));
        assert_eq!(s["isreg"], json!(true));
        assert_eq!(s["mode"], json!("0644"));
        assert_eq!(
            s["checksum"],
            json!("c22b5f9178342609428d6f51b2c5af4c0bde6a42")
        );
        assert_eq!(s["pw_name"], json!("root"));
        let s = &run(
            "stat",
            json!({"path": t.path().join("l"), "checksum_algorithm": "md5"}),
        )
        .fields["stat"];
        assert_eq!(s["islnk"], json!(true));
        assert_eq!(s["lnk_target"], json!("f"));
        assert_eq!(s["lnk_source"], json!(f.display().to_string()));
        let s = &run(
            "stat",
            json!({"path": t.path().join("l"), "follow": true, "checksum_algorithm": "md5"}),
        )
        .fields["stat"];
        assert_eq!(s["checksum"], json!("49f68a5c8493ec2c0bf489821c21fc3b"));
        assert_eq!(
            run("stat", json!({"path": t.path().join("nope")})).fields["stat"],
            json!({"exists": false})
        );
        assert_eq!(
            snapshot(t.path()),
            before,
            "stat changed nothing, not even atimes"
        );
    }
}
