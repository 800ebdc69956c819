//! `replace`: every match of a Python regular expression in a file (`re.MULTILINE`), optionally
//! only between `after` and `before`.

use std::path::PathBuf;

use regex::bytes::Regex;
use tend_proto::Vars;

use crate::fsutil::{self, Attrs, Kind};
use crate::lineinfile::{
    attrs_msg, observe_text, py_regex, py_template, text_change, write_text, TextObs,
};
use crate::{Args, Change, ModuleCtx, ModuleError, Resource};

pub struct Replace;

pub const PARAMS: &[&str] = with_file_args![
    "path", "dest", "destfile", "name", "regexp", "replace", "after", "before", "backup",
    "validate", "encoding",
];

#[derive(Clone, Debug)]
pub struct Desired {
    pub path: PathBuf,
    pub regexp: Regex,
    /// The replacement, translated to Rust's `${n}` syntax.
    pub replace: String,
    /// `after`/`before` as one section pattern (ansible-core builds the same one).
    pub section: Option<(Regex, String)>,
    pub backup: bool,
    pub validate: Option<String>,
    pub attrs: Attrs,
}

/// The new content and the number of replacements, or the message when the section is absent.
pub fn edit(d: &Desired, data: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let (start, end) = match &d.section {
        None => (0, data.len()),
        Some((re, text)) => match re.captures(data).and_then(|c| c.name("subsection")) {
            Some(m) => (m.start(), m.end()),
            None => {
                return Err(format!(
                    "Pattern for before/after params did not match the given file: {text}"
                ))
            }
        },
    };
    let section = &data[start..end];
    let n = d.regexp.find_iter(section).count();
    if n == 0 {
        return Ok((data.to_vec(), 0));
    }
    let replaced = d.regexp.replace_all(section, d.replace.as_bytes());
    if replaced.as_ref() == section {
        return Ok((data.to_vec(), 0));
    }
    let mut out = data[..start].to_vec();
    out.extend_from_slice(&replaced);
    out.extend_from_slice(&data[end..]);
    Ok((out, n))
}

fn planned(d: &Desired, o: &TextObs) -> (Option<Vec<u8>>, String) {
    match o.data.as_deref().map(|data| edit(d, data)) {
        Some(Ok((new, n))) if n > 0 => (Some(new), format!("{n} replacements made")),
        Some(Err(msg)) => (None, msg),
        _ => (None, String::new()),
    }
}

impl Resource for Replace {
    type Desired = Desired;
    type Observed = TextObs;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, _ctx: &ModuleCtx) -> Result<Desired, ModuleError> {
        let path = args
            .str_any(&["path", "dest", "destfile", "name"])?
            .ok_or_else(|| ModuleError::new("missing required arguments: path"))?;
        let regexp = args.req_str("regexp")?;
        if let Some(enc) = args.str("encoding")? {
            if !matches!(
                enc.to_ascii_lowercase().replace('_', "-").as_str(),
                "utf-8" | "utf8" | "ascii"
            ) {
                return Err(ModuleError::new(format!(
                    "tend's replace supports only utf-8 files, not {enc}"
                )));
            }
        }
        let bad = |e: regex::Error| {
            ModuleError::new(format!("Unable to process replace due to error: {e}"))
        };
        let pattern = match (
            args.str("after")?.filter(|s| !s.is_empty()),
            args.str("before")?.filter(|s| !s.is_empty()),
        ) {
            (Some(a), Some(b)) => Some(format!("{a}(?P<subsection>.*?){b}")),
            (Some(a), None) => Some(format!("{a}(?P<subsection>.*)")),
            (None, Some(b)) => Some(format!("(?P<subsection>.*){b}")),
            (None, None) => None,
        };
        let section = match pattern {
            Some(p) => Some((
                Regex::new(&format!("(?s){}", py_regex(&p, true))).map_err(bad)?,
                p,
            )),
            None => None,
        };
        Ok(Desired {
            path: fsutil::path_arg(&path),
            regexp: Regex::new(&py_regex(&regexp, true)).map_err(bad)?,
            replace: py_template(&args.str("replace")?.unwrap_or_default()),
            section,
            backup: args.bool_or("backup", false)?,
            validate: args.str("validate")?,
            attrs: Attrs::from_args(args)?,
        })
    }

    fn observe(&self, d: &Desired) -> Result<TextObs, ModuleError> {
        let o = observe_text(&d.path)?;
        let p = d.path.display();
        if o.info.kind == Kind::Directory {
            return Err(ModuleError::new(format!("Path {p} is a directory !")));
        }
        if o.data.is_none() {
            let mut e = ModuleError::new(format!("Path {p} does not exist !"));
            e.fields.insert("rc".into(), 257.into());
            return Err(e);
        }
        Ok(o)
    }

    fn diff(&self, d: &Desired, o: &TextObs) -> Change {
        if o.applied.is_some() {
            // Like lineinfile, replace is an edit: a pattern that still matches after its own
            // replacement edits again on the next run, as in ansible-core.
            return Change::none(d.path.display().to_string());
        }
        let (after, _) = planned(d, o);
        let mut c = text_change(
            &d.path,
            o.data.as_deref(),
            after.as_deref(),
            &d.attrs,
            &o.info,
        );
        if c.content.is_some() {
            // ansible-core's replace diff uses the bare path as headers.
            let p = d.path.display().to_string();
            c.headers = Some((p.clone(), p));
        }
        c
    }

    fn apply(
        &self,
        d: &Desired,
        o: &TextObs,
        change: &Change,
        _ctx: &ModuleCtx,
    ) -> Result<TextObs, ModuleError> {
        let (after, msg) = planned(d, o);
        let backup = write_text(
            &d.path,
            o,
            after.as_deref(),
            &d.attrs,
            d.backup,
            d.validate.as_deref(),
        )?;
        let mut obs = observe_text(&d.path)?;
        obs.applied = Some((
            attrs_msg(if after.is_some() { &msg } else { "" }, change),
            backup,
        ));
        Ok(obs)
    }

    fn restore(
        &self,
        d: &Desired,
        _o: &TextObs,
        _change: &Change,
    ) -> Result<Option<crate::journal::Restore>, ModuleError> {
        crate::journal::restore_path(&d.path, true).map(Some)
    }

    fn result(&self, d: &Desired, o: &TextObs, change: &Change) -> Vars {
        let mut v = Vars::new();
        let msg = match &o.applied {
            Some((m, b)) => {
                if !b.is_empty() {
                    v.insert("backup_file".into(), b.clone().into());
                }
                m.clone()
            }
            None => {
                let (after, msg) = planned(d, o);
                if after.is_none() && !msg.is_empty() {
                    msg
                } else {
                    attrs_msg(&msg, change)
                }
            }
        };
        v.insert("msg".into(), msg.into());
        v
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;
    use std::fs;

    fn rp(before: &str, args: serde_json::Value) -> (String, bool, String) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        fs::write(&p, before).unwrap();
        let mut a = args.as_object().unwrap().clone();
        a.insert("path".into(), json!(p));
        let out = run("replace", json!(a));
        (
            fs::read_to_string(&p).unwrap(),
            out.changed,
            out.msg.unwrap_or_default(),
        )
    }

    // Expectations produced by ansible-core 2.19 on the same inputs.
    #[test]
    fn matches_ansible_core() {
        assert_eq!(
            rp(
                "a=1\nb=2\na=3\n",
                json!({"regexp": "^a=(\\d)$", "replace": "A=\\1"})
            ),
            ("A=1\nb=2\nA=3\n".into(), true, "2 replacements made".into())
        );
        assert_eq!(
            rp(
                "x\n[s]\nx\n[t]\nx\n",
                json!({"regexp": "x", "replace": "y", "after": "\\[s\\]", "before": "\\[t\\]"})
            ),
            (
                "x\n[s]\ny\n[t]\nx\n".into(),
                true,
                "1 replacements made".into()
            )
        );
        assert_eq!(
            rp("x\n", json!({"regexp": "x", "replace": "y", "after": "nomatch"})),
            ("x\n".into(), false, "Pattern for before/after params did not match the given file: nomatch(?P<subsection>.*)".into())
        );
        assert_eq!(
            rp("abc\n", json!({"regexp": "z", "replace": "y"})),
            ("abc\n".into(), false, "".into())
        );
        assert_eq!(
            rp(
                "k: v\n",
                json!({"regexp": "(?P<key>\\w+): (\\w+)", "replace": "\\g<key>=\\2 $5"})
            ),
            ("k=v $5\n".into(), true, "1 replacements made".into())
        );
    }

    #[test]
    fn converges_and_check_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        fs::write(&p, "port=80\n").unwrap();
        let args = json!({"path": p, "regexp": "^port=80$", "replace": "port=8080"});
        let before = snapshot(t.path());
        let out = run_check("replace", args.clone());
        assert!(out.changed);
        assert_eq!(out.diffs[0]["after"], json!("port=8080\n"));
        assert_eq!(snapshot(t.path()), before);
        assert!(run("replace", args.clone()).changed);
        assert!(!run("replace", args).changed);
    }
}
