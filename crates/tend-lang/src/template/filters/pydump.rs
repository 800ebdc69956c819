//! Serializers that print exactly what Python prints: `json.dumps` (for `to_json`,
//! `to_nice_json`) and PyYAML's `yaml.dump` with Ansible's dumper (for `to_yaml`,
//! `to_nice_yaml`), including PyYAML's choice of scalar styles and its line folding.

use std::cmp::Ordering;

use minijinja::value::ValueKind;
use minijinja::Value;
use regex::Regex;

/// Python's `repr()` of a float.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let body = if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                format!("{}{}.0", digits, "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        } else {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        };
        format!("{sign}{body}")
    } else {
        let rest = if digits.len() > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{}{rest}e{esign}{:02}", &digits[..1], exp.abs())
    }
}

fn is_float(v: &Value) -> bool {
    v.kind() == ValueKind::Number && !v.is_integer()
}

fn as_f64(v: &Value) -> f64 {
    f64::try_from(v.clone()).unwrap_or(f64::NAN)
}

/// The entries of a map value, optionally sorted by key like Python's `sort_keys`.
fn entries(v: &Value, sort: bool) -> Vec<(Value, Value)> {
    let mut out: Vec<(Value, Value)> = v
        .try_iter()
        .map(|it| {
            it.map(|k| {
                let val = v.get_item(&k).unwrap_or_default();
                (k, val)
            })
            .collect()
        })
        .unwrap_or_default();
    if sort {
        out.sort_by(|a, b| compare_keys(&a.0, &b.0));
    }
    out
}

fn compare_keys(a: &Value, b: &Value) -> Ordering {
    match (a.as_str(), b.as_str()) {
        (Some(x), Some(y)) => x.cmp(y),
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

fn items(v: &Value) -> Vec<Value> {
    v.try_iter().map(|it| it.collect()).unwrap_or_default()
}

fn is_map(v: &Value) -> bool {
    v.kind() == ValueKind::Map
}

fn is_seq(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// Options of Python's `json.dumps`.
pub struct JsonOpts {
    pub indent: Option<usize>,
    pub sort_keys: bool,
    pub ensure_ascii: bool,
    pub item_sep: String,
    pub key_sep: String,
}

impl JsonOpts {
    pub fn new(indent: Option<usize>, sort_keys: bool) -> Self {
        JsonOpts {
            indent,
            sort_keys,
            ensure_ascii: true,
            item_sep: if indent.is_some() { "," } else { ", " }.into(),
            key_sep: ": ".into(),
        }
    }
}

pub fn json_dumps(v: &Value, o: &JsonOpts) -> String {
    let mut out = String::new();
    json_value(v, o, 0, &mut out);
    out
}

fn json_str(s: &str, ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_newline(o: &JsonOpts, level: usize, out: &mut String) {
    if let Some(n) = o.indent {
        out.push('\n');
        out.push_str(&" ".repeat(n * level));
    }
}

fn json_value(v: &Value, o: &JsonOpts, level: usize, out: &mut String) {
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number if is_float(v) => {
            let f = as_f64(v);
            if f.is_nan() {
                out.push_str("NaN");
            } else if f.is_infinite() {
                out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
            } else {
                out.push_str(&py_float(f));
            }
        }
        ValueKind::Number => out.push_str(&v.to_string()),
        ValueKind::String => json_str(v.as_str().unwrap_or_default(), o.ensure_ascii, out),
        ValueKind::Map => {
            let es = entries(v, o.sort_keys);
            if es.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, val)) in es.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                json_newline(o, level + 1, out);
                let key = match k.kind() {
                    ValueKind::String => k.as_str().unwrap_or_default().to_string(),
                    ValueKind::Bool => if k.is_true() { "true" } else { "false" }.to_string(),
                    ValueKind::None => "null".to_string(),
                    ValueKind::Number if is_float(k) => py_float(as_f64(k)),
                    _ => k.to_string(),
                };
                json_str(&key, o.ensure_ascii, out);
                out.push_str(&o.key_sep);
                json_value(val, o, level + 1, out);
            }
            json_newline(o, level, out);
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let xs = items(v);
            if xs.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                json_newline(o, level + 1, out);
                json_value(x, o, level + 1, out);
            }
            json_newline(o, level, out);
            out.push(']');
        }
        _ => json_str(&v.to_string(), o.ensure_ascii, out),
    }
}

// ---------------------------------------------------------------------------------------------
// YAML

/// Options of `yaml.dump` as Ansible calls it (always `allow_unicode=True`).
pub struct YamlOpts {
    pub indent: usize,
    /// `default_flow_style`: `None` puts collections of scalars in flow style.
    pub flow: Option<bool>,
    pub width: usize,
    pub sort_keys: bool,
    pub explicit_start: bool,
}

pub fn yaml_dump(v: &Value, o: &YamlOpts) -> String {
    let indent = if (2..10).contains(&o.indent) {
        o.indent
    } else {
        2
    };
    let width = if o.width > indent * 2 { o.width } else { 80 };
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
        best_indent: indent,
        best_width: width,
        sort: o.sort_keys,
        flow_default: o.flow,
    };
    if o.explicit_start {
        e.out.push_str("---");
        e.column = 3;
        e.whitespace = false;
        e.indention = false;
    }
    e.node(v, None, Ctx::Root, 0);
    e.line_break();
    e.out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Root,
    /// A mapping value (sequences here are written without extra indentation).
    MapValue,
    SeqItem,
    Key,
}

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    best_indent: usize,
    best_width: usize,
    sort: bool,
    flow_default: Option<bool>,
}

enum Style {
    Plain,
    Single,
    Double,
}

struct Analysis {
    empty: bool,
    multiline: bool,
    allow_flow_plain: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_ws(c: Option<char>) -> bool {
    matches!(
        c,
        None | Some('\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
    )
}

fn analyze(s: &str) -> Analysis {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return Analysis {
            empty: true,
            multiline: false,
            allow_flow_plain: false,
            allow_block_plain: true,
            allow_single_quoted: true,
        };
    }
    let (mut block_ind, mut flow_ind, mut line_breaks, mut special) = (false, false, false, false);
    let (mut lead_space, mut lead_break, mut trail_space, mut trail_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_ind = true;
        flow_ind = true;
    }
    let mut preceded_ws = true;
    let mut followed_ws = chars.len() == 1 || is_ws(chars.get(1).copied());
    let (mut prev_space, mut prev_break) = (false, false);
    let last = chars.len() - 1;
    for (i, &ch) in chars.iter().enumerate() {
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_ind = true;
                block_ind = true;
            }
            if ch == '?' || ch == ':' {
                flow_ind = true;
                if followed_ws {
                    block_ind = true;
                }
            }
            if ch == '-' && followed_ws {
                flow_ind = true;
                block_ind = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_ind = true;
            }
            if ch == ':' {
                flow_ind = true;
                if followed_ws {
                    block_ind = true;
                }
            }
            if ch == '#' && preceded_ws {
                flow_ind = true;
                block_ind = true;
            }
        }
        if is_break(ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || (' '..='~').contains(&ch)) {
            let printable_unicode = (ch == '\u{85}'
                || ('\u{A0}'..='\u{D7FF}').contains(&ch)
                || ('\u{E000}'..='\u{FFFD}').contains(&ch)
                || ('\u{10000}'..'\u{10FFFF}').contains(&ch))
                && ch != '\u{FEFF}';
            if !printable_unicode {
                special = true;
            }
        }
        if ch == ' ' {
            if i == 0 {
                lead_space = true;
            }
            if i == last {
                trail_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(ch) {
            if i == 0 {
                lead_break = true;
            }
            if i == last {
                trail_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = is_ws(Some(ch));
        followed_ws = is_ws(chars.get(i + 2).copied());
    }
    let mut a = Analysis {
        empty: false,
        multiline: line_breaks,
        allow_flow_plain: true,
        allow_block_plain: true,
        allow_single_quoted: true,
    };
    if lead_space || lead_break || trail_space || trail_break {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
    }
    if break_space {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
        a.allow_single_quoted = false;
    }
    if space_break || special {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
        a.allow_single_quoted = false;
    }
    if line_breaks {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
    }
    if flow_ind {
        a.allow_flow_plain = false;
    }
    if block_ind {
        a.allow_block_plain = false;
    }
    a
}

/// Whether PyYAML's YAML 1.1 resolver would read `s`, written plain, as something other than
/// a string (a bool, number, null, timestamp, merge key or `=`).
fn resolves_to_non_string(s: &str) -> bool {
    use std::sync::OnceLock;
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            r"^(?:",
            r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
            r"|[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?",
            r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
            r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            r"|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
            r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
            r"|<<|~|null|Null|NULL|=|",
            r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
            r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?",
            r")$"
        ))
        .ok()
    });
    re.as_ref().is_some_and(|r| r.is_match(s))
}

impl Emitter {
    fn write(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    fn line_break(&mut self) {
        self.out.push('\n');
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
    }

    fn write_indent(&mut self, indent: usize) {
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.line_break();
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.out.push_str(&pad);
            self.column = indent;
        }
    }

    fn indicator(&mut self, ind: &str, need_ws: bool, whitespace: bool, indention: bool) {
        if self.whitespace || !need_ws {
            self.write(ind);
        } else {
            self.write(&format!(" {ind}"));
        }
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
    }

    /// Whether a collection is written in flow style (outside an enclosing flow collection).
    fn flow_style(&self, v: &Value) -> bool {
        let empty = v.len() == Some(0) || items(v).is_empty();
        if empty {
            return true;
        }
        match self.flow_default {
            Some(f) => f,
            None => {
                if is_map(v) {
                    entries(v, false)
                        .iter()
                        .all(|(k, x)| !is_coll(k) && !is_coll(x))
                } else {
                    items(v).iter().all(|x| !is_coll(x))
                }
            }
        }
    }

    /// Writes a node. `indent` is the indentation of the enclosing block collection (`None`
    /// at the root); `flow` is the nesting depth of flow collections.
    fn node(&mut self, v: &Value, indent: Option<usize>, ctx: Ctx, flow: usize) {
        if is_map(v) {
            if flow > 0 || self.flow_style(v) {
                self.flow_mapping(v, indent, flow);
            } else {
                self.block_mapping(v, indent);
            }
        } else if is_seq(v) {
            if flow > 0 || self.flow_style(v) {
                self.flow_sequence(v, indent, flow);
            } else {
                self.block_sequence(v, indent, ctx);
            }
        } else {
            let scalar_indent = match indent {
                None => self.best_indent,
                Some(i) => i + self.best_indent,
            };
            self.scalar(v, scalar_indent, ctx == Ctx::Key, flow > 0);
        }
    }

    fn child_indent(&self, indent: Option<usize>) -> usize {
        match indent {
            None => 0,
            Some(i) => i + self.best_indent,
        }
    }

    fn block_mapping(&mut self, v: &Value, indent: Option<usize>) {
        let ind = self.child_indent(indent);
        for (k, val) in entries(v, self.sort) {
            self.write_indent(ind);
            self.node(&k, Some(ind), Ctx::Key, 0);
            self.indicator(":", false, false, false);
            self.node(&val, Some(ind), Ctx::MapValue, 0);
        }
    }

    fn block_sequence(&mut self, v: &Value, indent: Option<usize>, ctx: Ctx) {
        let indentless = ctx == Ctx::MapValue && !self.indention;
        let ind = if indentless {
            indent.unwrap_or(0)
        } else {
            self.child_indent(indent)
        };
        for x in items(v) {
            self.write_indent(ind);
            self.indicator("-", true, false, true);
            self.node(&x, Some(ind), Ctx::SeqItem, 0);
        }
    }

    fn flow_sequence(&mut self, v: &Value, indent: Option<usize>, flow: usize) {
        self.indicator("[", true, true, false);
        let ind = match indent {
            None => self.best_indent,
            Some(i) => i + self.best_indent,
        };
        for (i, x) in items(v).iter().enumerate() {
            if i > 0 {
                self.indicator(",", false, false, false);
            }
            if self.column > self.best_width {
                self.write_indent(ind);
            }
            self.node(x, Some(ind), Ctx::SeqItem, flow + 1);
        }
        self.indicator("]", false, false, false);
    }

    fn flow_mapping(&mut self, v: &Value, indent: Option<usize>, flow: usize) {
        self.indicator("{", true, true, false);
        let ind = match indent {
            None => self.best_indent,
            Some(i) => i + self.best_indent,
        };
        for (i, (k, val)) in entries(v, self.sort).iter().enumerate() {
            if i > 0 {
                self.indicator(",", false, false, false);
            }
            if self.column > self.best_width {
                self.write_indent(ind);
            }
            self.node(k, Some(ind), Ctx::Key, flow + 1);
            self.indicator(":", false, false, false);
            self.node(val, Some(ind), Ctx::MapValue, flow + 1);
        }
        self.indicator("}", false, false, false);
    }

    fn scalar(&mut self, v: &Value, indent: usize, simple_key: bool, in_flow: bool) {
        let text = match v.kind() {
            ValueKind::None | ValueKind::Undefined => Some("null".to_string()),
            ValueKind::Bool => Some(if v.is_true() { "true" } else { "false" }.to_string()),
            ValueKind::Number if is_float(v) => {
                let f = as_f64(v);
                Some(if f.is_nan() {
                    ".nan".to_string()
                } else if f.is_infinite() {
                    if f > 0.0 { ".inf" } else { "-.inf" }.to_string()
                } else {
                    let r = py_float(f);
                    if !r.contains('.') && r.contains('e') {
                        r.replacen('e', ".0e", 1)
                    } else {
                        r
                    }
                })
            }
            ValueKind::Number => Some(v.to_string()),
            _ => None,
        };
        if let Some(t) = text {
            self.plain(&t, indent);
            return;
        }
        let s = match v.as_str() {
            Some(s) => s.to_string(),
            None => v.to_string(),
        };
        let a = analyze(&s);
        let implicit = !resolves_to_non_string(&s);
        let style = if implicit
            && !(simple_key && (a.empty || a.multiline))
            && ((in_flow && a.allow_flow_plain) || (!in_flow && a.allow_block_plain))
        {
            Style::Plain
        } else if a.allow_single_quoted && !(simple_key && a.multiline) {
            Style::Single
        } else {
            Style::Double
        };
        let split = !simple_key;
        match style {
            Style::Plain => self.plain_split(&s, indent, split),
            Style::Single => self.single_quoted(&s, indent, split),
            Style::Double => self.double_quoted(&s, indent, split),
        }
    }

    fn plain(&mut self, s: &str, indent: usize) {
        self.plain_split(s, indent, false);
    }

    fn plain_split(&mut self, text: &str, indent: usize, split: bool) {
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write(" ");
        }
        self.whitespace = false;
        self.indention = false;
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut start) = (false, 0usize);
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > self.best_width && split {
                        self.write_indent(indent);
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        let s: String = chars[start..end].iter().collect();
                        self.write(&s);
                    }
                    start = end;
                }
            } else if ch.is_none() || ch == Some(' ') || ch.is_some_and(is_break) {
                let s: String = chars[start..end].iter().collect();
                self.write(&s);
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
            }
        }
    }

    fn single_quoted(&mut self, text: &str, indent: usize, split: bool) {
        self.indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks, mut start) = (false, false, 0usize);
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end
                        && self.column > self.best_width
                        && split
                        && start != 0
                        && end != chars.len()
                    {
                        self.write_indent(indent);
                    } else {
                        let s: String = chars[start..end].iter().collect();
                        self.write(&s);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    if chars[start] == '\n' {
                        self.line_break();
                    }
                    for &br in &chars[start..end] {
                        if br == '\n' {
                            self.line_break();
                        } else {
                            self.out.push(br);
                            self.whitespace = true;
                            self.indention = true;
                            self.column = 0;
                        }
                    }
                    self.write_indent(indent);
                    start = end;
                }
            } else if (ch.is_none()
                || ch == Some(' ')
                || ch.is_some_and(is_break)
                || ch == Some('\''))
                && start < end
            {
                let s: String = chars[start..end].iter().collect();
                self.write(&s);
                start = end;
            }
            if ch == Some('\'') {
                self.write("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
        }
        self.indicator("'", false, false, false);
    }

    fn double_quoted(&mut self, text: &str, indent: usize, split: bool) {
        self.indicator("\"", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let mut start = 0usize;
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            let needs_escape = match ch {
                None => true,
                Some(c) => {
                    "\"\\\u{85}\u{2028}\u{2029}\u{FEFF}".contains(c)
                        || !((' '..='~').contains(&c)
                            || ('\u{A0}'..='\u{D7FF}').contains(&c)
                            || ('\u{E000}'..='\u{FFFD}').contains(&c))
                }
            };
            if needs_escape {
                if start < end {
                    let s: String = chars[start..end].iter().collect();
                    self.write(&s);
                    start = end;
                }
                if let Some(c) = ch {
                    let esc = match c {
                        '\0' => "\\0".to_string(),
                        '\u{7}' => "\\a".to_string(),
                        '\u{8}' => "\\b".to_string(),
                        '\t' => "\\t".to_string(),
                        '\n' => "\\n".to_string(),
                        '\u{b}' => "\\v".to_string(),
                        '\u{c}' => "\\f".to_string(),
                        '\r' => "\\r".to_string(),
                        '\u{1b}' => "\\e".to_string(),
                        '"' => "\\\"".to_string(),
                        '\\' => "\\\\".to_string(),
                        '\u{85}' => "\\N".to_string(),
                        '\u{A0}' => "\\_".to_string(),
                        '\u{2028}' => "\\L".to_string(),
                        '\u{2029}' => "\\P".to_string(),
                        c if (c as u32) <= 0xFF => format!("\\x{:02X}", c as u32),
                        c if (c as u32) <= 0xFFFF => format!("\\u{:04X}", c as u32),
                        c => format!("\\U{:08X}", c as u32),
                    };
                    self.write(&esc);
                    start = end + 1;
                }
            }
            if end > 0
                && end + 1 < chars.len()
                && (ch == Some(' ') || start >= end)
                && self.column + end.saturating_sub(start) > self.best_width
                && split
            {
                let mut s: String = if start < end {
                    chars[start..end].iter().collect()
                } else {
                    String::new()
                };
                s.push('\\');
                if start < end {
                    start = end;
                }
                self.write(&s);
                self.write_indent(indent);
                self.whitespace = false;
                self.indention = false;
                if chars.get(start) == Some(&' ') {
                    self.write("\\");
                }
            }
        }
        self.indicator("\"", false, false, false);
    }
}

fn is_coll(v: &Value) -> bool {
    is_map(v) || is_seq(v)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(py_float(1.5), "1.5");
        assert_eq!(py_float(3.0), "3.0");
        assert_eq!(py_float(1e20), "1e+20");
        assert_eq!(py_float(1.5e-7), "1.5e-07");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(py_float(123456.789), "123456.789");
        assert_eq!(py_float(-2.5e16), "-2.5e+16");
    }

    #[test]
    fn resolver_quotes_lookalikes() {
        for s in [
            "yes",
            "123",
            "",
            "null",
            "~",
            "1.5",
            "2001-01-01",
            "=",
            "<<",
            "0x1F",
            ".inf",
        ] {
            assert!(resolves_to_non_string(s), "{s}");
        }
        for s in ["0o17", "abc", "1.2.3", "yess"] {
            assert!(!resolves_to_non_string(s), "{s}");
        }
    }
}
