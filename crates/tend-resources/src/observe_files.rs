//! `observe_files`: what `tend compliance` reads from a host's file system — metadata of every
//! path matching some globs, and the text of those whose content is asked for. A tend module
//! (ansible-core has none like it); it only reads.
//!
//! Arguments: `content` and `metadata`, lists of absolute paths or globs (`*`, `?`, `[…]`, and
//! `**` for any depth; a pattern ending in `/**` is the directory and everything under it);
//! `max_size` (bytes of content read per file, default 1 MiB); `limit` (entries per pattern,
//! default 100 000).
//!
//! Result: `files`, keyed by path, each `{path, exists, type, mode, owner, group, uid, gid,
//! size, world_writable, group_writable, setuid, setgid, link_target?, sha256?, content?,
//! content_skipped?}`; a literal path that is not there is `{path, exists: false}`. `errors`
//! lists what could not be read (a directory without permission, a pattern past its limit):
//! nothing is left out silently.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::Digest;
use tend_proto::{Value, Vars};

use crate::{fsutil, Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct ObserveFiles;

/// Content read per file unless `max_size` says otherwise.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 20;
/// Entries one pattern may yield unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100_000;

impl Action for ObserveFiles {
    fn params(&self) -> &'static [&'static str] {
        &["content", "metadata", "max_size", "limit"]
    }

    fn run(&self, args: &Args, _ctx: &ModuleCtx) -> ModuleResult {
        let content = args.list("content")?.unwrap_or_default();
        let metadata = args.list("metadata")?.unwrap_or_default();
        let max_size = match args.int("max_size")? {
            Some(n) if n < 0 => return Err(ModuleError::new("max_size must not be negative")),
            Some(n) => n as u64,
            None => DEFAULT_MAX_SIZE,
        };
        let limit = match args.int("limit")? {
            Some(n) if n < 1 => return Err(ModuleError::new("limit must be at least 1")),
            Some(n) => n as usize,
            None => DEFAULT_LIMIT,
        };
        for p in content.iter().chain(&metadata) {
            if !p.starts_with('/') {
                return Err(ModuleError::new(format!(
                    "{p:?} is not an absolute path: observe_files reads absolute paths or globs"
                )));
            }
        }
        let mut obs = Observation::default();
        // Content first: a path named by both keeps its content.
        for p in &content {
            obs.pattern(p, true, max_size, limit);
        }
        for p in &metadata {
            obs.pattern(p, false, max_size, limit);
        }
        let files: Vars = obs
            .files
            .into_iter()
            .map(|(k, v)| (k.display().to_string(), v))
            .collect();
        Ok(ModuleOutput::ok()
            .field("files", Value::Object(files))
            .field("errors", json!(obs.errors)))
    }
}

#[derive(Default)]
struct Observation {
    files: BTreeMap<PathBuf, Value>,
    errors: Vec<String>,
}

impl Observation {
    fn pattern(&mut self, pattern: &str, content: bool, max_size: u64, limit: usize) {
        let mut paths = Vec::new();
        if let Some(root) = pattern.strip_suffix("/**").filter(|r| !is_glob(r)) {
            let root = if root.is_empty() { "/" } else { root };
            paths.push(PathBuf::from(root));
            if let Err(e) = walk(Path::new(root), &mut paths, limit, &mut self.errors) {
                self.errors.push(format!("{pattern}: {e}"));
            }
        } else if is_glob(pattern) {
            match glob::glob(pattern) {
                Ok(found) => {
                    for entry in found {
                        if paths.len() >= limit {
                            self.errors.push(format!(
                                "{pattern}: more than {limit} entries; the rest is not observed (raise limit)"
                            ));
                            break;
                        }
                        match entry {
                            Ok(p) => paths.push(p),
                            Err(e) => self.errors.push(format!("{pattern}: {e}")),
                        }
                    }
                }
                Err(e) => self
                    .errors
                    .push(format!("{pattern}: not a valid glob: {e}")),
            }
        } else {
            paths.push(PathBuf::from(pattern));
        }
        for p in paths {
            let keep = self
                .files
                .get(&p)
                .is_some_and(|v| v.get("content").is_some() || !content);
            if keep {
                continue;
            }
            let record = observe(&p, content, max_size);
            self.files.insert(p, record);
        }
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Every entry under `dir`, depth first, symbolic links not followed.
fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    limit: usize,
    errors: &mut Vec<String>,
) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= limit {
            errors.push(format!(
                "{}/**: more than {limit} entries; the rest is not observed (raise limit)",
                dir.display()
            ));
            return Ok(());
        }
        let path = e.path();
        out.push(path.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            if let Err(err) = walk(&path, out, limit, errors) {
                errors.push(format!("{}: {err}", path.display()));
            }
        }
    }
    Ok(())
}

/// One path's record (see the module's documentation).
fn observe(path: &Path, content: bool, max_size: u64) -> Value {
    let shown = path.display().to_string();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return json!({"path": shown, "exists": false});
        }
        Err(e) => {
            return json!({"path": shown, "exists": false, "error": e.to_string()});
        }
    };
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        "file"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "link"
    } else {
        "other"
    };
    let mode = meta.mode();
    let mut r = Vars::new();
    r.insert("path".into(), shown.into());
    r.insert("exists".into(), true.into());
    r.insert("type".into(), kind.into());
    r.insert("mode".into(), fsutil::mode_str(mode).into());
    r.insert("owner".into(), fsutil::user_name(meta.uid()).into());
    r.insert("group".into(), fsutil::group_name(meta.gid()).into());
    r.insert("uid".into(), meta.uid().into());
    r.insert("gid".into(), meta.gid().into());
    r.insert("size".into(), meta.size().into());
    // A link's own mode bits mean nothing (always 0777).
    let perms = !ft.is_symlink();
    r.insert("world_writable".into(), (perms && mode & 0o002 != 0).into());
    r.insert("group_writable".into(), (perms && mode & 0o020 != 0).into());
    r.insert("setuid".into(), (mode & 0o4000 != 0).into());
    r.insert("setgid".into(), (mode & 0o2000 != 0).into());
    if ft.is_symlink() {
        if let Ok(t) = std::fs::read_link(path) {
            r.insert("link_target".into(), t.display().to_string().into());
        }
    }
    if content && ft.is_file() {
        match read_text(path, max_size) {
            Ok((digest, Ok(text))) => {
                r.insert("sha256".into(), digest.into());
                r.insert("content".into(), text.into());
            }
            Ok((digest, Err(why))) => {
                if let Some(d) = digest {
                    r.insert("sha256".into(), d.into());
                }
                r.insert("content_skipped".into(), why.into());
            }
            Err(e) => {
                r.insert(
                    "content_skipped".into(),
                    format!("not readable: {e}").into(),
                );
            }
        }
    }
    Value::Object(r)
}

/// The file's sha256 and its text, or why the text is not given (binary, too large). The
/// digest covers the whole file, also when the text is not given.
#[allow(clippy::type_complexity)]
fn read_text(
    path: &Path,
    max_size: u64,
) -> std::io::Result<(Option<String>, Result<String, String>)> {
    let mut f = fsutil::open_noatime(path)?;
    let mut hash = sha2::Sha256::new();
    let mut kept: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        if total < max_size {
            let room = (max_size - total).min(n as u64) as usize;
            kept.extend_from_slice(&buf[..room]);
        }
        total += n as u64;
    }
    let digest = Some(hex::encode(hash.finalize()));
    if total > max_size {
        return Ok((
            digest,
            Err(format!("larger than {max_size} bytes ({total})")),
        ));
    }
    if fsutil::is_binary(&kept) {
        return Ok((digest, Err("binary".into())));
    }
    match String::from_utf8(kept) {
        Ok(t) => Ok((digest, Ok(t))),
        Err(_) => Ok((digest, Err("not UTF-8 text".into()))),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn observes_content_metadata_and_missing_paths() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::write(d.join("a.conf"), "PermitRootLogin no\n").unwrap();
        std::fs::write(d.join("b.conf"), "x").unwrap();
        std::fs::set_permissions(d.join("b.conf"), std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::write(d.join("bin"), b"\0\x01").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/deep"), "deep").unwrap();
        std::os::unix::fs::symlink("a.conf", d.join("link")).unwrap();
        let p = |s: &str| d.join(s).display().to_string();
        let out = run(
            "observe_files",
            json!({
                "content": [p("*.conf"), p("bin"), p("missing")],
                "metadata": [format!("{}/**", d.display()), p("a.conf")],
            }),
        );
        let files = &out.fields["files"];
        let a = &files[p("a.conf")];
        assert_eq!(a["content"], "PermitRootLogin no\n", "{a}");
        assert_eq!(a["type"], "file");
        assert_eq!(a["world_writable"], false);
        assert_eq!(a["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(files[p("b.conf")]["world_writable"], true);
        assert_eq!(files[p("b.conf")]["mode"], "0666");
        assert_eq!(files[p("bin")]["content_skipped"], "binary");
        assert!(files[p("bin")].get("content").is_none());
        assert_eq!(
            files[p("missing")],
            json!({"path": p("missing"), "exists": false})
        );
        // The tree: the root, the directory, the deep file (metadata only), the link.
        assert_eq!(files[d.display().to_string()]["type"], "directory");
        assert_eq!(files[p("sub/deep")]["type"], "file");
        assert!(files[p("sub/deep")].get("content").is_none());
        assert_eq!(files[p("link")]["type"], "link");
        assert_eq!(files[p("link")]["link_target"], "a.conf");
        assert_eq!(files[p("link")]["world_writable"], false);
        assert_eq!(out.fields["errors"], json!([]));
        assert!(!out.changed);
    }

    #[test]
    fn large_files_keep_their_digest_and_limits_are_reported() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::write(d.join("big"), "0123456789").unwrap();
        for i in 0..5 {
            std::fs::write(d.join(format!("f{i}")), "").unwrap();
        }
        let big = d.join("big").display().to_string();
        let out = run(
            "observe_files",
            json!({"content": [big.clone()], "max_size": 4}),
        );
        let r = &out.fields["files"][&big];
        assert_eq!(r["content_skipped"], "larger than 4 bytes (10)");
        assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
        let out = run(
            "observe_files",
            json!({"metadata": [format!("{}/f*", d.display())], "limit": 2}),
        );
        assert_eq!(out.fields["files"].as_object().unwrap().len(), 2);
        let errors = out.fields["errors"].as_array().unwrap();
        assert!(
            errors[0].as_str().unwrap().contains("more than 2 entries"),
            "{errors:?}"
        );
        let e = run_err("observe_files", json!({"content": ["etc/passwd"]}));
        assert!(e.contains("not an absolute path"), "{e}");
    }
}
