//! INI inventories, read as ansible-core's `ini` plugin reads them.
//!
//! ```ini
//! web01 ansible_host=10.0.0.1    # before any section: ungrouped
//! [web]
//! web[01:03] http_port=80
//! [web:vars]
//! ntp = 'pool.ntp.org'
//! [prod:children]
//! web
//! ```
//!
//! Host lines are split like a POSIX shell (`shlex`, with `#` comments); every value, on host
//! lines and in `[group:vars]` alike, goes through Python's `literal_eval` and stays a string
//! when it is not a literal. A `[group:children]` or `[group:vars]` section may name a group that
//! is declared further down; one that is never declared is an error at the line that used it.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use tend_proto::Loc;

use super::address::{expand_hostname_range, parse_address};
use super::pylit::ini_value;
use super::Inventory;
use crate::diag::Diag;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Hosts,
    Vars,
    Children,
}

/// A group used before it was declared: where, and by which parents.
struct Pending {
    line: u32,
    state: State,
    parents: Vec<String>,
}

fn re_section() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$").expect("static regex"))
}

fn re_groupname() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^([^:\]\s]+)\s*(?:#.*)?$").expect("static regex"))
}

pub(super) fn parse(inv: &mut Inventory, file: &str, text: &str) -> Result<(), Diag> {
    let err = |line: u32, msg: String| {
        Diag::new(Loc::new(file, line, 1), msg).with_hint(
            "see https://docs.ansible.com/ansible/latest/inventory_guide/intro_inventory.html",
        )
    };
    let mut pending: indexmap::IndexMap<String, Pending> = indexmap::IndexMap::new();
    let mut group = "ungrouped".to_string();
    let mut state = State::Hosts;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i as u32 + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(c) = re_section().captures(line) {
            group = c[1].to_string();
            let tag = c.get(2).map_or("hosts", |m| m.as_str());
            state = match tag {
                "hosts" => State::Hosts,
                "vars" => State::Vars,
                "children" => State::Children,
                other => {
                    return Err(err(
                        lineno,
                        format!("Section [{group}:{other}] has unknown type: {other}"),
                    )
                    .with_hint("a section is [group], [group:vars] or [group:children]"))
                }
            };
            if !inv.has_group(&group) {
                if state == State::Vars && !pending.contains_key(&group) {
                    pending.insert(
                        group.clone(),
                        Pending {
                            line: lineno,
                            state,
                            parents: Vec::new(),
                        },
                    );
                }
                inv.add_group(&group);
            }
            if state != State::Vars {
                if let Some(p) = pending.get(&group) {
                    match p.state {
                        State::Children => add_pending_children(inv, &group, &mut pending)
                            .map_err(|m| err(lineno, m))?,
                        _ => {
                            pending.shift_remove(&group);
                        }
                    }
                }
            }
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(err(
                lineno,
                format!(
                    "Invalid section entry: '{line}'. Please make sure that there are no spaces in \
                     the section entry, and that there are no other invalid characters"
                ),
            ));
        }
        match state {
            State::Hosts => {
                let tokens = shlex_split(line).map_err(|e| {
                    err(
                        lineno,
                        format!("Error parsing host definition '{line}': {e}"),
                    )
                })?;
                let Some(first) = tokens.first() else {
                    continue;
                };
                let (hosts, port) = expand_hostpattern(first).map_err(|m| err(lineno, m))?;
                let mut vars = Vec::new();
                for t in &tokens[1..] {
                    let Some((k, v)) = t.split_once('=') else {
                        return Err(err(
                            lineno,
                            format!("Expected key=value host variable assignment, got: {t}"),
                        )
                        .with_hint("write host variables as key=value after the host name"));
                    };
                    vars.push((k.to_string(), ini_value(v)));
                }
                for h in &hosts {
                    inv.add_host(h, Some(&group), port)
                        .map_err(|m| err(lineno, m))?;
                    for (k, v) in &vars {
                        inv.set_host_var(h, k, v.clone());
                    }
                }
            }
            State::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(err(lineno, format!("Expected key=value, got: {line}"))
                        .with_hint("a [group:vars] section holds key=value lines"));
                };
                inv.set_group_var(&group, k.trim(), ini_value(v.trim()))
                    .map_err(|m| err(lineno, m))?;
            }
            State::Children => {
                let Some(c) = re_groupname().captures(line) else {
                    return Err(err(lineno, format!("Expected group name, got: {line}")));
                };
                let child = c[1].to_string();
                if inv.has_group(&child) {
                    inv.add_child(&group, &child).map_err(|m| err(lineno, m))?;
                } else {
                    pending
                        .entry(child)
                        .or_insert(Pending {
                            line: lineno,
                            state,
                            parents: Vec::new(),
                        })
                        .parents
                        .push(group.clone());
                }
            }
        }
    }
    if let Some((name, p)) = pending.first() {
        let msg = match p.state {
            State::Vars => format!("Section [{name}:vars] not valid for undefined group '{name}'."),
            _ => format!(
                "Section [{}:children] includes undefined group '{name}'.",
                p.parents.last().map_or("", String::as_str)
            ),
        };
        return Err(err(p.line, msg).with_hint(format!(
            "declare the group with a [{name}] section (it may be empty)"
        )));
    }
    Ok(())
}

fn add_pending_children(
    inv: &mut Inventory,
    group: &str,
    pending: &mut indexmap::IndexMap<String, Pending>,
) -> Result<(), String> {
    let mut stack = vec![group.to_string()];
    let mut done: HashMap<String, ()> = HashMap::new();
    while let Some(g) = stack.pop() {
        if done.insert(g.clone(), ()).is_some() {
            continue;
        }
        let Some(p) = pending.shift_remove(&g) else {
            continue;
        };
        for parent in p.parents {
            inv.add_child(&parent, &g)?;
            if pending
                .get(&parent)
                .is_some_and(|pp| pp.state == State::Children)
            {
                stack.push(parent);
            }
        }
    }
    Ok(())
}

/// A host pattern with its optional port, expanded into host names (`_expand_hostpattern`).
pub(super) fn expand_hostpattern(pattern: &str) -> Result<(Vec<String>, Option<u16>), String> {
    let (name, port) = match parse_address(pattern, true) {
        Some((h, p)) => (h, p),
        None => (pattern.to_string(), None),
    };
    if pattern.trim().ends_with(':') && port.is_none() {
        return Err(format!(
            "Invalid host pattern '{pattern}' supplied, ending in ':' is not allowed, this \
             character is reserved to provide a port."
        ));
    }
    let hosts = if name.contains('[') {
        expand_hostname_range(&name).map_err(|e| e.0)?
    } else {
        vec![name]
    };
    if hosts.iter().any(|h| h.trim() == "---") {
        return Err(format!(
            "Invalid host pattern '{pattern}' supplied, '---' is normally a sign this is a YAML \
             file."
        ));
    }
    Ok((hosts, port))
}

/// Python's `shlex.split(line, comments=True)`: POSIX quoting, `#` starts a comment.
pub(super) fn shlex_split(line: &str) -> Result<Vec<String>, &'static str> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_token {
                    tokens.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            '#' => break,
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation"),
                    }
                }
            }
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\')) => cur.push(n),
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err("No closing quotation"),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation"),
                    }
                }
            }
            '\\' => {
                in_token = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("No escaped character"),
                }
            }
            c => {
                in_token = true;
                cur.push(c);
            }
        }
    }
    if in_token {
        tokens.push(cur);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> Result<Inventory, Diag> {
        let mut inv = Inventory::empty();
        parse(&mut inv, "t.ini", text)?;
        inv.reconcile();
        Ok(inv)
    }

    #[test]
    fn shlex_like_python() {
        assert_eq!(
            shlex_split("a b='x y' c=\"q\\\"\" # d").unwrap(),
            ["a", "b=x y", "c=q\""]
        );
        assert_eq!(shlex_split("a x=''").unwrap(), ["a", "x="]);
        assert_eq!(shlex_split("a#b c").unwrap(), ["a"]);
        assert!(shlex_split("a 'b").is_err());
    }

    #[test]
    fn host_line_values() {
        let inv = load("alpha a=5 b=True c=\"hello world\" d='5' k=007 f={'x':1}\n").unwrap();
        let h = inv.host("alpha").unwrap();
        assert_eq!(h.vars["a"], json!(5));
        assert_eq!(h.vars["b"], json!(true));
        assert_eq!(h.vars["c"], json!("hello world"));
        assert_eq!(h.vars["d"], json!(5));
        assert_eq!(h.vars["k"], json!("007"));
        assert_eq!(h.vars["f"], json!("{x:1}"));
    }

    #[test]
    fn group_vars_section_values() {
        let inv = load("[g]\nh\n[g:vars]\ns1 = 5\ns2 = 'five'\ns4 = a b # c\ns6=\n").unwrap();
        let g = inv.group("g").unwrap();
        assert_eq!(g.vars["s1"], json!(5));
        assert_eq!(g.vars["s2"], json!("five"));
        assert_eq!(g.vars["s4"], json!("a b # c"));
        assert_eq!(g.vars["s6"], json!(""));
    }

    #[test]
    fn ports_and_ranges() {
        let inv = load("[w]\nweb[1:2]:2222\n").unwrap();
        assert_eq!(inv.host("web2").unwrap().vars["ansible_port"], json!(2222));
    }

    #[test]
    fn children_declared_later() {
        let inv = load("[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nh\n[mid]\n").unwrap();
        assert_eq!(inv.group_names("h"), ["leaf", "mid", "top"]);
    }

    #[test]
    fn errors_are_located() {
        let e = load("[g]\nh\n[g:children]\nnope\n").unwrap_err();
        assert_eq!(e.loc.line, 4, "{e}");
        assert!(e.msg.contains("undefined group 'nope'"), "{e}");
        let e = load("[g:vars]\nx=1\n").unwrap_err();
        assert_eq!(e.loc.line, 1);
        let e = load("[g]\nh notkv\n").unwrap_err();
        assert_eq!(e.loc.line, 2);
        let e = load("[g:bogus]\n").unwrap_err();
        assert!(e.msg.contains("unknown type"));
        let e = load("[a b]\n").unwrap_err();
        assert!(e.msg.contains("Invalid section"));
        let e = load("host:\n").unwrap_err();
        assert!(e.msg.contains("ending in ':'"));
    }
}
