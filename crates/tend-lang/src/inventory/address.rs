//! Host addresses as inventories write them: `web01`, `web01:2222`, `[::1]:22`, and ranges
//! `web[01:10]`, `db-[a:f]`, `n[1:10:2]` (Ansible's `parse_address` and
//! `expand_hostname_range`).

use std::sync::OnceLock;

use regex::Regex;

/// Splits an optional `:port` off `address` and checks what is left is an IPv4 address, an
/// IPv6 address or a host name (ranges allowed inside each when `allow_ranges`). `None` when
/// Ansible would not recognise it as an address.
pub fn parse_address(address: &str, allow_ranges: bool) -> Option<(String, Option<u16>)> {
    let mut host = address;
    let mut port = None;
    if let Some(c) = re_bracketed_hostport().captures(host) {
        host = c.get(1).map_or("", |m| m.as_str());
        port = Some(c.get(2).map_or("", |m| m.as_str()));
    }
    if let Some(c) = re_hostport().captures(host) {
        host = c.get(1).map_or("", |m| m.as_str());
        port = Some(c.get(2).map_or("", |m| m.as_str()));
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let valid = re_ipv4().is_match(host) || re_ipv6().is_match(host) || is_hostname(host);
    if !valid || host.is_empty() || (!allow_ranges && host.contains('[')) {
        return None;
    }
    Some((host.to_string(), port))
}

/// Whether `name` is an IPv4 or IPv6 address (for `inventory_hostname_short`).
pub fn is_ip_address(name: &str) -> bool {
    re_ipv4().is_match(name) || re_ipv6().is_match(name)
}

fn re_bracketed_hostport() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^\[(.+)\]:([0-9]+)$").expect("static regex"))
}

fn re_hostport() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$").expect("static regex"))
}

const NUMERIC_RANGE: &str = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]";
const HEX_RANGE: &str = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]";

fn re_ipv4() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        let c = format!(r"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{NUMERIC_RANGE})");
        Regex::new(&format!(r"(?i)^(?:{c}\.){{3}}{c}$")).expect("static regex")
    })
}

fn re_ipv6() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        let c = format!(r"(?:[0-9a-f]{{1,4}}|{HEX_RANGE})");
        let alts = [
            format!(r"(?:{c}:){{7}}{c}"),
            format!(r"(?:{c}:){{1,6}}:"),
            format!(r"(?:{c}:)(?::{c}){{1,6}}"),
            format!(r"(?:{c}:){{2}}(?::{c}){{1,5}}"),
            format!(r"(?:{c}:){{3}}(?::{c}){{1,4}}"),
            format!(r"(?:{c}:){{4}}(?::{c}){{1,3}}"),
            format!(r"(?:{c}:){{5}}(?::{c}){{1,2}}"),
            format!(r"(?:{c}:){{6}}(?::{c})"),
            format!(r":(?::{c}){{1,6}}"),
            format!(r"{c}?::"),
            format!(r"(?:0:){{6}}(?:{c}\.){{3}}{c}"),
            format!(r"::(?:ffff:)?(?:{c}\.){{3}}{c}"),
            format!(r"(?:0:){{5}}ffff:(?:{c}\.){{3}}{c}"),
        ];
        Regex::new(&format!(r"(?i)^(?:{})$", alts.join("|"))).expect("static regex")
    })
}

fn re_alnum_range() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r"(?i)^\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]").expect("static regex")
    })
}

/// Ansible's hostname rule: dot-separated labels of word characters, `-` and `_` (and ranges),
/// each starting with a word character or range and not ending in `-` or `_`.
fn is_hostname(s: &str) -> bool {
    let mut rest = s;
    loop {
        // One label.
        let mut first = true;
        let mut last: Option<char> = None;
        loop {
            if rest.starts_with('[') {
                match re_alnum_range().find(rest) {
                    Some(m) => {
                        rest = &rest[m.end()..];
                        last = Some(']');
                        first = false;
                        continue;
                    }
                    None => return false,
                }
            }
            let Some(c) = rest.chars().next() else { break };
            let word = c.is_alphanumeric() || c == '_';
            if first && !word {
                return false;
            }
            if c == '.' {
                break;
            }
            if !(word || c == '-') {
                return false;
            }
            first = false;
            last = Some(c);
            rest = &rest[c.len_utf8()..];
        }
        if first || matches!(last, Some('-' | '_')) {
            return false;
        }
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None => return rest.is_empty(),
        }
    }
}

/// What went wrong expanding a host range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RangeError(pub String);

/// Expands every `[x:y]` / `[x:y:step]` range in `pattern`, leftmost first.
pub fn expand_hostname_range(pattern: &str) -> Result<Vec<String>, RangeError> {
    let mut out = Vec::new();
    expand_into(pattern, &mut out, 0)?;
    Ok(out)
}

const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const MAX_HOSTS: usize = 1_000_000;

fn expand_into(line: &str, out: &mut Vec<String>, depth: usize) -> Result<(), RangeError> {
    if depth > 32 {
        return Err(RangeError("too many ranges in one host pattern".into()));
    }
    let (Some(open), Some(close)) = (line.find('['), line.find(']')) else {
        return Err(RangeError(format!("invalid host range in '{line}'")));
    };
    // Python: replace the first '[' and the first ']' by '|' and split in exactly three.
    let mut marked = line.to_string();
    marked.replace_range(open..open + 1, "|");
    marked.replace_range(close..close + 1, "|");
    let parts: Vec<&str> = marked.split('|').collect();
    let [head, nrange, tail] = parts[..] else {
        return Err(RangeError(format!("invalid host range in '{line}'")));
    };
    let bounds: Vec<&str> = nrange.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(RangeError(
            "host range must be begin:end or begin:end:step".into(),
        ));
    }
    let beg = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    let step_text = bounds.get(2).copied().unwrap_or("1");
    if end.is_empty() {
        return Err(RangeError("host range must specify end value".into()));
    }
    let width = if beg.starts_with('0') && beg.len() > 1 {
        if beg.len() != end.len() {
            return Err(RangeError(
                "host range must specify equal-length begin and end formats".into(),
            ));
        }
        beg.len()
    } else {
        0
    };
    let step = parse_py_int(step_text)?;
    if step <= 0 {
        return Err(RangeError(format!(
            "host range step must be positive, got {step_text}"
        )));
    }
    let step = step as usize;
    let seq: Vec<String> = match (LETTERS.find(beg), LETTERS.find(end)) {
        (Some(b), Some(e)) => {
            if b > e {
                return Err(RangeError("host range must have begin <= end".into()));
            }
            LETTERS[b..=e]
                .chars()
                .step_by(step)
                .map(String::from)
                .collect()
        }
        _ => {
            let b = parse_py_int(beg)?;
            let e = parse_py_int(end)?;
            if e >= b && ((e - b) as u128 / step as u128) as usize > MAX_HOSTS {
                return Err(RangeError(format!(
                    "host range [{nrange}] expands to more than {MAX_HOSTS} hosts"
                )));
            }
            let mut v = Vec::new();
            let mut i = b;
            while i <= e {
                v.push(if width > 0 {
                    zfill(i, width)
                } else {
                    i.to_string()
                });
                i += step as i64;
            }
            v
        }
    };
    for item in seq {
        let name = format!("{head}{item}{tail}");
        if name.contains('[') {
            expand_into(&name, out, depth + 1)?;
        } else {
            out.push(name);
        }
        if out.len() > MAX_HOSTS {
            return Err(RangeError(format!(
                "host pattern expands to more than {MAX_HOSTS} hosts"
            )));
        }
    }
    Ok(())
}

fn parse_py_int(s: &str) -> Result<i64, RangeError> {
    s.trim()
        .parse::<i64>()
        .map_err(|_| RangeError(format!("invalid literal for int() with base 10: '{s}'")))
}

fn zfill(i: i64, width: usize) -> String {
    if i < 0 {
        format!("-{:0>w$}", -i, w = width.saturating_sub(1))
    } else {
        format!("{i:0>width$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_address("web01", false), Some(("web01".into(), None)));
        assert_eq!(
            parse_address("web01:2222", false),
            Some(("web01".into(), Some(2222)))
        );
        assert_eq!(
            parse_address("10.0.0.1:22", false),
            Some(("10.0.0.1".into(), Some(22)))
        );
        assert_eq!(
            parse_address("[::1]:22", false),
            Some(("::1".into(), Some(22)))
        );
        assert_eq!(parse_address("::1", false), Some(("::1".into(), None)));
        assert_eq!(
            parse_address("web[1:3]", true),
            Some(("web[1:3]".into(), None))
        );
        assert_eq!(parse_address("web[1:3]", false), None);
        assert_eq!(parse_address("web-", false), None);
        assert_eq!(parse_address("web*", false), None);
        assert_eq!(parse_address("a:b", false), None);
        assert_eq!(
            parse_address("host.example.com", false),
            Some(("host.example.com".into(), None))
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(
            expand_hostname_range("web[01:03]").unwrap(),
            ["web01", "web02", "web03"]
        );
        assert_eq!(
            expand_hostname_range("db-[a:c]").unwrap(),
            ["db-a", "db-b", "db-c"]
        );
        assert_eq!(
            expand_hostname_range("n[1:10:4]").unwrap(),
            ["n1", "n5", "n9"]
        );
        assert_eq!(
            expand_hostname_range("r[1:2]c[a:b]").unwrap(),
            ["r1ca", "r1cb", "r2ca", "r2cb"]
        );
        assert_eq!(expand_hostname_range("x[:2]").unwrap(), ["x0", "x1", "x2"]);
        assert!(expand_hostname_range("x[01:3]").is_err());
        assert!(expand_hostname_range("x[c:a]").is_err());
        assert!(expand_hostname_range("x[1:2:0]").is_err());
        assert!(expand_hostname_range("x[1:99999999999]").is_err());
    }
}
