//! The bundle: the controller files a remote host reads (the playbook directory and the role
//! directories it uses), packed into one archive named by its hash.
//!
//! The controller builds it ([`Bundle::build`]); a remote agent keeps unpacked bundles by hash
//! ([`BundleCache`]), so a second run ships nothing, and installs the map of controller roots
//! to unpacked directories into [`tend_lang::ctlfs`] ([`Unpacked::install`]).
//!
//! The archive is a gzip'd tar, deterministic: entries sorted, no times, no owners, permission
//! bits kept. Its first entry, `manifest.json`, names the controller roots; the files of root
//! `i` follow under `r<i>/`. Only regular files and directories are stored: symlinks are
//! followed (symlinked directories too, with a guard against loops), and `.git` and `.tend`
//! directories are left out. Unpacking accepts nothing else, no path leaving its directory, and
//! makes the result visible in one `rename`, so a half-unpacked bundle is never used.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first entry of every bundle.
pub const MANIFEST: &str = "manifest.json";
/// Version of the archive layout; an agent refuses other versions.
pub const FORMAT: u32 = 1;
/// Above this much file content, [`Bundle::warnings`] says so.
pub const WARN_BYTES: u64 = 50 << 20;
/// Above this, the bundle is refused rather than built (it is held in memory and sent to
/// every host).
pub const MAX_BYTES: u64 = 512 << 20;
/// Directories never shipped.
const SKIPPED_DIRS: &[&str] = &[".git", ".tend"];

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// Controller roots, in order; root `i` is stored under `r<i>/`.
    roots: Vec<String>,
}

/// A packed bundle, ready to ship.
#[derive(Clone, Debug)]
pub struct Bundle {
    bytes: Vec<u8>,
    hash: String,
    roots: Vec<PathBuf>,
    files: usize,
    content_bytes: u64,
    warnings: Vec<String>,
}

impl Bundle {
    /// Packs every regular file under `roots` (absolute directories; the first is the
    /// playbook directory). The same trees give the same bytes and so the same hash.
    pub fn build(roots: &[PathBuf]) -> io::Result<Bundle> {
        let mut names = Vec::with_capacity(roots.len());
        for r in roots {
            if !r.is_absolute() {
                return Err(invalid(format!(
                    "bundle root {} is not an absolute path",
                    r.display()
                )));
            }
            if !r.is_dir() {
                return Err(invalid(format!(
                    "bundle root {} is not a directory",
                    r.display()
                )));
            }
            let name = r.to_str().ok_or_else(|| {
                invalid(format!(
                    "bundle root {} is not valid UTF-8; tend cannot ship it to SSH hosts",
                    r.display()
                ))
            })?;
            names.push(name.to_string());
        }
        let mut w = Walk::default();
        for (i, root) in roots.iter().enumerate() {
            let mut stack = Vec::new();
            w.dir(root, &format!("r{i}"), &mut stack);
        }
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        let manifest = serde_json::to_vec(&Manifest {
            format: FORMAT,
            roots: names,
        })
        .map_err(io::Error::other)?;
        append(
            &mut tar,
            MANIFEST,
            tar::EntryType::Regular,
            0o644,
            &manifest,
        )?;
        let mut content_bytes = 0u64;
        let mut largest: Vec<(u64, PathBuf)> = Vec::new();
        let mut files = 0usize;
        for e in &w.entries {
            match &e.source {
                None => append(&mut tar, &e.name, tar::EntryType::Directory, 0o755, &[])?,
                Some((path, mode)) => {
                    let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    if content_bytes + size > MAX_BYTES {
                        return Err(invalid(format!(
                            "the controller files to ship to SSH hosts exceed {} at {} ({}): tend \
                             ships the playbook directory and the roles it uses; move large files \
                             out of them or keep the playbook in a directory of its own",
                            mib(MAX_BYTES),
                            path.display(),
                            mib(size)
                        )));
                    }
                    let data = match fs::read(path) {
                        Ok(d) => d,
                        Err(err) => {
                            w.warnings.push(format!(
                                "cannot read {}: {err}; SSH hosts will not have it",
                                path.display()
                            ));
                            continue;
                        }
                    };
                    content_bytes += data.len() as u64;
                    largest.push((data.len() as u64, path.clone()));
                    files += 1;
                    append(&mut tar, &e.name, tar::EntryType::Regular, *mode, &data)?;
                }
            }
        }
        let bytes = tar.into_inner()?.finish()?;
        if content_bytes > WARN_BYTES {
            largest.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let top: Vec<String> = largest
                .iter()
                .take(3)
                .map(|(n, p)| format!("{} ({})", p.display(), mib(*n)))
                .collect();
            w.warnings.push(format!(
                "the controller files shipped to SSH hosts are {} in {files} files ({}); the largest: {}. tend ships the playbook directory and the roles it uses: move large files it does not need out of them",
                mib(content_bytes),
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                top.join(", ")
            ));
        }
        Ok(Bundle {
            hash: hash_of(&bytes),
            bytes,
            roots: roots.to_vec(),
            files,
            content_bytes,
            warnings: w.warnings,
        })
    }

    /// The sha256 (hex) of [`Bundle::bytes`]: the bundle's name.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The archive, as shipped.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// How many files it holds.
    pub fn files(&self) -> usize {
        self.files
    }

    /// The size of the files it holds, before compression.
    pub fn content_bytes(&self) -> u64 {
        self.content_bytes
    }

    /// Things the user should know (a large bundle, unreadable files), for the printer.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn bad_archive(msg: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad bundle: {}", msg.into()),
    )
}

/// The sha256 of `bytes`, in hex: how bundles are named.
pub fn hash_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    kind: tar::EntryType,
    mode: u32,
    data: &[u8],
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(mode & 0o777);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    tar.append_data(&mut h, name, data)
}

/// One archive entry: a directory, or a file with where to read it and its mode.
struct WalkEntry {
    name: String,
    source: Option<(PathBuf, u32)>,
}

#[derive(Default)]
struct Walk {
    entries: Vec<WalkEntry>,
    warnings: Vec<String>,
}

impl Walk {
    /// Adds the tree under `dir` as `name/…`, sorted. `stack` holds the (device, inode) of the
    /// directories being walked, so a symlink back up the tree is not followed forever.
    fn dir(&mut self, dir: &Path, name: &str, stack: &mut Vec<(u64, u64)>) {
        let meta = match fs::metadata(dir) {
            Ok(m) => m,
            Err(e) => {
                self.warnings.push(format!(
                    "cannot read {}: {e}; SSH hosts will not have it",
                    dir.display()
                ));
                return;
            }
        };
        let id = (meta.dev(), meta.ino());
        if stack.contains(&id) {
            return; // a symlink to a directory above: already being shipped
        }
        let mut names: Vec<_> = match fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
            Err(e) => {
                self.warnings.push(format!(
                    "cannot list {}: {e}; SSH hosts will not have it",
                    dir.display()
                ));
                return;
            }
        };
        names.sort();
        stack.push(id);
        for n in names {
            let path = dir.join(&n);
            let Some(n) = n.to_str() else {
                self.warnings.push(format!(
                    "{} is not named in UTF-8; tend does not ship it to SSH hosts",
                    path.display()
                ));
                continue;
            };
            let child = format!("{name}/{n}");
            // Follows symlinks; a dangling one is skipped like a missing file.
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if SKIPPED_DIRS.contains(&n) {
                    continue;
                }
                self.entries.push(WalkEntry {
                    name: child.clone(),
                    source: None,
                });
                self.dir(&path, &child, stack);
            } else if meta.is_file() {
                self.entries.push(WalkEntry {
                    name: child,
                    source: Some((path, meta.permissions().mode() & 0o777)),
                });
            }
        }
        stack.pop();
    }
}

/// A bundle unpacked on this host.
#[derive(Clone, Debug)]
pub struct Unpacked {
    pub dir: PathBuf,
    /// Controller root → the directory holding its copy.
    pub map: Vec<(PathBuf, PathBuf)>,
}

impl Unpacked {
    /// Makes this process read controller files from this bundle (see [`tend_lang::ctlfs`]).
    pub fn install(&self) {
        tend_lang::ctlfs::install(self.map.clone());
    }
}

/// Opens a bundle unpacked earlier into `dir`.
pub fn open(dir: &Path) -> io::Result<Unpacked> {
    let text = fs::read(dir.join(MANIFEST))?;
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| bad_archive(e.to_string()))?;
    unpacked(dir, &m)
}

fn unpacked(dir: &Path, m: &Manifest) -> io::Result<Unpacked> {
    if m.format != FORMAT {
        return Err(bad_archive(format!(
            "format {} (this agent reads format {FORMAT}); update tend on the controller or the host",
            m.format
        )));
    }
    let map = m
        .roots
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let root = PathBuf::from(r);
            if root.is_absolute() {
                Ok((root, dir.join(format!("r{i}"))))
            } else {
                Err(bad_archive(format!("root {r} is not absolute")))
            }
        })
        .collect::<io::Result<_>>()?;
    Ok(Unpacked {
        dir: dir.to_path_buf(),
        map,
    })
}

/// Unpacks a bundle into `dest`, which appears complete or not at all: the files go to a
/// temporary directory beside it that is then renamed. If `dest` exists already (an earlier or
/// concurrent unpack of the same bundle), that one is opened instead.
pub fn unpack(bytes: &[u8], dest: &Path) -> io::Result<Unpacked> {
    if dest.exists() {
        return open(dest);
    }
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let tmp = parent.join(format!(
        ".{base}.partial-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&tmp);
    let manifest = match extract(bytes, &tmp) {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    match fs::rename(&tmp, dest) {
        Ok(()) => unpacked(dest, &manifest),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            if dest.join(MANIFEST).is_file() {
                open(dest) // another process unpacked the same bundle first
            } else {
                Err(e)
            }
        }
    }
}

/// Extracts into the new directory `dir`, checking every entry; returns the manifest.
fn extract(bytes: &[u8], dir: &Path) -> io::Result<Manifest> {
    fs::create_dir(dir)?;
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut manifest: Option<Manifest> = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let rel = safe_relative(&raw)?;
        let kind = entry.header().entry_type();
        let Some(m) = &manifest else {
            if rel != Path::new(MANIFEST) || kind != tar::EntryType::Regular {
                return Err(bad_archive("it does not start with its manifest"));
            }
            let mut text = Vec::new();
            entry.read_to_end(&mut text)?;
            let m: Manifest =
                serde_json::from_slice(&text).map_err(|e| bad_archive(e.to_string()))?;
            unpacked(dir, &m)?;
            for i in 0..m.roots.len() {
                fs::create_dir(dir.join(format!("r{i}")))?;
            }
            write_new(&dir.join(MANIFEST), &text, 0o644)?;
            manifest = Some(m);
            continue;
        };
        // Every other entry lives under the directory of one of the roots.
        let first = rel.components().next().map(|c| c.as_os_str().to_owned());
        let in_root = first
            .as_ref()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_prefix('r'))
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i < m.roots.len() && first == Some(format!("r{i}").into()));
        if !in_root || rel.components().count() < 2 {
            return Err(bad_archive(format!(
                "entry {} is outside its roots",
                raw.display()
            )));
        }
        let target = dir.join(&rel);
        match kind {
            tar::EntryType::Directory => fs::create_dir_all(&target)?,
            tar::EntryType::Regular => {
                if let Some(p) = target.parent() {
                    fs::create_dir_all(p)?;
                }
                let mode = entry.header().mode()? & 0o777;
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut data)?;
                write_new(&target, &data, mode)?;
            }
            other => {
                return Err(bad_archive(format!(
                    "entry {} is a {other:?}; bundles hold only files and directories",
                    raw.display()
                )))
            }
        }
    }
    manifest.ok_or_else(|| bad_archive("it is empty"))
}

/// A path made of plain names only: no root, no `..`, no `.`.
fn safe_relative(p: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            _ => {
                return Err(bad_archive(format!(
                    "entry {} leaves its directory",
                    p.display()
                )))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad_archive("an entry has an empty name"));
    }
    Ok(out)
}

/// Writes a file that must not exist yet (a duplicate entry is an error), with exactly `mode`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(data)?;
    // Set after creation: the umask must not change the permission bits shipped.
    f.set_permissions(fs::Permissions::from_mode(mode))
}

/// Unpacked bundles kept on a host by hash, next to the cached agent binary.
#[derive(Clone, Debug)]
pub struct BundleCache {
    dir: PathBuf,
}

impl BundleCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BundleCache { dir: dir.into() }
    }

    /// Where the bundle named `hash` is (or would be) unpacked.
    pub fn path(&self, hash: &str) -> io::Result<PathBuf> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "`{hash}` is not a bundle hash (64 hex digits)"
            )));
        }
        Ok(self.dir.join(hash.to_ascii_lowercase()))
    }

    /// The bundle named `hash`, if this host has it already.
    pub fn get(&self, hash: &str) -> io::Result<Option<Unpacked>> {
        let p = self.path(hash)?;
        if p.join(MANIFEST).is_file() {
            open(&p).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Checks that `bytes` are the bundle named `hash` and unpacks them into the cache.
    pub fn put(&self, hash: &str, bytes: &[u8]) -> io::Result<Unpacked> {
        let p = self.path(hash)?;
        let got = hash_of(bytes);
        if !got.eq_ignore_ascii_case(hash) {
            return Err(bad_archive(format!(
                "its content has hash {got}, not {hash} (damaged in transfer?)"
            )));
        }
        unpack(bytes, &p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "site.yml", "- hosts: all\n");
        write(t.path(), "roles/web/tasks/main.yml", "- debug: msg=hi\n");
        write(t.path(), "files/run.sh", "#!/bin/sh\n");
        fs::set_permissions(
            t.path().join("files/run.sh"),
            fs::Permissions::from_mode(0o754),
        )
        .unwrap();
        fs::create_dir_all(t.path().join("files/empty")).unwrap();
        t
    }

    /// Every path under `dir` (relative), with each file's content and mode.
    fn listing(dir: &Path) -> Vec<(String, Option<(String, u32)>)> {
        let mut out = Vec::new();
        fn go(base: &Path, dir: &Path, out: &mut Vec<(String, Option<(String, u32)>)>) {
            let mut names: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for p in names {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                let m = fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    out.push((rel, None));
                    go(base, &p, out);
                } else {
                    let text = fs::read_to_string(&p).unwrap();
                    out.push((rel, Some((text, m.permissions().mode() & 0o777))));
                }
            }
        }
        go(dir, dir, &mut out);
        out
    }

    #[test]
    fn same_tree_same_hash_and_any_edit_another() {
        let t = tree();
        let roots = vec![t.path().to_path_buf()];
        let a = Bundle::build(&roots).unwrap();
        // Times do not count: touch every file.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let text = fs::read(t.path().join("site.yml")).unwrap();
        fs::write(t.path().join("site.yml"), &text).unwrap();
        let b = Bundle::build(&roots).unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.hash(), hash_of(a.bytes()));
        assert_eq!(a.files(), 3);

        write(t.path(), "roles/web/tasks/main.yml", "- debug: msg=ho\n");
        let c = Bundle::build(&roots).unwrap();
        assert_ne!(a.hash(), c.hash(), "content edit");

        fs::set_permissions(
            t.path().join("files/run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let d = Bundle::build(&roots).unwrap();
        assert_ne!(c.hash(), d.hash(), "mode edit");

        write(t.path(), "files/new", "");
        let e = Bundle::build(&roots).unwrap();
        assert_ne!(d.hash(), e.hash(), "new empty file");

        // .git and .tend are not shipped, so they change nothing.
        write(t.path(), ".git/HEAD", "ref: x\n");
        write(t.path(), ".tend/history.db", "x");
        write(t.path(), "roles/web/.git/config", "x");
        let f = Bundle::build(&roots).unwrap();
        assert_eq!(e.hash(), f.hash());
    }

    #[test]
    fn unpacks_files_modes_and_empty_dirs_and_maps_roots() {
        let t = tree();
        let deep = format!("{}/{}.txt", "d".repeat(90), "f".repeat(120));
        write(t.path(), &deep, "long names survive\n");
        let other = tempfile::tempdir().unwrap();
        write(other.path(), "shared/tasks/main.yml", "- ping:\n");
        let roots = vec![t.path().to_path_buf(), other.path().to_path_buf()];
        let b = Bundle::build(&roots).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let dest = cache.path().join(b.hash());
        let u = unpack(b.bytes(), &dest).unwrap();
        assert_eq!(
            u.map,
            vec![
                (t.path().to_path_buf(), dest.join("r0")),
                (other.path().to_path_buf(), dest.join("r1"))
            ]
        );
        assert_eq!(listing(&dest.join("r0")), listing(t.path()));
        assert_eq!(listing(&dest.join("r1")), listing(other.path()));
        assert_eq!(
            fs::metadata(dest.join("r0/files/run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o754
        );
        // Nothing is left beside it, and opening it again gives the same map.
        let left: Vec<_> = fs::read_dir(cache.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
        assert_eq!(open(&dest).unwrap().map, u.map);
    }

    #[test]
    fn symlinks_are_followed_and_loops_stopped() {
        let t = tree();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "lib/x.txt", "x\n");
        symlink(outside.path().join("lib"), t.path().join("lib")).unwrap();
        symlink(t.path().join("site.yml"), t.path().join("link.yml")).unwrap();
        symlink(t.path(), t.path().join("roles/loop")).unwrap();
        symlink("/nonexistent/dangling", t.path().join("dangling")).unwrap();
        let b = Bundle::build(&[t.path().to_path_buf()]).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let dest = cache.path().join("b");
        unpack(b.bytes(), &dest).unwrap();
        let r0 = dest.join("r0");
        assert_eq!(fs::read_to_string(r0.join("lib/x.txt")).unwrap(), "x\n");
        assert!(!fs::symlink_metadata(r0.join("link.yml"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            fs::read_to_string(r0.join("link.yml")).unwrap(),
            "- hosts: all\n"
        );
        // The loop is an empty directory, not an endless tree.
        assert_eq!(fs::read_dir(r0.join("roles/loop")).unwrap().count(), 0);
        assert!(!r0.join("dangling").exists());
    }

    /// A hand-made archive with the given entries after a valid manifest.
    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let m = br#"{"format":1,"roots":["/srv/play"]}"#;
        append(&mut tar, MANIFEST, tar::EntryType::Regular, 0o644, m).unwrap();
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc").unwrap();
            }
            // Written raw, so names the builder would refuse (`..`, absolute) get through.
            let name_bytes = name.as_bytes();
            h.as_old_mut().name[..name_bytes.len()].copy_from_slice(name_bytes);
            h.set_cksum();
            tar.append(&h, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn unpack_refuses_entries_that_leave_the_bundle() {
        use tar::EntryType::{Regular, Symlink};
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "dotdot",
                archive(&[("r0/../../escape", Regular, b"x")]),
                "leaves its directory",
            ),
            (
                "absolute",
                archive(&[("/tmp/tend-escape", Regular, b"x")]),
                "leaves its directory",
            ),
            (
                "symlink",
                archive(&[("r0/etc", Symlink, b"")]),
                "only files and directories",
            ),
            (
                "unknown root",
                archive(&[("r7/x", Regular, b"x")]),
                "outside its roots",
            ),
            (
                "top level",
                archive(&[("x", Regular, b"x")]),
                "outside its roots",
            ),
            (
                "duplicate",
                archive(&[("r0/a", Regular, b"x"), ("r0/a", Regular, b"y")]),
                "exists",
            ),
            ("not gzip", b"plain bytes".to_vec(), ""),
        ];
        let parent = tempfile::tempdir().unwrap();
        for (what, bytes, why) in cases {
            let dest = parent.path().join(what);
            let e = unpack(&bytes, &dest).expect_err(what);
            assert!(e.to_string().contains(why), "{what}: {e}");
            assert!(!dest.exists(), "{what}: nothing visible after a failure");
        }
        assert!(!Path::new("/tmp/tend-escape").exists());
        // No partial directories are left behind either.
        assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_half_unpacked_bundle_is_never_used() {
        let t = tree();
        let b = Bundle::build(&[t.path().to_path_buf()]).unwrap();
        // Cut short: the archive ends in the middle of its files.
        let cut = &b.bytes()[..b.bytes().len() / 2];
        let cache = tempfile::tempdir().unwrap();
        let c = BundleCache::new(cache.path());
        assert!(c.put(b.hash(), cut).is_err(), "hash mismatch");
        let dest = c.path(b.hash()).unwrap();
        assert!(unpack(cut, &dest).is_err());
        assert!(!dest.exists());
        assert!(c.get(b.hash()).unwrap().is_none());
        // The whole bundle then unpacks, and the cache finds it next time.
        let u = c.put(b.hash(), b.bytes()).unwrap();
        assert_eq!(c.get(b.hash()).unwrap().unwrap().map, u.map);
        // A second put of the same bundle opens the first one.
        assert_eq!(c.put(b.hash(), b.bytes()).unwrap().map, u.map);
        assert!(c.path("../etc").is_err());
    }

    #[test]
    fn a_large_bundle_warns_naming_the_largest_file() {
        let t = tempfile::tempdir().unwrap();
        let big = vec![b'a'; (WARN_BYTES + 1) as usize];
        fs::write(t.path().join("disk.img"), &big).unwrap();
        write(t.path(), "site.yml", "- hosts: all\n");
        let b = Bundle::build(&[t.path().to_path_buf()]).unwrap();
        assert_eq!(b.warnings().len(), 1, "{:?}", b.warnings());
        let w = &b.warnings()[0];
        assert!(w.contains("disk.img (50.0 MiB)"), "{w}");
        assert!(b.bytes().len() < 1 << 20, "compressed");
        let small = Bundle::build(&[tree().path().to_path_buf()]).unwrap();
        assert!(small.warnings().is_empty());
    }
}
