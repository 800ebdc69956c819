//! YAML with source locations.
//!
//! Every node of a parsed document keeps the file, line and column it came from, so that later
//! stages (playbook loading, argument checking, templating) can point at what the user wrote.
//! Parsing is bounded: alias expansion, nesting depth and document size have budgets, and
//! duplicate keys are an error rather than a silent overwrite.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use tend_proto::{Loc, Value};

use crate::diag::Diag;

/// A YAML node and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            NodeValue::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Null)
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A scalar as text, the way Ansible would see it in a string context.
    pub fn scalar_string(&self) -> Option<String> {
        match &self.value {
            NodeValue::Str(s) => Some(s.clone()),
            NodeValue::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
            NodeValue::Int(i) => Some(i.to_string()),
            NodeValue::Float(f) => Some(f.to_string()),
            NodeValue::Null => Some(String::new()),
            _ => None,
        }
    }

    /// Plain data, dropping locations.
    pub fn to_value(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_string().unwrap_or_default(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// Limits that keep a hostile or broken file from exhausting the controller.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;
const MAX_DEPTH: usize = 200;

/// Parses one YAML document. An empty document is `Null`.
pub fn parse(file: &str, text: &str) -> Result<Node, Diag> {
    let file: Arc<str> = Arc::from(file);
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(Diag::new(
            Loc::new(file.clone(), 0, 0),
            format!("file is larger than {} MiB", MAX_DOCUMENT_BYTES >> 20),
        )
        .with_hint("split it into several files"));
    }
    if crate::vault::is_encrypted(text.as_bytes()) {
        // A whole vault-encrypted file: every string in it is a secret.
        let plain = crate::vault::decrypt(text.as_bytes(), &Loc::new(file.clone(), 1, 1))?;
        let plain = String::from_utf8(plain).map_err(|_| {
            Diag::new(
                Loc::new(file.clone(), 1, 1),
                "vault: the decrypted file is not UTF-8 text",
            )
        })?;
        let node = parse(&file[..], &plain)?;
        reveal_strings(&node);
        return Ok(node);
    }
    if let Some((line, col)) = find_tab_indent(text) {
        return Err(Diag::new(
            Loc::new(file, line, col),
            "a tab character is used for indentation; YAML allows only spaces",
        )
        .with_hint("replace the tab with spaces"));
    }
    if text.trim().is_empty() || text.lines().all(is_blank_or_comment) {
        return Ok(Node {
            value: NodeValue::Null,
            loc: Loc::new(file, 1, 1),
        });
    }
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.strict_booleans = false;
    options.legacy_octal_numbers = true;
    options.with_snippet = false;
    let raw: Spanned<Raw> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line() as u32, l.column() as u32))
            .unwrap_or((0, 0));
        Diag::new(
            Loc::new(file.clone(), line, col),
            clean_message(&e.to_string()),
        )
        .with_hint("fix the YAML syntax at this place")
    })?;
    let node = convert(raw, &file, text, 0)?;
    Ok(node)
}

/// Marks every string of a decrypted document as a secret.
fn reveal_strings(n: &Node) {
    match &n.value {
        NodeValue::Str(s) => crate::vault::reveal(s),
        NodeValue::Seq(items) => items.iter().for_each(reveal_strings),
        NodeValue::Map(entries) => entries.iter().for_each(|(_, v)| reveal_strings(v)),
        _ => {}
    }
}

/// Whether the scalar at `loc` carries the `!vault` tag (`key: !vault |` and its content).
fn is_vault_tagged(text: &str, loc: &serde_saphyr::Location) -> bool {
    let Some(start) = loc
        .span()
        .byte_offset()
        .and_then(|o| usize::try_from(o).ok())
    else {
        return false;
    };
    let Some(before) = text.get(..start) else {
        return false;
    };
    let before = before.trim_end();
    let before = before
        .strip_suffix(|c: char| c == '|' || c == '>')
        .or_else(|| {
            let t = before.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
            t.strip_suffix(['|', '>'])
        })
        .unwrap_or(before)
        .trim_end();
    before.ends_with("!vault")
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
}

/// A tab in the leading whitespace of a non-blank line (outside block scalars this is always an
/// error in YAML, and the parser's own message for it is obscure).
fn find_tab_indent(text: &str) -> Option<(u32, u32)> {
    let mut in_block_scalar: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        let lead = &line[..indent];
        let rest = line[indent..].trim_end();
        if let Some(min) = in_block_scalar {
            if rest.is_empty() || lead.len() > min && !lead.starts_with('\t') {
                continue;
            }
            in_block_scalar = None;
        }
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if let Some(pos) = lead.find('\t') {
            return Some((i as u32 + 1, pos as u32 + 1));
        }
        if rest.ends_with('|')
            || rest.ends_with('>')
            || rest.ends_with("|-")
            || rest.ends_with(">-")
            || rest.ends_with("|+")
            || rest.ends_with(">+")
        {
            in_block_scalar = Some(lead.len());
        }
    }
    None
}

fn clean_message(msg: &str) -> String {
    // serde-saphyr appends " at line X column Y"; we print the location ourselves.
    let first = msg.lines().next().unwrap_or(msg);
    match first.find(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

fn convert(raw: Spanned<Raw>, file: &Arc<str>, text: &str, depth: usize) -> Result<Node, Diag> {
    let loc = Loc::new(
        file.clone(),
        raw.referenced.line() as u32,
        raw.referenced.column() as u32,
    );
    if depth > MAX_DEPTH {
        return Err(
            Diag::new(loc, format!("nesting is deeper than {MAX_DEPTH} levels"))
                .with_hint("flatten the data structure"),
        );
    }
    let source = scalar_source(text, &raw.defined);
    if let Raw::Str(s) = &raw.value {
        if s.trim_start().starts_with(crate::vault::HEADER) && is_vault_tagged(text, &raw.defined) {
            let plain = crate::vault::decrypt_scalar(s, &loc)?;
            return Ok(Node {
                value: NodeValue::Str(plain),
                loc,
            });
        }
    }
    let value = match raw.value {
        Raw::Null => NodeValue::Null,
        // serde-saphyr types plain scalars by YAML 1.1 rules of its own (`y` is a boolean,
        // `1e3` a float); ansible-core reads YAML with PyYAML, whose resolver decides here.
        Raw::Bool(_) | Raw::Int(_) | Raw::Float(_) if source.is_some() => {
            let src = source.unwrap_or_default();
            pyyaml_resolve(src).unwrap_or_else(|| NodeValue::Str(src.to_string()))
        }
        Raw::Bool(b) => NodeValue::Bool(b),
        Raw::Int(i) => NodeValue::Int(i),
        Raw::Float(f) => NodeValue::Float(f),
        Raw::Str(s) => match source {
            Some(src) if src == s && is_plain_at(text, &raw.defined) => match pyyaml_resolve(&s) {
                Some(v @ (NodeValue::Int(_) | NodeValue::Float(_))) => v,
                _ => NodeValue::Str(s),
            },
            _ => NodeValue::Str(s),
        },
        Raw::Seq(items) => NodeValue::Seq(
            items
                .into_iter()
                .map(|n| convert(n, file, text, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Raw::Map(entries) => NodeValue::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    Ok((
                        convert(k, file, text, depth + 1)?,
                        convert(v, file, text, depth + 1)?,
                    ))
                })
                .collect::<Result<_, Diag>>()?,
        ),
    };
    Ok(Node { value, loc })
}

/// The source text of the scalar defined at `loc`.
fn scalar_source<'t>(text: &'t str, loc: &serde_saphyr::Location) -> Option<&'t str> {
    let span = loc.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    text.get(start..start.checked_add(len)?)
}

/// Whether the scalar at `loc` is written plain: not quoted, not a block scalar's content, not
/// explicitly tagged.
fn is_plain_at(text: &str, loc: &serde_saphyr::Location) -> bool {
    let Some(start) = loc
        .span()
        .byte_offset()
        .and_then(|o| usize::try_from(o).ok())
    else {
        return false;
    };
    let Some(before) = text.get(..start) else {
        return false;
    };
    if text[start..].starts_with(['\'', '"', '|', '>']) {
        return false;
    }
    let same_line = before.rsplit('\n').next().unwrap_or_default();
    if same_line.trim().is_empty() {
        // Content on a line of its own: a block scalar's when the line that introduces it ends
        // with an indicator (`|`, `>-`, `|2` …), comments aside.
        let previous = before.trim_end().rsplit('\n').next().unwrap_or_default();
        let previous = match previous.find(" #") {
            Some(i) => &previous[..i],
            None => previous,
        }
        .trim_end();
        let indicator =
            previous.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
        if indicator.ends_with(['|', '>']) {
            return false;
        }
        return !previous
            .split_whitespace()
            .last()
            .is_some_and(|t| t.starts_with('!'));
    }
    !same_line
        .split_whitespace()
        .last()
        .is_some_and(|t| t.starts_with('!'))
}

/// PyYAML's implicit resolver (YAML 1.1) for a plain scalar: the value it types, or `None` for
/// a string. Booleans are exactly `yes/no/true/false/on/off` in lower, Title or UPPER case
/// (`y` and `n` are strings), ints take `0b`, `0x`, leading-zero octal, `_` and base 60
/// (`1:30` is 90), floats need a dot (`1e3` is a string) and a signed exponent.
pub fn pyyaml_resolve(s: &str) -> Option<NodeValue> {
    use std::sync::OnceLock;
    static INT: OnceLock<regex::Regex> = OnceLock::new();
    static FLOAT: OnceLock<regex::Regex> = OnceLock::new();
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Some(NodeValue::Bool(true))
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Some(NodeValue::Bool(false))
        }
        "" | "~" | "null" | "Null" | "NULL" => return Some(NodeValue::Null),
        _ => {}
    }
    let int = INT.get_or_init(|| {
        regex::Regex::new(
            r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
        )
        .expect("int pattern")
    });
    let float = FLOAT.get_or_init(|| {
        regex::Regex::new(
            r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        )
        .expect("float pattern")
    });
    let clean = s.replace('_', "");
    let (neg, digits) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    if int.is_match(s) {
        let parsed = if digits == "0" {
            Some(0i128)
        } else if let Some(b) = digits.strip_prefix("0b") {
            i128::from_str_radix(b, 2).ok()
        } else if let Some(x) = digits.strip_prefix("0x") {
            i128::from_str_radix(x, 16).ok()
        } else if digits.contains(':') {
            let mut value = 0i128;
            for part in digits.split(':') {
                value = value
                    .checked_mul(60)?
                    .checked_add(part.parse::<i128>().ok()?)?;
            }
            Some(value)
        } else if let Some(o) = digits.strip_prefix('0') {
            i128::from_str_radix(o, 8).ok()
        } else {
            digits.parse::<i128>().ok()
        };
        let value = parsed.map(|v| if neg { -v } else { v });
        return Some(match value.and_then(|v| i64::try_from(v).ok()) {
            Some(v) => NodeValue::Int(v),
            None => NodeValue::Float(sign * digits.parse::<f64>().unwrap_or(f64::INFINITY)),
        });
    }
    if float.is_match(s) {
        let lower = digits.to_ascii_lowercase();
        let value = if lower == ".inf" {
            f64::INFINITY
        } else if lower == ".nan" {
            return Some(NodeValue::Float(f64::NAN));
        } else if lower.contains(':') {
            let mut value = 0.0;
            for part in lower.split(':') {
                value = value * 60.0 + part.parse::<f64>().ok()?;
            }
            value
        } else {
            lower.parse::<f64>().ok()?
        };
        return Some(NodeValue::Float(sign * value));
    }
    None
}

/// The tree serde-saphyr builds for us, each child wrapped in `Spanned`.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v)
            .map(Raw::Int)
            .unwrap_or(Raw::Float(v as f64)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(i64::try_from(v)
            .map(Raw::Int)
            .unwrap_or(Raw::Float(v as f64)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        Ok(i64::try_from(v)
            .map(Raw::Int)
            .unwrap_or(Raw::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        String::from_utf8(v.to_vec())
            .map(Raw::Str)
            .map_err(|_| E::custom("binary data is not valid UTF-8"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Spanned<Raw>, Spanned<Raw>>()? {
            entries.push((k, v));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_locations_of_nested_nodes() {
        let n = parse("p.yml", "- hosts: all\n  tasks:\n    - debug: msg=hi\n").unwrap();
        let play = &n.as_seq().unwrap()[0];
        let tasks = play.get("tasks").unwrap();
        let t0 = &tasks.as_seq().unwrap()[0];
        assert_eq!((t0.loc.line, t0.loc.col), (3, 7));
        let (k, v) = &t0.as_map().unwrap()[0];
        assert_eq!(k.as_str(), Some("debug"));
        assert_eq!(v.as_str(), Some("msg=hi"));
    }

    #[test]
    fn yaml11_booleans_are_booleans() {
        let n = parse("x.yml", "a: yes\nb: off\nc: 'yes'\n").unwrap();
        assert_eq!(n.get("a").unwrap().value, NodeValue::Bool(true));
        assert_eq!(n.get("b").unwrap().value, NodeValue::Bool(false));
        assert_eq!(n.get("c").unwrap().value, NodeValue::Str("yes".into()));
    }

    #[test]
    fn scalars_are_typed_as_pyyaml_types_them() {
        let n = parse(
            "x.yml",
            "a: y\nb: n\nc: yEs\nd: ON\ne: 1e3\nf: 1.0e+3\ng: 0o17\nh: 0644\ni: 1:30\nj: 1_000\n\
             k: 0x1F\nl: 08\nm: '1:30'\nn: |-\n  1:30\no: !!str 1:30\np: [Off, -1:30, .5, 0b101]\nq: 1.0e3\n",
        )
        .unwrap();
        let v = |k: &str| n.get(k).unwrap().value.clone();
        assert_eq!(v("a"), NodeValue::Str("y".into()));
        assert_eq!(v("b"), NodeValue::Str("n".into()));
        assert_eq!(v("c"), NodeValue::Str("yEs".into()));
        assert_eq!(v("d"), NodeValue::Bool(true));
        assert_eq!(v("e"), NodeValue::Str("1e3".into()));
        assert_eq!(v("f"), NodeValue::Float(1000.0));
        assert_eq!(v("g"), NodeValue::Str("0o17".into()));
        assert_eq!(v("h"), NodeValue::Int(420));
        assert_eq!(v("i"), NodeValue::Int(90));
        assert_eq!(v("j"), NodeValue::Int(1000));
        assert_eq!(v("k"), NodeValue::Int(31));
        assert_eq!(v("l"), NodeValue::Str("08".into()));
        assert_eq!(v("m"), NodeValue::Str("1:30".into()));
        assert_eq!(v("n"), NodeValue::Str("1:30".into()));
        assert_eq!(v("o"), NodeValue::Str("1:30".into()));
        assert_eq!(v("q"), NodeValue::Str("1.0e3".into()));
        let p: Vec<NodeValue> = n
            .get("p")
            .unwrap()
            .as_seq()
            .unwrap()
            .iter()
            .map(|x| x.value.clone())
            .collect();
        assert_eq!(
            p,
            vec![
                NodeValue::Bool(false),
                NodeValue::Int(-90),
                NodeValue::Float(0.5),
                NodeValue::Int(5)
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_an_error_with_a_location() {
        let e = parse("d.yml", "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.loc.line, 3, "{e}");
        assert!(e.msg.contains("duplicate"), "{e}");
    }

    #[test]
    fn tabs_are_reported_where_they_are() {
        let e = parse("t.yml", "a:\n\tb: 1\n").unwrap_err();
        assert_eq!((e.loc.line, e.loc.col), (2, 1));
    }

    #[test]
    fn tabs_inside_block_scalars_are_content() {
        let n = parse("t.yml", "a: |\n  x\n  \ty\nb: 1\n").unwrap();
        assert_eq!(n.get("a").unwrap().as_str(), Some("x\n\ty\n"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='z' {
            s.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = c;
        }
        assert!(parse("bomb.yml", &s).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let s = "[".repeat(100_000);
        assert!(parse("deep.yml", &s).is_err());
    }

    #[test]
    fn vault_files_and_inline_vault_values_are_decrypted() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vault/");
        let read = |n: &str| std::fs::read_to_string(format!("{dir}{n}")).unwrap();
        crate::vault::install(crate::vault::Keyring {
            secrets: vec![crate::vault::VaultSecret::new("default", "correct horse")],
        });
        let n = parse("v11.yml", &read("v11.yml")).unwrap();
        assert_eq!(
            n.get("db_password").unwrap().as_str(),
            Some("vault-canary-s3cret")
        );
        assert_eq!(n.get("port").unwrap().value, NodeValue::Int(5432));
        let text = format!("{}other: 1\n", read("inline.yml"));
        let n = parse("inline.yml", &text).unwrap();
        assert_eq!(
            n.get("api_token").unwrap().as_str(),
            Some("inline-canary-42")
        );
        assert!(n.get("api_token").unwrap().loc.line <= 2);
        let revealed = crate::vault::revealed();
        assert!(revealed.contains(&"vault-canary-s3cret".to_string()));
        assert!(revealed.contains(&"inline-canary-42".to_string()));
        // Untagged text that looks like an envelope stays text.
        let n = parse("x.yml", "a: \"$ANSIBLE_VAULT;1.1;AES256\"\n").unwrap();
        assert_eq!(
            n.get("a").unwrap().as_str(),
            Some("$ANSIBLE_VAULT;1.1;AES256")
        );
        // A wrong password names the file and line.
        let e = parse("v12.yml", &read("v12.yml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("v12.yml:1:1: vault: HMAC check failed"),
            "{e}"
        );
        assert!(e.msg.contains("vault id 'prod'"), "{e}");
    }

    #[test]
    fn empty_document_is_null() {
        assert!(parse("e.yml", "# nothing\n---\n").unwrap().is_null());
    }
}
