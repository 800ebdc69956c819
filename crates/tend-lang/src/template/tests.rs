//! The Ansible tests (`is …`) tend provides on top of minijinja's builtins.
//!
//! Task-result tests (`failed`, `changed`, …) follow ansible-core's `plugins/test/core.py`;
//! `version` follows its `version_compare` with Python's LooseVersion / StrictVersion.

use std::cmp::Ordering;
use std::path::Path;

use minijinja::value::{Kwargs, Rest, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::filters::{fail, py_regex};
use super::pyrepr;

pub fn register(env: &mut Environment<'static>) {
    env.add_test("failed", |v: Value| result_flag(&v, "failed", "failed"));
    env.add_test("failure", |v: Value| result_flag(&v, "failed", "failed"));
    env.add_test("succeeded", |v: Value| {
        result_flag(&v, "failed", "succeeded").map(|b| !b)
    });
    env.add_test("success", |v: Value| {
        result_flag(&v, "failed", "success").map(|b| !b)
    });
    env.add_test("successful", |v: Value| {
        result_flag(&v, "failed", "successful").map(|b| !b)
    });
    env.add_test("changed", changed);
    env.add_test("change", changed);
    env.add_test("skipped", |v: Value| result_flag(&v, "skipped", "skipped"));
    env.add_test("skip", |v: Value| result_flag(&v, "skipped", "skipped"));
    env.add_test("unreachable", |v: Value| {
        result_flag(&v, "unreachable", "unreachable")
    });
    env.add_test("reachable", |v: Value| {
        result_flag(&v, "unreachable", "reachable").map(|b| !b)
    });
    env.add_test("finished", |v: Value| async_flag(&v, "finished"));
    env.add_test("started", |v: Value| async_flag(&v, "started"));
    env.add_test("timedout", timedout);
    env.add_test("match", |v: Value, args: Rest<ValueOrKwargs>| {
        regex_test(v, args, true)
    });
    env.add_test("search", |v: Value, args: Rest<ValueOrKwargs>| {
        regex_test(v, args, false)
    });
    env.add_test("regex", regex);
    env.add_test("version", version_compare);
    env.add_test("version_compare", version_compare);
    env.add_test("in", is_in);
    env.add_test("contains", |seq: Value, item: Value| is_in(item, seq));
    env.add_test("subset", |a: Value, b: Value| subset(&a, &b));
    env.add_test("superset", |a: Value, b: Value| subset(&b, &a));
    env.add_test("truthy", truthy);
    env.add_test("falsy", |v: Value, k: Kwargs| truthy(v, k).map(|b| !b));
    env.add_test("any", |v: Value| {
        Ok::<_, Error>(v.try_iter()?.any(|x| x.is_true()))
    });
    env.add_test("all", |v: Value| {
        Ok::<_, Error>(v.try_iter()?.all(|x| x.is_true()))
    });
    env.add_test("abs", |v: Value| path_test(&v, |p| p.is_absolute()));
    env.add_test("is_abs", |v: Value| path_test(&v, |p| p.is_absolute()));
    // These look at the controller's files in Ansible.
    env.add_test("file", |v: Value| fs_test("file", &v, Path::is_file));
    env.add_test("is_file", |v: Value| fs_test("file", &v, Path::is_file));
    env.add_test("directory", |v: Value| {
        fs_test("directory", &v, Path::is_dir)
    });
    env.add_test("is_dir", |v: Value| fs_test("directory", &v, Path::is_dir));
    env.add_test("link", |v: Value| fs_test("link", &v, Path::is_symlink));
    env.add_test("is_link", |v: Value| fs_test("link", &v, Path::is_symlink));
    env.add_test("exists", |v: Value| fs_test("exists", &v, Path::exists));
    env.add_test("same_file", same_file);
    env.add_test("is_same_file", same_file);
    env.add_test("mount", |v: Value| fs_test("mount", &v, is_mount));
    env.add_test("is_mount", |v: Value| fs_test("mount", &v, is_mount));
    env.add_test("nan", |v: Value| {
        Ok::<_, Error>(f64::try_from(v).is_ok_and(f64::is_nan))
    });
    env.add_test("isnan", |v: Value| {
        Ok::<_, Error>(f64::try_from(v).is_ok_and(f64::is_nan))
    });
    // Jinja2's `sequence` and `iterable` are true for strings and mappings too.
    env.add_test("sequence", |v: Value| {
        matches!(
            v.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::String | ValueKind::Iterable
        )
    });
    env.add_test("iterable", |v: Value| {
        matches!(
            v.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::String | ValueKind::Iterable
        )
    });
}

fn result_flag(v: &Value, key: &str, test: &str) -> Result<bool, Error> {
    if v.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    if v.kind() != ValueKind::Map {
        return Err(fail(format!("The '{test}' test expects a dictionary")));
    }
    Ok(v.get_attr(key).map(|x| x.is_true()).unwrap_or(false))
}

fn has_key(v: &Value, key: &str) -> bool {
    v.get_attr(key).is_ok_and(|x| !x.is_undefined())
}

fn changed(v: Value) -> Result<bool, Error> {
    result_flag(&v, "changed", "changed")?;
    if has_key(&v, "changed") {
        return Ok(v.get_attr("changed").is_ok_and(|x| x.is_true()));
    }
    let results = v.get_attr("results").unwrap_or_default();
    if results.kind() == ValueKind::Seq {
        let items: Vec<Value> = results.try_iter()?.collect();
        if items.first().is_some_and(|f| f.kind() == ValueKind::Map) {
            return Ok(items
                .iter()
                .any(|r| r.get_attr("changed").is_ok_and(|x| x.is_true())));
        }
    }
    Ok(false)
}

fn async_flag(v: &Value, key: &str) -> Result<bool, Error> {
    result_flag(v, key, key)?;
    if has_key(v, key) {
        return Ok(v.get_attr(key).is_ok_and(|x| x.is_true()));
    }
    Ok(true)
}

fn timedout(v: Value) -> Result<bool, Error> {
    result_flag(&v, "timedout", "timedout")?;
    let t = v.get_attr("timedout").unwrap_or_default();
    Ok(t.is_true() && t.get_attr("period").is_ok_and(|p| p.is_true()))
}

/// value, pattern, ignorecase, multiline, positional arguments, keyword arguments.
type RegexArgs = (String, String, bool, bool, Vec<Value>, Option<Kwargs>);

fn regex_args(v: &Value, args: Rest<ValueOrKwargs>) -> Result<RegexArgs, Error> {
    if v.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    let value = pyrepr::to_text(v);
    let mut pos = args.into_values();
    let kw = match pos.last() {
        Some(l) if l.is_kwargs() => Some(Kwargs::try_from(pos.pop().unwrap_or_default())?),
        _ => None,
    };
    let get = |i: usize, name: &str, pos: &[Value]| -> Result<Option<Value>, Error> {
        if let Some(v) = pos.get(i) {
            return Ok(Some(v.clone()));
        }
        match &kw {
            Some(k) if k.has(name) => Ok(Some(k.get::<Value>(name)?)),
            _ => Ok(None),
        }
    };
    let pattern = get(0, "pattern", &pos)?
        .map(|p| pyrepr::to_text(&p))
        .unwrap_or_default();
    let ignorecase = get(1, "ignorecase", &pos)?.is_some_and(|x| x.is_true());
    let multiline = get(2, "multiline", &pos)?.is_some_and(|x| x.is_true());
    Ok((value, pattern, ignorecase, multiline, pos, kw))
}

fn regex_test(v: Value, args: Rest<ValueOrKwargs>, anchored: bool) -> Result<bool, Error> {
    let (value, pattern, ic, ml, pos, kw) = regex_args(&v, args)?;
    if pos.len() > 3 {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            "too many arguments",
        ));
    }
    if let Some(k) = kw {
        k.assert_all_used()?;
    }
    run_regex(&value, &pattern, ic, ml, anchored)
}

fn run_regex(
    value: &str,
    pattern: &str,
    ic: bool,
    ml: bool,
    anchored: bool,
) -> Result<bool, Error> {
    let re = py_regex(pattern, ic, ml)?;
    if anchored {
        // re.match: the match must start at the beginning of the string.
        let anchored = py_regex(&format!(r"\A(?:{pattern})"), ic, ml)?;
        let _ = re;
        return Ok(anchored.is_match(value));
    }
    Ok(re.is_match(value))
}

fn regex(v: Value, args: Rest<ValueOrKwargs>) -> Result<bool, Error> {
    let (value, pattern, ic, ml, pos, kw) = regex_args(&v, args)?;
    let match_type = match pos.get(3) {
        Some(m) => pyrepr::to_text(m),
        None => match &kw {
            Some(k) if k.has("match_type") => k.get::<String>("match_type")?,
            _ => "search".into(),
        },
    };
    if let Some(k) = kw {
        k.assert_all_used()?;
    }
    match match_type.as_str() {
        "match" => run_regex(&value, &pattern, ic, ml, true),
        "fullmatch" => run_regex(&value, &format!(r"(?:{pattern})\z"), ic, ml, true),
        _ => run_regex(&value, &pattern, ic, ml, false),
    }
}

// ---------------------------------------------------------------------------------------------
// Versions

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Num(u64),
    Str(String),
}

/// Python's `LooseVersion` components: runs of digits (as numbers) and runs of letters.
fn loose_parts(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            match digits.parse() {
                Ok(n) => parts.push(Part::Num(n)),
                Err(_) => parts.push(Part::Str(digits)),
            }
        } else if c.is_ascii_alphabetic() {
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            parts.push(Part::Str(chars[start..i].iter().collect()));
        } else {
            // '.' separates; anything else is a component of its own (LooseVersion keeps it).
            i += 1;
            if c != '.' {
                parts.push(Part::Str(c.to_string()));
            }
        }
    }
    parts
}

fn loose_cmp(a: &str, b: &str) -> Result<Ordering, Error> {
    let (pa, pb) = (loose_parts(a), loose_parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x, y) {
            (Part::Num(m), Part::Num(n)) => m.cmp(n),
            (Part::Str(m), Part::Str(n)) => m.cmp(n),
            (Part::Num(_), Part::Str(_)) => return Err(fail(
                "Version comparison failed: '<' not supported between instances of 'int' and 'str'",
            )),
            (Part::Str(_), Part::Num(_)) => return Err(fail(
                "Version comparison failed: '<' not supported between instances of 'str' and 'int'",
            )),
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(pa.len().cmp(&pb.len()))
}

/// major, minor, patch, pre-release (`a`/`b` and its number).
type StrictVersion = (u64, u64, u64, Option<(char, u64)>);

/// Python's `StrictVersion`: `N.N[.N][(a|b)N]`.
fn strict_parse(s: &str) -> Result<StrictVersion, Error> {
    let bad = || {
        fail(format!(
            "Version comparison failed: invalid version number '{s}'"
        ))
    };
    let (nums, pre) = match s.find(['a', 'b']) {
        Some(i) => {
            let kind = s[i..].chars().next().unwrap_or('a');
            let n: u64 = s[i + 1..].parse().map_err(|_| bad())?;
            if !s[i + 1..].chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            (&s[..i], Some((kind, n)))
        }
        None => (s, None),
    };
    let fields: Vec<&str> = nums.split('.').collect();
    if !(2..=3).contains(&fields.len())
        || fields
            .iter()
            .any(|f| f.is_empty() || !f.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    let n = |i: usize| {
        fields
            .get(i)
            .map_or(Ok(0), |f| f.parse::<u64>().map_err(|_| bad()))
    };
    Ok((n(0)?, n(1)?, n(2)?, pre))
}

fn strict_cmp(a: &str, b: &str) -> Result<Ordering, Error> {
    let (x, y) = (strict_parse(a)?, strict_parse(b)?);
    let o = (x.0, x.1, x.2).cmp(&(y.0, y.1, y.2));
    if o != Ordering::Equal {
        return Ok(o);
    }
    Ok(match (x.3, y.3) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(p), Some(q)) => p.cmp(&q),
    })
}

/// Semantic versioning 2.0 precedence.
fn semver_cmp(a: &str, b: &str) -> Result<Ordering, Error> {
    fn parse(s: &str) -> Result<(Vec<u64>, Vec<String>), Error> {
        let s = s.split('+').next().unwrap_or(s);
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, p.split('.').map(str::to_string).collect()),
            None => (s, Vec::new()),
        };
        let nums: Result<Vec<u64>, _> = core.split('.').map(str::parse).collect();
        match nums {
            Ok(n) if n.len() == 3 => Ok((n, pre)),
            _ => Err(fail(format!(
                "Version comparison failed: invalid semantic version '{s}'"
            ))),
        }
    }
    let (x, y) = (parse(a)?, parse(b)?);
    let o = x.0.cmp(&y.0);
    if o != Ordering::Equal {
        return Ok(o);
    }
    Ok(match (x.1.is_empty(), y.1.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => {
            for (p, q) in x.1.iter().zip(y.1.iter()) {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    _ => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return Ok(o);
                }
            }
            x.1.len().cmp(&y.1.len())
        }
    })
}

/// `version(version, operator='eq', strict=None, version_type=None)`.
fn version_compare(value: Value, args: Rest<ValueOrKwargs>) -> Result<bool, Error> {
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    let mut pos = args.into_values();
    let kw = match pos.last() {
        Some(l) if l.is_kwargs() => Some(Kwargs::try_from(pos.pop().unwrap_or_default())?),
        _ => None,
    };
    let get = |i: usize, name: &str| -> Result<Option<Value>, Error> {
        if let Some(v) = pos.get(i) {
            return Ok(Some(v.clone()));
        }
        match &kw {
            Some(k) if k.has(name) => Ok(Some(k.get::<Value>(name)?)),
            _ => Ok(None),
        }
    };
    let version = get(0, "version")?.unwrap_or_default();
    let operator = get(1, "operator")?
        .map(|o| pyrepr::to_text(&o))
        .unwrap_or_else(|| "eq".into());
    let strict = get(2, "strict")?.filter(|s| !s.is_none());
    let version_type = get(3, "version_type")?
        .filter(|s| !s.is_none())
        .map(|t| pyrepr::to_text(&t));
    if let Some(k) = &kw {
        k.assert_all_used()?;
    }
    if strict.is_some() && version_type.is_some() {
        return Err(fail("Cannot specify both 'strict' and 'version_type'"));
    }
    if !value.is_true() {
        return Err(fail("Input version value cannot be empty"));
    }
    if !version.is_true() {
        return Err(fail("Version parameter to compare against cannot be empty"));
    }
    let kind = if strict.as_ref().is_some_and(Value::is_true) {
        "strict".to_string()
    } else {
        version_type.unwrap_or_else(|| "loose".into())
    };
    let (a, b) = (pyrepr::to_text(&value), pyrepr::to_text(&version));
    let ord = match kind.as_str() {
        "loose" => loose_cmp(&a, &b)?,
        "strict" => strict_cmp(&a, &b)?,
        "semver" | "semantic" => semver_cmp(&a, &b)?,
        "pep440" => loose_cmp(&a, &b)?,
        other => {
            return Err(fail(format!(
                "Invalid version type ({other}). Must be one of 'loose', 'strict', 'semver', 'semantic', 'pep440'"
            )))
        }
    };
    Ok(match operator.as_str() {
        "==" | "=" | "eq" => ord == Ordering::Equal,
        "<" | "lt" => ord == Ordering::Less,
        "<=" | "le" => ord != Ordering::Greater,
        ">" | "gt" => ord == Ordering::Greater,
        ">=" | "ge" => ord != Ordering::Less,
        "!=" | "<>" | "ne" => ord != Ordering::Equal,
        other => {
            return Err(fail(format!(
                "Invalid operator type ({other}). Must be one of '==', '=', 'eq', '<', 'lt', '<=', 'le', '>', 'gt', '>=', 'ge', '!=', '<>', 'ne'"
            )))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Membership and truth

fn is_in(item: Value, seq: Value) -> Result<bool, Error> {
    if seq.is_undefined() || item.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    if let (Some(s), Some(sub)) = (seq.as_str(), item.as_str()) {
        return Ok(s.contains(sub));
    }
    if seq.kind() == ValueKind::String {
        return Err(fail(format!(
            "'in <string>' requires string as left operand, not {}",
            match item.kind() {
                ValueKind::Number if item.is_integer() => "int",
                ValueKind::Number => "float",
                ValueKind::Bool => "bool",
                ValueKind::None => "NoneType",
                ValueKind::Seq => "list",
                ValueKind::Map => "dict",
                _ => "object",
            }
        )));
    }
    Ok(seq.try_iter()?.any(|x| x == item))
}

fn subset(a: &Value, b: &Value) -> Result<bool, Error> {
    let big: Vec<Value> = b.try_iter()?.collect();
    Ok(a.try_iter()?.all(|x| big.contains(&x)))
}

fn truthy(v: Value, kwargs: Kwargs) -> Result<bool, Error> {
    let convert: Option<bool> = kwargs.get("convert_bool")?;
    kwargs.assert_all_used()?;
    if convert == Some(true) {
        let s = match v.kind() {
            ValueKind::String => Some(v.as_str().unwrap_or_default().to_lowercase()),
            ValueKind::Bool => Some(if v.is_true() { "true" } else { "false" }.to_string()),
            ValueKind::Number if v.is_integer() => Some(v.to_string()),
            _ => None,
        };
        if let Some(s) = s {
            match s.as_str() {
                "y" | "yes" | "on" | "1" | "true" | "t" | "1.0" => return Ok(true),
                "n" | "no" | "off" | "0" | "false" | "f" | "0.0" => return Ok(false),
                _ => {}
            }
        }
    }
    Ok(v.is_true())
}

// ---------------------------------------------------------------------------------------------
// Paths

fn path_test(v: &Value, f: impl Fn(&Path) -> bool) -> Result<bool, Error> {
    if v.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    let p = pyrepr::to_text(v);
    Ok(f(Path::new(&p)))
}

/// A test of a controller path: on a remote host, of its shipped copy; a path that was not
/// shipped is refused rather than answered from the host's files.
fn fs_test(name: &str, v: &Value, f: impl Fn(&Path) -> bool) -> Result<bool, Error> {
    if v.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    let p = pyrepr::to_text(v);
    Ok(f(&controller_path(name, &p)?))
}

fn controller_path(test: &str, p: &str) -> Result<std::path::PathBuf, Error> {
    crate::ctlfs::resolve(Path::new(p)).map_err(|e| {
        fail(format!(
            "the `{test}` test looks at the controller's files in Ansible, and SSH hosts have only the playbook directory and its roles: {e}"
        ))
    })
}

fn same_file(_state: &State, a: Value, b: Value) -> Result<bool, Error> {
    use std::os::unix::fs::MetadataExt;
    let (pa, pb) = (pyrepr::to_text(&a), pyrepr::to_text(&b));
    let (la, lb) = (
        controller_path("same_file", &pa)?,
        controller_path("same_file", &pb)?,
    );
    match (std::fs::metadata(la), std::fs::metadata(lb)) {
        (Ok(x), Ok(y)) => Ok(x.dev() == y.dev() && x.ino() == y.ino()),
        _ => Err(fail(format!("same_file: cannot stat '{pa}' or '{pb}'"))),
    }
}

fn is_mount(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return false;
    };
    if meta.file_type().is_symlink() {
        return false;
    }
    let parent = p.join("..");
    match std::fs::metadata(&parent) {
        Ok(pm) => pm.dev() != meta.dev() || pm.ino() == meta.ino(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod unit {
    use super::super::{Layer, Scope, Templar};
    use serde_json::json;

    fn check(expr: &str) -> Result<bool, String> {
        let t = Templar::new();
        let s = Scope::new(
            &t,
            vec![Layer::from_json(
                &json!({
                    "ok": {"changed": false, "failed": false, "rc": 0},
                    "bad": {"changed": true, "failed": true, "rc": 2},
                    "skip": {"skipped": true, "changed": false},
                    "loop": {"results": [{"changed": false}, {"changed": true}]},
                    "n": none_value(),
                }),
                false,
            )],
        );
        t.eval_condition(&json!(expr), &s).map_err(|e| e.0)
    }

    fn none_value() -> serde_json::Value {
        serde_json::Value::Null
    }

    fn yes(expr: &str) {
        assert_eq!(check(expr), Ok(true), "{expr}");
    }

    fn no(expr: &str) {
        assert_eq!(check(expr), Ok(false), "{expr}");
    }

    #[test]
    fn task_results() {
        yes("ok is succeeded");
        yes("ok is success");
        no("ok is failed");
        yes("bad is failed");
        yes("bad is changed");
        yes("bad is change");
        no("ok is changed");
        yes("skip is skipped");
        yes("skip is skip");
        no("ok is skipped");
        yes("loop is changed");
        yes("{} is not failed");
        yes("ok is reachable");
        assert_eq!(
            check("'x' is failed"),
            Err("The 'failed' test expects a dictionary".into())
        );
    }

    #[test]
    fn defined_none_and_types() {
        yes("nope is undefined");
        yes("ok is defined");
        yes("n is none");
        yes("'a' is string");
        yes("1 is number");
        yes("1 is integer");
        yes("1.5 is float");
        no("1 is float");
        yes("true is boolean");
        yes("{} is mapping");
        yes("[] is sequence");
        yes("'ab' is sequence");
        yes("'ab' is iterable");
        no("1 is iterable");
    }

    #[test]
    fn regexes() {
        yes("'foobar' is match('foo')");
        no("'foobar' is match('bar')");
        yes("'foobar' is search('bar')");
        yes("'FOO' is search('foo', ignorecase=True)");
        yes("'a\\nfoo' is match('^foo', multiline=True) or 'a\\nfoo' is search('^foo', multiline=True)");
        yes("'foobar' is regex('o+b')");
        no("'foobar' is regex('o+b', match_type='match')");
        assert_eq!(
            check("['a1', 'b2', 'a3'] | select('match', 'a') | list == ['a1', 'a3']"),
            Ok(true)
        );
    }

    #[test]
    fn versions() {
        yes("'1.10' is version('1.9', '>')");
        yes("'1.10' is version('1.9', 'gt')");
        yes("'2.0' is version('2.0', '==')");
        yes("'2.0' is version('2.0.0', '<')");
        yes("'1.0.0' is version('1.0', 'ge')");
        yes("'1.2.3' is version_compare('1.2.4', '<=')");
        yes("'1.2a1' is version('1.2', '<', strict=True)");
        yes("'1.2' is version('1.2.0', '==', strict=True)");
        yes("'1.0.0-rc.1' is version('1.0.0', '<', version_type='semver')");
        yes("'3.1' is version('3.0', '!=')");
        yes("'3.1' is version('3.0', '<>')");
        yes("'1.2.3' is version('1.2.3')");
        assert!(check("'1.0' is version('1.0', 'foo')")
            .is_err_and(|e| e.starts_with("Invalid operator type (foo)")));
        assert!(check("'1.a' is version('1.1', '<')")
            .is_err_and(|e| e.contains("not supported between instances of 'str' and 'int'")));
        assert!(check("'x' is version('1.1', '<', strict=True)")
            .is_err_and(|e| e.contains("invalid version number 'x'")));
        assert!(check("'' is version('1.1')")
            .is_err_and(|e| e == "Input version value cannot be empty"));
    }

    #[test]
    fn membership_and_truth() {
        yes("2 is in [1, 2]");
        yes("'b' is in 'abc'");
        yes("[1, 2] is contains(2)");
        yes("[1] is subset([1, 2])");
        yes("[1, 2] is superset([1])");
        no("[3] is subset([1, 2])");
        yes("'x' is truthy");
        yes("'' is falsy");
        yes("'no' is falsy(convert_bool=True)");
        no("'no' is falsy");
        yes("[0, 1] is any");
        no("[0, 1] is all");
        yes("[] is all");
    }

    #[test]
    fn paths() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap_or_else(|e| panic!("write: {e}"));
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap_or_else(|e| panic!("symlink: {e}"));
        let (d, f, l) = (dir.path().display(), file.display(), link.display());
        yes(&format!("'{f}' is file"));
        yes(&format!("'{d}' is directory"));
        no(&format!("'{d}' is file"));
        yes(&format!("'{l}' is link"));
        no(&format!("'{f}' is link"));
        yes(&format!("'{f}' is exists"));
        no(&format!("'{d}/nope' is exists"));
        yes("'/etc' is abs");
        no("'etc' is is_abs");
        yes("'/' is mount");
    }
}
