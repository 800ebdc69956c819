//! `lineinfile`: one line in a text file, with ansible-core's exact matching and insertion
//! rules (the file is handled as bytes split after each `\n`, like Python's `readlines()`).

use std::path::PathBuf;

use regex::bytes::Regex;
use tend_proto::{Value, Vars};

use crate::fsutil::{self, Attrs, Kind, PathInfo};
use crate::{Args, Change, ModuleCtx, ModuleError, Resource};

pub struct LineInFile;

pub const PARAMS: &[&str] = with_file_args![
    "path",
    "dest",
    "destfile",
    "name",
    "state",
    "regexp",
    "regex",
    "search_string",
    "line",
    "value",
    "insertafter",
    "insertbefore",
    "backrefs",
    "create",
    "backup",
    "firstmatch",
    "validate",
];

#[derive(Clone, Debug)]
pub struct Desired {
    pub path: PathBuf,
    pub present: bool,
    pub regexp: Option<Regex>,
    pub search_string: Option<String>,
    pub line: Option<String>,
    pub insertafter: Option<String>,
    pub insertbefore: Option<String>,
    pub backrefs: bool,
    pub create: bool,
    pub backup: bool,
    pub firstmatch: bool,
    pub validate: Option<String>,
    pub attrs: Attrs,
}

/// A file's text as observed (shared by lineinfile, blockinfile and replace).
#[derive(Clone, Debug)]
pub struct TextObs {
    pub info: PathInfo,
    pub data: Option<Vec<u8>>,
    /// Set by `apply`: the message of what was done, and the backup made.
    pub applied: Option<(String, String)>,
}

/// What the edit produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub lines: Vec<u8>,
    pub changed: bool,
    pub msg: String,
    pub found: usize,
}

/// Compiles a Python regular expression (without flags, as lineinfile uses them) for the Rust
/// engine.
pub fn compile(pattern: &str, what: &str) -> Result<Regex, ModuleError> {
    Regex::new(&py_regex(pattern, false))
        .map_err(|e| ModuleError::new(format!("the {what} '{pattern}' is not supported: {e}")))
}

/// Python `re` syntax that Rust's `regex` spells differently. `\Z` is `\z`. Without
/// `multiline`, Python's `^` is `\A` and `$` also matches before a final newline (Rust's
/// `(?m:$)` on one line); with it (`re.MULTILINE`), both mean what Rust's `(?m)` means.
/// Lookaround and backreferences have no Rust equivalent and fail to compile.
pub fn py_regex(p: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    if multiline {
        out.push_str("(?m)");
    }
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('Z') if !in_class => out.push_str("\\z"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            '[' if in_class => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '^' if !in_class && !multiline => out.push_str("\\A"),
            '$' if !in_class && !multiline => out.push_str("(?m:$)"),
            c => out.push(c),
        }
    }
    out
}

/// Python's `match.expand(template)` as a Rust replacement string: `\1`, `\g<1>`, `\g<name>`
/// become `${1}`/`${name}`, `$` is literal, `\n` `\t` `\\` are escapes.
pub fn py_template(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let b: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '$' {
            out.push_str("$$");
        } else if c == '\\' && i + 1 < b.len() {
            let n = b[i + 1];
            if n.is_ascii_digit() {
                let mut j = i + 1;
                while j < b.len() && j < i + 3 && b[j].is_ascii_digit() {
                    j += 1;
                }
                let num: String = b[i + 1..j].iter().collect();
                out.push_str(&format!("${{{num}}}"));
                i = j;
                continue;
            }
            if n == 'g' && b.get(i + 2) == Some(&'<') {
                if let Some(close) = b[i + 3..].iter().position(|&x| x == '>') {
                    let name: String = b[i + 3..i + 3 + close].iter().collect();
                    out.push_str(&format!("${{{name}}}"));
                    i += 4 + close;
                    continue;
                }
            }
            match n {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\x07'),
                'f' => out.push('\x0c'),
                'v' => out.push('\x0b'),
                'b' => out.push('\x08'),
                '\\' => out.push('\\'),
                other => {
                    out.push('\\');
                    if other == '$' {
                        out.push('$');
                    }
                    out.push(other);
                }
            }
            i += 2;
            continue;
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// Python's `readlines()` on bytes: split after each `\n`.
pub fn readlines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn rstrip_nl(l: &[u8]) -> &[u8] {
    let mut end = l.len();
    while end > 0 && (l[end - 1] == b'\n' || l[end - 1] == b'\r') {
        end -= 1;
    }
    &l[..end]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// ansible-core's `present()`: the new lines, whether they changed, and the message.
pub fn present(d: &Desired, data: &[u8]) -> Edit {
    let mut lines = readlines(data);
    let line = d.line.clone().unwrap_or_default().into_bytes();
    let insertafter = d.insertafter.as_deref();
    let insertbefore = d.insertbefore.as_deref();
    let ins_re = match (insertafter, insertbefore) {
        (Some(a), _) if a != "BOF" && a != "EOF" => compile(a, "insertafter").ok(),
        (None, Some(b)) if b != "BOF" => compile(b, "insertbefore").ok(),
        _ => None,
    };
    let mut index: [i64; 2] = [-1, -1];
    let mut matched: Option<Vec<u8>> = None; // the expanded line when a regexp matched
    let mut any_match = false;
    let mut exact_line_match = false;

    if let Some(re) = &d.regexp {
        for (n, cur) in lines.iter().enumerate() {
            if let Some(caps) = re.captures(cur) {
                index[0] = n as i64;
                any_match = true;
                let mut out = Vec::new();
                caps.expand(
                    py_template(&String::from_utf8_lossy(&line)).as_bytes(),
                    &mut out,
                );
                matched = Some(out);
                if d.firstmatch {
                    break;
                }
            }
        }
    }
    if let Some(s) = &d.search_string {
        for (n, cur) in lines.iter().enumerate() {
            if contains(cur, s.as_bytes()) {
                index[0] = n as i64;
                any_match = true;
                if d.firstmatch {
                    break;
                }
            }
        }
    }
    if !any_match {
        for (n, cur) in lines.iter().enumerate() {
            if rstrip_nl(cur) == line.as_slice() {
                index[0] = n as i64;
                exact_line_match = true;
            } else if let Some(re) = &ins_re {
                if re.is_match(cur) {
                    if insertafter.is_some() {
                        index[1] = n as i64 + 1;
                        if d.firstmatch {
                            break;
                        }
                    }
                    if insertbefore.is_some() {
                        index[1] = n as i64;
                        if d.firstmatch {
                            break;
                        }
                    }
                }
            }
        }
    }

    let mut msg = "";
    let mut changed = false;
    let with_nl = |l: &[u8]| {
        let mut v = l.to_vec();
        v.push(b'\n');
        v
    };
    let last_unterminated = |lines: &Vec<Vec<u8>>| {
        lines
            .last()
            .is_some_and(|l| !matches!(l.last(), Some(b'\n') | Some(b'\r')))
    };
    if index[0] != -1 {
        let mut new_line = match (&matched, d.backrefs) {
            (Some(m), true) => m.clone(),
            _ => line.clone(),
        };
        if !new_line.ends_with(b"\n") {
            new_line.push(b'\n');
        }
        if d.regexp.is_none() && d.search_string.is_none() && !any_match && !exact_line_match {
            // Unreachable in practice (index[0] is only set by a match), kept for parity.
        } else if lines[index[0] as usize] != new_line {
            lines[index[0] as usize] = new_line;
            msg = "line replaced";
            changed = true;
        }
    } else if d.backrefs {
        // backrefs with no match: leave the file alone.
    } else if insertbefore == Some("BOF") || insertafter == Some("BOF") {
        lines.insert(0, with_nl(&line));
        msg = "line added";
        changed = true;
    } else if insertafter == Some("EOF") || index[1] == -1 {
        if last_unterminated(&lines) {
            lines.push(b"\n".to_vec());
        }
        lines.push(with_nl(&line));
        msg = "line added";
        changed = true;
    } else if insertafter.is_some() && index[1] != -1 {
        let i = index[1] as usize;
        if lines.len() == i {
            if rstrip_nl(&lines[i - 1]) != line.as_slice() {
                lines.push(with_nl(&line));
                msg = "line added";
                changed = true;
            }
        } else if line.as_slice() != rstrip_nl(&lines[i]) {
            lines.insert(i, with_nl(&line));
            msg = "line added";
            changed = true;
        }
    } else {
        lines.insert(index[1] as usize, with_nl(&line));
        msg = "line added";
        changed = true;
    }
    Edit {
        lines: lines.concat(),
        changed,
        msg: msg.into(),
        found: 0,
    }
}

/// ansible-core's `absent()`.
pub fn absent(d: &Desired, data: &[u8]) -> Edit {
    let line = d.line.clone().unwrap_or_default().into_bytes();
    let mut found = 0;
    let kept: Vec<Vec<u8>> = readlines(data)
        .into_iter()
        .filter(|cur| {
            let m = if let Some(re) = &d.regexp {
                re.is_match(cur)
            } else if let Some(s) = &d.search_string {
                contains(cur, s.as_bytes())
            } else {
                rstrip_nl(cur) == line.as_slice()
            };
            if m {
                found += 1;
            }
            !m
        })
        .collect();
    let msg = if found > 0 {
        format!("{found} line(s) removed")
    } else {
        String::new()
    };
    Edit {
        lines: kept.concat(),
        changed: found > 0,
        msg,
        found,
    }
}

fn edit(d: &Desired, o: &TextObs) -> Option<Edit> {
    match (&o.data, d.present) {
        (None, false) => None,
        (None, true) => Some(present(d, b"")),
        (Some(data), true) => Some(present(d, data)),
        (Some(data), false) => Some(absent(d, data)),
    }
}

/// Observes a text file for the line-editing modules.
pub fn observe_text(path: &std::path::Path) -> Result<TextObs, ModuleError> {
    let info = fsutil::info(path, true)?;
    let data = if info.kind == Kind::Absent {
        None
    } else {
        fsutil::read_if_exists(path)?
    };
    Ok(TextObs {
        info,
        data,
        applied: None,
    })
}

/// The change of a text-editing module: content (headers `path (content)`) and attributes.
pub fn text_change(
    path: &std::path::Path,
    before: Option<&[u8]>,
    after: Option<&[u8]>,
    attrs: &Attrs,
    info: &PathInfo,
) -> Change {
    let p = path.display().to_string();
    let mut c = Change::none(p.clone());
    if let Some(after) = after {
        let before = before.unwrap_or_default();
        if before != after {
            let h = format!("{p} (content)");
            c = c.with_content_headers(
                String::from_utf8_lossy(before).into_owned(),
                String::from_utf8_lossy(after).into_owned(),
                (h.clone(), h),
            );
            if c.content.is_none() {
                c = c.field(
                    "checksum",
                    fsutil::sha1_hex(before),
                    fsutil::sha1_hex(after),
                );
            }
        }
    }
    if info.exists() || after.is_some() {
        let now = if info.exists() {
            info.clone()
        } else {
            PathInfo {
                kind: Kind::File,
                mode: 0o644,
                ..PathInfo::absent()
            }
        };
        c = attrs.diff_into(c, &now, None);
    }
    c
}

/// Writes the new text (backup, validate, atomic write) and sets attributes.
pub fn write_text(
    path: &std::path::Path,
    o: &TextObs,
    new: Option<&[u8]>,
    attrs: &Attrs,
    backup: bool,
    validate: Option<&str>,
) -> Result<String, ModuleError> {
    let mut backup_file = String::new();
    if let Some(new) = new.filter(|n| o.data.as_deref() != Some(*n)) {
        if backup && o.data.is_some() {
            backup_file = fsutil::backup(path)?.display().to_string();
        }
        if o.data.is_none() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsutil::create_dirs(parent).map_err(|e| {
                    ModuleError::new(format!("Error creating {} ({})", parent.display(), e.msg))
                })?;
            }
        }
        let check = |tmp: &std::path::Path| crate::content::run_validate(validate, tmp);
        let v: Option<fsutil::Validator> = if validate.is_some() {
            Some(&check)
        } else {
            None
        };
        fsutil::atomic_write(path, new, attrs, None, v)?;
    } else if o.info.exists() {
        attrs.apply(path, true, None)?;
    }
    Ok(backup_file)
}

/// ansible-core's message when only owner/group/mode changed, or also them.
pub fn attrs_msg(msg: &str, change: &Change) -> String {
    let attrs = change
        .fields
        .iter()
        .any(|f| matches!(f.field.as_str(), "owner" | "group" | "mode"));
    match (msg.is_empty(), attrs) {
        (_, false) => msg.to_string(),
        (true, true) => "ownership, perms or SE linux context changed".into(),
        (false, true) => format!("{msg} and ownership, perms or SE linux context changed"),
    }
}

impl Resource for LineInFile {
    type Desired = Desired;
    type Observed = TextObs;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, _ctx: &ModuleCtx) -> Result<Desired, ModuleError> {
        let path = args
            .str_any(&["path", "dest", "destfile", "name"])?
            .ok_or_else(|| ModuleError::new("missing required arguments: path"))?;
        let present = args.choice("state", &["absent", "present"])?.as_deref() != Some("absent");
        let regexp = args.str_any(&["regexp", "regex"])?;
        let search_string = args.str("search_string")?;
        let line = args.str_any(&["line", "value"])?;
        let insertafter = args.str("insertafter")?;
        let insertbefore = args.str("insertbefore")?;
        let backrefs = args.bool_or("backrefs", false)?;
        for (a, b, set) in [
            (
                "insertbefore",
                "insertafter",
                insertbefore.is_some() && insertafter.is_some(),
            ),
            (
                "regexp",
                "search_string",
                regexp.is_some() && search_string.is_some(),
            ),
            (
                "backrefs",
                "search_string",
                backrefs && search_string.is_some(),
            ),
        ] {
            if set {
                return Err(ModuleError::new(format!(
                    "parameters are mutually exclusive: {a}|{b}"
                )));
            }
        }
        if present {
            if backrefs && regexp.is_none() {
                return Err(ModuleError::new("regexp is required with backrefs=true"));
            }
            if line.is_none() {
                return Err(ModuleError::new("line is required with state=present"));
            }
        } else if regexp.is_none() && search_string.is_none() && line.is_none() {
            return Err(ModuleError::new(
                "one of line, search_string, or regexp is required with state=absent",
            ));
        }
        for (k, v) in [
            ("insertafter", &insertafter),
            ("insertbefore", &insertbefore),
        ] {
            if let Some(p) = v.as_deref().filter(|p| !matches!(*p, "BOF" | "EOF")) {
                compile(p, k)?;
            }
        }
        let insertafter = if present && insertafter.is_none() && insertbefore.is_none() {
            Some("EOF".to_string())
        } else {
            insertafter
        };
        Ok(Desired {
            path: fsutil::path_arg(&path),
            present,
            regexp: regexp
                .as_deref()
                .map(|r| compile(r, "regular expression"))
                .transpose()?,
            search_string,
            line,
            insertafter,
            insertbefore,
            backrefs,
            create: args.bool_or("create", false)?,
            backup: args.bool_or("backup", false)?,
            firstmatch: args.bool_or("firstmatch", false)?,
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
        if d.present && o.data.is_none() && !d.create {
            let mut e = ModuleError::new(format!("Destination {p} does not exist !"));
            e.fields.insert("rc".into(), 257.into());
            return Err(e);
        }
        Ok(o)
    }

    fn diff(&self, d: &Desired, o: &TextObs) -> Change {
        if o.applied.is_some() {
            // lineinfile is an edit, not a state: ansible-core applies it again on every run
            // (a `regexp` the new `line` matches no more edits again). Once applied, it is done.
            return Change::none(d.path.display().to_string());
        }
        let e = edit(d, o).filter(|e| e.changed);
        let after = e.as_ref().map(|e| e.lines.as_slice());
        text_change(&d.path, o.data.as_deref(), after, &d.attrs, &o.info)
    }

    fn apply(
        &self,
        d: &Desired,
        o: &TextObs,
        change: &Change,
        _ctx: &ModuleCtx,
    ) -> Result<TextObs, ModuleError> {
        let e = edit(d, o).filter(|e| e.changed);
        let new = e.as_ref().map(|e| e.lines.as_slice());
        let backup = write_text(&d.path, o, new, &d.attrs, d.backup, d.validate.as_deref())?;
        let mut after = observe_text(&d.path)?;
        let msg = e.map(|e| e.msg).unwrap_or_default();
        after.applied = Some((attrs_msg(&msg, change), backup));
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
        let (msg, backup, found) = match &o.applied {
            Some((m, b)) => (m.clone(), b.clone(), None),
            None => match edit(d, o) {
                None => ("file not present".to_string(), String::new(), None),
                Some(e) => (attrs_msg(&e.msg, change), String::new(), Some(e.found)),
            },
        };
        v.insert("msg".into(), msg.into());
        v.insert("backup".into(), backup.into());
        if !d.present && o.data.is_some() {
            let found = found.unwrap_or_else(|| {
                // After apply the lines are gone: count them from the change.
                change
                    .content
                    .as_ref()
                    .map(|(b, _)| absent(d, b.as_bytes()).found)
                    .unwrap_or(0)
            });
            v.insert("found".into(), Value::from(found));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::json;
    use std::fs;

    /// Runs lineinfile on a file holding `before`; returns (content after, changed, msg).
    fn li(before: Option<&str>, args: serde_json::Value) -> (Option<String>, bool, String) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        if let Some(b) = before {
            fs::write(&p, b).unwrap();
        }
        let mut a = args.as_object().unwrap().clone();
        a.insert("path".into(), json!(p));
        let out = match run_with(
            "lineinfile",
            json!(a),
            &Opts {
                check: false,
                diff: false,
                search_dirs: vec![],
                vars: json!({}),
            },
        ) {
            Ok(o) => o,
            Err(e) => return (None, false, e),
        };
        (
            fs::read_to_string(&p).ok(),
            out.changed,
            out.msg.unwrap_or_default(),
        )
    }

    // Expectations below were produced by ansible-core 2.19 on the same inputs
    // (`ansible localhost -c local -m lineinfile -a ...`).
    #[test]
    fn matches_ansible_core() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            li(Some("a\nb\n"), json!({"line": "c"})),
            (s("a\nb\nc\n"), true, "line added".into())
        );
        assert_eq!(
            li(Some("a\nb"), json!({"line": "c"})),
            (s("a\nb\nc\n"), true, "line added".into())
        );
        assert_eq!(
            li(Some("a\nb\n"), json!({"line": "b"})),
            (s("a\nb\n"), false, "".into())
        );
        assert_eq!(
            li(Some("a=1\nb=2\n"), json!({"regexp": "^b=", "line": "b=3"})),
            (s("a=1\nb=3\n"), true, "line replaced".into())
        );
        assert_eq!(
            li(Some("x\nx\n"), json!({"regexp": "^x", "line": "y"})),
            (s("x\ny\n"), true, "line replaced".into())
        );
        assert_eq!(
            li(
                Some("x\nx\n"),
                json!({"regexp": "^x", "line": "y", "firstmatch": true})
            ),
            (s("y\nx\n"), true, "line replaced".into())
        );
        assert_eq!(
            li(
                Some("a\nb\n"),
                json!({"line": "new", "insertbefore": "BOF"})
            ),
            (s("new\na\nb\n"), true, "line added".into())
        );
        assert_eq!(
            li(
                Some("a\n#x\nb\n#x\n"),
                json!({"line": "new", "insertafter": "^#x"})
            ),
            (s("a\n#x\nb\n#x\nnew\n"), true, "line added".into())
        );
        assert_eq!(
            li(
                Some("a\n#x\nb\n#x\n"),
                json!({"line": "new", "insertafter": "^#x", "firstmatch": true})
            ),
            (s("a\n#x\nnew\nb\n#x\n"), true, "line added".into())
        );
        assert_eq!(
            li(
                Some("a\n#x\nb\n"),
                json!({"line": "new", "insertbefore": "^#x"})
            ),
            (s("a\nnew\n#x\nb\n"), true, "line added".into())
        );
        assert_eq!(
            li(
                Some("a\nb\n"),
                json!({"line": "new", "insertafter": "^nomatch"})
            ),
            (s("a\nb\nnew\n"), true, "line added".into())
        );
        assert_eq!(
            li(
                Some("host=abc\n"),
                json!({"regexp": "^host=(\\w+)$", "line": "name=\\1 ${x} \\g<1>", "backrefs": true})
            ),
            (s("name=abc ${x} abc\n"), true, "line replaced".into())
        );
        assert_eq!(
            li(
                Some("a\n"),
                json!({"regexp": "^zzz", "line": "q", "backrefs": true})
            ),
            (s("a\n"), false, "".into())
        );
        assert_eq!(
            li(Some("a\nb\na\n"), json!({"line": "a", "state": "absent"})),
            (s("b\n"), true, "2 line(s) removed".into())
        );
        assert_eq!(
            li(
                Some("foo bar\nbaz\n"),
                json!({"search_string": "o b", "line": "X"})
            ),
            (s("X\nbaz\n"), true, "line replaced".into())
        );
        assert_eq!(
            li(
                Some("a\n#x\nnew\n"),
                json!({"line": "new", "insertafter": "^#x"})
            ),
            (s("a\n#x\nnew\n"), false, "".into())
        );
        assert_eq!(
            li(
                Some("a\nnew\n#x\n"),
                json!({"line": "new", "insertbefore": "^#x"})
            ),
            (s("a\nnew\n#x\n"), false, "".into())
        );
        assert_eq!(
            li(
                Some("#x\nb\n"),
                json!({"line": "new", "insertbefore": "^#x"})
            ),
            (s("new\n#x\nb\n"), true, "line added".into())
        );
        // ansible-core appends to an unterminated last line here (sic).
        assert_eq!(
            li(Some("a\n#x"), json!({"line": "new", "insertafter": "^#x"})),
            (s("a\n#xnew\n"), true, "line added".into())
        );
        assert_eq!(
            li(Some("a\r\nb\r\n"), json!({"line": "b"})),
            (s("a\r\nb\n"), true, "line replaced".into())
        );
        assert_eq!(
            li(Some("a\nb\n"), json!({"regexp": "^a", "line": "b"})),
            (s("b\nb\n"), true, "line replaced".into())
        );
        assert_eq!(
            li(Some(""), json!({"line": "x", "insertbefore": "^y"})),
            (s("x\n"), true, "line added".into())
        );
        assert_eq!(
            li(None, json!({"line": "x", "create": true})),
            (s("x\n"), true, "line added".into())
        );
        let (c, ch, m) = li(None, json!({"line": "x"}));
        assert_eq!((c, ch), (None, false));
        assert!(
            m.starts_with("Destination ") && m.ends_with(" does not exist !"),
            "{m}"
        );
        assert_eq!(
            li(None, json!({"line": "x", "state": "absent"})),
            (None, false, "file not present".into())
        );
        assert_eq!(
            li(Some("a\n"), json!({"line": "a", "mode": "0600"})),
            (
                s("a\n"),
                true,
                "ownership, perms or SE linux context changed".into()
            )
        );
        assert_eq!(
            li(Some("a\n"), json!({"line": "b", "mode": "0600"})),
            (
                s("a\nb\n"),
                true,
                "line added and ownership, perms or SE linux context changed".into()
            )
        );
    }

    #[test]
    fn converges_and_detects_drift() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        fs::write(&p, "a=1\nb=2\n").unwrap();
        let args = json!({"path": p, "regexp": "^b=", "line": "b=3"});
        assert!(run("lineinfile", args.clone()).changed);
        assert!(!run("lineinfile", args.clone()).changed);
        fs::write(&p, "a=1\nb=9\n").unwrap();
        assert!(run("lineinfile", args).changed);
        assert_eq!(fs::read_to_string(&p).unwrap(), "a=1\nb=3\n");
    }

    #[test]
    fn diff_and_check_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        fs::write(&p, "a\n").unwrap();
        let before = snapshot(t.path());
        let out = run_check(
            "lineinfile",
            json!({"path": p, "line": "b", "backup": true}),
        );
        assert!(out.changed);
        let h = format!("{} (content)", p.display());
        assert_eq!(
            out.diffs[0],
            json!({"before": "a\n", "after": "a\nb\n", "before_header": h, "after_header": h})
        );
        assert_eq!(snapshot(t.path()), before);
        let out = run(
            "lineinfile",
            json!({"path": p, "line": "b", "backup": true}),
        );
        assert!(out.fields["backup"].as_str().unwrap().contains(".20"));
    }

    #[test]
    fn python_regexes_translate() {
        let re = compile(r"^host=(\w+)$", "regexp").unwrap();
        assert!(re.is_match(b"host=abc\n"));
        assert!(!compile("^$", "regexp").unwrap().is_match(b"abc\n"));
        assert!(compile("[]^$]x", "regexp").unwrap().is_match(b"$x"));
    }

    #[test]
    fn python_templates_translate() {
        assert_eq!(
            py_template(r"a\1b\g<2>c\g<name>$d\n"),
            "a${1}b${2}c${name}$$d\n"
        );
    }
}
