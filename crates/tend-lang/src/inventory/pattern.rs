//! Host patterns (`hosts:` and `--limit`), resolved as ansible-core's `InventoryManager` does.
//!
//! A pattern is split on `,` (or, without commas, on `:` outside brackets, unless the whole
//! thing is one address such as `host:22` or `web[1:3]`). Plain parts are unions, `&x`
//! intersections and `!x` exclusions; unions are applied first, then intersections, then
//! exclusions, whatever order they were written in. A part may be `all` or `*`, a group or host
//! name, a glob (`web*`, `db?`, `[ab]*`), a regex (`~web\d+`, anchored at the start only), and,
//! unless it is a regex, end in a subscript: `webservers[0]`, `webservers[-1]`,
//! `webservers[0:2]` (inclusive), `webservers[1:]`.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;
use tend_proto::Loc;

use super::address::parse_address;
use super::{Inventory, LOCALHOST_NAMES};
use crate::diag::Diag;

/// A pattern that cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("Invalid host list pattern: {0}")]
    Invalid(String),
    #[error("No hosts matched the subscripted pattern '{0}'")]
    Subscript(String),
}

impl PatternError {
    /// The error at the place the pattern was written.
    pub fn at(self, loc: Loc) -> Diag {
        let hint = match &self {
            PatternError::Invalid(_) => "a `~` pattern is a regular expression; check its syntax",
            PatternError::Subscript(_) => "the subscript is past the end of the matched hosts",
        };
        Diag::new(loc, self.to_string()).with_hint(hint)
    }
}

/// The hosts a pattern selects, in inventory order, and Ansible's warnings about parts that
/// matched nothing (for the caller to print).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub hosts: Vec<String>,
    pub warnings: Vec<String>,
}

/// Splits a pattern into its parts (Ansible's `split_host_pattern`).
pub fn split_pattern(pattern: &str) -> Vec<String> {
    let parts: Vec<String> = if pattern.contains(',') {
        pattern.split(',').map(str::to_string).collect()
    } else if parse_address(pattern, true).is_some() {
        vec![pattern.to_string()]
    } else {
        re_colon_parts()
            .find_iter(pattern)
            .map(|m| m.as_str().to_string())
            .collect()
    };
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn re_colon_parts() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"(?:[^\s:\[\]]|\[[^\]]*\])+").expect("static regex"))
}

fn re_subscript() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$").expect("static regex")
    })
}

/// Reads `--limit`: comma/colon separated patterns, where `@file` stands for the file's lines.
pub fn parse_limit(spec: &str) -> Result<Vec<String>, Diag> {
    let mut out = Vec::new();
    for part in split_pattern(spec) {
        if let Some(file) = part.strip_prefix('@') {
            let p = std::path::Path::new(file);
            if !p.exists() {
                return Err(Diag::new(
                    Loc::new(file, 0, 0),
                    format!("Unable to find limit file {file}"),
                )
                .with_hint("--limit @FILE reads host names from FILE, one a line"));
            }
            if !p.is_file() {
                return Err(Diag::new(
                    Loc::new(file, 0, 0),
                    format!("Limit starting with \"@\" must be a file, not a directory: {file}"),
                )
                .with_hint("--limit @FILE reads host names from FILE, one a line"));
            }
            let text = std::fs::read_to_string(p).map_err(|e| {
                Diag::new(Loc::new(file, 0, 0), format!("cannot read limit file: {e}"))
                    .with_hint("check the file's permissions")
            })?;
            out.extend(text.split('\n').map(|l| l.trim().to_string()));
        } else {
            out.push(part);
        }
    }
    Ok(out)
}

/// Unions first, then intersections, then exclusions; `all` when there are no unions.
fn order_patterns(parts: &[String]) -> Vec<&str> {
    let mut regular = Vec::new();
    let mut inter = Vec::new();
    let mut excl = Vec::new();
    for p in parts.iter().filter(|p| !p.is_empty()) {
        match p.as_bytes()[0] {
            b'!' => excl.push(p.as_str()),
            b'&' => inter.push(p.as_str()),
            _ => regular.push(p.as_str()),
        }
    }
    if regular.is_empty() {
        regular.push("all");
    }
    regular.into_iter().chain(inter).chain(excl).collect()
}

struct Eval<'a> {
    inv: &'a Inventory,
    warnings: Vec<String>,
}

impl Inventory {
    /// The hosts `pattern` selects, narrowed by `limit` (patterns from [`parse_limit`]).
    pub fn select(
        &self,
        pattern: &str,
        limit: Option<&[String]>,
    ) -> Result<Selection, PatternError> {
        let mut ev = Eval {
            inv: self,
            warnings: Vec::new(),
        };
        let mut hosts = ev.evaluate(&split_pattern(pattern))?;
        if let Some(limit) = limit.filter(|l| !l.is_empty()) {
            let subset: HashSet<String> = ev.evaluate(limit)?.into_iter().collect();
            hosts.retain(|h| subset.contains(h));
        }
        let mut seen = HashSet::new();
        hosts.retain(|h| seen.insert(h.clone()));
        let mut warnings = Vec::new();
        for w in ev.warnings {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        Ok(Selection { hosts, warnings })
    }
}

impl Eval<'_> {
    fn evaluate(&mut self, parts: &[String]) -> Result<Vec<String>, PatternError> {
        let mut hosts: Vec<String> = Vec::new();
        for p in order_patterns(parts) {
            if self.inv.hosts.contains_key(p) {
                hosts.push(p.to_string());
                continue;
            }
            let that = self.match_one(p)?;
            match p.as_bytes()[0] {
                b'!' => {
                    let that: HashSet<&String> = that.iter().collect();
                    hosts.retain(|h| !that.contains(h));
                }
                b'&' => {
                    let that: HashSet<&String> = that.iter().collect();
                    hosts.retain(|h| that.contains(h));
                }
                _ => {
                    let existing: HashSet<String> = hosts.iter().cloned().collect();
                    hosts.extend(that.into_iter().filter(|h| !existing.contains(h)));
                }
            }
        }
        Ok(hosts)
    }

    fn match_one(&mut self, pattern: &str) -> Result<Vec<String>, PatternError> {
        let p = pattern.strip_prefix(['&', '!']).unwrap_or(pattern);
        if p.is_empty() {
            return Ok(Vec::new());
        }
        let (expr, sub) = split_subscript(p);
        let hosts = self.enumerate(expr)?;
        apply_subscript(hosts, sub).ok_or_else(|| PatternError::Subscript(p.to_string()))
    }

    fn enumerate(&mut self, pattern: &str) -> Result<Vec<String>, PatternError> {
        let re = compile(pattern)?;
        let inv = self.inv;
        let mut results = Vec::new();
        let groups: Vec<&str> = inv
            .groups
            .keys()
            .map(String::as_str)
            .filter(|g| re.is_match(g))
            .collect();
        for g in &groups {
            results.extend(inv.group_hosts(g));
        }
        let special = pattern.starts_with('~') || pattern.contains(['.', '?', '*', '[']);
        if groups.is_empty() || special {
            results.extend(inv.hosts.keys().filter(|h| re.is_match(h)).cloned());
        }
        if results.is_empty() && LOCALHOST_NAMES.contains(&pattern) {
            if let Some(h) = inv.host(pattern) {
                results.push(h.name);
            }
        }
        if results.is_empty() && groups.is_empty() && pattern != "all" {
            self.warnings.push(format!(
                "Could not match supplied host pattern, ignoring: {pattern}"
            ));
        }
        Ok(results)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subscript {
    Index(i64),
    /// `[start:end]`, `end` inclusive; `None` for "to the end".
    Range(usize, Option<usize>),
}

fn split_subscript(pattern: &str) -> (&str, Option<Subscript>) {
    if pattern.starts_with('~') {
        return (pattern, None);
    }
    let Some(c) = re_subscript().captures(pattern) else {
        return (pattern, None);
    };
    let expr = c.get(1).map_or(pattern, |m| m.as_str());
    if let Some(idx) = c.get(2) {
        return match idx.as_str().parse() {
            Ok(i) => (expr, Some(Subscript::Index(i))),
            Err(_) => (pattern, None),
        };
    }
    let start = c.get(3).and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
    let end = c
        .get(5)
        .map(|m| m.as_str())
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse().ok());
    (expr, Some(Subscript::Range(start, end)))
}

/// Python's slicing semantics, including its quirk that `[n:0]` means `[n]`.
fn apply_subscript(hosts: Vec<String>, sub: Option<Subscript>) -> Option<Vec<String>> {
    let Some(sub) = sub else { return Some(hosts) };
    if hosts.is_empty() {
        return Some(hosts);
    }
    let len = hosts.len() as i64;
    let single = |i: i64| -> Option<Vec<String>> {
        let i = if i < 0 { len + i } else { i };
        (0..len)
            .contains(&i)
            .then(|| vec![hosts[i as usize].clone()])
    };
    match sub {
        Subscript::Index(i) => single(i),
        Subscript::Range(start, Some(0)) => single(start as i64),
        Subscript::Range(start, end) => {
            let end = end.map_or(hosts.len(), |e| (e + 1).min(hosts.len()));
            Some(
                hosts
                    .get(start.min(end)..end)
                    .map(<[String]>::to_vec)
                    .unwrap_or_default(),
            )
        }
    }
}

/// A glob (Python's `fnmatch.translate`, whole-name) or, with `~`, a regex anchored at the start.
fn compile(pattern: &str) -> Result<Regex, PatternError> {
    let src = match pattern.strip_prefix('~') {
        Some(re) => format!("^(?:{re})"),
        None => format!("^(?s:{})$", glob_to_regex(pattern)),
    };
    Regex::new(&src).map_err(|_| PatternError::Invalid(pattern.to_string()))
}

fn glob_to_regex(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                } else {
                    let mut body: String = chars[i..j].iter().collect();
                    i = j + 1;
                    let negate = body.starts_with('!');
                    if negate {
                        body.remove(0);
                    }
                    let mut class = String::from(if negate { "[^" } else { "[" });
                    for ch in body.chars() {
                        match ch {
                            '\\' | '[' | ']' | '^' | '&' | '~' => {
                                class.push('\\');
                                class.push(ch);
                            }
                            _ => class.push(ch),
                        }
                    }
                    class.push(']');
                    out.push_str(&class);
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        let mut inv = Inventory::empty();
        for g in ["web", "db", "staging"] {
            inv.add_group(g);
        }
        for h in ["web1", "web2", "web3"] {
            inv.add_host(h, Some("web"), None).unwrap();
        }
        for h in ["db1", "db2"] {
            inv.add_host(h, Some("db"), None).unwrap();
        }
        inv.add_host("web2", Some("staging"), None).unwrap();
        inv.add_host("db2", Some("staging"), None).unwrap();
        inv.add_host("lonely.example.com", None, None).unwrap();
        inv.reconcile();
        inv
    }

    fn sel(p: &str) -> Vec<String> {
        inv().select(p, None).unwrap().hosts
    }

    #[test]
    fn splitting() {
        assert_eq!(
            split_pattern("a,b[1], c[2:3] , d"),
            ["a", "b[1]", "c[2:3]", "d"]
        );
        assert_eq!(split_pattern("web:&db:!x"), ["web", "&db", "!x"]);
        assert_eq!(split_pattern("web[0:2]"), ["web[0:2]"]);
        assert_eq!(split_pattern("host:22"), ["host:22"]);
        assert_eq!(split_pattern("~web\\d+"), ["~web\\d+"]);
    }

    #[test]
    fn patterns() {
        assert_eq!(
            sel("all"),
            ["lonely.example.com", "web1", "web2", "web3", "db1", "db2"]
        );
        assert_eq!(sel("*").len(), 6);
        assert_eq!(sel("web:db"), ["web1", "web2", "web3", "db1", "db2"]);
        assert_eq!(sel("web:&staging"), ["web2"]);
        assert_eq!(sel("!staging:web"), ["web1", "web3"]);
        assert_eq!(sel("&staging"), ["web2", "db2"]);
        assert_eq!(sel("web*"), ["web1", "web2", "web3"]);
        assert_eq!(sel("~(web|db)1"), ["web1", "db1"]);
        assert_eq!(sel("web[0]"), ["web1"]);
        assert_eq!(sel("web[-1]"), ["web3"]);
        assert_eq!(sel("web[0:1]"), ["web1", "web2"]);
        assert_eq!(sel("web[1:]"), ["web2", "web3"]);
        assert_eq!(sel("db2,web1"), ["db2", "web1"]);
        assert_eq!(sel("lonely*"), ["lonely.example.com"]);
        assert_eq!(sel("ungrouped"), ["lonely.example.com"]);
    }

    #[test]
    fn unmatched_parts_warn() {
        let s = inv().select("web:nope", None).unwrap();
        assert_eq!(s.hosts, ["web1", "web2", "web3"]);
        assert_eq!(
            s.warnings,
            ["Could not match supplied host pattern, ignoring: nope"]
        );
    }

    #[test]
    fn localhost_is_implicit_and_not_in_all() {
        let i = inv();
        assert_eq!(i.select("localhost", None).unwrap().hosts, ["localhost"]);
        assert!(!i
            .select("all", None)
            .unwrap()
            .hosts
            .contains(&"localhost".to_string()));
    }

    #[test]
    fn limits() {
        let i = inv();
        let limit = vec!["staging".to_string()];
        assert_eq!(i.select("web", Some(&limit)).unwrap().hosts, ["web2"]);
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), "web1\ndb1\n\n").unwrap();
        let limit = parse_limit(&format!("@{}", t.path().display())).unwrap();
        assert_eq!(
            i.select("all", Some(&limit)).unwrap().hosts,
            ["web1", "db1"]
        );
        assert!(parse_limit("@/nonexistent/file").is_err());
    }

    #[test]
    fn errors() {
        assert!(matches!(
            inv().select("~(", None),
            Err(PatternError::Invalid(_))
        ));
        assert!(matches!(
            inv().select("web[7]", None),
            Err(PatternError::Subscript(_))
        ));
    }
}
