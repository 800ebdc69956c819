//! `blockinfile`: a block of lines between two marker lines, with ansible-core's placement
//! rules.

use std::path::PathBuf;

use regex::bytes::Regex;
use tend_proto::Vars;

use crate::fsutil::{self, Attrs, Kind};
use crate::lineinfile::{attrs_msg, compile, observe_text, text_change, write_text, TextObs};
use crate::{Args, Change, ModuleCtx, ModuleError, Resource};

pub struct BlockInFile;

pub const PARAMS: &[&str] = with_file_args![
    "path",
    "dest",
    "destfile",
    "name",
    "state",
    "marker",
    "block",
    "content",
    "insertafter",
    "insertbefore",
    "create",
    "backup",
    "validate",
    "marker_begin",
    "marker_end",
    "append_newline",
    "prepend_newline",
];

#[derive(Clone, Debug)]
pub struct Desired {
    pub path: PathBuf,
    pub present: bool,
    pub block: String,
    pub marker0: Vec<u8>,
    pub marker1: Vec<u8>,
    pub insertafter: Option<String>,
    pub insertbefore: Option<String>,
    pub insert_re: Option<Regex>,
    pub create: bool,
    pub backup: bool,
    pub validate: Option<String>,
    pub append_newline: bool,
    pub prepend_newline: bool,
    pub attrs: Attrs,
}

/// Python's `bytes.splitlines(True)`: lines end at `\n`, `\r\n` or `\r`.
pub fn splitlines_keepends(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\n' => {
                out.push(data[start..=i].to_vec());
                start = i + 1;
            }
            b'\r' => {
                let end = if data.get(i + 1) == Some(&b'\n') {
                    i + 1
                } else {
                    i
                };
                out.push(data[start..=end].to_vec());
                i = end;
                start = end + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < data.len() {
        out.push(data[start..].to_vec());
    }
    out
}

/// ansible-core's edit: the new content and its message.
pub fn edit(d: &Desired, original: Option<&[u8]>) -> (Vec<u8>, String) {
    let mut lines = original.map(splitlines_keepends).unwrap_or_default();
    let mut blocklines = Vec::new();
    if d.present && !d.block.is_empty() {
        let mut block = d.block.clone().into_bytes();
        if !block.ends_with(b"\n") {
            block.push(b'\n');
        }
        blocklines.push(d.marker0.clone());
        blocklines.extend(splitlines_keepends(&block));
        blocklines.push(d.marker1.clone());
    }
    let (mut n0, mut n1) = (None, None);
    for (i, l) in lines.iter().enumerate() {
        if *l == d.marker0 {
            n0 = Some(i);
        }
        if *l == d.marker1 {
            n1 = Some(i);
        }
    }
    let mut n0 = match (n0, n1) {
        (Some(a), Some(b)) if a < b => {
            lines.drain(a..=b);
            a
        }
        (Some(a), Some(b)) => {
            lines.drain(b..=a);
            b
        }
        _ => {
            if let Some(re) = &d.insert_re {
                let mut n = None;
                for (i, l) in lines.iter().enumerate() {
                    if re.is_match(l) {
                        n = Some(i);
                    }
                }
                match n {
                    None => lines.len(),
                    Some(i) if d.insertafter.is_some() => i + 1,
                    Some(i) => i,
                }
            } else if d.insertbefore.is_some() {
                0
            } else {
                lines.len()
            }
        }
    };
    if n0 > 0 && !lines[n0 - 1].ends_with(b"\n") {
        lines[n0 - 1].push(b'\n');
    }
    if d.prepend_newline && d.present && n0 != 0 && lines[n0 - 1] != b"\n" {
        lines.insert(n0, b"\n".to_vec());
        n0 += 1;
    }
    let after_block = n0 + blocklines.len();
    let had_block = !blocklines.is_empty();
    lines.splice(n0..n0, blocklines);
    if d.append_newline && d.present && after_block < lines.len() && lines[after_block] != b"\n" {
        lines.insert(after_block, b"\n".to_vec());
    }
    let result = lines.concat();
    let msg = if original == Some(result.as_slice()) {
        ""
    } else if original.is_none() {
        "File created"
    } else if !had_block {
        "Block removed"
    } else {
        "Block inserted"
    };
    (result, msg.into())
}

fn planned(d: &Desired, o: &TextObs) -> Option<(Vec<u8>, String)> {
    if !d.present && o.data.is_none() {
        return None;
    }
    let (r, m) = edit(d, o.data.as_deref());
    (o.data.as_deref() != Some(r.as_slice())).then_some((r, m))
}

impl Resource for BlockInFile {
    type Desired = Desired;
    type Observed = TextObs;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, _ctx: &ModuleCtx) -> Result<Desired, ModuleError> {
        let path = args
            .str_any(&["path", "dest", "destfile", "name"])?
            .ok_or_else(|| ModuleError::new("missing required arguments: path"))?;
        let insertafter = args.str("insertafter")?;
        let insertbefore = args.str("insertbefore")?;
        if insertafter.is_some() && insertbefore.is_some() {
            return Err(ModuleError::new(
                "parameters are mutually exclusive: insertbefore|insertafter",
            ));
        }
        let insertafter = if insertafter.is_none() && insertbefore.is_none() {
            Some("EOF".into())
        } else {
            insertafter
        };
        let insert_re = match (&insertafter, &insertbefore) {
            (Some(a), _) if a != "EOF" => Some(compile(a, "insertafter")?),
            (None, Some(b)) if b != "BOF" => Some(compile(b, "insertbefore")?),
            _ => None,
        };
        let marker = args
            .str("marker")?
            .unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into());
        let begin = args.str("marker_begin")?.unwrap_or_else(|| "BEGIN".into());
        let end = args.str("marker_end")?.unwrap_or_else(|| "END".into());
        let m = |mark: &str| format!("{}\n", marker.replace("{mark}", mark)).into_bytes();
        Ok(Desired {
            path: fsutil::path_arg(&path),
            present: args.choice("state", &["absent", "present"])?.as_deref() != Some("absent"),
            block: args.str_any(&["block", "content"])?.unwrap_or_default(),
            marker0: m(&begin),
            marker1: m(&end),
            insertafter,
            insertbefore,
            insert_re,
            create: args.bool_or("create", false)?,
            backup: args.bool_or("backup", false)?,
            validate: args.str("validate")?,
            append_newline: args.bool_or("append_newline", false)?,
            prepend_newline: args.bool_or("prepend_newline", false)?,
            attrs: Attrs::from_args(args)?,
        })
    }

    fn observe(&self, d: &Desired) -> Result<TextObs, ModuleError> {
        let o = observe_text(&d.path)?;
        let p = d.path.display();
        if o.info.kind == Kind::Directory {
            return Err(ModuleError::new(format!("Path {p} is a directory !")));
        }
        if o.data.is_none() && !d.create {
            let mut e = ModuleError::new(format!("Path {p} does not exist !"));
            e.fields.insert("rc".into(), 257.into());
            return Err(e);
        }
        Ok(o)
    }

    fn diff(&self, d: &Desired, o: &TextObs) -> Change {
        let after = planned(d, o).map(|p| p.0);
        text_change(
            &d.path,
            o.data.as_deref(),
            after.as_deref(),
            &d.attrs,
            &o.info,
        )
    }

    fn apply(
        &self,
        d: &Desired,
        o: &TextObs,
        change: &Change,
        _ctx: &ModuleCtx,
    ) -> Result<TextObs, ModuleError> {
        let p = planned(d, o);
        let backup = write_text(
            &d.path,
            o,
            p.as_ref().map(|p| p.0.as_slice()),
            &d.attrs,
            d.backup,
            d.validate.as_deref(),
        )?;
        let mut after = observe_text(&d.path)?;
        after.applied = Some((
            attrs_msg(&p.map(|p| p.1).unwrap_or_default(), change),
            backup,
        ));
        Ok(after)
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
            None if !d.present && o.data.is_none() => {
                format!("File {} not present", d.path.display())
            }
            None => attrs_msg(&planned(d, o).map(|p| p.1).unwrap_or_default(), change),
        };
        v.insert("msg".into(), msg.into());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::json;
    use std::fs;

    fn bi(before: Option<&str>, args: serde_json::Value) -> (Option<String>, bool, String) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        if let Some(b) = before {
            fs::write(&p, b).unwrap();
        }
        let mut a = args.as_object().unwrap().clone();
        a.insert("path".into(), json!(p));
        match run_with(
            "blockinfile",
            json!(a),
            &Opts {
                check: false,
                diff: false,
                search_dirs: vec![],
                vars: json!({}),
            },
        ) {
            Ok(out) => {
                if out.changed {
                    assert!(
                        !run("blockinfile", json!(a)).changed,
                        "not idempotent: {args}"
                    );
                }
                (
                    fs::read_to_string(&p).ok(),
                    out.changed,
                    out.msg.unwrap_or_default(),
                )
            }
            Err(e) => (None, false, e),
        }
    }

    // Expectations produced by ansible-core 2.19 on the same inputs.
    #[test]
    fn matches_ansible_core() {
        let s = |x: &str| Some(x.to_string());
        let m =
            |b: &str| format!("# BEGIN ANSIBLE MANAGED BLOCK\n{b}# END ANSIBLE MANAGED BLOCK\n");
        assert_eq!(
            bi(Some("a\n"), json!({"block": "x\ny"})),
            (
                Some(format!("a\n{}", m("x\ny\n"))),
                true,
                "Block inserted".into()
            )
        );
        assert_eq!(
            bi(Some("a"), json!({"block": "x"})),
            (
                Some(format!("a\n{}", m("x\n"))),
                true,
                "Block inserted".into()
            )
        );
        assert_eq!(
            bi(
                Some(&format!("a\n{}b\n", m("old\n"))),
                json!({"block": "new"})
            ),
            (
                Some(format!("a\n{}b\n", m("new\n"))),
                true,
                "Block inserted".into()
            )
        );
        assert_eq!(
            bi(
                Some(&format!("a\n{}b\n", m("old\n"))),
                json!({"state": "absent"})
            ),
            (s("a\nb\n"), true, "Block removed".into())
        );
        assert_eq!(
            bi(Some("a\nb\n"), json!({"block": "x", "insertbefore": "BOF"})),
            (
                Some(format!("{}a\nb\n", m("x\n"))),
                true,
                "Block inserted".into()
            )
        );
        assert_eq!(
            bi(
                Some("a\nb\nc\n"),
                json!({"block": "x", "insertafter": "^b"})
            ),
            (
                Some(format!("a\nb\n{}c\n", m("x\n"))),
                true,
                "Block inserted".into()
            )
        );
        assert_eq!(
            bi(
                Some("a\nb\n"),
                json!({"block": "x", "insertbefore": "^b", "marker": "<!-- {mark} -->", "prepend_newline": true, "append_newline": true})
            ),
            (
                s("a\n\n<!-- BEGIN -->\nx\n<!-- END -->\n\nb\n"),
                true,
                "Block inserted".into()
            )
        );
        assert_eq!(
            bi(None, json!({"block": "x", "create": true})),
            (Some(m("x\n")), true, "File created".into())
        );
        let (_, ch, msg) = bi(None, json!({"block": "x"}));
        assert!(!ch && msg.ends_with(" does not exist !"), "{msg}");
        let (_, ch, msg) = bi(None, json!({"state": "absent"}));
        assert!(!ch && msg.ends_with(" does not exist !"), "{msg}");
        let (_, ch, msg) = bi(None, json!({"state": "absent", "create": true}));
        assert!(
            !ch && msg.starts_with("File ") && msg.ends_with(" not present"),
            "{msg}"
        );
    }

    #[test]
    fn splitlines_like_python() {
        assert_eq!(
            splitlines_keepends(b"a\r\nb\rc\nd"),
            vec![
                b"a\r\n".to_vec(),
                b"b\r".to_vec(),
                b"c\n".to_vec(),
                b"d".to_vec()
            ]
        );
    }
}
