//! A scan of template source with Jinja's default delimiters, close enough to the lexer to find
//! where each `{{ … }}` ends and which parts of it are string literals.
//!
//! Like Jinja (and minijinja), a `}}` closes an expression only when every bracket opened
//! inside it is closed, and never inside a string literal: `{{ {'a': {'b': 1}} | x }}` is one
//! expression.

use std::borrow::Cow;

/// Where the expression that starts right after a `{{` (at `from`) ends: the byte offset of
/// its closing `}}` (or of the `-` in `-}}`), and the offset just past the `}}`.
fn variable_end(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = string_end(b, i)?,
            b'(' | b'[' | b'{' => {
                depth += 1;
                i += 1;
            }
            b'-' if depth == 0 && b[i + 1..].starts_with(b"}}") => return Some((i, i + 3)),
            b'}' if depth == 0 && b[i + 1..].starts_with(b"}") => return Some((i, i + 2)),
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// The offset just past the string literal whose opening quote is at `start`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The offset just past the tag or comment that starts at `start` with `{%` or `{#`.
fn tag_end(s: &str, start: usize) -> Option<usize> {
    let b = s.as_bytes();
    if b[start + 1] == b'#' {
        return s[start + 2..].find("#}").map(|p| start + 2 + p + 2);
    }
    let mut i = start + 2;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = string_end(b, i)?,
            b'%' if b[i + 1..].starts_with(b"}") => return Some(i + 2),
            _ => i += 1,
        }
    }
    None
}

/// Whether the tag `{% … %}` is `{% raw %}` (with optional whitespace control).
fn is_raw_tag(tag: &str, name: &str) -> bool {
    let inner = tag[2..tag.len() - 2].trim_matches(|c: char| c == '-' || c == '+');
    inner.trim() == name
}

/// The expression inside a template that is exactly one `{{ expr }}` and nothing else.
pub fn single_expression(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("{{")?;
    let (end, after) = variable_end(s, 2)?;
    if after != s.len() {
        return None;
    }
    let inner = &s[2..end];
    let inner = inner
        .strip_prefix(['-', '+'])
        .filter(|_| rest.starts_with(['-', '+']))
        .unwrap_or(inner);
    Some(inner.trim())
}

/// Ansible's `escape_backslashes`: backslashes in string literals inside `{{ … }}` are taken
/// literally (YAML already had its chance to interpret escapes), so `'\1'` stays backslash-one.
/// Statements (`{% … %}`), comments and raw blocks are left alone. The literals are rewritten
/// so that minijinja's own unescaping yields exactly the characters between the quotes.
pub fn escape_backslashes(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut copied = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'{' => {
                let Some((end, after)) = variable_end(s, i + 2) else {
                    break;
                };
                let mut j = i + 2;
                while j < end {
                    if b[j] == b'\'' || b[j] == b'"' {
                        let Some(close) = string_end(b, j) else {
                            break;
                        };
                        let raw = &s[j + 1..close - 1];
                        if raw.contains('\\') {
                            out.push_str(&s[copied..j]);
                            let quote = b[j] as char;
                            out.push(quote);
                            for c in raw.chars() {
                                if c == '\\' {
                                    out.push_str("\\\\");
                                } else if c == quote {
                                    out.push('\\');
                                    out.push(c);
                                } else {
                                    out.push(c);
                                }
                            }
                            out.push(quote);
                            copied = close;
                        }
                        j = close;
                    } else {
                        j += 1;
                    }
                }
                i = after;
            }
            b'%' | b'#' => {
                let Some(after) = tag_end(s, i) else {
                    break;
                };
                if b[i + 1] == b'%' && is_raw_tag(&s[i..after], "raw") {
                    // Skip to the end of the raw block.
                    let mut k = after;
                    let mut end = s.len();
                    while let Some(p) = s[k..].find("{%") {
                        let at = k + p;
                        match tag_end(s, at) {
                            Some(e) if is_raw_tag(&s[at..e], "endraw") => {
                                end = e;
                                break;
                            }
                            Some(e) => k = e,
                            None => break,
                        }
                    }
                    i = end;
                } else {
                    i = after;
                }
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

/// Whether the whole string looks like one template (Ansible's `is_possibly_all_template`): it
/// starts with a Jinja start delimiter and ends with an end delimiter.
pub fn is_possibly_all_template(s: &str) -> bool {
    ["{{", "{%", "{#"].iter().any(|m| s.starts_with(m))
        && ["}}", "%}", "#}"].iter().any(|m| s.ends_with(m))
}

/// Counts the newlines at the end of a string (`\n` only, as Ansible does).
pub fn trailing_newlines(s: &str) -> usize {
    s.len() - s.trim_end_matches('\n').len()
}

/// Template settings a `#jinja2:` first line may change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub pairs: Vec<(String, OverrideValue)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverrideValue {
    Bool(bool),
    Str(String),
}

const OVERRIDE_KEYS: &[&str] = &[
    "block_end_string",
    "block_start_string",
    "comment_end_string",
    "comment_start_string",
    "keep_trailing_newline",
    "line_comment_prefix",
    "line_statement_prefix",
    "lstrip_blocks",
    "newline_sequence",
    "trim_blocks",
    "variable_end_string",
    "variable_start_string",
];

/// The first-line marker of template overrides.
pub const OVERRIDE_MARK: &str = "#jinja2:";

/// Splits a `#jinja2: key: value, …` first line off a template, as ansible-core does: the
/// values are Python literals (`True`, `'[%'`).
pub fn split_overrides(s: &str) -> Result<(Option<Overrides>, &str), String> {
    const MARK: &str = OVERRIDE_MARK;
    let Some(rest) = s.strip_prefix(MARK) else {
        return Ok((None, s));
    };
    let Some(eol) = rest.find('\n') else {
        return Err(format!("Missing newline after {MARK:?} override."));
    };
    let (line, body) = (&rest[..eol], &rest[eol + 1..]);
    let mut pairs = Vec::new();
    for pair in line.split(',') {
        if pair.trim().is_empty() {
            return Err(format!("Empty {MARK:?} override pair not allowed."));
        }
        let Some((key, val)) = pair.split_once(':') else {
            return Err(format!(
                "Missing key-value separator `:` in {MARK:?} override pair {pair:?}."
            ));
        };
        let key = key.trim();
        if !OVERRIDE_KEYS.contains(&key) {
            return Err(format!("Invalid {MARK:?} override key {key:?}."));
        }
        let val = val.trim();
        let value = match val {
            "True" => OverrideValue::Bool(true),
            "False" => OverrideValue::Bool(false),
            _ => {
                let b = val.as_bytes();
                let quoted =
                    b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0];
                if !quoted {
                    return Err(format!("malformed {MARK:?} override value {val:?}"));
                }
                let inner = &val[1..val.len() - 1];
                let unescaped = minijinja_unescape(inner)
                    .ok_or_else(|| format!("malformed {MARK:?} override value {val:?}"))?;
                OverrideValue::Str(unescaped)
            }
        };
        pairs.push((key.to_string(), value));
    }
    Ok((Some(Overrides { pairs }), body))
}

/// Python string-literal escapes, enough for delimiters and newline sequences.
fn minijinja_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_expression_respects_brackets_and_strings() {
        assert_eq!(
            single_expression("{{ {'a': {'b': 1}} | combine(x) }}"),
            Some("{'a': {'b': 1}} | combine(x)")
        );
        assert_eq!(single_expression("{{ '}}' ~ x }}"), Some("'}}' ~ x"));
        assert_eq!(single_expression("{{ \"a\\\"}}\" }}"), Some("\"a\\\"}}\""));
        assert_eq!(single_expression("{{- x -}}"), Some("x"));
        assert_eq!(single_expression("{{ x }}"), Some("x"));
        assert_eq!(single_expression("{{ x - 1 }}"), Some("x - 1"));
        assert_eq!(single_expression("{{ a }} {{ b }}"), None);
        assert_eq!(single_expression("{{ a }}\n"), None);
        assert_eq!(single_expression(" {{ a }}"), None);
        assert_eq!(single_expression("{{ a }"), None);
        assert_eq!(single_expression("{% if x %}{{ a }}{% endif %}"), None);
    }

    #[test]
    fn backslashes_in_expression_strings_are_literal() {
        assert_eq!(
            escape_backslashes(r"{{ x | regex_replace('(a)', '\1') }}"),
            r"{{ x | regex_replace('(a)', '\\1') }}"
        );
        // An escaped quote keeps its backslash too, and still does not end the string.
        assert_eq!(escape_backslashes(r"{{ 'c\'d' }}"), r"{{ 'c\\\'d' }}");
        assert_eq!(escape_backslashes(r#"{{ "e\"f" }}"#), r#"{{ "e\\\"f" }}"#);
        // Outside expressions nothing changes.
        assert_eq!(
            escape_backslashes(r"a\1 {% set y = '\n' %}"),
            r"a\1 {% set y = '\n' %}"
        );
        assert_eq!(
            escape_backslashes(r"{# '\1' #}{{ '\d' }}"),
            r"{# '\1' #}{{ '\\d' }}"
        );
        assert_eq!(
            escape_backslashes(r"{% raw %}{{ '\1' }}{% endraw %}{{ '\2' }}"),
            r"{% raw %}{{ '\1' }}{% endraw %}{{ '\\2' }}"
        );
        assert_eq!(
            escape_backslashes(r"{{ {'k': '\1'} | combine(y) }} '\2'"),
            r"{{ {'k': '\\1'} | combine(y) }} '\2'"
        );
    }

    #[test]
    fn override_header() {
        let (o, body) =
            split_overrides("#jinja2: lstrip_blocks: True, variable_start_string: '[%'\nx")
                .unwrap();
        assert_eq!(body, "x");
        let o = o.unwrap();
        assert_eq!(
            o.pairs[0],
            ("lstrip_blocks".into(), OverrideValue::Bool(true))
        );
        assert_eq!(
            o.pairs[1],
            (
                "variable_start_string".into(),
                OverrideValue::Str("[%".into())
            )
        );
        assert!(split_overrides("#jinja2: nope: True\n").is_err());
        assert!(split_overrides("#jinja2: trim_blocks: True").is_err());
        assert_eq!(split_overrides("plain").unwrap(), (None, "plain"));
    }
}
