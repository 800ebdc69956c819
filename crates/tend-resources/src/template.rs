//! `template`: a Jinja2 template rendered on the controller's side of tend and written like
//! `copy` writes `content` (the shared [`crate::content`] resource).

use tend_lang::template::TextOptions;
use tend_lang::Layer;
use tend_proto::Vars;

use crate::content::{self, Entry};
use crate::fsutil::{self, Attrs, Mode};
use crate::{Args, Change, ModuleCtx, ModuleError, Resource};

pub struct Template;

pub const PARAMS: &[&str] = with_file_args![
    "src",
    "dest",
    "backup",
    "force",
    "validate",
    "follow",
    "newline_sequence",
    "trim_blocks",
    "lstrip_blocks",
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
    "output_encoding",
];

/// The template options the module's arguments set (a `#jinja2:` first line can still change
/// them).
fn text_options(args: &Args, newline: &str) -> Result<TextOptions, ModuleError> {
    let d = TextOptions::file();
    let s = |k: &str, d: &str| -> Result<String, ModuleError> {
        Ok(args.str(k)?.unwrap_or_else(|| d.into()))
    };
    Ok(TextOptions {
        trim_blocks: args.bool_or("trim_blocks", true)?,
        lstrip_blocks: args.bool_or("lstrip_blocks", false)?,
        block: (
            s("block_start_string", &d.block.0)?,
            s("block_end_string", &d.block.1)?,
        ),
        variable: (
            s("variable_start_string", &d.variable.0)?,
            s("variable_end_string", &d.variable.1)?,
        ),
        comment: (
            s("comment_start_string", &d.comment.0)?,
            s("comment_end_string", &d.comment.1)?,
        ),
        newline_sequence: newline.to_string(),
        ..d
    })
}

fn render(
    ctx: &ModuleCtx,
    name: &str,
    text: &str,
    scope: &tend_lang::Scope,
    opts: &TextOptions,
) -> Result<String, ModuleError> {
    let v = ctx
        .templar
        .render_text(name, text, scope, opts)
        .map_err(|e| ModuleError::new(e.0))?;
    // ansible-core writes `str()` of the result; `None` (nothing rendered) is empty.
    Ok(if v.is_none() {
        String::new()
    } else {
        tend_lang::template::to_text(&v)
    })
}

impl Resource for Template {
    type Desired = content::Desired;
    type Observed = content::Observed;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, ctx: &ModuleCtx) -> Result<content::Desired, ModuleError> {
        let (Some(src), Some(dest)) = (args.str("src")?, args.str("dest")?) else {
            return Err(ModuleError::new("src and dest are required"));
        };
        // ansible-core also accepts the sequences written with backslashes.
        let newline = match args.str("newline_sequence")?.as_deref() {
            None | Some("\n") | Some("\\n") => "\n",
            Some("\r") | Some("\\r") => "\r",
            Some("\r\n") | Some("\\r\\n") => "\r\n",
            Some(_) => {
                return Err(ModuleError::new(
                    "newline_sequence needs to be one of: \n, \r or \r\n",
                ))
            }
        };
        let path = ctx
            .find_file("templates", &src)
            .ok_or_else(|| crate::copy::not_found(&src, "templates", ctx))?;
        // A controller path: on a remote host the template is read from the shipped bundle.
        let at = tend_lang::ctlfs::local(&path);
        let raw = fsutil::read_file(&at).map_err(|e| ModuleError::io("cannot read", &path, e))?;
        // A vault-encrypted template is decrypted, as ansible-core's template action does.
        let raw = tend_lang::vault::decrypt_file(raw, &path).map_err(|d| {
            ModuleError::new(match &d.hint {
                Some(h) => format!("{d}; {h}"),
                None => d.to_string(),
            })
        })?;
        let text = String::from_utf8(raw).map_err(|_| {
            ModuleError::new(format!("template {} is not valid UTF-8", path.display()))
        })?;
        let dest = fsutil::expand_user(&dest);
        let basename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = crate::copy::file_dest(&dest, &basename);

        // ansible-core's template variables.
        let info = fsutil::info(&at, true).map_err(|e| e.naming(&at, &path))?;
        let (y, mo, d, h, mi, s) = fsutil::local_time(info.mtime.0);
        let mut tv = Vars::new();
        tv.insert("template_path".into(), src.clone().into());
        tv.insert(
            "template_fullpath".into(),
            path.display().to_string().into(),
        );
        tv.insert(
            "template_destpath".into(),
            target.display().to_string().into(),
        );
        tv.insert("template_host".into(), hostname().into());
        tv.insert("template_uid".into(), fsutil::user_name(info.uid).into());
        tv.insert(
            "template_mtime".into(),
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}").into(),
        );
        let (now, micros) = fsutil::now();
        tv.insert(
            "template_run_date".into(),
            fsutil::datetime_str(now, micros).into(),
        );
        if ctx.scope.lookup("ansible_managed").is_none() {
            // DEFAULT_MANAGED_STR; ansible-core renders it as a template in the template's vars.
            tv.insert("ansible_managed".into(), "Ansible managed".into());
        }
        let scope = ctx.scope.with_layers([Layer::from_map(&tv, false)]);
        let out = render(ctx, &basename, &text, &scope, &text_options(args, newline)?)
            .map_err(|e| ModuleError::new(format!("{} (in template {})", e.msg, path.display())))?;

        let attrs = Attrs::from_args(args)?;
        let src_mode = (attrs.mode == Some(Mode::Preserve)).then_some(info.mode);
        Ok(content::Desired {
            dest: target.clone(),
            entries: vec![Entry::File {
                path: target,
                data: out.into_bytes(),
                src_mode,
            }],
            dir_attrs: attrs.with_mode(None),
            attrs,
            force: args.bool_or("force", true)?,
            backup: args.bool_or("backup", false)?,
            validate: args.str("validate")?,
            src_label: Some(path.display().to_string()),
            make_parents: dest.ends_with('/'),
        })
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;
    use std::fs;

    #[test]
    fn renders_and_converges() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("templates")).unwrap();
        fs::write(
            t.path().join("templates/motd.j2"),
            "Hello {{ who }}\n{% for i in [1, 2] %}\n{{ i }}\n{% endfor %}\n",
        )
        .unwrap();
        let o = Opts {
            check: false,
            diff: true,
            search_dirs: vec![t.path().to_path_buf()],
            vars: json!({"who": "world"}),
        };
        let dest = t.path().join("motd");
        let args = json!({"src": "motd.j2", "dest": dest, "mode": "0600"});
        let out = run_with("template", args.clone(), &o).unwrap();
        assert!(out.changed);
        assert_eq!(fs::read_to_string(&dest).unwrap(), "Hello world\n1\n2\n");
        assert_eq!(out.fields["mode"], json!("0600"));
        assert!(!run_with("template", args.clone(), &o).unwrap().changed);
        fs::write(&dest, "drift\n").unwrap();
        let check = Opts { check: true, ..o };
        let out = run_with("template", args.clone(), &check).unwrap();
        assert!(out.changed);
        assert_eq!(out.diffs[0]["before"], json!("drift\n"));
        assert_eq!(out.diffs[0]["after"], json!("Hello world\n1\n2\n"));
        assert_eq!(fs::read_to_string(&dest).unwrap(), "drift\n");

        let crlf = json!({"src": "motd.j2", "dest": dest, "newline_sequence": "\r\n", "trim_blocks": false});
        let o = Opts {
            check: false,
            ..check
        };
        run_with("template", crlf, &o).unwrap();
        assert_eq!(
            fs::read_to_string(&dest).unwrap(),
            // As ansible-core: Jinja drops the source's last newline, the text keeps the one it had.
            "Hello world\r\n\r\n1\r\n\r\n2\r\n"
        );

        let e = run_with("template", json!({"src": "missing.j2", "dest": dest}), &o).unwrap_err();
        assert!(
            e.starts_with("Could not find or access 'missing.j2'"),
            "{e}"
        );
    }
}
