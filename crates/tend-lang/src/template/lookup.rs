//! Lookup plugins: `lookup(...)`, `query(...)` and `q(...)`.
//!
//! Lookups run on the machine rendering the template. Relative files are searched the way
//! Ansible searches them: `{{ role_path }}/<subdir>`, `{{ role_path }}`,
//! `{{ playbook_dir }}/<subdir>`, `{{ playbook_dir }}` (or `ansible_search_path` when set).
//! What a lookup returns is data: it is never rendered again as a template (except by
//! `lookup('template')`, whose job is to render a file).

use std::path::{Path, PathBuf};

use minijinja::value::{merge_maps, Kwargs, Rest, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::filters::fail;
use super::pyrepr;
use crate::ctlfs;

/// The lookups tend knows, for error messages.
const SUPPORTED: &str =
    "dict, env, file, fileglob, first_found, indexed_items, items, lines, list, pipe, sequence, template, vars";

pub fn register(env: &mut Environment<'static>) {
    env.add_function(
        "lookup",
        |state: &State, name: String, args: Rest<ValueOrKwargs>| invoke(state, &name, args, false),
    );
    env.add_function(
        "query",
        |state: &State, name: String, args: Rest<ValueOrKwargs>| invoke(state, &name, args, true),
    );
    env.add_function(
        "q",
        |state: &State, name: String, args: Rest<ValueOrKwargs>| invoke(state, &name, args, true),
    );
}

fn invoke(
    state: &State,
    name: &str,
    args: Rest<ValueOrKwargs>,
    query: bool,
) -> Result<Value, Error> {
    let mut terms = args.into_values();
    let kwargs = match terms.last() {
        Some(l) if l.is_kwargs() => Some(Kwargs::try_from(terms.pop().unwrap_or_default())?),
        _ => None,
    };
    let kw = Kw(kwargs);
    let wantlist = query || kw.get("wantlist")?.is_some_and(|w| w.is_true());
    let errors = kw
        .get("errors")?
        .map(|e| pyrepr::to_text(&e))
        .unwrap_or_else(|| "strict".into());
    if !["strict", "warn", "ignore"].contains(&errors.as_str()) {
        return Err(fail(format!(
            "'errors' must be one of strict, warn or ignore, not '{errors}'"
        )));
    }
    for t in &terms {
        if t.is_undefined() {
            return Err(Error::from(ErrorKind::UndefinedError));
        }
    }
    let name = name.strip_prefix("ansible.builtin.").unwrap_or(name);
    if ctlfs::is_remote() {
        // Refused whatever `errors=` says: ignoring it would hide a different answer.
        if let Some(hint) = controller_only(name) {
            return Err(fail(format!(
                "lookup('{name}') runs on the controller in Ansible; tend renders templates on the host, so it refuses it for SSH hosts: {hint}"
            )));
        }
    }
    let result = run(state, name, &terms, &kw).and_then(|r| {
        kw.finish()?;
        Ok(r)
    });
    let items = match result {
        Ok(items) => items,
        Err(e) if errors != "strict" && e.kind() != ErrorKind::UnknownFunction => {
            return Ok(if wantlist {
                Value::from(Vec::<Value>::new())
            } else {
                Value::from(())
            });
        }
        Err(e) => return Err(e),
    };
    if wantlist {
        return Ok(Value::from(items));
    }
    Ok(match items.len() {
        0 => Value::from(Vec::<Value>::new()),
        1 => items.into_iter().next().unwrap_or_default(),
        _ if items.iter().all(|i| i.kind() == ValueKind::String) => Value::from(
            items
                .iter()
                .map(pyrepr::to_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => Value::from(items),
    })
}

/// Keyword arguments a lookup may read; `finish` rejects the ones nobody read.
struct Kw(Option<Kwargs>);

impl Kw {
    fn get(&self, name: &str) -> Result<Option<Value>, Error> {
        match &self.0 {
            Some(k) if k.has(name) => Ok(Some(k.get::<Value>(name)?)),
            _ => Ok(None),
        }
    }

    fn text(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self.get(name)?.map(|v| pyrepr::to_text(&v)))
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, Error> {
        Ok(self.get(name)?.map_or(default, |v| v.is_true()))
    }

    fn finish(&self) -> Result<(), Error> {
        match &self.0 {
            Some(k) => k.assert_all_used(),
            None => Ok(()),
        }
    }
}

fn run(state: &State, name: &str, terms: &[Value], kw: &Kw) -> Result<Vec<Value>, Error> {
    match name {
        "file" => file(state, terms, kw),
        "env" => env(terms, kw),
        "template" => template(state, terms, kw),
        "vars" => vars(state, terms, kw),
        "items" => Ok(flatten_once(terms)),
        "list" => Ok(terms.to_vec()),
        "fileglob" => fileglob(state, terms),
        "first_found" => first_found(state, terms, kw),
        "pipe" => pipe(state, terms),
        "lines" => lines(state, terms),
        "dict" => dict(terms),
        "indexed_items" => Ok(flatten_once(terms)
            .into_iter()
            .enumerate()
            .map(|(i, x)| Value::from(vec![Value::from(i), x]))
            .collect()),
        "sequence" => sequence(terms, kw),
        other => Err(Error::new(
            ErrorKind::UnknownFunction,
            format!("lookup plugin '{other}' is not supported; tend supports these lookups: {SUPPORTED}"),
        )),
    }
}

/// Lookups whose answer on a host differs from the controller's, with what to do instead.
fn controller_only(name: &str) -> Option<&'static str> {
    match name {
        "env" => Some("pass the value with `-e name=value` instead, or read the host's environment with `ansible_env` (facts)"),
        "pipe" | "lines" => Some("pass the command's output with `-e name=value` instead, or run the command on the host with `command:` and `register:`"),
        _ => None,
    }
}

fn flatten_once(terms: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for t in terms {
        if matches!(t.kind(), ValueKind::Seq | ValueKind::Iterable) {
            out.extend(t.try_iter().into_iter().flatten());
        } else {
            out.push(t.clone());
        }
    }
    out
}

/// Terms as strings: a list term counts as several terms.
fn string_terms(terms: &[Value]) -> Vec<String> {
    flatten_once(terms).iter().map(pyrepr::to_text).collect()
}

fn var_text(state: &State, name: &str) -> Option<String> {
    state
        .lookup(name)
        .filter(|v| !v.is_undefined() && !v.is_none())
        .map(|v| pyrepr::to_text(&v))
        .filter(|s| !s.is_empty())
}

/// The directories searched for relative paths, in order, each with and without `subdir`.
fn search_dirs(state: &State, subdir: &str) -> Vec<PathBuf> {
    let mut bases: Vec<PathBuf> = Vec::new();
    if let Some(sp) = state
        .lookup("ansible_search_path")
        .filter(|v| v.kind() == ValueKind::Seq)
    {
        bases.extend(
            sp.try_iter()
                .into_iter()
                .flatten()
                .map(|v| PathBuf::from(pyrepr::to_text(&v))),
        );
    } else {
        for var in ["role_path", "playbook_dir"] {
            if let Some(p) = var_text(state, var) {
                bases.push(PathBuf::from(p));
            }
        }
    }
    if bases.is_empty() {
        bases.push(std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")));
    }
    let mut out = Vec::new();
    for b in bases {
        out.push(b.join(subdir));
        out.push(b);
    }
    out
}

/// A controller file, by absolute path or in the search path (controller paths: on a remote
/// host they are read from the shipped bundle).
fn find_file(state: &State, subdir: &str, name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return ctlfs::exists(p).then(|| p.to_path_buf());
    }
    search_dirs(state, subdir)
        .into_iter()
        .map(|d| d.join(name))
        .find(|c| ctlfs::exists(c))
}

/// `msg`, plus why an absolute `name` was not found on a remote host.
fn not_found(msg: String, name: &str) -> Error {
    match ctlfs::not_shipped(Path::new(name)) {
        Some(why) if Path::new(name).is_absolute() => fail(format!("{msg}: {why}")),
        _ => fail(msg),
    }
}

/// A vault error as one message (the file and line, what failed, and the next step).
fn vault_message(d: &crate::Diag) -> String {
    match &d.hint {
        Some(h) => format!("{d}; {h}"),
        None => d.to_string(),
    }
}

fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = ctlfs::read(path)
        .map_err(|e| fail(format!("could not read file '{}': {e}", path.display())))?;
    let bytes = crate::vault::decrypt_file(bytes, path).map_err(|d| fail(vault_message(&d)))?;
    String::from_utf8(bytes)
        .map_err(|_| fail(format!("file '{}' is not valid UTF-8 text", path.display())))
}

fn file(state: &State, terms: &[Value], kw: &Kw) -> Result<Vec<Value>, Error> {
    let rstrip = kw.flag("rstrip", true)?;
    let lstrip = kw.flag("lstrip", false)?;
    let mut out = Vec::new();
    for term in string_terms(terms) {
        let path = find_file(state, "files", &term)
            .filter(|p| ctlfs::is_file(p))
            .ok_or_else(|| {
                not_found(
                    format!("The 'file' lookup could not find the file '{term}'"),
                    &term,
                )
            })?;
        let mut text = read_text(&path)?;
        if rstrip {
            text = text.trim_end().to_string();
        }
        if lstrip {
            text = text.trim_start().to_string();
        }
        out.push(Value::from(text));
    }
    Ok(out)
}

fn env(terms: &[Value], kw: &Kw) -> Result<Vec<Value>, Error> {
    let default = kw.get("default")?.unwrap_or(Value::from(""));
    Ok(string_terms(terms)
        .into_iter()
        .map(|name| {
            std::env::var(&name)
                .map(Value::from)
                .unwrap_or_else(|_| default.clone())
        })
        .collect())
}

fn template(state: &State, terms: &[Value], kw: &Kw) -> Result<Vec<Value>, Error> {
    let extra = kw
        .get("template_vars")?
        .unwrap_or_else(|| Value::from_pairs(Vec::<(Value, Value)>::new()));
    // Accepted for compatibility: ansible-core 2.19 ignores them too.
    for ignored in ["convert_data", "jinja2_native"] {
        let _ = kw.get(ignored)?;
    }
    let mut opts = super::TextOptions::file();
    for (key, slot) in [
        ("variable_start_string", &mut opts.variable.0),
        ("variable_end_string", &mut opts.variable.1),
        ("comment_start_string", &mut opts.comment.0),
        ("comment_end_string", &mut opts.comment.1),
    ] {
        if let Some(v) = kw.text(key)? {
            *slot = v;
        }
    }
    opts.trim_blocks = kw.flag("trim_blocks", true)?;
    let vars = state.lookup("vars").unwrap_or_default();
    let ctx = if vars.is_undefined() {
        extra.clone()
    } else {
        merge_maps([extra.clone(), vars])
    };
    let mut out = Vec::new();
    for term in string_terms(terms) {
        let path = find_file(state, "templates", &term)
            .filter(|p| ctlfs::is_file(p))
            .ok_or_else(|| {
                not_found(
                    format!("The 'template' lookup could not find the template '{term}'"),
                    &term,
                )
            })?;
        let text = read_text(&path)?;
        let name = path.display().to_string();
        let rendered = super::render_text_in(state.env(), &name, &text, ctx.clone(), &opts)
            .map_err(|e| {
                let detail = e
                    .detail()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                Error::new(
                    e.kind(),
                    format!("while rendering template '{}': {detail}", path.display()),
                )
            })?;
        out.push(rendered);
    }
    Ok(out)
}

fn vars(state: &State, terms: &[Value], kw: &Kw) -> Result<Vec<Value>, Error> {
    let default = kw.get("default")?;
    let mut out = Vec::new();
    for name in string_terms(terms) {
        match state.lookup(&name).filter(|v| !v.is_undefined()) {
            Some(v) => out.push(v),
            None => match &default {
                Some(d) => out.push(d.clone()),
                None => return Err(fail(format!("No variable named '{name}' was found."))),
            },
        }
    }
    Ok(out)
}

fn fileglob(state: &State, terms: &[Value]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for term in string_terms(terms) {
        let p = Path::new(&term);
        let patterns: Vec<PathBuf> = if p.is_absolute() {
            vec![p.to_path_buf()]
        } else {
            // Ansible looks for the pattern's directory in the search path, then globs there.
            let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
            let base = p.file_name().map(PathBuf::from).unwrap_or_default();
            search_dirs(state, "files")
                .into_iter()
                .map(|d| d.join(&dir))
                .filter(|d| ctlfs::is_dir(d))
                .take(1)
                .map(|d| d.join(&base))
                .collect()
        };
        for pat in patterns {
            let pat = pat.to_string_lossy().into_owned();
            let entries = ctlfs::glob(&pat).map_err(|e| fail(e.to_string()))?;
            let mut found: Vec<String> = entries
                .into_iter()
                .filter(|f| ctlfs::is_file(f))
                .map(|f| f.to_string_lossy().into_owned())
                .collect();
            found.sort();
            out.extend(found.into_iter().map(Value::from));
        }
    }
    Ok(out)
}

fn first_found(state: &State, terms: &[Value], kw: &Kw) -> Result<Vec<Value>, Error> {
    let mut files: Vec<String> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    let split = |s: &str| -> Vec<String> {
        s.split([',', ';'])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let add = |v: &Value, files: &mut Vec<String>, paths: &mut Vec<String>| {
        if v.kind() == ValueKind::Map {
            for (key, into) in [("files", &mut *files), ("paths", &mut *paths)] {
                if let Ok(x) = v.get_attr(key) {
                    if x.kind() == ValueKind::Seq {
                        into.extend(
                            x.try_iter()
                                .into_iter()
                                .flatten()
                                .map(|i| pyrepr::to_text(&i)),
                        );
                    } else if !x.is_undefined() && !x.is_none() {
                        into.extend(split(&pyrepr::to_text(&x)));
                    }
                }
            }
        } else {
            files.push(pyrepr::to_text(v));
        }
    };
    for t in flatten_once(terms) {
        add(&t, &mut files, &mut paths);
    }
    if let Some(f) = kw.get("files")? {
        add(&Value::from_pairs([("files", f)]), &mut files, &mut paths);
    }
    if let Some(p) = kw.get("paths")? {
        add(&Value::from_pairs([("paths", p)]), &mut files, &mut paths);
    }
    let skip = kw.flag("skip", false)?;
    for f in &files {
        let candidates: Vec<String> = if paths.is_empty() {
            vec![f.clone()]
        } else {
            paths.iter().map(|p| clean_join(p, f)).collect()
        };
        for c in candidates {
            if let Some(found) = find_file(state, "files", &c) {
                return Ok(vec![Value::from(found.to_string_lossy().into_owned())]);
            }
        }
    }
    if skip {
        return Ok(Vec::new());
    }
    let not_shipped: Vec<String> = files
        .iter()
        .chain(&paths)
        .filter(|f| Path::new(f).is_absolute() && ctlfs::not_shipped(Path::new(f)).is_some())
        .cloned()
        .collect();
    if not_shipped.is_empty() {
        Err(fail("No file was found when using first_found."))
    } else {
        Err(fail(format!(
            "No file was found when using first_found. On SSH hosts tend reads controller files only from the playbook directory and its roles, and these are outside them: {}",
            not_shipped.join(", ")
        )))
    }
}

/// `dir/name` without `.` components.
fn clean_join(dir: &str, name: &str) -> String {
    let joined = Path::new(dir).join(name);
    let clean: PathBuf = joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    clean.to_string_lossy().into_owned()
}

fn run_shell(state: &State, cmd: &str) -> Result<String, Error> {
    let mut c = std::process::Command::new("/bin/sh");
    c.arg("-c").arg(cmd);
    if let Some(dir) = var_text(state, "playbook_dir") {
        if Path::new(&dir).is_dir() {
            c.current_dir(dir);
        }
    }
    let out = c
        .output()
        .map_err(|e| fail(format!("could not run '{cmd}': {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "lookup_plugin.pipe({cmd}) returned {}",
            out.status.code().unwrap_or(-1)
        )));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| fail(format!("the output of '{cmd}' is not valid UTF-8")))
}

fn pipe(state: &State, terms: &[Value]) -> Result<Vec<Value>, Error> {
    string_terms(terms)
        .iter()
        .map(|cmd| run_shell(state, cmd).map(|o| Value::from(o.trim_end())))
        .collect()
}

fn lines(state: &State, terms: &[Value]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for cmd in string_terms(terms) {
        let o = run_shell(state, &cmd)?;
        out.extend(o.lines().map(Value::from));
    }
    Ok(out)
}

fn dict(terms: &[Value]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in terms {
        if t.kind() != ValueKind::Map {
            return Err(fail(format!(
                "with_dict expects a dict, got {}",
                pyrepr::repr(t)
            )));
        }
        for k in t.try_iter()? {
            let v = t.get_item(&k)?;
            out.push(Value::from_pairs([("key", k), ("value", v)]));
        }
    }
    Ok(out)
}

/// Python's `%`-formatting of one integer with a printf-style format (`%d`, `%02x`, …).
fn format_int(fmt: &str, n: i64) -> Result<String, Error> {
    let bad = || fail(format!("bad formatting string: {fmt}"));
    let start = fmt.find('%').ok_or_else(bad)?;
    let rest = &fmt[start + 1..];
    let conv_at = rest
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(bad)?;
    let spec = &rest[..conv_at];
    let conv = rest[conv_at..].chars().next().ok_or_else(bad)?;
    let tail = &rest[conv_at + conv.len_utf8()..];
    let zero = spec.starts_with('0');
    let left = spec.starts_with('-');
    let width: usize = spec.trim_start_matches(['0', '-']).parse().unwrap_or(0);
    let body = match conv {
        'd' | 'i' | 'u' => n.to_string(),
        'x' => format!("{n:x}"),
        'X' => format!("{n:X}"),
        'o' => format!("{n:o}"),
        _ => return Err(bad()),
    };
    let padded = if left {
        format!("{body:<width$}")
    } else if zero {
        format!("{body:0>width$}")
    } else {
        format!("{body:>width$}")
    };
    Ok(format!(
        "{}{padded}{}",
        &fmt[..start],
        tail.replace("%%", "%")
    ))
}

fn parse_num(s: &str) -> Result<i64, Error> {
    let t = s.trim();
    let parsed = if let Some(h) = t.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix('0').filter(|r| !r.is_empty()))
    {
        i64::from_str_radix(o, 8).ok()
    } else {
        t.parse().ok()
    };
    parsed.ok_or_else(|| {
        fail(format!(
            "can't parse '{s}' as a number in the sequence lookup"
        ))
    })
}

/// start, end, count, stride, format.
type SeqSpec = (Option<i64>, Option<i64>, Option<i64>, i64, String);

fn sequence(terms: &[Value], kw: &Kw) -> Result<Vec<Value>, Error> {
    let mut specs: Vec<SeqSpec> = Vec::new();
    let kw_start = kw.text("start")?;
    let kw_end = kw.text("end")?;
    let kw_count = kw.text("count")?;
    let kw_stride = kw.text("stride")?;
    let kw_format = kw.text("format")?;
    let mut term_list = string_terms(terms);
    if term_list.is_empty() {
        term_list.push(String::new());
    }
    for term in term_list {
        let (mut start, mut end, mut count, mut stride, mut format) =
            (None, None, None, 1i64, "%d".to_string());
        let term = term.trim();
        let mut shortcut = None;
        if !term.is_empty() && !term.contains('=') {
            shortcut = Some(term.to_string());
        } else {
            for part in term.split_whitespace() {
                let (k, v) = part.split_once('=').ok_or_else(|| {
                    fail(format!("can't parse arg {part} in the sequence lookup"))
                })?;
                match k {
                    "start" => start = Some(parse_num(v)?),
                    "end" => end = Some(parse_num(v)?),
                    "count" => count = Some(parse_num(v)?),
                    "stride" => stride = parse_num(v)?,
                    "format" => format = v.to_string(),
                    other => {
                        return Err(fail(format!(
                            "unrecognized arguments to with_sequence: {other}"
                        )))
                    }
                }
            }
        }
        if let Some(s) = shortcut {
            // [start-]end[/stride][:format]
            let (body, fmt) = match s.split_once(':') {
                Some((b, f)) => (b.to_string(), Some(f.to_string())),
                None => (s.clone(), None),
            };
            let (range, st) = match body.split_once('/') {
                Some((r, st)) => (r.to_string(), Some(st.to_string())),
                None => (body, None),
            };
            match range.rsplit_once('-').filter(|(a, _)| !a.is_empty()) {
                Some((a, b)) => {
                    start = Some(parse_num(a)?);
                    end = Some(parse_num(b)?);
                }
                None => end = Some(parse_num(&range)?),
            }
            if let Some(st) = st {
                stride = parse_num(&st)?;
            }
            if let Some(f) = fmt {
                format = f;
            }
        }
        if let Some(v) = &kw_start {
            start = Some(parse_num(v)?);
        }
        if let Some(v) = &kw_end {
            end = Some(parse_num(v)?);
        }
        if let Some(v) = &kw_count {
            count = Some(parse_num(v)?);
        }
        if let Some(v) = &kw_stride {
            stride = parse_num(v)?;
        }
        if let Some(v) = &kw_format {
            format = v.clone();
        }
        specs.push((start, end, count, stride, format));
    }
    let mut out = Vec::new();
    for (start, end, count, stride, format) in specs {
        let start = start.unwrap_or(1);
        let end = match (end, count) {
            (Some(_), Some(_)) => {
                return Err(fail("can't specify both count and end in with_sequence"))
            }
            (None, None) => return Err(fail("must specify count or end in with_sequence")),
            (Some(e), None) => e,
            (None, Some(0)) => continue,
            (None, Some(c)) => c
                .checked_sub(1)
                .and_then(|x| x.checked_mul(stride))
                .and_then(|x| x.checked_add(start))
                .ok_or_else(|| fail("the sequence lookup's count is too large"))?,
        };
        if stride == 0 {
            continue;
        }
        if (stride > 0 && end < start) || (stride < 0 && end > start) {
            return Err(fail("to count backwards make stride negative"));
        }
        let mut i = start;
        let mut n = 0usize;
        while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
            out.push(Value::from(format_int(&format, i)?));
            i = match i.checked_add(stride) {
                Some(x) => x,
                None => break,
            };
            n += 1;
            if n > 1_000_000 {
                return Err(fail(
                    "the sequence lookup would produce more than a million items",
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod unit {
    use super::super::{Layer, Scope, Templar};
    use serde_json::json;

    fn setup() -> (tempfile::TempDir, Templar, Scope) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir: {e}"));
            }
            std::fs::write(p, text).unwrap_or_else(|e| panic!("write: {e}"));
        };
        write("files/a.txt", "from files\n\n");
        write("b.txt", "beside the playbook\n");
        write("role/files/a.txt", "from the role\n");
        write(
            "templates/t.j2",
            "hello {{ who }}{% if extra is defined %} {{ extra }}{% endif %}.\n",
        );
        write("files/g/1.conf", "");
        write("files/g/2.conf", "");
        write("files/g/3.txt", "");
        let t = Templar::new();
        let s = Scope::new(
            &t,
            vec![Layer::from_json(
                &json!({
                    "playbook_dir": root.display().to_string(),
                    "who": "world",
                    "data": "{{ 1 + 1 }}",
                    "lazy": "{{ who }}!",
                }),
                false,
            )],
        );
        (dir, t, s)
    }

    fn render(t: &Templar, s: &Scope, expr: &str) -> serde_json::Value {
        t.render_value(&json!(expr), s)
            .unwrap_or_else(|e| json!(format!("ERR: {}", e.0)))
    }

    #[test]
    fn file_lookup_searches_and_strips() {
        let (dir, t, s) = setup();
        assert_eq!(
            render(&t, &s, "{{ lookup('file', 'a.txt') }}"),
            json!("from files")
        );
        assert_eq!(
            render(&t, &s, "{{ lookup('file', 'b.txt') }}"),
            json!("beside the playbook")
        );
        assert_eq!(
            render(&t, &s, "{{ lookup('file', 'a.txt', 'b.txt') }}"),
            json!("from files,beside the playbook")
        );
        assert_eq!(
            render(&t, &s, "{{ query('file', 'a.txt', rstrip=False) }}"),
            json!(["from files\n\n"])
        );
        let role = s.with_layers([super::super::Layer::from_json(
            &json!({"role_path": dir.path().join("role").display().to_string()}),
            false,
        )]);
        assert_eq!(
            render(&t, &role, "{{ lookup('file', 'a.txt') }}"),
            json!("from the role")
        );
        let missing = render(&t, &s, "{{ lookup('file', 'nope.txt') }}");
        assert!(
            missing
                .as_str()
                .is_some_and(|m| m.contains("could not find the file 'nope.txt'")),
            "{missing}"
        );
        assert_eq!(
            render(&t, &s, "{{ lookup('file', 'nope.txt', errors='ignore') }}"),
            json!(null)
        );
        assert_eq!(
            render(&t, &s, "{{ query('file', 'nope.txt', errors='ignore') }}"),
            json!([])
        );
    }

    #[test]
    fn template_lookup_renders_with_the_current_variables() {
        let (_dir, t, s) = setup();
        assert_eq!(
            render(&t, &s, "{{ lookup('template', 't.j2') }}"),
            json!("hello world.\n")
        );
        assert_eq!(
            render(
                &t,
                &s,
                "{{ lookup('template', 't.j2', template_vars={'extra': 'x'}) }}"
            ),
            json!("hello world x.\n")
        );
    }

    #[test]
    fn data_lookups() {
        let (_dir, t, s) = setup();
        std::env::set_var("TEND_LOOKUP_TEST", "v1");
        assert_eq!(
            render(&t, &s, "{{ lookup('env', 'TEND_LOOKUP_TEST') }}"),
            json!("v1")
        );
        assert_eq!(
            render(&t, &s, "{{ lookup('env', 'TEND_NOPE_NOPE', default='d') }}"),
            json!("d")
        );
        assert_eq!(
            render(&t, &s, "{{ lookup('vars', 'who') }}"),
            json!("world")
        );
        // Data is not rendered again.
        assert_eq!(
            render(&t, &s, "{{ lookup('vars', 'data') }}"),
            json!("{{ 1 + 1 }}")
        );
        assert_eq!(
            render(&t, &s, "{{ lookup('vars', 'nope', default=1) }}"),
            json!(1)
        );
        assert_eq!(
            render(&t, &s, "{{ query('items', [1, 2], 3) }}"),
            json!([1, 2, 3])
        );
        assert_eq!(
            render(&t, &s, "{{ lookup('list', [1, 2], 3) }}"),
            json!([[1, 2], 3])
        );
        assert_eq!(render(&t, &s, "{{ q('list', 'a') }}"), json!(["a"]));
        assert_eq!(
            render(&t, &s, "{{ lookup('items', ['a', 'b']) }}"),
            json!("a,b")
        );
        assert_eq!(render(&t, &s, "{{ lookup('items', ['a']) }}"), json!("a"));
        assert_eq!(
            render(&t, &s, "{{ lookup('items', ['a'], wantlist=True) }}"),
            json!(["a"])
        );
        assert_eq!(
            render(&t, &s, "{{ query('dict', {'a': 1}) }}"),
            json!([{"key": "a", "value": 1}])
        );
        assert_eq!(
            render(&t, &s, "{{ query('indexed_items', ['a', 'b']) }}"),
            json!([[0, "a"], [1, "b"]])
        );
        assert_eq!(
            render(&t, &s, "{{ query('sequence', 'start=1 end=3') }}"),
            json!(["1", "2", "3"])
        );
        assert_eq!(
            render(&t, &s, "{{ query('sequence', '4-8/2:host%02d') }}"),
            json!(["host04", "host06", "host08"])
        );
        assert_eq!(
            render(&t, &s, "{{ query('sequence', count=2, start=0) }}"),
            json!(["0", "1"])
        );
    }

    #[test]
    fn command_lookups() {
        let (_dir, t, s) = setup();
        assert_eq!(
            render(&t, &s, "{{ lookup('pipe', 'echo hi; echo there') }}"),
            json!("hi\nthere")
        );
        assert_eq!(
            render(&t, &s, "{{ query('lines', 'printf \"a\\nb\\n\"') }}"),
            json!(["a", "b"])
        );
        let failed = render(&t, &s, "{{ lookup('pipe', 'exit 3') }}");
        assert!(
            failed.as_str().is_some_and(|m| m.contains("returned 3")),
            "{failed}"
        );
    }

    #[test]
    fn file_finding_lookups() {
        let (dir, t, s) = setup();
        let root = dir.path().display().to_string();
        assert_eq!(
            render(&t, &s, "{{ query('fileglob', 'g/*.conf') }}"),
            json!([
                format!("{root}/files/g/1.conf"),
                format!("{root}/files/g/2.conf")
            ])
        );
        assert_eq!(
            render(&t, &s, "{{ lookup('first_found', ['nope.txt', 'b.txt']) }}"),
            json!(format!("{root}/b.txt"))
        );
        assert_eq!(
            render(
                &t,
                &s,
                "{{ lookup('first_found', {'files': ['a.txt'], 'paths': ['g', '.']}) }}"
            ),
            json!(format!("{root}/files/a.txt"))
        );
        assert_eq!(
            render(&t, &s, "{{ query('first_found', ['nope'], skip=True) }}"),
            json!([])
        );
        let none = render(&t, &s, "{{ lookup('first_found', ['nope']) }}");
        assert_eq!(
            none,
            json!("ERR: No file was found when using first_found.")
        );
    }

    #[test]
    fn unknown_lookup_lists_the_supported_ones() {
        let (_dir, t, s) = setup();
        let e = render(&t, &s, "{{ lookup('password', '/tmp/x') }}");
        assert!(
            e.as_str()
                .is_some_and(|m| m.contains("lookup plugin 'password' is not supported")
                    && m.contains("file, fileglob")),
            "{e}"
        );
    }
}
