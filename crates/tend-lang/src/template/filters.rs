//! The Ansible filters tend provides on top of minijinja's builtins.
//!
//! Each filter follows ansible-core 2.19 (or Jinja2, where Ansible uses Jinja2's): the same
//! arguments, the same results, and an error where Ansible raises one. Builtins whose meaning
//! differs from Jinja2/Ansible (`int`, `float`, `string`, `bool`) are replaced here.

mod crypt;
mod datetime;
pub(super) mod pydump;
mod pyrandom;

use base64::Engine as _;
use md5::Md5;
use minijinja::value::{Kwargs, Rest, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, Value};
use regex::Regex;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::pyrepr;
use datetime::DateTime;
use pydump::{JsonOpts, YamlOpts};
use pyrandom::{PyRandom, Seed};

pub fn register(env: &mut Environment<'static>) {
    // Type conversions.
    env.add_filter("bool", to_bool);
    env.add_filter("int", to_int);
    env.add_filter("float", to_float);
    env.add_filter("string", to_string);
    env.add_filter("mandatory", mandatory);
    env.add_filter("type_debug", type_debug);
    env.add_filter("center", center);
    env.add_filter("wordcount", wordcount);
    env.add_filter("ternary", ternary);
    // Serialization.
    env.add_filter("to_json", to_json);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("from_json", from_json);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_nice_yaml);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("from_yaml_all", from_yaml_all);
    // Regular expressions.
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("regex_escape", regex_escape);
    // Encodings and hashes.
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("hash", hash);
    env.add_filter("checksum", |v: Value| digest_hex("sha1", &v));
    env.add_filter("sha1", |v: Value| digest_hex("sha1", &v));
    env.add_filter("md5", |v: Value| digest_hex("md5", &v));
    env.add_filter("password_hash", password_hash);
    // Paths and shell.
    env.add_filter("basename", |v: Value| {
        path_text(&v).map(|p| basename(&p).to_string())
    });
    env.add_filter("dirname", |v: Value| {
        path_text(&v).map(|p| dirname(&p).to_string())
    });
    env.add_filter("expanduser", |v: Value| {
        path_text(&v).map(|p| expanduser(&p))
    });
    env.add_filter("realpath", |v: Value| path_text(&v).map(|p| realpath(&p)));
    env.add_filter("splitext", |v: Value| path_text(&v).map(|p| splitext(&p)));
    env.add_filter("quote", |v: Value| shell_quote(&text_or_empty(&v)));
    // Collections.
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("union", union);
    env.add_filter("intersect", intersect);
    env.add_filter("difference", difference);
    env.add_filter("symmetric_difference", symmetric_difference);
    env.add_filter("flatten", flatten);
    env.add_filter("zip_longest", zip_longest);
    env.add_filter("product", product);
    env.add_filter("subelements", subelements);
    env.add_filter("extract", extract);
    env.add_filter("split", split);
    env.add_filter("random", random);
    env.add_filter("shuffle", shuffle);
    // Text.
    env.add_filter("comment", comment);
    env.add_filter("urlsplit", urlsplit);
    env.add_filter("to_datetime", to_datetime);
    env.add_filter("strftime", strftime);
    // Math.
    env.add_filter("log", log);
    env.add_filter("pow", pow);
    env.add_filter("root", root);
    env.add_filter("human_readable", human_readable);
    env.add_filter("human_to_bytes", human_to_bytes);
    // Functions.
    env.add_function("dict", dict_fn);
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A filter failure with a message for the user.
pub(crate) fn fail(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Rejects an undefined value the way strict undefined handling does, so the templar can name
/// the missing variable.
fn defined(v: &Value) -> Result<(), Error> {
    if v.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    Ok(())
}

/// A value as Python's `str()` prints it.
fn text(v: &Value) -> Result<String, Error> {
    defined(v)?;
    Ok(pyrepr::to_text(v))
}

fn text_or_empty(v: &Value) -> Result<String, Error> {
    if v.is_none() {
        return Ok(String::new());
    }
    text(v)
}

fn list(v: &Value, what: &str) -> Result<Vec<Value>, Error> {
    defined(v)?;
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => Ok(v.try_iter()?.collect()),
        ValueKind::String => Ok(v.try_iter()?.collect()),
        _ => Err(fail(format!("{what} expects a list, got {}", type_name(v)))),
    }
}

fn is_list(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// Positional arguments and keyword arguments, read by position or by name like Python does.
struct Args {
    pos: Vec<Value>,
    kw: Option<Kwargs>,
}

impl Args {
    fn new(rest: Rest<ValueOrKwargs>) -> Result<Args, Error> {
        let mut pos = rest.into_values();
        let kw = match pos.last() {
            Some(last) if last.is_kwargs() => {
                let last = pos.pop().unwrap_or_default();
                Some(Kwargs::try_from(last)?)
            }
            _ => None,
        };
        Ok(Args { pos, kw })
    }

    fn get(&self, idx: usize, name: &str) -> Result<Option<Value>, Error> {
        if let Some(v) = self.pos.get(idx) {
            return Ok(Some(v.clone()));
        }
        match &self.kw {
            Some(kw) if kw.has(name) => Ok(Some(kw.get::<Value>(name)?)),
            _ => Ok(None),
        }
    }

    fn flag(&self, idx: usize, name: &str) -> Result<bool, Error> {
        Ok(self.get(idx, name)?.is_some_and(|v| v.is_true()))
    }

    fn finish(&self, max_pos: usize) -> Result<(), Error> {
        if self.pos.len() > max_pos {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                "too many arguments",
            ));
        }
        match &self.kw {
            Some(kw) => kw.assert_all_used(),
            None => Ok(()),
        }
    }
}

/// Python's type name of a value, as `type_debug` prints it.
fn type_name(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::Undefined => "AnsibleUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v.kind() {
        ValueKind::Number | ValueKind::Bool => f64::try_from(v.clone()).ok(),
        _ => None,
    }
}

fn number(v: &Value, what: &str) -> Result<f64, Error> {
    defined(v)?;
    as_f64(v).ok_or_else(|| fail(format!("{what} can only be used on numbers")))
}

fn float_value(f: f64) -> Value {
    Value::from(f)
}

// ---------------------------------------------------------------------------------------------
// Type conversions

/// Ansible's `bool`: yes/on/true/1 and no/off/false/0 in any case; anything else is false
/// (except the number 1).
fn to_bool(v: Value) -> Result<bool, Error> {
    defined(&v)?;
    let check = match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_lowercase(),
        ValueKind::Bool => if v.is_true() { "true" } else { "false" }.to_string(),
        ValueKind::Number if v.is_integer() => v.to_string(),
        ValueKind::Number => return Ok(as_f64(&v) == Some(1.0)),
        _ => return Ok(false),
    };
    Ok(matches!(check.as_str(), "yes" | "on" | "true" | "1"))
}

/// Python's `int(text, base)`: surrounding whitespace, a sign, underscores between digits and
/// a `0x`/`0o`/`0b` prefix matching the base (base 0 guesses it from the prefix).
fn parse_py_int(s: &str, base: u32) -> Option<i128> {
    let t = s.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = t.to_ascii_lowercase();
    let prefixed = |p: &str| lower.starts_with(p);
    let (base, digits) = match base {
        0 if prefixed("0x") => (16, &t[2..]),
        0 if prefixed("0o") => (8, &t[2..]),
        0 if prefixed("0b") => (2, &t[2..]),
        0 => {
            if t.len() > 1
                && t.trim_start_matches('0').len() != t.len()
                && t.chars().any(|c| c != '0' && c != '_')
            {
                return None;
            }
            (10, t)
        }
        16 if prefixed("0x") => (16, &t[2..]),
        8 if prefixed("0o") => (8, &t[2..]),
        2 if prefixed("0b") => (2, &t[2..]),
        b if (2..=36).contains(&b) => (b, t),
        _ => return None,
    };
    let digits = digits
        .strip_prefix('_')
        .filter(|_| digits.len() != t.len())
        .unwrap_or(digits);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let n = i128::from_str_radix(&clean, base).ok()?;
    Some(if neg { -n } else { n })
}

/// Python's `float(text)`.
fn parse_py_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        return lower.parse::<f64>().ok().or_else(|| {
            let neg = lower.starts_with('-');
            let v = if unsigned == "nan" {
                f64::NAN
            } else {
                f64::INFINITY
            };
            Some(if neg { -v } else { v })
        });
    }
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    if !clean
        .chars()
        .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
    {
        return None;
    }
    clean.parse::<f64>().ok()
}

fn int_value(n: i128) -> Value {
    match i64::try_from(n) {
        Ok(i) => Value::from(i),
        Err(_) => Value::from(n),
    }
}

/// Jinja2's `int(default=0, base=10)`.
fn to_int(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let default = a.get(0, "default")?.unwrap_or(Value::from(0));
    let base = match a.get(1, "base")? {
        Some(b) => u32::try_from(b).map_err(|_| fail("int: base must be an integer"))?,
        None => 10,
    };
    a.finish(2)?;
    match v.kind() {
        ValueKind::Bool => Ok(Value::from(i64::from(v.is_true()))),
        ValueKind::Number if v.is_integer() => Ok(v),
        ValueKind::Number => {
            let f = as_f64(&v).unwrap_or(f64::NAN);
            if f.is_finite() {
                Ok(int_value(f.trunc() as i128))
            } else {
                Ok(default)
            }
        }
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            if let Some(n) = parse_py_int(s, base) {
                return Ok(int_value(n));
            }
            if let Some(f) = parse_py_float(s).filter(|f| f.is_finite()) {
                return Ok(int_value(f.trunc() as i128));
            }
            Ok(default)
        }
        _ => Ok(default),
    }
}

/// Jinja2's `float(default=0.0)`.
fn to_float(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let default = a.get(0, "default")?.unwrap_or(Value::from(0.0));
    a.finish(1)?;
    Ok(match v.kind() {
        ValueKind::Bool => Value::from(if v.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => float_value(as_f64(&v).unwrap_or(f64::NAN)),
        ValueKind::String => match parse_py_float(v.as_str().unwrap_or_default()) {
            Some(f) => float_value(f),
            None => default,
        },
        _ => default,
    })
}

/// Python's `str()`.
fn to_string(v: Value) -> Result<String, Error> {
    text(&v)
}

/// What `mandatory` says when it cannot name the variable; the templar names it when it can
/// ("Mandatory variable 'x' not defined.").
pub(super) const MANDATORY_UNNAMED: &str = "Mandatory variable not defined.";

/// `mandatory(msg=None)`: the value, or an error when it is undefined.
fn mandatory(v: Value, msg: Option<Value>) -> Result<Value, Error> {
    if v.is_undefined() {
        return Err(match msg {
            Some(m) if !m.is_none() => fail(pyrepr::to_text(&m)),
            _ => fail(MANDATORY_UNNAMED),
        });
    }
    Ok(v)
}

/// Jinja's `center(width=80)`: Python's `str.center`.
fn center(v: Value, width: Option<usize>) -> Result<String, Error> {
    let s = text(&v)?;
    let width = width.unwrap_or(80);
    let len = s.chars().count();
    if width <= len {
        return Ok(s);
    }
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    Ok(format!(
        "{}{s}{}",
        " ".repeat(left),
        " ".repeat(marg - left)
    ))
}

/// Jinja's `wordcount`: the number of `\w+` runs.
fn wordcount(v: Value) -> Result<usize, Error> {
    let s = text(&v)?;
    let mut count = 0;
    let mut in_word = false;
    for c in s.chars() {
        let w = c.is_alphanumeric() || c == '_';
        if w && !in_word {
            count += 1;
        }
        in_word = w;
    }
    Ok(count)
}

fn type_debug(v: Value) -> &'static str {
    type_name(&v)
}

/// `ternary(true_val, false_val, none_val=None)`.
fn ternary(v: Value, true_val: Value, false_val: Value, none_val: Option<Value>) -> Value {
    if v.is_none() || v.is_undefined() {
        if let Some(n) = none_val.filter(|n| !n.is_none()) {
            return n;
        }
    }
    if v.is_true() {
        true_val
    } else {
        false_val
    }
}

// ---------------------------------------------------------------------------------------------
// Serialization

fn opt_usize(v: Option<Value>, what: &str) -> Result<Option<usize>, Error> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => usize::try_from(v)
            .map(Some)
            .map_err(|_| fail(format!("{what} must be a number"))),
    }
}

fn json_opts(
    a: &Args,
    indent: Option<usize>,
    sort: bool,
    item_sep: Option<&str>,
) -> Result<JsonOpts, Error> {
    let indent = match a.get(99, "indent")? {
        Some(v) => opt_usize(Some(v), "indent")?,
        None => indent,
    };
    let sort_keys = match a.get(99, "sort_keys")? {
        Some(v) => v.is_true(),
        None => sort,
    };
    let mut o = JsonOpts::new(indent, sort_keys);
    if let Some(sep) = item_sep {
        o.item_sep = sep.into();
    }
    if let Some(v) = a.get(99, "ensure_ascii")? {
        o.ensure_ascii = v.is_true();
    }
    if let Some(seps) = a.get(99, "separators")? {
        let parts: Vec<Value> = seps.try_iter()?.collect();
        if let [i, k] = parts.as_slice() {
            o.item_sep = pyrepr::to_text(i);
            o.key_sep = pyrepr::to_text(k);
        }
    }
    // Accepted for compatibility; tend has no vault or unsafe markers to convert.
    for ignored in ["profile", "vault_to_text", "preprocess_unsafe"] {
        let _ = a.get(99, ignored)?;
    }
    Ok(o)
}

fn to_json(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let o = json_opts(&a, None, false, None)?;
    a.finish(0)?;
    Ok(pydump::json_dumps(&v, &o))
}

fn to_nice_json(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let indent = opt_usize(a.get(0, "indent")?, "indent")?.unwrap_or(4);
    let sort = a.get(1, "sort_keys")?.is_none_or(|v| v.is_true());
    let mut o = json_opts(&a, Some(indent), sort, Some(","))?;
    o.indent = Some(indent);
    o.sort_keys = sort;
    o.item_sep = ",".into();
    o.key_sep = ": ".into();
    a.finish(2)?;
    Ok(pydump::json_dumps(&v, &o))
}

fn from_json(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let s = text(&v)?;
    let a = Args::new(args)?;
    let _ = a.get(0, "profile")?;
    a.finish(1)?;
    let parsed: serde_json::Value = serde_json::from_str(&s)
        .map_err(|e| fail(format!("from_json: the input is not valid JSON: {e}")))?;
    Ok(super::to_jinja(&parsed))
}

fn yaml_opts(a: &Args, indent: usize, flow: Option<bool>) -> Result<YamlOpts, Error> {
    let flow = match a.get(99, "default_flow_style")? {
        Some(v) if v.is_none() => None,
        Some(v) => Some(v.is_true()),
        None => flow,
    };
    let indent = opt_usize(a.get(99, "indent")?, "indent")?.unwrap_or(indent);
    let width = opt_usize(a.get(99, "width")?, "width")?.unwrap_or(80);
    let sort_keys = a.get(99, "sort_keys")?.is_none_or(|v| v.is_true());
    let explicit_start = a.get(99, "explicit_start")?.is_some_and(|v| v.is_true());
    Ok(YamlOpts {
        indent,
        flow,
        width,
        sort_keys,
        explicit_start,
    })
}

fn to_yaml(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let o = yaml_opts(&a, 2, None)?;
    a.finish(usize::MAX)?;
    Ok(pydump::yaml_dump(&v, &o))
}

fn to_nice_yaml(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let indent = opt_usize(a.get(0, "indent")?, "indent")?.unwrap_or(4);
    let o = yaml_opts(&a, indent, Some(false))?;
    a.finish(usize::MAX)?;
    Ok(pydump::yaml_dump(&v, &o))
}

fn parse_yaml(text: &str) -> Result<Value, Error> {
    let node = crate::yaml::parse("<from_yaml>", text)
        .map_err(|d| fail(format!("from_yaml: the input is not valid YAML: {}", d.msg)))?;
    Ok(super::to_jinja(&node.to_value()))
}

fn from_yaml(v: Value) -> Result<Value, Error> {
    defined(&v)?;
    match v.as_str() {
        Some(s) => parse_yaml(s),
        None => Ok(v),
    }
}

/// Splits a YAML stream into its documents at `---` / `...` marker lines.
fn yaml_documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut has_content = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_start = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "..." || bare.starts_with("... ");
        if is_start || is_end {
            if has_content {
                docs.push(std::mem::take(&mut cur));
            }
            cur.clear();
            has_content = is_start;
            if is_start {
                cur.push_str(bare[3..].trim_start());
                cur.push('\n');
            }
            continue;
        }
        if !bare.trim().is_empty() && !bare.trim_start().starts_with('#') {
            has_content = true;
        }
        cur.push_str(line);
    }
    if has_content {
        docs.push(cur);
    }
    docs
}

fn from_yaml_all(v: Value) -> Result<Value, Error> {
    if v.is_none() {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    defined(&v)?;
    match v.as_str() {
        Some(s) => Ok(Value::from(
            yaml_documents(s)
                .iter()
                .map(|d| parse_yaml(d))
                .collect::<Result<Vec<_>, _>>()?,
        )),
        None => Ok(v),
    }
}

// ---------------------------------------------------------------------------------------------
// Regular expressions

/// Compiles a Python regular expression with the `re.I` / `re.M` flags.
pub(crate) fn py_regex(pattern: &str, ignorecase: bool, multiline: bool) -> Result<Regex, Error> {
    let mut flags = String::new();
    if ignorecase {
        flags.push('i');
    }
    if multiline {
        flags.push('m');
    }
    let translated = pattern.replace("\\Z", "\\z");
    let full = if flags.is_empty() {
        translated
    } else {
        format!("(?{flags}){translated}")
    };
    Regex::new(&full).map_err(|e| {
        let hint = if pattern.contains("(?=")
            || pattern.contains("(?!")
            || pattern.contains("(?<") && !pattern.contains("(?<name")
        {
            " (look-around and back-references are not supported)"
        } else {
            ""
        };
        fail(format!("invalid regular expression '{pattern}'{hint}: {e}"))
    })
}

/// Converts a Python `re.sub` replacement (`\1`, `\g<name>`, `\n`) into the regex crate's
/// syntax.
fn py_replacement(rep: &str) -> Result<String, Error> {
    let mut out = String::new();
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                None => return Err(fail("bad escape (end of pattern) in the replacement")),
                Some(d) if d.is_ascii_digit() => {
                    let mut num = d.to_string();
                    if let Some(&e) = chars.peek() {
                        if e.is_ascii_digit() {
                            num.push(e);
                            chars.next();
                        }
                    }
                    out.push_str(&format!("${{{num}}}"));
                }
                Some('g') => {
                    if chars.next() != Some('<') {
                        return Err(fail("missing < in the replacement group reference"));
                    }
                    let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                    if name.is_empty() {
                        return Err(fail("missing group name in the replacement"));
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('f') => out.push('\u{c}'),
                Some('v') => out.push('\u{b}'),
                Some('a') => out.push('\u{7}'),
                Some('b') => out.push('\u{8}'),
                Some('\\') => out.push('\\'),
                Some(d) if d.is_ascii_alphabetic() => {
                    return Err(fail(format!("bad escape \\{d} in the replacement")))
                }
                Some(d) => {
                    out.push('\\');
                    if d == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(d);
                    }
                }
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn regex_replace(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let value = text(&v)?;
    let a = Args::new(args)?;
    let pattern = a
        .get(0, "pattern")?
        .map(|p| pyrepr::to_text(&p))
        .unwrap_or_default();
    let replacement = a
        .get(1, "replacement")?
        .map(|p| pyrepr::to_text(&p))
        .unwrap_or_default();
    let ignorecase = a.flag(2, "ignorecase")?;
    let multiline = a.flag(3, "multiline")?;
    let count = opt_usize(a.get(4, "count")?, "count")?.unwrap_or(0);
    let mandatory = opt_usize(a.get(5, "mandatory_count")?, "mandatory_count")?.unwrap_or(0);
    a.finish(6)?;
    let re = py_regex(&pattern, ignorecase, multiline)?;
    let rep = py_replacement(&replacement)?;
    if mandatory != 0 {
        let found = re.find_iter(&value).count();
        let subs = if count == 0 { found } else { found.min(count) };
        if subs != mandatory {
            return Err(fail(format!(
                "'{pattern}' should match {mandatory} times, but matches {count} times in '{value}'"
            )));
        }
    }
    Ok(re.replacen(&value, count, rep.as_str()).into_owned())
}

fn regex_search(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let value = text(&v)?;
    let a = Args::new(args)?;
    let pattern = a
        .pos
        .first()
        .map(pyrepr::to_text)
        .ok_or_else(|| fail("regex_search needs a regular expression"))?;
    let mut groups = Vec::new();
    for g in a.pos.iter().skip(1) {
        let g = pyrepr::to_text(g);
        if let Some(rest) = g.strip_prefix("\\g<") {
            let name = rest.split('>').next().unwrap_or_default();
            groups.push(name.to_string());
        } else if let Some(rest) = g.strip_prefix('\\') {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                return Err(fail(format!("regex_search: unknown group reference '{g}'")));
            }
            groups.push(digits);
        } else {
            return Err(fail("regex_search: Unknown argument"));
        }
    }
    let ignorecase = a.get(99, "ignorecase")?.is_some_and(|v| v.is_true());
    let multiline = a.get(99, "multiline")?.is_some_and(|v| v.is_true());
    a.finish(usize::MAX)?;
    let re = py_regex(&pattern, ignorecase, multiline)?;
    let Some(caps) = re.captures(&value) else {
        return Ok(Value::from(()));
    };
    if groups.is_empty() {
        return Ok(Value::from(
            caps.get(0).map(|m| m.as_str()).unwrap_or_default(),
        ));
    }
    let mut out = Vec::new();
    for g in groups {
        let m = match g.parse::<usize>() {
            Ok(i) => {
                if i >= caps.len() {
                    return Err(fail(format!("regex_search: no such group {i}")));
                }
                caps.get(i)
            }
            Err(_) => {
                if !re.capture_names().any(|n| n == Some(g.as_str())) {
                    return Err(fail(format!("regex_search: no such group '{g}'")));
                }
                caps.name(&g)
            }
        };
        out.push(
            m.map(|m| Value::from(m.as_str()))
                .unwrap_or(Value::from(())),
        );
    }
    Ok(Value::from(out))
}

fn regex_findall(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let value = text(&v)?;
    let a = Args::new(args)?;
    let pattern = a
        .get(0, "regex")?
        .map(|p| pyrepr::to_text(&p))
        .ok_or_else(|| fail("regex_findall needs a regular expression"))?;
    let multiline = a.flag(1, "multiline")?;
    let ignorecase = a.flag(2, "ignorecase")?;
    a.finish(3)?;
    let re = py_regex(&pattern, ignorecase, multiline)?;
    let ngroups = re.captures_len() - 1;
    let mut out = Vec::new();
    for caps in re.captures_iter(&value) {
        let group = |i: usize| Value::from(caps.get(i).map(|m| m.as_str()).unwrap_or_default());
        out.push(match ngroups {
            0 => group(0),
            1 => group(1),
            n => Value::from((1..=n).map(group).collect::<Vec<_>>()),
        });
    }
    Ok(Value::from(out))
}

fn regex_escape(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let s = text(&v)?;
    let a = Args::new(args)?;
    let re_type = a.get(0, "re_type")?.map(|t| pyrepr::to_text(&t));
    a.finish(1)?;
    match re_type.as_deref().unwrap_or("python") {
        "python" => {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                if "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(out)
        }
        "posix_basic" => {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                if "].[^$*\\".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(out)
        }
        "posix_extended" => Err(fail("Regex type (posix_extended) not yet implemented")),
        other => Err(fail(format!("Invalid regex type ({other})"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Encodings and hashes

fn b64encode(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let s = text(&v)?;
    let a = Args::new(args)?;
    let _encoding = a.get(0, "encoding")?;
    let urlsafe = a.flag(1, "urlsafe")?;
    a.finish(2)?;
    Ok(if urlsafe {
        base64::engine::general_purpose::URL_SAFE.encode(s.as_bytes())
    } else {
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    })
}

fn b64decode(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let s = text(&v)?;
    let a = Args::new(args)?;
    let _encoding = a.get(0, "encoding")?;
    let urlsafe = a.flag(1, "urlsafe")?;
    a.finish(2)?;
    // Like Python's b64decode without validate=True: characters outside the alphabet are
    // dropped; the padding must be right.
    let (alphabet_extra, engine) = if urlsafe {
        ("-_", &base64::engine::general_purpose::URL_SAFE)
    } else {
        ("+/", &base64::engine::general_purpose::STANDARD)
    };
    let clean: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || alphabet_extra.contains(*c) || *c == '=')
        .collect();
    let bytes = engine
        .decode(clean.as_bytes())
        .map_err(|e| fail(format!("b64decode: the input is not valid base64: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|_| fail("b64decode: the decoded data is not valid UTF-8 text"))
}

fn digest_hex(kind: &str, v: &Value) -> Result<String, Error> {
    let data = text(v)?;
    let bytes = data.as_bytes();
    Ok(match kind {
        "md5" => hex::encode(Md5::digest(bytes)),
        "sha1" => hex::encode(Sha1::digest(bytes)),
        "sha224" => hex::encode(Sha224::digest(bytes)),
        "sha256" => hex::encode(Sha256::digest(bytes)),
        "sha384" => hex::encode(Sha384::digest(bytes)),
        "sha512" => hex::encode(Sha512::digest(bytes)),
        other => {
            return Err(fail(format!(
                "unsupported hash type {other}: tend supports md5, sha1, sha224, sha256, sha384 and sha512"
            )))
        }
    })
}

fn hash(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let a = Args::new(args)?;
    let kind = a.get(0, "hashtype")?.map(|t| pyrepr::to_text(&t));
    a.finish(1)?;
    digest_hex(kind.as_deref().unwrap_or("sha1"), &v)
}

fn random_salt(len: usize) -> String {
    let mut buf = vec![0u8; len];
    if getrandom_bytes(&mut buf).is_err() {
        // Fall back to a time-seeded generator; salts need uniqueness, not secrecy.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut r = PyRandom::new(Seed::Int(nanos as i128 ^ i128::from(std::process::id())));
        for b in &mut buf {
            *b = r.below(256) as u8;
        }
    }
    buf.iter()
        .map(|b| char::from(crypt::SALT_CHARS[usize::from(*b) % crypt::SALT_CHARS.len()]))
        .collect()
}

fn getrandom_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// `password_hash(hashtype='sha512', salt=None, salt_size=None, rounds=None, ident=None)`.
fn password_hash(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let secret = text(&v)?;
    let a = Args::new(args)?;
    let kind = a
        .get(0, "hashtype")?
        .map(|k| pyrepr::to_text(&k))
        .unwrap_or_else(|| "sha512".into());
    let salt = a
        .get(1, "salt")?
        .filter(|s| !s.is_none())
        .map(|s| pyrepr::to_text(&s));
    let salt_size = opt_usize(a.get(2, "salt_size")?, "salt_size")?;
    let rounds = opt_usize(a.get(3, "rounds")?, "rounds")?;
    let _ident = a.get(4, "ident")?;
    a.finish(5)?;
    if let Some(s) = &salt {
        if let Some(bad) = s
            .chars()
            .find(|c| !crypt::SALT_CHARS.contains(&(*c as u8)) || !c.is_ascii())
        {
            return Err(fail(format!("invalid characters in salt: '{bad}'")));
        }
    }
    let rounds = |implicit: usize| {
        u32::try_from(rounds.filter(|r| *r > 0).unwrap_or(implicit)).unwrap_or(u32::MAX)
    };
    match kind.as_str() {
        "sha512" | "sha512_crypt" => {
            let salt = salt.unwrap_or_else(|| random_salt(salt_size.unwrap_or(16)));
            Ok(crypt::sha_crypt(
                crypt::Sha::Sha512,
                secret.as_bytes(),
                &salt,
                Some(rounds(656_000)),
            ))
        }
        "sha256" | "sha256_crypt" => {
            let salt = salt.unwrap_or_else(|| random_salt(salt_size.unwrap_or(16)));
            Ok(crypt::sha_crypt(
                crypt::Sha::Sha256,
                secret.as_bytes(),
                &salt,
                Some(rounds(535_000)),
            ))
        }
        "md5" | "md5_crypt" => {
            let salt = salt.unwrap_or_else(|| random_salt(salt_size.unwrap_or(8)));
            Ok(crypt::md5_crypt(secret.as_bytes(), &salt))
        }
        other => Err(fail(format!(
            "password_hash: {other} is not supported; tend supports sha512, sha256 and md5"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Paths and shell

fn path_text(v: &Value) -> Result<String, Error> {
    text(v)
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Python's `os.path.dirname`: everything before the last slash, trailing slashes removed
/// unless it is all slashes.
fn dirname(p: &str) -> &str {
    match p.rfind('/') {
        None => "",
        Some(i) => {
            let head = &p[..=i];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head
            } else {
                trimmed
            }
        }
    }
}

fn home_of(user: &str) -> Option<String> {
    if user.is_empty() {
        if let Ok(h) = std::env::var("HOME") {
            return Some(h);
        }
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let uid = if user.is_empty() {
        std::fs::metadata("/proc/self").ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid().to_string()
        })
    } else {
        None
    };
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 6 {
            return None;
        }
        let matches = if user.is_empty() {
            Some(f[2]) == uid.as_deref()
        } else {
            f[0] == user
        };
        matches.then(|| f[5].to_string())
    })
}

fn expanduser(p: &str) -> String {
    let Some(rest) = p.strip_prefix('~') else {
        return p.to_string();
    };
    let (user, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match home_of(user) {
        Some(home) => {
            let home = if home.len() > 1 {
                home.trim_end_matches('/')
            } else {
                &home
            };
            format!("{home}{tail}")
        }
        None => p.to_string(),
    }
}

/// Python's `os.path.realpath`: absolute, symlinks resolved as far as the path exists.
fn realpath(p: &str) -> String {
    let abs = if p.starts_with('/') {
        std::path::PathBuf::from(p)
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = std::path::PathBuf::from("/");
    let mut resolved_ok = true;
    for comp in abs.components() {
        use std::path::Component;
        match comp {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                if resolved_ok {
                    match std::fs::canonicalize(&out) {
                        Ok(c) => out = c,
                        Err(_) => resolved_ok = false,
                    }
                }
            }
        }
    }
    out.to_string_lossy().into_owned()
}

/// Python's `os.path.splitext` as a two-item list.
fn splitext(p: &str) -> Value {
    let base_start = p.rfind('/').map_or(0, |i| i + 1);
    let base = &p[base_start..];
    let leading_dots = base.len() - base.trim_start_matches('.').len();
    match base.rfind('.') {
        Some(i) if i >= leading_dots => {
            let cut = base_start + i;
            Value::from(vec![Value::from(&p[..cut]), Value::from(&p[cut..])])
        }
        _ => Value::from(vec![Value::from(p), Value::from("")]),
    }
}

/// Python's `shlex.quote`.
pub(crate) fn shell_quote_str(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn shell_quote(s: &Result<String, Error>) -> Result<String, Error> {
    match s {
        Ok(s) => Ok(shell_quote_str(s)),
        Err(e) => Err(Error::new(
            e.kind(),
            e.detail().unwrap_or("cannot quote").to_string(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Collections

fn map_entries(v: &Value) -> Result<Vec<(Value, Value)>, Error> {
    Ok(v.try_iter()?
        .map(|k| {
            let val = v.get_item(&k).unwrap_or_default();
            (k, val)
        })
        .collect())
}

fn from_entries(entries: Vec<(Value, Value)>) -> Value {
    Value::from_pairs(entries)
}

/// Ansible's `merge_hash(low, high, recursive, list_merge)`.
fn merge_hash(
    low: &Value,
    high: &Value,
    recursive: bool,
    list_merge: &str,
) -> Result<Value, Error> {
    let mut out = map_entries(low)?;
    for (k, hv) in map_entries(high)? {
        let pos = out.iter().position(|(ok, _)| *ok == k);
        let Some(i) = pos else {
            out.push((k, hv));
            continue;
        };
        let lv = out[i].1.clone();
        let merged = if recursive && lv.kind() == ValueKind::Map && hv.kind() == ValueKind::Map {
            merge_hash(&lv, &hv, recursive, list_merge)?
        } else if is_list(&lv) && is_list(&hv) && list_merge != "replace" {
            let l: Vec<Value> = lv.try_iter()?.collect();
            let h: Vec<Value> = hv.try_iter()?.collect();
            let list = match list_merge {
                "keep" => l,
                "append" => l.into_iter().chain(h).collect(),
                "prepend" => h.into_iter().chain(l).collect(),
                "append_rp" => {
                    let mut out: Vec<Value> = l.into_iter().filter(|x| !h.contains(x)).collect();
                    out.extend(h);
                    out
                }
                "prepend_rp" => {
                    let mut out = h.clone();
                    out.extend(l.into_iter().filter(|x| !h.contains(x)));
                    out
                }
                _ => h,
            };
            Value::from(list)
        } else {
            hv
        };
        out[i].1 = merged;
    }
    Ok(from_entries(out))
}

fn combine(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let recursive = a.get(usize::MAX, "recursive")?.is_some_and(|r| r.is_true());
    let list_merge = a
        .get(usize::MAX, "list_merge")?
        .map(|l| pyrepr::to_text(&l))
        .unwrap_or_else(|| "replace".into());
    if let Some(kw) = &a.kw {
        if kw.args().any(|k| k != "recursive" && k != "list_merge") {
            return Err(fail(
                "'recursive' and 'list_merge' are the only valid keyword arguments",
            ));
        }
    }
    if ![
        "replace",
        "keep",
        "append",
        "prepend",
        "append_rp",
        "prepend_rp",
    ]
    .contains(&list_merge.as_str())
    {
        return Err(fail(format!(
            "'{list_merge}' is not a valid list_merge value; use replace, keep, append, prepend, append_rp or prepend_rp"
        )));
    }
    let mut dicts = Vec::new();
    for term in std::iter::once(&v).chain(a.pos.iter()) {
        if is_list(term) {
            dicts.extend(term.try_iter()?);
        } else {
            dicts.push(term.clone());
        }
    }
    for d in &dicts {
        if d.kind() != ValueKind::Map {
            return Err(fail(format!(
                "combine expects dictionaries, got '{}' ({})",
                pyrepr::repr(d),
                type_name(d)
            )));
        }
    }
    let Some(first) = dicts.first() else {
        return Ok(Value::from_pairs(Vec::<(Value, Value)>::new()));
    };
    let mut result = first.clone();
    for d in &dicts[1..] {
        result = merge_hash(&result, d, recursive, &list_merge)?;
    }
    Ok(result)
}

fn dict2items(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let key_name = a
        .get(0, "key_name")?
        .map(|k| pyrepr::to_text(&k))
        .unwrap_or_else(|| "key".into());
    let value_name = a
        .get(1, "value_name")?
        .map(|k| pyrepr::to_text(&k))
        .unwrap_or_else(|| "value".into());
    a.finish(2)?;
    if v.kind() != ValueKind::Map {
        return Err(fail(format!(
            "dict2items requires a dictionary, got {} instead.",
            type_name(&v)
        )));
    }
    let out: Vec<Value> = map_entries(&v)?
        .into_iter()
        .map(|(k, val)| Value::from_pairs([(key_name.as_str(), k), (value_name.as_str(), val)]))
        .collect();
    Ok(Value::from(out))
}

fn items2dict(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let key_name = a.get(0, "key_name")?.unwrap_or(Value::from("key"));
    let value_name = a.get(1, "value_name")?.unwrap_or(Value::from("value"));
    a.finish(2)?;
    if !is_list(&v) {
        return Err(fail(format!(
            "items2dict requires a list, got {} instead.",
            type_name(&v)
        )));
    }
    let mut out = Vec::new();
    for item in v.try_iter()? {
        if item.kind() != ValueKind::Map {
            return Err(fail(format!(
                "items2dict requires a list of dictionaries, got {} instead.",
                pyrepr::repr(&v)
            )));
        }
        let k = item.get_item(&key_name).unwrap_or_default();
        let val = item.get_item(&value_name).unwrap_or_default();
        if k.is_undefined() || val.is_undefined() {
            return Err(fail(format!(
                "items2dict requires each dictionary in the list to contain the keys '{}' and '{}', got {} instead.",
                pyrepr::to_text(&key_name),
                pyrepr::to_text(&value_name),
                pyrepr::repr(&v)
            )));
        }
        match out.iter().position(|(ok, _): &(Value, Value)| *ok == k) {
            Some(i) => out[i].1 = val,
            None => out.push((k, val)),
        }
    }
    Ok(from_entries(out))
}

fn dedup(items: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

// The set filters keep the order of first appearance; Python's sets have no defined order.
fn union(a: Value, b: Value) -> Result<Value, Error> {
    let (a, b) = (list(&a, "union")?, list(&b, "union")?);
    Ok(Value::from(dedup(a.into_iter().chain(b))))
}

fn intersect(a: Value, b: Value) -> Result<Value, Error> {
    let (a, b) = (list(&a, "intersect")?, list(&b, "intersect")?);
    Ok(Value::from(dedup(a.into_iter().filter(|x| b.contains(x)))))
}

fn difference(a: Value, b: Value) -> Result<Value, Error> {
    let (a, b) = (list(&a, "difference")?, list(&b, "difference")?);
    Ok(Value::from(dedup(a.into_iter().filter(|x| !b.contains(x)))))
}

fn symmetric_difference(a: Value, b: Value) -> Result<Value, Error> {
    let (a, b) = (
        list(&a, "symmetric_difference")?,
        list(&b, "symmetric_difference")?,
    );
    let both: Vec<Value> = a.iter().filter(|x| b.contains(x)).cloned().collect();
    Ok(Value::from(dedup(
        a.into_iter().chain(b).filter(|x| !both.contains(x)),
    )))
}

fn flatten_into(
    items: Vec<Value>,
    levels: Option<i64>,
    skip_nulls: bool,
    out: &mut Vec<Value>,
) -> Result<(), Error> {
    for x in items {
        if skip_nulls && (x.is_none() || matches!(x.as_str(), Some("None" | "null"))) {
            continue;
        }
        if is_list(&x) {
            match levels {
                None => flatten_into(x.try_iter()?.collect(), None, skip_nulls, out)?,
                Some(l) if l >= 1 => {
                    flatten_into(x.try_iter()?.collect(), Some(l - 1), skip_nulls, out)?
                }
                Some(_) => out.push(x),
            }
        } else {
            out.push(x);
        }
    }
    Ok(())
}

fn flatten(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let items = list(&v, "flatten")?;
    let a = Args::new(args)?;
    let levels = match a.get(0, "levels")? {
        Some(l) if !l.is_none() => {
            Some(i64::try_from(l).map_err(|_| fail("flatten: levels must be a number"))?)
        }
        _ => None,
    };
    let skip_nulls = a.get(1, "skip_nulls")?.is_none_or(|s| s.is_true());
    a.finish(2)?;
    let mut out = Vec::new();
    flatten_into(items, levels, skip_nulls, &mut out)?;
    Ok(Value::from(out))
}

fn zip_longest(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let a = Args::new(args)?;
    let fill = a.get(usize::MAX, "fillvalue")?.unwrap_or(Value::from(()));
    a.finish(usize::MAX)?;
    let mut lists = vec![list(&v, "zip_longest")?];
    for x in &a.pos {
        lists.push(list(x, "zip_longest")?);
    }
    let n = lists.iter().map(Vec::len).max().unwrap_or(0);
    let out: Vec<Value> = (0..n)
        .map(|i| {
            Value::from(
                lists
                    .iter()
                    .map(|l| l.get(i).cloned().unwrap_or_else(|| fill.clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    Ok(Value::from(out))
}

fn product(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let a = Args::new(args)?;
    let repeat = opt_usize(a.get(usize::MAX, "repeat")?, "repeat")?.unwrap_or(1);
    a.finish(usize::MAX)?;
    let mut pools = vec![list(&v, "product")?];
    for x in &a.pos {
        pools.push(list(x, "product")?);
    }
    let pools: Vec<Vec<Value>> = (0..repeat).flat_map(|_| pools.clone()).collect();
    let mut result: Vec<Vec<Value>> = vec![Vec::new()];
    for pool in &pools {
        let mut next = Vec::with_capacity(result.len() * pool.len());
        for prefix in &result {
            for x in pool {
                let mut p = prefix.clone();
                p.push(x.clone());
                next.push(p);
            }
        }
        result = next;
        if result.len() > 1_000_000 {
            return Err(fail(
                "product: the result would have more than a million items",
            ));
        }
    }
    Ok(Value::from(
        result.into_iter().map(Value::from).collect::<Vec<_>>(),
    ))
}

fn subelements(v: Value, path: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let skip_missing = a.flag(0, "skip_missing")?;
    a.finish(1)?;
    let elements: Vec<Value> = match v.kind() {
        ValueKind::Map => map_entries(&v)?.into_iter().map(|(_, x)| x).collect(),
        ValueKind::Seq | ValueKind::Iterable => v.try_iter()?.collect(),
        _ => return Err(fail("obj must be a list of dicts or a nested dict")),
    };
    let keys: Vec<Value> = if is_list(&path) {
        path.try_iter()?.collect()
    } else if let Some(s) = path.as_str() {
        s.split('.').map(Value::from).collect()
    } else {
        return Err(fail("subelements must be a list or a string"));
    };
    let mut out = Vec::new();
    for el in elements {
        let mut values = el.clone();
        let mut missing = false;
        for k in &keys {
            if values.kind() != ValueKind::Map {
                return Err(fail(format!(
                    "the key {} should point to a dictionary, got '{}'",
                    pyrepr::to_text(k),
                    pyrepr::repr(&values)
                )));
            }
            match values.get_item(k) {
                Ok(x) if !x.is_undefined() => values = x,
                _ => {
                    if skip_missing {
                        missing = true;
                        break;
                    }
                    return Err(fail(format!(
                        "could not find {} key in iterated item {}",
                        pyrepr::repr(k),
                        pyrepr::repr(&values)
                    )));
                }
            }
        }
        if missing {
            continue;
        }
        if !is_list(&values) {
            return Err(fail(format!(
                "the key {} should point to a list, got {}",
                pyrepr::repr(&Value::from(
                    keys.iter()
                        .map(pyrepr::to_text)
                        .collect::<Vec<_>>()
                        .join(".")
                )),
                pyrepr::repr(&values)
            )));
        }
        for x in values.try_iter()? {
            out.push(Value::from(vec![el.clone(), x]));
        }
    }
    Ok(Value::from(out))
}

fn extract(item: Value, container: Value, morekeys: Option<Value>) -> Result<Value, Error> {
    defined(&item)?;
    defined(&container)?;
    let mut keys = vec![item];
    match morekeys {
        Some(m) if is_list(&m) => keys.extend(m.try_iter()?),
        Some(m) if !m.is_none() => keys.push(m),
        _ => {}
    }
    let mut value = container;
    for k in keys {
        let next = value.get_item(&k).unwrap_or_default();
        if next.is_undefined() {
            return Err(fail(format!(
                "{} has no item {}",
                pyrepr::repr(&value),
                pyrepr::repr(&k)
            )));
        }
        value = next;
    }
    Ok(value)
}

/// Ansible's `split(sep=None, maxsplit=-1)` filter: Python's `str.split`.
fn split(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let s = text(&v)?;
    let a = Args::new(args)?;
    let sep = a.get(0, "sep")?;
    let maxsplit = match a.get(1, "maxsplit")? {
        Some(m) => Some(i64::try_from(m).map_err(|_| fail("split: maxsplit must be an integer"))?),
        None => None,
    };
    a.finish(2)?;
    let max = maxsplit.filter(|m| *m >= 0).map(|m| m as usize);
    let parts: Vec<Value> = match sep.filter(|s| !s.is_none()) {
        Some(sep) => {
            let sep = pyrepr::to_text(&sep);
            if sep.is_empty() {
                return Err(fail("split: empty separator"));
            }
            match max {
                Some(m) => s.splitn(m + 1, sep.as_str()).map(Value::from).collect(),
                None => s.split(sep.as_str()).map(Value::from).collect(),
            }
        }
        None => {
            let mut out = Vec::new();
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if max.is_some_and(|m| out.len() == m) {
                    out.push(Value::from(rest));
                    break;
                }
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                out.push(Value::from(&rest[..end]));
                rest = rest[end..].trim_start();
            }
            out
        }
    };
    Ok(Value::from(parts))
}

fn seed_of(v: &Value) -> Result<PyRandom, Error> {
    if let Some(s) = v.as_str() {
        return Ok(PyRandom::new(Seed::Str(s)));
    }
    if v.kind() == ValueKind::Bool {
        return Ok(PyRandom::new(Seed::Int(i128::from(v.is_true()))));
    }
    if let Ok(i) = i128::try_from(v.clone()) {
        return Ok(PyRandom::new(Seed::Int(i)));
    }
    if let Some(f) = as_f64(v) {
        if f.fract() == 0.0 && f.is_finite() {
            return Ok(PyRandom::new(Seed::Int(f as i128)));
        }
    }
    Ok(PyRandom::new(Seed::Str(&pyrepr::to_text(v))))
}

fn system_random() -> PyRandom {
    let mut buf = [0u8; 16];
    let seed = if getrandom_bytes(&mut buf).is_ok() {
        i128::from_le_bytes(buf)
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0)
    };
    PyRandom::new(Seed::Int(seed))
}

/// `random(start=None, step=None, seed=None)`: a number below an integer, or an item of a list.
fn random(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let start = a.get(0, "start")?.filter(|s| !s.is_none());
    let step = a.get(1, "step")?.filter(|s| !s.is_none());
    let seed = a.get(2, "seed")?.filter(|s| !s.is_none());
    a.finish(3)?;
    let mut r = match &seed {
        Some(s) => seed_of(s)?,
        None => system_random(),
    };
    let as_int = |x: &Option<Value>, what: &str| -> Result<i64, Error> {
        match x {
            None => Ok(0),
            Some(x) => i64::try_from(x.clone())
                .map_err(|_| fail(format!("random: {what} must be an integer"))),
        }
    };
    if v.kind() == ValueKind::Number && v.is_integer() {
        let end = i64::try_from(v.clone()).map_err(|_| fail("random: the end is too large"))?;
        let start = as_int(&start, "start")?;
        let step = match as_int(&step, "step")? {
            0 => 1,
            s => s,
        };
        return r
            .randrange(start, end, step)
            .map(Value::from)
            .ok_or_else(|| {
                fail(format!(
                    "empty range for randrange() ({start}, {end}, {step})"
                ))
            });
    }
    if matches!(
        v.kind(),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map | ValueKind::String
    ) {
        if start.as_ref().is_some_and(Value::is_true) || step.as_ref().is_some_and(Value::is_true) {
            return Err(fail("start and step can only be used with integer values"));
        }
        let items: Vec<Value> = v.try_iter()?.collect();
        if items.is_empty() {
            return Err(fail("random: cannot choose from an empty sequence"));
        }
        let i = r.below(items.len() as u64) as usize;
        return Ok(items[i].clone());
    }
    Err(fail("random can only be used on sequences and integers"))
}

fn shuffle(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    defined(&v)?;
    let a = Args::new(args)?;
    let seed = a.get(0, "seed")?;
    a.finish(1)?;
    let Ok(iter) = v.try_iter() else { return Ok(v) };
    let mut items: Vec<Value> = iter.collect();
    let mut r = match seed.filter(|s| s.is_true()) {
        Some(s) => seed_of(&s)?,
        None => system_random(),
    };
    r.shuffle(&mut items);
    Ok(Value::from(items))
}

// ---------------------------------------------------------------------------------------------
// Text

fn comment(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let body = text(&v)?;
    let a = Args::new(args)?;
    let style = a
        .get(0, "style")?
        .map(|s| pyrepr::to_text(&s))
        .unwrap_or_else(|| "plain".into());
    let (beginning, decoration, end) = match style.as_str() {
        "plain" => ("", "# ", ""),
        "erlang" => ("", "% ", ""),
        "c" => ("", "// ", ""),
        "cblock" => ("/*", " * ", " */"),
        "xml" => ("<!--", " - ", "-->"),
        other => {
            return Err(fail(format!(
                "Invalid style '{other}'. Available styles: plain, erlang, c, cblock, xml"
            )))
        }
    };
    let kw = |name: &str, default: String| -> Result<String, Error> {
        Ok(a.get(usize::MAX, name)?
            .map(|x| pyrepr::to_text(&x))
            .unwrap_or(default))
    };
    let decoration = kw("decoration", decoration.to_string())?;
    let newline = kw("newline", "\n".into())?;
    let beginning = kw("beginning", beginning.into())?;
    let prefix = kw("prefix", decoration.trim_end().to_string())?;
    let prefix_count: usize = kw("prefix_count", "1".into())?.parse().unwrap_or(1);
    let postfix = kw("postfix", decoration.trim_end().to_string())?;
    let postfix_count: usize = kw("postfix_count", "1".into())?.parse().unwrap_or(1);
    let end = kw("end", end.into())?;
    a.finish(1)?;

    let mut out = String::new();
    if !beginning.is_empty() {
        out.push_str(&beginning);
        out.push_str(&newline);
    }
    if !prefix.is_empty() {
        let one = if prefix != newline {
            format!("{prefix}{newline}")
        } else {
            newline.clone()
        };
        out.push_str(&one.repeat(prefix_count));
    }
    let body = format!(
        "{decoration}{}",
        body.replace(&newline, &format!("{newline}{decoration}"))
    );
    let body = body.replace(
        &format!("{decoration}{newline}"),
        &format!("{}{newline}", decoration.trim_end()),
    );
    out.push_str(&body);
    for _ in 0..postfix_count {
        out.push_str(&newline);
        out.push_str(&postfix);
    }
    if !end.is_empty() {
        out.push_str(&newline);
        out.push_str(&end);
    }
    Ok(out)
}

/// `urlsplit(query='')`: Python's `urllib.parse.urlsplit` as a dict, or one of its fields.
fn urlsplit(v: Value, query: Option<String>) -> Result<Value, Error> {
    let url = text(&v)?;
    let mut rest = url.as_str();
    let mut scheme = "";
    if let Some(i) = rest.find(':') {
        let cand = &rest[..i];
        if !cand.is_empty()
            && cand.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && cand
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            scheme = cand;
            rest = &rest[i + 1..];
        }
    }
    let mut netloc = "";
    if let Some(r) = rest.strip_prefix("//") {
        let end = r.find(['/', '?', '#']).unwrap_or(r.len());
        netloc = &r[..end];
        rest = &r[end..];
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, q) = rest.split_once('?').unwrap_or((rest, ""));
    let (userinfo, hostport) = match netloc.rfind('@') {
        Some(i) => (Some(&netloc[..i]), &netloc[i + 1..]),
        None => (None, netloc),
    };
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Value::from(a), Value::from(b)),
            None => (Value::from(u), Value::from(())),
        },
        None => (Value::from(()), Value::from(())),
    };
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        match r.split_once(']') {
            Some((h, p)) => (h.to_string(), p.strip_prefix(':').unwrap_or("")),
            None => (r.to_string(), ""),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (hostport.to_string(), ""),
        }
    };
    let hostname = if host.is_empty() {
        Value::from(())
    } else {
        Value::from(host.to_lowercase())
    };
    let port = if port.is_empty() {
        Value::from(())
    } else {
        match port.parse::<u16>() {
            Ok(p) => Value::from(p),
            Err(_) => {
                return Err(fail(format!(
                    "Port could not be cast to integer value as '{port}'"
                )))
            }
        }
    };
    let fields: Vec<(&str, Value)> = vec![
        ("fragment", Value::from(fragment)),
        ("hostname", hostname),
        ("netloc", Value::from(netloc)),
        ("password", password),
        ("path", Value::from(path)),
        ("port", port),
        ("query", Value::from(q)),
        ("scheme", Value::from(scheme.to_lowercase())),
        ("username", username),
    ];
    match query.as_deref() {
        None | Some("") => Ok(Value::from_pairs(fields)),
        Some(name) => fields
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| fail(format!("urlsplit: unknown URL component: {name}"))),
    }
}

fn to_datetime(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let s = text(&v)?;
    let a = Args::new(args)?;
    let format = a.get(0, "format")?.map(|t| pyrepr::to_text(&t));
    a.finish(1)?;
    let fmt = format.unwrap_or_else(|| "%Y-%m-%d %H:%M:%S".into());
    DateTime::strptime(&s, &fmt)
        .map(Value::from_object)
        .map_err(fail)
}

/// `strftime(second=None, utc=False)` on a format string. Times are printed in UTC (tend does
/// not read the controller's time zone).
fn strftime(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let fmt = text(&v)?;
    let a = Args::new(args)?;
    let second = a.get(0, "second")?.filter(|s| !s.is_none());
    let utc = a.flag(1, "utc")?;
    a.finish(2)?;
    let secs = match second {
        Some(s) => {
            let f = as_f64(&s).or_else(|| s.as_str().and_then(parse_py_float));
            f.ok_or_else(|| {
                fail(format!(
                    "Invalid value for epoch value ({})",
                    pyrepr::to_text(&s)
                ))
            })?
        }
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    };
    let dt = DateTime::from_epoch(secs.trunc());
    Ok(dt.strftime(&fmt, if utc { "GMT" } else { "UTC" }))
}

// ---------------------------------------------------------------------------------------------
// Math

fn log(v: Value, base: Option<Value>) -> Result<Value, Error> {
    let x = number(&v, "log()")?;
    let r = match base {
        None => x.ln(),
        Some(b) => {
            let b = number(&b, "log()")?;
            if b == 10.0 {
                x.log10()
            } else {
                x.ln() / b.ln()
            }
        }
    };
    if x <= 0.0 {
        return Err(fail("log(): math domain error"));
    }
    Ok(float_value(r))
}

fn pow(v: Value, y: Value) -> Result<Value, Error> {
    let x = number(&v, "pow()")?;
    let y = number(&y, "pow()")?;
    Ok(float_value(x.powf(y)))
}

fn root(v: Value, base: Option<Value>) -> Result<Value, Error> {
    let x = number(&v, "root()")?;
    let base = match base {
        Some(b) => number(&b, "root()")?,
        None => 2.0,
    };
    if base == 2.0 {
        if x < 0.0 {
            return Err(fail(
                "root() can only be used on numbers: math domain error",
            ));
        }
        return Ok(float_value(x.sqrt()));
    }
    Ok(float_value(x.powf(1.0 / base)))
}

const SIZE_RANGES: [(char, f64); 9] = [
    ('Y', 1_208_925_819_614_629_174_706_176.0),
    ('Z', 1_180_591_620_717_411_303_424.0),
    ('E', 1_152_921_504_606_846_976.0),
    ('P', 1_125_899_906_842_624.0),
    ('T', 1_099_511_627_776.0),
    ('G', 1_073_741_824.0),
    ('M', 1_048_576.0),
    ('K', 1024.0),
    ('B', 1.0),
];

fn human_readable(v: Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let size = match v.as_str() {
        Some(s) => parse_py_float(s),
        None => as_f64(&v),
    }
    .ok_or_else(|| fail("human_readable() failed on bad input"))?;
    let a = Args::new(args)?;
    let isbits = a.flag(0, "isbits")?;
    let unit = a
        .get(1, "unit")?
        .filter(|u| !u.is_none())
        .map(|u| pyrepr::to_text(&u).to_uppercase());
    a.finish(2)?;
    let base = if isbits { "bits" } else { "Bytes" };
    let mut chosen = SIZE_RANGES[SIZE_RANGES.len() - 1];
    for &(suffix, limit) in &SIZE_RANGES {
        let hit = match &unit {
            None => size >= limit,
            Some(u) => u.len() == 1 && u.starts_with(suffix),
        };
        if hit {
            chosen = (suffix, limit);
            break;
        }
    }
    let suffix = if chosen.1 != 1.0 {
        format!("{}{}", chosen.0, &base[..1])
    } else {
        base.to_string()
    };
    Ok(format!("{:.2} {suffix}", size / chosen.1))
}

/// Python's `round()` to an integer (half to even).
fn py_round(x: f64) -> i128 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        (r - x.signum()) as i128
    } else {
        r as i128
    }
}

fn human_to_bytes(v: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let input = text(&v)?;
    let a = Args::new(args)?;
    let default_unit = a
        .get(0, "default_unit")?
        .filter(|u| !u.is_none())
        .map(|u| pyrepr::to_text(&u));
    let isbits = a.flag(1, "isbits")?;
    a.finish(2)?;
    let cant = |why: String| fail(format!("human_to_bytes() can't interpret the input: {why}"));
    let re = Regex::new(r"^([0-9]*\.?[0-9]+)(?:\s*([A-Za-z]+))?\s*$")
        .map_err(|e| fail(e.to_string()))?;
    let caps = re.captures(&input).ok_or_else(|| {
        cant(format!(
            "human_to_bytes() can't interpret following string: {input}"
        ))
    })?;
    let num: f64 = caps[1]
        .parse()
        .map_err(|_| cant(format!("bad number {}", &caps[1])))?;
    let unit = caps.get(2).map(|m| m.as_str().to_string()).or(default_unit);
    let Some(unit) = unit else {
        return Ok(int_value(py_round(num)));
    };
    let range_key = unit
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or('B');
    let Some(&(_, limit)) = SIZE_RANGES.iter().find(|(k, _)| *k == range_key) else {
        return Err(cant(format!(
            "human_to_bytes() failed to convert {input} (unit = {unit}). The suffix must be one of Y, Z, E, P, T, G, M, K, B"
        )));
    };
    if unit.chars().count() > 1 {
        let (class, class_name) = if isbits { ('b', "bit") } else { ('B', "byte") };
        let names = [
            "byte",
            "kilobyte",
            "megabyte",
            "gigabyte",
            "terabyte",
            "petabyte",
            "exabyte",
            "zetabyte",
            "yottabyte",
        ];
        let prefix = match range_key {
            'B' => "",
            'K' => "kilo",
            'M' => "mega",
            'G' => "giga",
            'T' => "tera",
            'P' => "peta",
            'E' => "exa",
            'Z' => "zeta",
            _ => "yotta",
        };
        let long = format!("{prefix}{class_name}");
        let short = if range_key == 'B' {
            class.to_string()
        } else {
            format!("{range_key}{class}")
        };
        let _ = names;
        if unit.to_lowercase() != long && unit != short {
            let expect = if range_key == 'B' {
                format!("expect {class} or {class_name}")
            } else {
                format!("expect {range_key}{class} or {range_key}")
            };
            return Err(cant(format!(
                "human_to_bytes() failed to convert {input}. Value is not a valid string ({expect})"
            )));
        }
    }
    Ok(int_value(py_round(num * limit)))
}

// ---------------------------------------------------------------------------------------------
// Functions

/// `dict(...)`: from keyword arguments, a mapping, or a list of pairs.
fn dict_fn(args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let a = Args::new(args)?;
    let mut out: Vec<(Value, Value)> = Vec::new();
    let mut put = |k: Value, v: Value| match out.iter().position(|(ok, _)| *ok == k) {
        Some(i) => out[i].1 = v,
        None => out.push((k, v)),
    };
    if a.pos.len() > 1 {
        return Err(fail(format!(
            "dict expected at most 1 argument, got {}",
            a.pos.len()
        )));
    }
    if let Some(src) = a.pos.first() {
        defined(src)?;
        if src.kind() == ValueKind::Map {
            for (k, v) in map_entries(src)? {
                put(k, v);
            }
        } else {
            for pair in src
                .try_iter()
                .map_err(|_| fail("dict: the argument is not iterable"))?
            {
                let kv: Vec<Value> = pair
                    .try_iter()
                    .map_err(|_| fail("dict: each item must be a pair"))?
                    .collect();
                let [k, v] = <[Value; 2]>::try_from(kv)
                    .map_err(|_| fail("dict: each item must be a sequence of two elements"))?;
                put(k, v);
            }
        }
    }
    if let Some(kw) = &a.kw {
        let names: Vec<String> = kw.args().map(str::to_string).collect();
        for name in names {
            let v: Value = kw.get(&name)?;
            put(Value::from(name), v);
        }
    }
    Ok(from_entries(out))
}

#[cfg(test)]
mod unit {
    use super::super::{Layer, Scope, Templar};
    use serde_json::json;

    fn render(expr: &str) -> String {
        let t = Templar::new();
        let s = Scope::new(
            &t,
            vec![Layer::from_json(
                &json!({
                    "d": {"b": 2, "a": [1, {"x": "y"}], "c": "multi\nline"},
                    "l": [3, 1, 2],
                    "omit": super::super::OMIT,
                }),
                false,
            )],
        );
        match t.render_str(expr, &s) {
            Ok(v) => v,
            Err(e) => format!("ERR: {}", e.0),
        }
    }

    fn value(expr: &str) -> serde_json::Value {
        let t = Templar::new();
        let s = Scope::new(&t, vec![Layer::from_json(&json!({"l": [3, 1, 2]}), false)]);
        t.render_value(&json!(expr), &s)
            .unwrap_or_else(|e| json!(format!("ERR: {}", e.0)))
    }

    #[test]
    fn yaml_output_matches_ansible() {
        assert_eq!(
            render("{{ d | to_nice_yaml }}"),
            "a:\n- 1\n-   x: y\nb: 2\nc: 'multi\n\n    line'\n"
        );
        assert_eq!(
            render("{{ d | to_yaml }}"),
            "a:\n- 1\n- {x: y}\nb: 2\nc: 'multi\n\n  line'\n"
        );
        assert_eq!(
            render("{{ [1, 'a', true, none, 1.5] | to_nice_yaml }}"),
            "- 1\n- a\n- true\n- null\n- 1.5\n"
        );
        assert_eq!(render("{{ 'plain' | to_nice_yaml }}"), "plain\n");
        assert_eq!(
            render("{{ {'k': ['a', 'b', {'n': []}], 'e': {}, 'q': 'yes', 'n': '123', 't': 'a: b', 'u': ''} | to_nice_yaml }}"),
            "e: {}\nk:\n- a\n- b\n-   n: []\nn: '123'\nq: 'yes'\nt: 'a: b'\nu: ''\n"
        );
        assert_eq!(
            render("{{ {'d': [[1, 2], [3, {'a': []}]], 'x': {'y': {'z': 1}}} | to_yaml }}"),
            "d:\n- [1, 2]\n- - 3\n  - a: []\nx:\n  y: {z: 1}\n"
        );
        let long = format!("{} {} z", "x".repeat(50), "y".repeat(40));
        assert_eq!(
            render(&format!("{{{{ {{'a': '{long}', 'b': 'tab\there', 'e': 1e20, 'f': 'ü', 'g': '- x', 'h': '#x', 'i': 'a #b', 'm': '0o17'}} | to_nice_yaml }}}}")),
            format!("a: {} {}\n    z\nb: \"tab\\there\"\ne: 1.0e+20\nf: ü\ng: '- x'\nh: '#x'\ni: 'a #b'\nm: 0o17\n", "x".repeat(50), "y".repeat(40))
        );
        assert_eq!(
            render("{{ {'d': [[1, 2], [3]], 'c': 'multi\n  indented\n'} | to_nice_yaml }}"),
            "c: \"multi\\n  indented\\n\"\nd:\n-   - 1\n    - 2\n-   - 3\n"
        );
    }

    #[test]
    fn json_output_matches_ansible() {
        assert_eq!(
            render("{{ d | to_json }}"),
            r#"{"b": 2, "a": [1, {"x": "y"}], "c": "multi\nline"}"#
        );
        assert_eq!(
            render("{{ d | to_nice_json }}"),
            "{\n    \"a\": [\n        1,\n        {\n            \"x\": \"y\"\n        }\n    ],\n    \"b\": 2,\n    \"c\": \"multi\\nline\"\n}"
        );
        assert_eq!(
            render("{{ {'z': 1, 'a': 'é'} | to_json }}"),
            r#"{"z": 1, "a": "\u00e9"}"#
        );
        assert_eq!(
            render("{{ {'z': 1.0, 'a': []} | to_nice_json(indent=2) }}"),
            "{\n  \"a\": [],\n  \"z\": 1.0\n}"
        );
        assert_eq!(
            value("{{ '{\"a\": [1, 2.5, null, true]}' | from_json }}"),
            json!({"a": [1, 2.5, null, true]})
        );
        assert!(render("{{ '{' | from_json }}").starts_with("ERR: from_json"));
    }

    #[test]
    fn from_yaml_variants() {
        assert_eq!(
            value("{{ 'a: 1\nb: [x, z]' | from_yaml }}"),
            json!({"a": 1, "b": ["x", "z"]})
        );
        assert_eq!(
            value("{{ '---\na: 1\n---\nb: 2\n' | from_yaml_all | list }}"),
            json!([{"a": 1}, {"b": 2}])
        );
        assert_eq!(value("{{ none | from_yaml_all }}"), json!([]));
    }

    #[test]
    fn conversions() {
        assert_eq!(value("{{ '0x1F' | int }}"), json!(0));
        assert_eq!(value("{{ '0x1F' | int(base=16) }}"), json!(31));
        assert_eq!(value("{{ '1F' | int(base=16) }}"), json!(31));
        assert_eq!(value("{{ '0b101' | int(0, 2) }}"), json!(5));
        assert_eq!(value("{{ '12.7' | int }}"), json!(12));
        assert_eq!(value("{{ 'abc' | int }}"), json!(0));
        assert_eq!(value("{{ 'abc' | int(7) }}"), json!(7));
        assert_eq!(value("{{ 3.9 | int }}"), json!(3));
        assert_eq!(value("{{ true | int }}"), json!(1));
        assert_eq!(value("{{ ' 1_000 ' | int }}"), json!(1000));
        assert_eq!(value("{{ '1.5e3' | float }}"), json!(1500.0));
        assert_eq!(value("{{ 'x' | float }}"), json!(0.0));
        assert_eq!(value("{{ 'x' | float(2.5) }}"), json!(2.5));
        assert_eq!(value("{{ 3 | float }}"), json!(3.0));
        for (e, want) in [
            ("'Yes'", true),
            ("'on'", true),
            ("'y'", false),
            ("'1'", true),
            ("1", true),
            ("2", false),
            ("'foo'", false),
            ("none", false),
            ("1.0", true),
            ("'t'", false),
            ("'OFF'", false),
            ("true", true),
        ] {
            assert_eq!(value(&format!("{{{{ {e} | bool }}}}")), json!(want), "{e}");
        }
        assert_eq!(
            render("{{ 123 | string }}|{{ [1] | string }}|{{ none | string }}|{{ true | string }}"),
            "123|[1]|None|True"
        );
        assert_eq!(render("{{ 1 | type_debug }} {{ 'a' | type_debug }} {{ [1] | type_debug }} {{ {} | type_debug }} {{ none | type_debug }} {{ 1.5 | type_debug }} {{ true | type_debug }}"), "int str list dict NoneType float bool");
    }

    #[test]
    fn mandatory_default_ternary_and_omit() {
        assert_eq!(
            render("{{ nope | mandatory }}"),
            "ERR: Mandatory variable 'nope' not defined."
        );
        assert_eq!(
            render("{{ nope | mandatory('custom msg') }}"),
            "ERR: custom msg"
        );
        assert_eq!(render("{{ 5 | mandatory }}"), "5");
        assert_eq!(render("[{{ 'x' | center(5) }}][{{ 'ab' | center(5) }}][{{ 'ab' | center(4) }}][{{ 'abc' | center(2) }}]"), "[  x  ][  ab ][ ab ][abc]");
        assert_eq!(render("{{ 'one two,three_x  4' | wordcount }}"), "4");
        assert_eq!(render("{{ 'x' | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ nope | default('d') }}"), "x||d|d");
        assert_eq!(render("{{ nope | default(omit) }}"), super::super::OMIT);
        assert_eq!(render("{{ true | ternary('y', 'n') }}{{ none | ternary('y', 'n', 'nul') }}{{ 0 | ternary('y', 'n') }}"), "ynuln");
    }

    #[test]
    fn regexes() {
        assert_eq!(render("{{ 'abc123def' | regex_search('[0-9]+') }}"), "123");
        assert_eq!(
            value("{{ 'abcdef' | regex_search('[0-9]+') }}"),
            json!(null)
        );
        assert_eq!(
            value("{{ 'abc123def456' | regex_search('([a-z]+)([0-9]+)', '\\2', '\\1') }}"),
            json!(["123", "abc"])
        );
        assert_eq!(
            value("{{ 'abc123' | regex_search('(?P<w>[a-z]+)', '\\g<w>') }}"),
            json!(["abc"])
        );
        assert_eq!(
            render("{{ 'ABC' | regex_search('abc', ignorecase=True) }}"),
            "ABC"
        );
        assert_eq!(
            value("{{ 'a1b2' | regex_findall('[0-9]') }}"),
            json!(["1", "2"])
        );
        assert_eq!(
            value("{{ 'a1b2c' | regex_findall('([a-z])([0-9])') }}"),
            json!([["a", "1"], ["b", "2"]])
        );
        assert_eq!(
            value("{{ 'aXbxc' | regex_findall('x', ignorecase=True) }}"),
            json!(["X", "x"])
        );
        assert_eq!(render("{{ 'foo.bar' | regex_escape }}"), "foo\\.bar");
        assert_eq!(
            render("{{ 'a.b*' | regex_escape('posix_basic') }}"),
            "a\\.b\\*"
        );
        assert_eq!(
            render("{{ 'a b$c' | regex_replace('(\\w) (\\w)', '\\2-\\1') }}"),
            "b-a$c"
        );
        assert_eq!(
            render("{{ 'abc' | regex_replace('(?P<x>b)', '[\\g<x>]') }}"),
            "a[b]c"
        );
        assert_eq!(render("{{ 'abc' | regex_replace('b', '$0') }}"), "a$0c");
        assert_eq!(
            render("{{ 'aaa' | regex_replace('a', 'b', count=2) }}"),
            "bba"
        );
        assert_eq!(render("{{ 'hello' | regex_replace('l+', 'L') }}"), "heLo");
        assert_eq!(
            render("{{ 'a\nb' | regex_replace('^', '>', multiline=True) }}"),
            ">a\n>b"
        );
        assert!(render("{{ 'a' | regex_replace('(?=a)', '') }}")
            .starts_with("ERR: invalid regular expression"));
        assert!(
            render("{{ 'aa' | regex_replace('a', 'b', mandatory_count=1) }}")
                .starts_with("ERR: 'a' should match 1 times")
        );
    }

    #[test]
    fn encodings_and_hashes() {
        assert_eq!(render("{{ 'hello' | b64encode }}"), "aGVsbG8=");
        assert_eq!(render("{{ 'héllo' | b64encode }}"), "aMOpbGxv");
        assert_eq!(render("{{ 'aGVsbG8=' | b64decode }}"), "hello");
        assert_eq!(
            render("{{ 'hello' | hash('sha1') }}"),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
        assert_eq!(
            render("{{ 'hello' | hash('md5') }}"),
            "5d41402abc4b2a76b9719d911017c592"
        );
        assert_eq!(
            render("{{ 'hello' | checksum }}"),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
        assert_eq!(
            render("{{ 'hello' | md5 }}"),
            "5d41402abc4b2a76b9719d911017c592"
        );
        assert_eq!(
            render("{{ 'hello' | sha1 }}"),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
        assert_eq!(
            render("{{ 'hello' | hash('sha256') }}"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(render("{{ 'hello' | hash('sha512') }}"), "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043");
        assert!(render("{{ 'x' | hash('whirlpool') }}").starts_with("ERR: unsupported hash type"));
    }

    #[test]
    fn password_hashes() {
        // Values from crypt(3); Ansible passes rounds=656000 (sha512) unless told otherwise.
        assert_eq!(
            render("{{ 'secret' | password_hash('sha512', 'mysalt', rounds=10000) }}"),
            "$6$rounds=10000$mysalt$9XTP7570fxVN/uTspSrH6kRPdR4KKGzGz7.TmJjDYGrKSwZuavW/3YaLur8JX6WP75Czcxa.megIO0lKreY0R."
        );
        assert_eq!(
            render("{{ 'secret' | password_hash('md5', 'mysalt') }}"),
            "$1$mysalt$n/EfEiV74OYgBdqhKQzSW/"
        );
        let random = render("{{ 'secret' | password_hash('sha512', rounds=5000) }}");
        assert!(random.starts_with("$6$rounds=5000$"), "{random}");
        assert_eq!(random.split('$').nth(3).map(str::len), Some(16));
    }

    #[test]
    fn paths_and_quote() {
        assert_eq!(
            render("{{ '/etc/a.txt' | basename }}|{{ '/etc/a.txt' | dirname }}"),
            "a.txt|/etc"
        );
        assert_eq!(
            value("{{ 'a/b.tar.gz' | splitext }}"),
            json!(["a/b.tar", ".gz"])
        );
        assert_eq!(value("{{ '.bashrc' | splitext }}"), json!([".bashrc", ""]));
        assert_eq!(render("{{ '/tmp/../etc' | realpath }}"), "/etc");
        std::env::var("HOME")
            .map(|h| assert_eq!(render("{{ '~/x' | expanduser }}"), format!("{h}/x")))
            .ok();
        assert_eq!(render("{{ \"it's\" | quote }}"), "'it'\"'\"'s'");
        assert_eq!(
            render("{{ '' | quote }}|{{ 'abc-_/.:=+%@,x' | quote }}"),
            "''|abc-_/.:=+%@,x"
        );
    }

    #[test]
    fn combine_and_dicts() {
        assert_eq!(value("{{ {'a': 1, 'b': {'x': 1, 'l': [1]} } | combine({'b': {'y': 2, 'l': [2]}, 'c': 3} ) }}"), json!({"a": 1, "b": {"y": 2, "l": [2]}, "c": 3}));
        assert_eq!(value("{{ {'a': 1, 'b': {'x': 1, 'l': [1]} } | combine({'b': {'y': 2, 'l': [2]} }, recursive=True) }}"), json!({"a": 1, "b": {"x": 1, "l": [2], "y": 2}}));
        for (mode, want) in [
            ("append", json!([1, 2, 2, 3])),
            ("append_rp", json!([1, 2, 3])),
            ("prepend_rp", json!([2, 3, 1])),
            ("keep", json!([1, 2])),
            ("prepend", json!([2, 3, 1, 2])),
        ] {
            assert_eq!(
                value(&format!("{{{{ {{'b': {{'l': [1, 2]}} }} | combine({{'b': {{'l': [2, 3]}} }}, recursive=True, list_merge='{mode}') }}}}")),
                json!({"b": {"l": want}}),
                "{mode}"
            );
        }
        assert_eq!(
            value("{{ {'a': 1} | combine({'b': 2}, {'a': 3}) }}"),
            json!({"a": 3, "b": 2})
        );
        assert_eq!(
            value("{{ [{'a': 1}, {'b': 2}] | combine }}"),
            json!({"a": 1, "b": 2})
        );
        assert_eq!(
            value("{{ {'a': 1, 'b': 2} | dict2items }}"),
            json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}])
        );
        assert_eq!(
            value("{{ {'a': 1} | dict2items(key_name='k', value_name='v') }}"),
            json!([{"k": "a", "v": 1}])
        );
        assert_eq!(
            value("{{ [{'key': 'a', 'value': 1}] | items2dict }}"),
            json!({"a": 1})
        );
        assert_eq!(
            value("{{ [{'k': 'a', 'v': 1}] | items2dict(key_name='k', value_name='v') }}"),
            json!({"a": 1})
        );
        assert_eq!(value("{{ dict(a=1, b=2) }}"), json!({"a": 1, "b": 2}));
        assert_eq!(value("{{ dict([['a', 1]]) }}"), json!({"a": 1}));
        assert_eq!(value("{{ 1 | extract(['a', 'b']) }}"), json!("b"));
        assert_eq!(
            value("{{ 'x' | extract({'x': {'y': 5} }, 'y') }}"),
            json!(5)
        );
        assert_eq!(
            value("{{ [0, 1] | map('extract', ['a', 'b']) | list }}"),
            json!(["a", "b"])
        );
    }

    #[test]
    fn list_filters() {
        assert_eq!(value("{{ [1, 2, 2, 3, 1] | unique }}"), json!([1, 2, 3]));
        assert_eq!(value("{{ [1, 2] | union([2, 3]) }}"), json!([1, 2, 3]));
        assert_eq!(
            value("{{ [1, 2, 3] | intersect([2, 3, 4]) }}"),
            json!([2, 3])
        );
        assert_eq!(value("{{ [1, 2, 3] | difference([2]) }}"), json!([1, 3]));
        assert_eq!(
            value("{{ [1, 2, 3] | symmetric_difference([2, 4]) }}"),
            json!([1, 3, 4])
        );
        assert_eq!(
            value("{{ [1, [2, [3, [4]]]] | flatten }}"),
            json!([1, 2, 3, 4])
        );
        assert_eq!(
            value("{{ [1, [2, [3, [4]]]] | flatten(levels=1) }}"),
            json!([1, 2, [3, [4]]])
        );
        assert_eq!(value("{{ [1, [2, none, []]] | flatten }}"), json!([1, 2]));
        assert_eq!(
            value("{{ [1, 2] | zip(['a', 'b']) | list }}"),
            json!([[1, "a"], [2, "b"]])
        );
        assert_eq!(
            value("{{ [1, 2, 3] | zip_longest(['a'], fillvalue='x') | list }}"),
            json!([[1, "a"], [2, "x"], [3, "x"]])
        );
        assert_eq!(
            value("{{ [1, 2, 3] | zip_longest(['a']) | list }}"),
            json!([[1, "a"], [2, null], [3, null]])
        );
        assert_eq!(
            value("{{ [1, 2] | product(['a', 'b']) | list }}"),
            json!([[1, "a"], [1, "b"], [2, "a"], [2, "b"]])
        );
        assert_eq!(
            value("{{ [{'n': 'a', 'g': ['x', 'y']}] | subelements('g') }}"),
            json!([[{"n": "a", "g": ["x", "y"]}, "x"], [{"n": "a", "g": ["x", "y"]}, "y"]])
        );
        assert_eq!(
            value("{{ [{'n': 'a'}] | subelements('g', skip_missing=True) }}"),
            json!([])
        );
        assert_eq!(value("{{ 'a,b,c' | split(',') }}"), json!(["a", "b", "c"]));
        assert_eq!(value("{{ ' a b  c' | split }}"), json!(["a", "b", "c"]));
        assert_eq!(
            value("{{ ['a', 'b'] | map('upper') | list }}"),
            json!(["A", "B"])
        );
        assert_eq!(value("{{ ['1', '2'] | map('int') | list }}"), json!([1, 2]));
        assert_eq!(value("{{ [3, 1] | sort }}"), json!([1, 3]));
    }

    #[test]
    fn seeded_random_matches_python() {
        assert_eq!(value("{{ 10 | random(seed='abc') }}"), json!(8));
        assert_eq!(
            value("{{ ['a','b','c','d'] | random(seed='host1') }}"),
            json!("d")
        );
        assert_eq!(
            value("{{ 100 | random(start=10, step=5, seed=42) }}"),
            json!(25)
        );
        assert_eq!(
            value("{{ [1,2,3,4,5] | shuffle(seed='x') }}"),
            json!([5, 2, 1, 4, 3])
        );
        assert_eq!(value("{{ 7 | random(seed=7) }}"), json!(2));
        assert_eq!(
            value("{{ 1000000 | random(seed='a very long seed string that is longer') }}"),
            json!(940082)
        );
        assert_eq!(value("{{ range(5) | list | random(seed=3) }}"), json!(1));
        let r = value("{{ 5 | random }}");
        assert!(r.as_i64().is_some_and(|n| (0..5).contains(&n)), "{r}");
    }

    #[test]
    fn text_filters() {
        assert_eq!(render("{{ 'hello' | comment }}"), "#\n# hello\n#");
        assert_eq!(render("{{ 'a' | comment('erlang') }}"), "%\n% a\n%");
        assert_eq!(
            render("{{ 'a' | comment('cblock') }}"),
            "/*\n *\n * a\n *\n */"
        );
        assert_eq!(
            render("{{ 'a' | comment('xml') }}"),
            "<!--\n -\n - a\n -\n-->"
        );
        assert_eq!(
            render("{{ 'a' | comment(decoration='// ') }}"),
            "//\n// a\n//"
        );
        assert_eq!(render("{{ 'a\nb' | comment('c') }}"), "//\n// a\n// b\n//");
        assert_eq!(
            value("{{ 'https://user:pw@www.acme.com:9000/dir/index.html?query=term#frag' | urlsplit }}"),
            json!({"fragment": "frag", "hostname": "www.acme.com", "netloc": "user:pw@www.acme.com:9000", "password": "pw", "path": "/dir/index.html", "port": 9000, "query": "query=term", "scheme": "https", "username": "user"})
        );
        assert_eq!(
            render("{{ 'https://www.acme.com:9000/dir/index.html?q=1#f' | urlsplit('hostname') }}"),
            "www.acme.com"
        );
        assert_eq!(
            value("{{ 'https://www.acme.com/dir' | urlsplit('port') }}"),
            json!(null)
        );
    }

    #[test]
    fn dates() {
        assert_eq!(
            value("{{ ('2016-08-14 20:00:12' | to_datetime).year }}"),
            json!(2016)
        );
        assert_eq!(
            render("{{ '2016-08-14' | to_datetime('%Y-%m-%d') }}"),
            "2016-08-14 00:00:00"
        );
        assert_eq!(
            render("{{ ('2016-08-14' | to_datetime('%Y-%m-%d')).strftime('%d/%m') }}"),
            "14/08"
        );
        assert!(render("{{ '2016-08-14' | to_datetime }}").starts_with("ERR: time data"));
        assert_eq!(
            render("{{ '%Y-%m-%d %H:%M:%S %a %b %j %p %I %y %A %B %%' | strftime(1441357287, utc=True) }}"),
            "2015-09-04 09:01:27 Fri Sep 247 AM 09 15 Friday September %"
        );
        assert_eq!(
            render("{{ '%Y-%m-%d %H:%M:%S' | strftime(0) }}"),
            "1970-01-01 00:00:00"
        );
    }

    #[test]
    fn math() {
        assert_eq!(value("{{ 100 | log(10) }}"), json!(2.0));
        assert_eq!(value("{{ 8 | log(2) }}"), json!(3.0));
        assert_eq!(value("{{ 2.718281828 | log }}"), json!(0.9999999998311266));
        assert_eq!(value("{{ 2 | pow(10) }}"), json!(1024.0));
        assert_eq!(value("{{ 2 | pow(0.5) }}"), json!(std::f64::consts::SQRT_2));
        assert_eq!(value("{{ 27 | root(3) }}"), json!(3.0));
        assert_eq!(value("{{ 16 | root }}"), json!(4.0));
        assert_eq!(render("{{ 1024 | human_readable }}"), "1.00 KB");
        assert_eq!(render("{{ 1500000 | human_readable }}"), "1.43 MB");
        assert_eq!(
            render("{{ 1500000 | human_readable(isbits=True) }}"),
            "1.43 Mb"
        );
        assert_eq!(
            render("{{ 1500000 | human_readable(unit='G') }}"),
            "0.00 GB"
        );
        assert_eq!(render("{{ 12 | human_readable }}"), "12.00 Bytes");
        assert_eq!(value("{{ '1K' | human_to_bytes }}"), json!(1024));
        assert_eq!(value("{{ '1.5 MB' | human_to_bytes }}"), json!(1572864));
        assert_eq!(
            value("{{ '10Mb' | human_to_bytes(isbits=True) }}"),
            json!(10485760)
        );
        assert!(render("{{ '1 KiB' | human_to_bytes }}")
            .contains("Value is not a valid string (expect KB or K)"));
    }
}
