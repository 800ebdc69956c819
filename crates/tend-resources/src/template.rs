//! `template`: a Jinja2 template rendered on the controller's side of tend and written like
//! `copy` writes `content` (the shared [`crate::content`] resource).

use tend_lang::Layer;
use tend_proto::Vars;

use crate::content::{self, Entry};
use crate::fsutil::{self, Attrs, Mode};
use crate::{Args, Change, ModuleCtx, ModuleError, Resource};

pub struct Template;

pub const PARAMS: &[&str] = &[
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
    "owner",
    "group",
    "mode",
    "seuser",
    "serole",
    "setype",
    "selevel",
    "unsafe_writes",
    "attributes",
    "attr",
];

/// Template syntax options that differ from tend's defaults (trim_blocks on, Jinja delimiters).
struct Syntax {
    trim_blocks: bool,
    lstrip_blocks: bool,
    block: (String, String),
    variable: (String, String),
    comment: (String, String),
}

impl Syntax {
    fn from_args(args: &Args) -> Result<Syntax, ModuleError> {
        let s = |k: &str, d: &str| -> Result<String, ModuleError> {
            Ok(args.str(k)?.unwrap_or_else(|| d.into()))
        };
        Ok(Syntax {
            trim_blocks: args.bool_or("trim_blocks", true)?,
            lstrip_blocks: args.bool_or("lstrip_blocks", false)?,
            block: (s("block_start_string", "{%")?, s("block_end_string", "%}")?),
            variable: (
                s("variable_start_string", "{{")?,
                s("variable_end_string", "}}")?,
            ),
            comment: (
                s("comment_start_string", "{#")?,
                s("comment_end_string", "#}")?,
            ),
        })
    }

    fn is_default(&self) -> bool {
        self.trim_blocks
            && !self.lstrip_blocks
            && self.block == ("{%".into(), "%}".into())
            && self.variable == ("{{".into(), "}}".into())
            && self.comment == ("{#".into(), "#}".into())
    }
}

fn render(
    ctx: &ModuleCtx,
    name: &str,
    text: &str,
    scope: &tend_lang::Scope,
    syntax: &Syntax,
) -> Result<String, ModuleError> {
    if syntax.is_default() {
        return ctx
            .templar
            .render_template_text(name, text, scope)
            .map_err(|e| ModuleError::new(e.0));
    }
    let mut env = ctx.templar.env().clone();
    let config = minijinja::syntax::SyntaxConfig::builder()
        .block_delimiters(syntax.block.0.clone(), syntax.block.1.clone())
        .variable_delimiters(syntax.variable.0.clone(), syntax.variable.1.clone())
        .comment_delimiters(syntax.comment.0.clone(), syntax.comment.1.clone())
        .trim_blocks(syntax.trim_blocks)
        .lstrip_blocks(syntax.lstrip_blocks)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| ModuleError::new(format!("invalid template delimiters: {e}")))?;
    env.set_syntax(config);
    let tmpl = env
        .template_from_named_str(name, text)
        .map_err(|e| ModuleError::new(format!("template error: {e}")))?;
    tmpl.render(scope.as_value())
        .map_err(|e| ModuleError::new(format!("template error: {e}")))
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
        let newline = args
            .choice("newline_sequence", &["\n", "\r", "\r\n"])?
            .unwrap_or_else(|| "\n".into());
        let path = ctx
            .find_file("templates", &src)
            .ok_or_else(|| crate::copy::not_found(&src, "templates", ctx))?;
        let raw = fsutil::read_file(&path).map_err(|e| ModuleError::io("cannot read", &path, e))?;
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
        let info = fsutil::info(&path, true)?;
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
        let scope = ctx.scope.with_layers([Layer::from_map(&tv, false)]);
        let mut out = render(ctx, &basename, &text, &scope, &Syntax::from_args(args)?)?;
        if newline != "\n" {
            out = out.replace("\r\n", "\n").replace('\n', &newline);
        }

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
            "Hello world\r\n\r\n1\r\n\r\n2\r\n\r\n"
        );

        let e = run_with("template", json!({"src": "missing.j2", "dest": dest}), &o).unwrap_err();
        assert!(
            e.starts_with("Could not find or access 'missing.j2'"),
            "{e}"
        );
    }
}
