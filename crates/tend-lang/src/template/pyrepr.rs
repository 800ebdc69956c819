//! Python's way of printing values, which is what Ansible users see: `True`, `None`,
//! `['a', 'b']`, `{'k': 1}`.

use minijinja::value::ValueKind;
use minijinja::{Output, State, Value};

/// The formatter for `{{ … }}` output. `None` prints nothing (ansible-core drops `None` nodes).
pub fn format(out: &mut Output, _state: &mut State, value: &Value) -> Result<(), minijinja::Error> {
    if value.is_none() {
        return Ok(());
    }
    let text = to_text(value);
    let done = super::nodes::mark_value(value);
    let res = out.write_str(&text);
    if let Some(done) = done {
        done();
    }
    res.map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed"))
}

/// A value as text: strings as they are, everything else as Python's `str()` would print it.
pub fn to_text(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => repr(v),
    }
}

/// Python's `repr()` of a value.
pub fn repr(v: &Value) -> String {
    match v.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".into(),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.into(),
        ValueKind::String => quote(v.as_str().unwrap_or_default()),
        ValueKind::Number => {
            let s = v.to_string();
            if let Ok(f) = s.parse::<f64>() {
                if s.contains('.') || s.contains('e') {
                    if f.fract() == 0.0 && f.abs() < 1e16 {
                        return format!("{f:.1}");
                    }
                    return s;
                }
            }
            s
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| it.map(|x| repr(&x)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let mut parts = Vec::new();
            if let Ok(keys) = v.try_iter() {
                for k in keys {
                    let val = v.get_item(&k).unwrap_or_default();
                    parts.push(format!("{}: {}", repr(&k), repr(&val)));
                }
            }
            format!("{{{}}}", parts.join(", "))
        }
        _ => v.to_string(),
    }
}

fn quote(s: &str) -> String {
    let use_double = s.contains('\'') && !s.contains('"');
    let q = if use_double { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}
