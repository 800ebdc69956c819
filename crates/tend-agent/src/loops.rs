//! Loop expansion: `loop:` and the `with_*` lookups, rendered to a list of items.

use std::path::PathBuf;

use tend_lang::{Scope, Templar};
use tend_proto::{LoopSpec, Value};

pub(crate) fn expand(
    spec: &LoopSpec,
    templar: &Templar,
    scope: &Scope,
    search: &[PathBuf],
) -> Result<Vec<Value>, String> {
    let render = |v: &Value| templar.render_value(v, scope).map_err(|e| e.0);
    match spec {
        LoopSpec::Items { value, flatten } => {
            let v = render(value)?;
            match v {
                Value::Array(items) if *flatten => Ok(items
                    .into_iter()
                    .flat_map(|i| match i {
                        Value::Array(inner) => inner,
                        other => vec![other],
                    })
                    .collect()),
                Value::Array(items) => Ok(items),
                Value::Null if *flatten => Ok(Vec::new()),
                other if *flatten => Ok(vec![other]),
                other => Err(format!(
                    "Invalid data passed to 'loop', it requires a list, got this instead: {}. Hint: If you passed a list/dict of just one element, try adding wantlist=True to your lookup invocation or use q/query instead of lookup.",
                    short(&other)
                )),
            }
        }
        LoopSpec::Dict(value) => match render(value)? {
            Value::Object(m) => Ok(m
                .into_iter()
                .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                .collect()),
            other => Err(format!("with_dict expects a dict, got {}", short(&other))),
        },
        LoopSpec::Fileglob(value) => {
            let pats = match render(value)? {
                Value::Array(a) => a,
                other => vec![other],
            };
            let mut out = Vec::new();
            for p in pats {
                let p = p
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| p.to_string());
                let candidates: Vec<String> = if p.starts_with('/') {
                    vec![p.clone()]
                } else {
                    search
                        .iter()
                        .flat_map(|d| [d.join("files").join(&p), d.join(&p)])
                        .map(|c| c.to_string_lossy().to_string())
                        .collect()
                };
                for c in candidates {
                    // Controller paths: on a remote host, globbed in the shipped bundle.
                    let mut found: Vec<String> = tend_lang::ctlfs::glob(&c)
                        .map_err(|e| match e {
                            tend_lang::ctlfs::GlobError::Pattern { msg, .. } => {
                                format!("bad glob pattern {p}: {msg}")
                            }
                            other => other.to_string(),
                        })?
                        .into_iter()
                        .filter(|p| tend_lang::ctlfs::is_file(p))
                        .map(|p| p.to_string_lossy().to_string())
                        .collect();
                    if !found.is_empty() {
                        found.sort();
                        out.extend(found.into_iter().map(Value::String));
                        break;
                    }
                }
            }
            Ok(out)
        }
        LoopSpec::Sequence(value) => {
            let v = render(value)?;
            let s = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            sequence(&s)
        }
        LoopSpec::Together(value) => {
            let lists = lists_of(render(value)?)?;
            let n = lists.iter().map(Vec::len).max().unwrap_or(0);
            Ok((0..n)
                .map(|i| {
                    Value::Array(
                        lists
                            .iter()
                            .map(|l| l.get(i).cloned().unwrap_or(Value::Null))
                            .collect(),
                    )
                })
                .collect())
        }
        LoopSpec::Nested(value) => {
            let lists = lists_of(render(value)?)?;
            let mut acc: Vec<Vec<Value>> = vec![Vec::new()];
            for l in lists {
                let mut next = Vec::with_capacity(acc.len() * l.len());
                for prefix in &acc {
                    for x in &l {
                        let mut p = prefix.clone();
                        p.push(x.clone());
                        next.push(p);
                    }
                }
                acc = next;
            }
            Ok(acc.into_iter().map(Value::Array).collect())
        }
        LoopSpec::Subelements(value) => {
            let v = render(value)?;
            let Value::Array(parts) = v else {
                return Err("with_subelements expects [list, 'key']".into());
            };
            let (Some(Value::Array(items)), Some(Value::String(key))) =
                (parts.first(), parts.get(1))
            else {
                return Err("with_subelements expects [list, 'key']".into());
            };
            let skip_missing = parts
                .get(2)
                .and_then(|f| f.get("skip_missing"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut out = Vec::new();
            for item in items {
                match item.get(key) {
                    Some(Value::Array(subs)) => {
                        for s in subs {
                            out.push(Value::Array(vec![item.clone(), s.clone()]));
                        }
                    }
                    None if skip_missing => {}
                    _ => {
                        return Err(format!(
                            "could not find '{key}' key in iterated item '{}'",
                            short(item)
                        ))
                    }
                }
            }
            Ok(out)
        }
    }
}

fn lists_of(v: Value) -> Result<Vec<Vec<Value>>, String> {
    match v {
        Value::Array(items) => Ok(items
            .into_iter()
            .map(|i| match i {
                Value::Array(a) => a,
                other => vec![other],
            })
            .collect()),
        other => Err(format!("expected a list of lists, got {}", short(&other))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(200).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

/// `with_sequence`: `start=1 end=10 stride=2 format=web%02d`, `count=3`, or `1-10/2:fmt`.
fn sequence(s: &str) -> Result<Vec<Value>, String> {
    let (mut start, mut end, mut stride, mut count, mut format) =
        (1i64, None, 1i64, None, "%d".to_string());
    let parse = |v: &str| -> Result<i64, String> {
        let v = v.trim();
        if let Some(h) = v.strip_prefix("0x") {
            i64::from_str_radix(h, 16).map_err(|e| e.to_string())
        } else {
            v.parse()
                .map_err(|_| format!("can't parse '{v}' as a number in with_sequence"))
        }
    };
    if s.contains('=') {
        for part in s.split_whitespace() {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("bad with_sequence argument '{part}'"))?;
            match k {
                "start" => start = parse(v)?,
                "end" => end = Some(parse(v)?),
                "stride" => stride = parse(v)?,
                "count" => count = Some(parse(v)?),
                "format" => format = v.to_string(),
                _ => return Err(format!("unrecognized with_sequence argument '{k}'")),
            }
        }
    } else {
        let (range, fmt) = match s.split_once(':') {
            Some((r, f)) => (r, Some(f)),
            None => (s, None),
        };
        if let Some(f) = fmt {
            format = f.to_string();
        }
        let (range, st) = match range.split_once('/') {
            Some((r, st)) => (r, Some(parse(st)?)),
            None => (range, None),
        };
        if let Some(st) = st {
            stride = st;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                start = parse(a)?;
                end = Some(parse(b)?);
            }
            None => end = Some(parse(range)?),
        }
    }
    if let Some(c) = count {
        if end.is_some() {
            return Err("can't specify both count and end in with_sequence".into());
        }
        end = Some(start + (c - 1) * stride);
        if c == 0 {
            return Ok(Vec::new());
        }
    }
    let end = end.ok_or("must specify count or end in with_sequence")?;
    if stride == 0 {
        return Err("stride must not be 0 in with_sequence".into());
    }
    let mut out = Vec::new();
    let mut i = start;
    while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
        out.push(Value::String(printf(&format, i)));
        i += stride;
        if out.len() > 1_000_000 {
            return Err("with_sequence produces more than a million items".into());
        }
    }
    Ok(out)
}

/// The subset of printf that with_sequence formats use: `%d`, `%0Nd`, `%x`, `%o`, `%%`.
fn printf(fmt: &str, n: i64) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '-' {
                spec.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let width: usize = spec.trim_start_matches(['0', '-']).parse().unwrap_or(0);
        let zero = spec.starts_with('0');
        let body = match chars.next() {
            Some('d') | Some('i') => n.to_string(),
            Some('x') => format!("{n:x}"),
            Some('X') => format!("{n:X}"),
            Some('o') => format!("{n:o}"),
            Some('%') => "%".to_string(),
            Some(other) => format!("%{spec}{other}"),
            None => "%".to_string(),
        };
        if body.len() < width {
            let pad = if zero { '0' } else { ' ' };
            out.extend(std::iter::repeat_n(pad, width - body.len()));
        }
        out.push_str(&body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences() {
        let v = sequence("start=1 end=3 format=web%02d").unwrap();
        assert_eq!(
            v,
            vec![
                Value::from("web01"),
                Value::from("web02"),
                Value::from("web03")
            ]
        );
        assert_eq!(
            sequence("count=2").unwrap(),
            vec![Value::from("1"), Value::from("2")]
        );
        assert_eq!(sequence("2-6/2").unwrap().len(), 3);
    }
}
