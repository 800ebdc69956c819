//! What `tend inventory` prints, shaped like `ansible-inventory --list`, `--graph [--vars]` and
//! `--host`.

use std::collections::HashSet;

use serde::Serialize;
use tend_proto::{Value, Vars};

use super::pylit::py_str;
use super::{Inventory, VarsDirs};

/// Variables `ansible-inventory` never shows (`C.INTERNAL_STATIC_VARS`).
const INTERNAL_VARS: &[&str] = &[
    "ansible_async_path",
    "ansible_collection_name",
    "ansible_config_file",
    "ansible_dependent_role_names",
    "ansible_diff_mode",
    "ansible_facts",
    "ansible_forks",
    "ansible_inventory_sources",
    "ansible_limit",
    "ansible_play_batch",
    "ansible_play_hosts",
    "ansible_play_hosts_all",
    "ansible_play_role_names",
    "ansible_playbook_python",
    "ansible_role_name",
    "ansible_role_names",
    "ansible_run_tags",
    "ansible_skip_tags",
    "ansible_verbosity",
    "ansible_version",
    "inventory_dir",
    "inventory_file",
    "inventory_hostname",
    "inventory_hostname_short",
    "groups",
    "group_names",
    "hostvars",
    "playbook_dir",
    "play_hosts",
    "role_name",
    "role_names",
    "role_path",
    "role_uuid",
];

fn without_internal(mut v: Vars) -> Vars {
    v.retain(|k, _| !INTERNAL_VARS.contains(&k.as_str()));
    v
}

impl Inventory {
    /// The variables `ansible-inventory` shows for a host.
    fn shown_host_vars(&self, host: &str, playbook: Option<&VarsDirs>) -> Vars {
        without_internal(self.host_vars(host, playbook))
    }

    /// The variables `ansible-inventory --graph --vars` shows for a group.
    fn shown_group_vars(&self, group: &str) -> Vars {
        let mut v = self.group_vars(group);
        if let Some(g) = self.group(group) {
            if g.priority != 1 {
                v.insert("ansible_group_priority".into(), Value::from(g.priority));
            }
        }
        without_internal(v)
    }

    /// `ansible-inventory --list`: every group with its direct `hosts` and `children`, and
    /// `_meta.hostvars`. `hosts` narrows the output (the result of `--limit`); `None` is all.
    /// Print it with [`to_python_json`] for byte-identical output.
    pub fn to_list_json(&self, hosts: Option<&[String]>, playbook: Option<&VarsDirs>) -> Value {
        let all_hosts = self.group_hosts("all");
        let available: Vec<String> = match hosts {
            Some(h) => all_hosts.into_iter().filter(|x| h.contains(x)).collect(),
            None => all_hosts,
        };
        let avail: HashSet<&str> = available.iter().map(String::as_str).collect();
        let mut out = Vars::new();
        let mut seen = HashSet::new();
        self.format_group("all", &avail, &mut seen, &mut out);
        let mut hostvars = Vars::new();
        for h in &available {
            let v = self.shown_host_vars(h, playbook);
            if !v.is_empty() {
                hostvars.insert(h.clone(), Value::Object(v));
            }
        }
        let mut meta = Vars::new();
        meta.insert("hostvars".into(), Value::Object(hostvars));
        meta.insert("profile".into(), Value::String("inventory_legacy".into()));
        out.insert("_meta".into(), Value::Object(meta));
        sorted(Value::Object(out))
    }

    fn format_group(
        &self,
        name: &str,
        avail: &HashSet<&str>,
        seen: &mut HashSet<String>,
        out: &mut Vars,
    ) {
        let Some(g) = self.group(name) else { return };
        let mut entry = Vars::new();
        if name != "all" {
            let hosts: Vec<Value> = g
                .hosts
                .iter()
                .filter(|h| avail.contains(h.as_str()))
                .map(|h| Value::String(h.clone()))
                .collect();
            if !hosts.is_empty() {
                entry.insert("hosts".into(), Value::Array(hosts));
            }
        }
        let mut children = Vec::new();
        let mut sub = Vars::new();
        for c in &g.children {
            children.push(Value::String(c.clone()));
            if seen.insert(c.clone()) {
                self.format_group(c, avail, seen, &mut sub);
            }
        }
        if !children.is_empty() {
            entry.insert("children".into(), Value::Array(children));
        }
        if !entry.is_empty() {
            out.insert(name.to_string(), Value::Object(entry));
        }
        for (k, v) in sub {
            out.insert(k, v);
        }
    }

    /// `ansible-inventory --graph [group] [--vars]`, or `None` if there is no such group.
    pub fn to_graph(&self, group: &str, show_vars: bool) -> Option<String> {
        self.group(group)?;
        let mut lines = Vec::new();
        self.graph_group(group, 0, show_vars, &mut lines, 0);
        Some(lines.join("\n"))
    }

    fn graph_group(
        &self,
        name: &str,
        depth: usize,
        vars: bool,
        out: &mut Vec<String>,
        guard: usize,
    ) {
        let Some(g) = self.group(name) else { return };
        if guard > 1000 {
            return;
        }
        out.push(graph_name(&format!("@{name}:"), depth));
        for c in &g.children {
            self.graph_group(c, depth + 1, vars, out, guard + 1);
        }
        if name != "all" {
            for h in &g.hosts {
                out.push(graph_name(h, depth + 1));
                if vars {
                    show_vars(&self.shown_host_vars(h, None), depth + 2, out);
                }
            }
        }
        if vars {
            show_vars(&self.shown_group_vars(name), depth + 1, out);
        }
    }

    /// `ansible-inventory --host H`, or `None` unless the name is exactly one host.
    pub fn host_json(&self, host: &str, playbook: Option<&VarsDirs>) -> Option<Value> {
        let sel = self.select(host, None).ok()?;
        let [h] = sel.hosts.as_slice() else {
            return None;
        };
        Some(sorted(Value::Object(self.shown_host_vars(h, playbook))))
    }
}

fn graph_name(name: &str, depth: usize) -> String {
    if depth == 0 {
        name.to_string()
    } else {
        format!("{}--{name}", "  |".repeat(depth))
    }
}

fn show_vars(vars: &Vars, depth: usize, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = vars.keys().collect();
    keys.sort();
    for k in keys {
        out.push(graph_name(
            &format!("{{{k} = {}}}", py_str(&vars[k])),
            depth,
        ));
    }
}

/// A value with every mapping's keys sorted (Python's `json.dumps(sort_keys=True)`).
pub fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// JSON as Python's `json.dumps(indent=4)` writes it: four-space indent, non-ASCII escaped.
pub fn to_python_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, PyFormatter::new());
    if v.serialize(&mut ser).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

struct PyFormatter {
    inner: serde_json::ser::PrettyFormatter<'static>,
}

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.inner.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.inner.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_object_value(w)
    }
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
}

impl PyFormatter {
    fn new() -> Self {
        PyFormatter {
            inner: serde_json::ser::PrettyFormatter::with_indent(b"    "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_json_shape() {
        let s = to_python_json(&json!({"a": [1, {}], "b": "é", "c": []}));
        assert_eq!(s, "{\n    \"a\": [\n        1,\n        {}\n    ],\n    \"b\": \"\\u00e9\",\n    \"c\": []\n}");
    }
}
