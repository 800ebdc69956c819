//! `copy`: a file (from `src` or `content`) or a directory tree at `dest`, as ansible-core's
//! `copy` action and module together do.

use std::fs;
use std::path::{Path, PathBuf};

use tend_lang::ctlfs;
use tend_proto::{Value, Vars};

use crate::content::{self, Entry};
use crate::fsutil::{self, Attrs, Kind, Mode};
use crate::{Args, Change, ModuleCtx, ModuleError, Resource};

pub struct Copy;

pub const PARAMS: &[&str] = with_file_args![
    "src",
    "content",
    "dest",
    "backup",
    "force",
    "validate",
    "directory_mode",
    "remote_src",
    "local_follow",
    "checksum",
    "follow",
    "decrypt",
];

/// The error ansible-core gives for a `src` it cannot find on the controller.
pub fn not_found(src: &str, subdir: &str, ctx: &ModuleCtx) -> ModuleError {
    let mut msg = format!("Could not find or access '{src}'\nSearched in:");
    for d in ctx.search_dirs {
        msg.push_str(&format!(
            "\n\t{}\n\t{}",
            d.join(subdir).join(src).display(),
            d.join(src).display()
        ));
    }
    msg.push_str(" on the Ansible Controller.");
    if subdir == "files" {
        msg.push_str("\nIf you are using a module and expect the file to exist on the remote, see the remote_src option");
    }
    if Path::new(src).is_absolute() {
        if let Some(why) = tend_lang::ctlfs::not_shipped(Path::new(src)) {
            msg.push_str(&format!("\n{why}"));
        }
    }
    ModuleError::new(msg)
}

/// Whether `dest` names a directory to put things in: ends in `/`, or is one (through links).
pub fn dest_is_dir(dest: &str) -> bool {
    dest.ends_with('/') || Path::new(dest).is_dir()
}

/// `dest` for a single file whose source is named `basename`.
pub fn file_dest(dest: &str, basename: &str) -> PathBuf {
    if dest_is_dir(dest) {
        Path::new(dest).join(basename)
    } else {
        PathBuf::from(dest)
    }
}

/// Reads a source tree: `src` is a controller path (read through [`ctlfs`] unless
/// `remote_src`), and errors name it.
fn walk(
    src: &Path,
    dest: &Path,
    follow: bool,
    remote: bool,
    out: &mut Vec<Entry>,
) -> Result<(), ModuleError> {
    let at = |p: &Path| {
        if remote {
            p.to_path_buf()
        } else {
            ctlfs::local(p)
        }
    };
    let rd = fs::read_dir(at(src)).map_err(|e| ModuleError::io("cannot list", src, e))?;
    let mut names: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
    names.sort();
    for name in names {
        let s = src.join(&name);
        let d = dest.join(&name);
        let info = fsutil::info(&at(&s), follow).map_err(|e| e.naming(&at(&s), &s))?;
        match info.kind {
            Kind::Directory => {
                out.push(Entry::Dir { path: d.clone() });
                walk(&s, &d, follow, remote, out)?;
            }
            Kind::File => {
                let data = fsutil::read_file(&at(&s))
                    .map_err(|e| ModuleError::io("cannot read", &s, e))?;
                out.push(Entry::File {
                    path: d,
                    data,
                    src_mode: Some(info.mode),
                });
            }
            // Links not followed and special files are not copied.
            _ => {}
        }
    }
    Ok(())
}

impl Resource for Copy {
    type Desired = content::Desired;
    type Observed = content::Observed;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, ctx: &ModuleCtx) -> Result<content::Desired, ModuleError> {
        let dest = args
            .str("dest")?
            .filter(|d| !d.is_empty())
            .ok_or_else(|| ModuleError::new("dest is required"))?;
        let dest = fsutil::expand_user(&dest);
        let src = args.str("src")?;
        // ansible-core's copy action writes a dict or list `content` as JSON.
        let text = match args.raw("content") {
            Some(v @ (Value::Object(_) | Value::Array(_))) => {
                Some(tend_lang::template::py_json_dumps(v))
            }
            _ => args.str("content")?,
        };
        if src.is_some() && text.is_some() {
            return Err(ModuleError::new("src and content are mutually exclusive"));
        }
        let attrs = Attrs::from_args(args)?;
        let dir_attrs = attrs.with_mode(args.raw("directory_mode").map(Mode::parse).transpose()?);
        let mut d = content::Desired {
            dest: PathBuf::from(&dest),
            entries: Vec::new(),
            attrs,
            dir_attrs,
            force: args.bool_or("force", true)?,
            backup: args.bool_or("backup", false)?,
            validate: args.str("validate")?,
            src_label: None,
            make_parents: dest.ends_with('/'),
        };
        if d.attrs.mode == Some(Mode::Preserve) && text.is_some() {
            return Err(ModuleError::new(
                "mode 'preserve' is not allowed with content",
            ));
        }
        if let Some(text) = text {
            if dest_is_dir(&dest) {
                return Err(ModuleError::new("can not use content with a dir as dest"));
            }
            d.entries.push(Entry::File {
                path: d.dest.clone(),
                data: text.into_bytes(),
                src_mode: None,
            });
            return Ok(d);
        }
        let Some(src) = src else {
            return Err(ModuleError::new("src (or content) is required"));
        };
        let remote = args.bool_or("remote_src", false)?;
        let follow = args.bool_or("local_follow", true)?;
        let path = if remote {
            let p = fsutil::path_arg(&src);
            if !p.exists() {
                return Err(ModuleError::new(format!("Source {src} not found")));
            }
            p
        } else {
            ctx.find_file("files", &src)
                .ok_or_else(|| not_found(&src, "files", ctx))?
        };
        d.src_label = Some(path.display().to_string());
        // `path` is a controller path unless `remote_src`; `at` is where this host reads it.
        let at = if remote {
            path.clone()
        } else {
            ctlfs::local(&path)
        };
        if at.is_dir() {
            let base = if src.ends_with('/') {
                PathBuf::from(&dest)
            } else {
                Path::new(&dest).join(path.file_name().unwrap_or_default())
            };
            d.make_parents = true;
            d.entries.push(Entry::Dir { path: base.clone() });
            walk(&path, &base, follow, remote, &mut d.entries)?;
            return Ok(d);
        }
        let mut data = fsutil::read_file(&at)
            .map_err(|_| ModuleError::new(format!("Source {src} not readable")))?;
        // ansible-core decrypts a vault-encrypted source unless `decrypt: false`.
        if !remote && args.bool_or("decrypt", true)? {
            data = tend_lang::vault::decrypt_file(data, &path).map_err(|d| {
                ModuleError::new(match &d.hint {
                    Some(h) => format!("{d}; {h}"),
                    None => d.to_string(),
                })
            })?;
        }
        if let Some(want) = args.str("checksum")? {
            if fsutil::sha1_hex(&data) != want {
                return Err(ModuleError::new(
                    "Copied file does not match the expected checksum. Transfer failed.",
                ));
            }
        }
        let src_mode = fsutil::info(&at, true)
            .map_err(|e| e.naming(&at, &path))?
            .mode;
        let basename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = file_dest(&dest, &basename);
        d.dest = target.clone();
        d.entries.push(Entry::File {
            path: target,
            data,
            src_mode: Some(src_mode),
        });
        Ok(d)
    }

    fn observe(&self, d: &content::Desired) -> Result<content::Observed, ModuleError> {
        content::observe(d)
    }

    fn diff(&self, d: &content::Desired, o: &content::Observed) -> Change {
        content::diff(d, o)
    }

    fn apply(
        &self,
        d: &content::Desired,
        o: &content::Observed,
        _change: &Change,
        _ctx: &ModuleCtx,
    ) -> Result<content::Observed, ModuleError> {
        content::apply(d, o)
    }

    fn restore(
        &self,
        d: &content::Desired,
        _o: &content::Observed,
        _change: &Change,
    ) -> Result<Option<crate::journal::Restore>, ModuleError> {
        content::restore(d).map(Some)
    }

    fn result(&self, d: &content::Desired, o: &content::Observed, _change: &Change) -> Vars {
        content::result(d, o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn content_converges_and_detects_drift() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("motd");
        let args = json!({"content": "hello\n", "dest": p, "mode": "0640"});
        let out = run("copy", args.clone());
        assert!(out.changed);
        assert_eq!(
            out.fields["checksum"],
            json!("f572d396fae9206628714fb2ce00f72e94f2258f")
        );
        assert_eq!(out.fields["mode"], json!("0640"));
        assert_eq!(out.fields["state"], json!("file"));
        assert_eq!(
            out.diffs[0],
            json!({"before": "", "after": "hello\n", "after_header": p.display().to_string()})
        );
        assert!(!run("copy", args.clone()).changed);
        fs::write(&p, "edited\n").unwrap();
        let out = run_check("copy", args.clone());
        assert!(out.changed);
        assert_eq!(fs::read_to_string(&p).unwrap(), "edited\n");
        let out = run(
            "copy",
            json!({"content": "hello\n", "dest": p, "mode": "0640", "backup": true}),
        );
        assert!(out.changed);
        let b = out.fields["backup_file"].as_str().unwrap().to_string();
        assert_eq!(fs::read_to_string(b).unwrap(), "edited\n");
        assert_eq!(fs::read_to_string(&p).unwrap(), "hello\n");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let out = run("copy", args);
        assert!(out.changed);
        assert_eq!(
            out.diffs[0],
            json!({"before": {"path": p.display().to_string(), "mode": "0600"},
                                        "after": {"path": p.display().to_string(), "mode": "0640"}})
        );
    }

    #[test]
    fn force_no_keeps_existing_and_validate_runs() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        fs::write(&p, "mine").unwrap();
        assert!(
            !run(
                "copy",
                json!({"content": "theirs", "dest": p, "force": false})
            )
            .changed
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), "mine");
        let e = run_err(
            "copy",
            json!({"content": "x", "dest": p, "validate": "/bin/false %s"}),
        );
        assert_eq!(e, "failed to validate");
        assert_eq!(fs::read_to_string(&p).unwrap(), "mine");
        let e = run_err(
            "copy",
            json!({"content": "x", "dest": p, "validate": "/bin/true"}),
        );
        assert_eq!(e, "validate must contain %s: /bin/true");
        assert!(
            run(
                "copy",
                json!({"content": "x", "dest": p, "validate": "test -f %s"})
            )
            .changed
        );
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            1,
            "no temporary files left"
        );
        let e = run_err(
            "copy",
            json!({"content": "x", "dest": t.path().join("no/such")}),
        );
        assert_eq!(
            e,
            format!(
                "Destination directory {} does not exist",
                t.path().join("no").display()
            )
        );
        let e = run_err("copy", json!({"content": "x", "dest": t.path()}));
        assert_eq!(e, "can not use content with a dir as dest");
    }

    #[test]
    fn directory_trees_with_trailing_slash_semantics() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("srcd");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("a"), "a").unwrap();
        fs::write(src.join("sub/b"), "b").unwrap();
        let out = t.path().join("out");
        let args = json!({"src": src, "dest": format!("{}/", out.display())});
        assert!(run("copy", args.clone()).changed);
        assert_eq!(fs::read_to_string(out.join("srcd/sub/b")).unwrap(), "b");
        assert!(!run("copy", args.clone()).changed);
        fs::write(out.join("srcd/a"), "changed").unwrap();
        assert!(run("copy", args).changed);
        assert_eq!(fs::read_to_string(out.join("srcd/a")).unwrap(), "a");

        let out2 = t.path().join("out2");
        let args =
            json!({"src": format!("{}/", src.display()), "dest": out2, "directory_mode": "0700"});
        assert!(run("copy", args.clone()).changed);
        assert_eq!(fs::read_to_string(out2.join("a")).unwrap(), "a");
        assert_eq!(fsutil::lstat(&out2.join("sub")).unwrap().mode, 0o700);
        assert!(!run("copy", args).changed);

        // A single file into an existing directory keeps its name.
        let out = run(
            "copy",
            json!({"src": src.join("a"), "dest": out2.join("sub"), "mode": "preserve"}),
        );
        assert!(out.changed);
        assert_eq!(
            out.fields["dest"],
            json!(out2.join("sub/a").display().to_string())
        );
    }

    #[test]
    fn check_mode_leaves_tree_identical() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        fs::write(&p, "x").unwrap();
        assert!(run_check("copy", json!({"content": "y", "dest": p, "backup": true})).changed);
        let src = t.path().join("srcd");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("a"), "a").unwrap();
        let before = snapshot(t.path());
        assert!(
            run_check(
                "copy",
                json!({"src": src, "dest": format!("{}/new/", t.path().display())})
            )
            .changed
        );
        assert!(run_check("copy", json!({"content": "x", "dest": p, "mode": "0600"})).changed);
        assert_eq!(snapshot(t.path()), before);
    }

    #[test]
    fn missing_src_names_search_path() {
        let e = run_err("copy", json!({"src": "nope.txt", "dest": "/tmp/x"}));
        assert!(e.starts_with("Could not find or access 'nope.txt'"), "{e}");
        let e = run_err("copy", json!({"dest": "/tmp/x"}));
        assert_eq!(e, "src (or content) is required");
    }
}
