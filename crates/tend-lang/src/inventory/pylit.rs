//! The two bits of Python an INI inventory leans on: `ast.literal_eval` for values and `str()`
//! for printing them back (`ansible-inventory --graph --vars`).
//!
//! Ansible reads every INI value (`host k=v` and `[group:vars]` alike) with `literal_eval` and
//! keeps the text as a string when that fails. So `5` is an integer, `True` a boolean, `'5'` a
//! string, `[1, 2]` a list, and `007` or `yes` stay strings.

use tend_proto::{Value, Vars};

/// `ast.literal_eval(text)`, or `None` where Python would raise.
pub fn literal_eval(text: &str) -> Option<Value> {
    let mut p = Parser {
        s: text.trim_start_matches([' ', '\t']).as_bytes(),
        pos: 0,
        depth: 0,
    };
    let v = p.expr()?;
    p.skip_ws_and_comment();
    (p.pos == p.s.len()).then_some(v)
}

/// What Ansible stores for an INI value: the literal if it is one, else the text.
pub fn ini_value(text: &str) -> Value {
    literal_eval(text).unwrap_or_else(|| Value::String(text.to_string()))
}

const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\x0c')) {
            self.pos += 1;
        }
    }

    /// Trailing whitespace and a `# comment` are fine after a complete literal (Python source).
    fn skip_ws_and_comment(&mut self) {
        self.skip_ws();
        if self.peek() == Some(b'#') {
            self.pos = self.s.len();
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Option<Value> {
        self.skip_ws();
        let start = self.pos;
        let v = self.unary()?;
        // `1+2j` is the one binary operation literal_eval accepts; it becomes a string.
        self.skip_ws();
        if matches!(self.peek(), Some(b'+' | b'-')) && v.is_number() {
            let save = self.pos;
            self.pos += 1;
            self.skip_ws();
            if let Some(Num::Complex) = self.number() {
                let text = String::from_utf8_lossy(&self.s[start..self.pos]).replace(' ', "");
                return Some(Value::String(format!("({text})")));
            }
            self.pos = save;
        }
        Some(v)
    }

    fn unary(&mut self) -> Option<Value> {
        self.skip_ws();
        if self.s[self.pos..].starts_with(b"...") {
            self.pos += 3;
            return Some(Value::String("...".into()));
        }
        match self.peek()? {
            b'-' | b'+' => {
                let neg = self.peek() == Some(b'-');
                self.pos += 1;
                self.skip_ws();
                let start = self.pos;
                match self.number()? {
                    Num::Int(i) => Some(Value::from(if neg { -i } else { i })),
                    Num::Float(f) => Some(float(if neg { -f } else { f })),
                    Num::Complex => {
                        let t = String::from_utf8_lossy(&self.s[start..self.pos]).to_string();
                        Some(Value::String(if neg { format!("(-0-{t})") } else { t }))
                    }
                }
            }
            b'0'..=b'9' | b'.' => {
                let start = self.pos;
                match self.number()? {
                    Num::Int(i) => Some(Value::from(i)),
                    Num::Float(f) => Some(float(f)),
                    // A bare imaginary literal: str(1j) is '1j'.
                    Num::Complex => Some(Value::String(
                        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned(),
                    )),
                }
            }
            b'[' => self.seq(b']'),
            b'(' => self.seq(b')'),
            b'{' => self.dict(),
            b'"' | b'\'' => self.strings(),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
                    self.pos += 1;
                }
                let word = &self.s[start..self.pos];
                if matches!(self.peek(), Some(b'"' | b'\'')) && is_string_prefix(word) {
                    self.pos = start;
                    return self.strings();
                }
                match word {
                    b"True" => Some(Value::Bool(true)),
                    b"False" => Some(Value::Bool(false)),
                    b"None" => Some(Value::Null),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn seq(&mut self, close: u8) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let open = self.peek();
        self.pos += 1;
        let mut items = Vec::new();
        let mut saw_comma = false;
        loop {
            if self.eat(close) {
                break;
            }
            items.push(self.expr()?);
            if self.eat(b',') {
                saw_comma = true;
                continue;
            }
            if self.eat(close) {
                break;
            }
            return None;
        }
        self.depth -= 1;
        // `(x)` is just x; `(x,)` and `()` are tuples (lists once Ansible coerces them).
        if open == Some(b'(') && items.len() == 1 && !saw_comma {
            return items.pop();
        }
        Some(Value::Array(items))
    }

    fn dict(&mut self) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        if self.eat(b'}') {
            self.depth -= 1;
            return Some(Value::Object(Vars::new()));
        }
        let first = self.expr()?;
        if self.eat(b':') {
            let mut map = Vars::new();
            let v = self.expr()?;
            map.insert(key_text(&first)?, v);
            loop {
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
                if self.eat(b'}') {
                    break;
                }
                let k = self.expr()?;
                if !self.eat(b':') {
                    return None;
                }
                let v = self.expr()?;
                map.insert(key_text(&k)?, v);
            }
            self.depth -= 1;
            return Some(Value::Object(map));
        }
        // A set literal, coerced to a list (duplicates dropped, order kept as written).
        let mut items = vec![first];
        loop {
            if self.eat(b'}') {
                break;
            }
            if !self.eat(b',') {
                return None;
            }
            if self.eat(b'}') {
                break;
            }
            let v = self.expr()?;
            if !items.contains(&v) {
                items.push(v);
            }
        }
        self.depth -= 1;
        Some(Value::Array(items))
    }

    /// Adjacent string literals concatenate, as in Python.
    fn strings(&mut self) -> Option<Value> {
        let mut out = String::new();
        let mut any = false;
        loop {
            self.skip_ws();
            let save = self.pos;
            let mut raw = false;
            while let Some(c) = self.peek() {
                match c.to_ascii_lowercase() {
                    b'r' => raw = true,
                    b'b' | b'u' | b'f' => {}
                    _ => break,
                }
                self.pos += 1;
            }
            if self.s[save..self.pos]
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&b'f'))
            {
                return None; // f-strings are not literals
            }
            match self.peek() {
                Some(q @ (b'"' | b'\'')) => {
                    out.push_str(&self.string_body(q, raw)?);
                    any = true;
                }
                _ => {
                    self.pos = save;
                    break;
                }
            }
        }
        any.then_some(Value::String(out))
    }

    fn string_body(&mut self, q: u8, raw: bool) -> Option<String> {
        let triple = self.s[self.pos..].starts_with(&[q, q, q]);
        self.pos += if triple { 3 } else { 1 };
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let c = self.peek()?;
            if c == q {
                if !triple {
                    self.pos += 1;
                    break;
                }
                if self.s[self.pos..].starts_with(&[q, q, q]) {
                    self.pos += 3;
                    break;
                }
            }
            if c == b'\\' {
                let next = *self.s.get(self.pos + 1)?;
                if raw {
                    buf.extend_from_slice(&[c, next]);
                    self.pos += 2;
                    continue;
                }
                self.pos += 2;
                match next {
                    b'n' => buf.push(b'\n'),
                    b't' => buf.push(b'\t'),
                    b'r' => buf.push(b'\r'),
                    b'0'..=b'7' => {
                        let mut n = u32::from(next - b'0');
                        for _ in 0..2 {
                            match self.peek() {
                                Some(d @ b'0'..=b'7') => {
                                    n = n * 8 + u32::from(d - b'0');
                                    self.pos += 1;
                                }
                                _ => break,
                            }
                        }
                        push_char(&mut buf, char::from_u32(n)?);
                    }
                    b'x' => push_char(&mut buf, self.hex_escape(2)?),
                    b'u' => push_char(&mut buf, self.hex_escape(4)?),
                    b'U' => push_char(&mut buf, self.hex_escape(8)?),
                    b'a' => buf.push(7),
                    b'b' => buf.push(8),
                    b'f' => buf.push(12),
                    b'v' => buf.push(11),
                    b'\\' | b'\'' | b'"' => buf.push(next),
                    b'\n' => {}
                    other => buf.extend_from_slice(&[b'\\', other]),
                }
                continue;
            }
            buf.push(c);
            self.pos += 1;
        }
        String::from_utf8(buf).ok()
    }

    fn hex_escape(&mut self, n: usize) -> Option<char> {
        let digits = self.s.get(self.pos..self.pos + n)?;
        let text = std::str::from_utf8(digits).ok()?;
        let code = u32::from_str_radix(text, 16).ok()?;
        self.pos += n;
        char::from_u32(code)
    }

    fn number(&mut self) -> Option<Num> {
        let start = self.pos;
        let s = self.s;
        let radix = match (s.get(start), s.get(start + 1).map(u8::to_ascii_lowercase)) {
            (Some(b'0'), Some(b'x')) => 16,
            (Some(b'0'), Some(b'o')) => 8,
            (Some(b'0'), Some(b'b')) => 2,
            _ => 10,
        };
        if radix != 10 {
            self.pos += 2;
            let ds = self.pos;
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
                self.pos += 1;
            }
            let digits = digits_text(&s[ds..self.pos])?;
            return i64::from_str_radix(&digits, radix).ok().map(Num::Int);
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_digit() || c == b'_') {
            self.pos += 1;
        }
        let int_part = &s[start..self.pos];
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            is_float = true;
            self.pos += 1;
            while matches!(self.peek(), Some(c) if c.is_ascii_digit() || c == b'_') {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
                is_float = true;
                while matches!(self.peek(), Some(c) if c.is_ascii_digit() || c == b'_') {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let text = digits_text(&s[start..self.pos])?;
        if text == "." || text.is_empty() {
            return None;
        }
        if matches!(self.peek(), Some(b'j' | b'J')) {
            self.pos += 1;
            return Some(Num::Complex);
        }
        if matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            return None;
        }
        if is_float {
            return text.parse::<f64>().ok().map(Num::Float);
        }
        // Python refuses leading zeros in decimal integers (`007`), except for zero itself.
        if int_part.len() > 1
            && int_part[0] == b'0'
            && int_part.iter().any(|c| *c != b'0' && *c != b'_')
        {
            return None;
        }
        match text.parse::<i64>() {
            Ok(i) => Some(Num::Int(i)),
            Err(_) => text.parse::<f64>().ok().map(Num::Float),
        }
    }
}

enum Num {
    Int(i64),
    Float(f64),
    Complex,
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Digits with Python's `_` separators removed; separators must sit between digits.
fn digits_text(s: &[u8]) -> Option<String> {
    if s.first() == Some(&b'_') || s.last() == Some(&b'_') || s.windows(2).any(|w| w == b"__") {
        return None;
    }
    std::str::from_utf8(s).ok().map(|t| t.replace('_', ""))
}

fn is_string_prefix(word: &[u8]) -> bool {
    let w = word.to_ascii_lowercase();
    matches!(
        w.as_slice(),
        b"r" | b"u" | b"b" | b"br" | b"rb" | b"f" | b"fr" | b"rf"
    )
}

fn push_char(buf: &mut Vec<u8>, c: char) {
    let mut tmp = [0u8; 4];
    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
}

/// Dict keys as Ansible ends up keeping them (JSON object keys are text).
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(_) | Value::Object(_) => None,
        other => Some(py_str(other)),
    }
}

/// Python's `str()` of a value: strings bare, everything else as `repr()`.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a value.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                py_float(f)
            } else {
                n.to_string()
            }
        }
        Value::String(s) => py_quote(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_quote(k), py_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f.fract() == 0.0 && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    let s = f.to_string();
    if f.abs() >= 1e16 {
        // Python switches to exponent notation: 1e+16.
        let e = format!("{f:e}");
        if let Some((m, exp)) = e.split_once('e') {
            let sign = if exp.starts_with('-') { "-" } else { "+" };
            let digits = exp.trim_start_matches('-');
            let digits = if digits.len() < 2 {
                format!("0{digits}")
            } else {
                digits.to_string()
            };
            return format!("{m}e{sign}{digits}");
        }
    }
    s
}

/// Python's string repr: single quotes unless the text has a single quote and no double quote.
fn py_quote(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
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
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_like_python() {
        let cases: &[(&str, Value)] = &[
            ("5", json!(5)),
            ("-5", json!(-5)),
            ("True", json!(true)),
            ("None", Value::Null),
            ("1.5", json!(1.5)),
            ("0x10", json!(16)),
            ("1_000", json!(1000)),
            ("'five'", json!("five")),
            ("\"a\" 'b'", json!("ab")),
            ("[1, 'a', (2,)]", json!([1, "a", [2]])),
            ("{'x': 1, 2: [None]}", json!({"x": 1, "2": [null]})),
            ("(3)", json!(3)),
            ("5 # comment", json!(5)),
            ("'\\n\\x41'", json!("\nA")),
            ("1j", json!("1j")),
            ("1+2j", json!("(1+2j)")),
            ("...", json!("...")),
        ];
        for (text, want) in cases {
            assert_eq!(literal_eval(text).as_ref(), Some(want), "{text}");
        }
    }

    #[test]
    fn non_literals_stay_text() {
        for text in [
            "007",
            "yes",
            "hello world",
            "{x:1}",
            "1+2",
            "\"x\" ; y",
            "",
            "[1,",
            "true",
            "inf",
        ] {
            assert_eq!(literal_eval(text), None, "{text}");
            assert_eq!(ini_value(text), Value::String(text.into()));
        }
    }

    #[test]
    fn deep_nesting_is_text_not_a_crash() {
        let s = "[".repeat(10_000);
        assert_eq!(ini_value(&s), Value::String(s.clone()));
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(
            py_str(&json!([1, "a", true, null, {"k": 1.0}])),
            "[1, 'a', True, None, {'k': 1.0}]"
        );
        assert_eq!(py_str(&json!("it's")), "it's");
        assert_eq!(py_repr(&json!("it's")), "\"it's\"");
    }
}
