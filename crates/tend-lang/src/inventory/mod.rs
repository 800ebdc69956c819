//! Inventories: INI and YAML files, directories, host ranges, groups, patterns.
//!
//! The model follows ansible-core's `InventoryData`: hosts in definition order, groups with
//! their direct hosts, children and variables, the implicit `all` and `ungrouped` groups, and a
//! `localhost` that exists implicitly when no inventory defines one. Sources are read the way
//! Ansible's default inventory plugins read them (`host_list`, `yaml`, `ini`, in that order), and
//! every `group_vars/` and `host_vars/` directory next to a source is loaded with it.
//!
//! - [`Inventory::load`] reads `-i` sources; [`load_vars_dirs`] reads playbook-adjacent
//!   `group_vars/` and `host_vars/`.
//! - [`Inventory::host_vars`] merges a host's inventory-derived variables in Ansible's order
//!   (see [`precedence`]).
//! - [`Inventory::select`] resolves `hosts:` patterns and `--limit` (see [`pattern`]).
//! - [`Inventory::to_list_json`], [`Inventory::to_graph`], [`Inventory::host_json`] print what
//!   `ansible-inventory --list`, `--graph` and `--host` print (see [`output`]).

pub mod address;
mod ini;
pub mod output;
pub mod pattern;
pub mod precedence;
pub mod pylit;
mod vars_dirs;
mod yaml_source;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use tend_proto::{Loc, Value, Vars};

use crate::diag::Diag;

pub use pattern::{parse_limit, PatternError, Selection};
pub use vars_dirs::{load_vars_dirs, VarsDirs};

/// Names Ansible treats as this machine (`C.LOCALHOST`).
pub const LOCALHOST_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// Ansible's warning when nothing but the implicit localhost is available.
pub const EMPTY_INVENTORY_WARNING: &str = "provided hosts list is empty, only localhost is \
     available. Note that the implicit localhost does not match 'all'";

/// Ansible's warning when no source could be read at all.
pub const NO_INVENTORY_WARNING: &str =
    "No inventory was parsed, only implicit localhost is available";

/// A host and the variables its inventory source gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    pub name: String,
    /// Variables from inventory files (not from `host_vars/`), including `ansible_port` from
    /// `host:port`, `inventory_file` and `inventory_dir`.
    pub vars: Vars,
    /// The groups the host was put in directly, in the order it was put in them.
    pub groups: Vec<String>,
    /// The implicit localhost (not in any group, not matched by `all`).
    pub implicit: bool,
}

/// A group: its direct hosts and children, and the variables inventory files gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    pub vars: Vars,
    /// Direct hosts, in the order they were added.
    pub hosts: Vec<String>,
    /// Child groups, in the order they were added.
    pub children: Vec<String>,
    pub parents: Vec<String>,
    /// `ansible_group_priority` (default 1), which orders same-depth groups when merging.
    pub priority: i64,
}

impl Group {
    fn new(name: &str) -> Self {
        Group {
            name: name.to_string(),
            vars: Vars::new(),
            hosts: Vec::new(),
            children: Vec::new(),
            parents: Vec::new(),
            priority: 1,
        }
    }
}

/// An inventory source as given with `-i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `a,b,`: a comma-separated host list.
    HostList(String),
    /// A file or a directory (absolute, normalised).
    Path(PathBuf),
}

/// Hosts, groups and their variables, from one or more sources.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    hosts: IndexMap<String, Host>,
    groups: IndexMap<String, Group>,
    sources: Vec<Source>,
    /// `group_vars/` and `host_vars/` next to each path source, in source order.
    source_vars: Vec<VarsDirs>,
    /// The host that answers to `localhost` when the inventory defines one (first one wins).
    localhost: Option<String>,
    warnings: Vec<String>,
    /// The source file being read, for `inventory_file`/`inventory_dir`.
    current_source: Option<String>,
}

impl Inventory {
    /// An inventory with only `all` and `ungrouped` (and the implicit localhost).
    pub fn empty() -> Self {
        let mut inv = Inventory::default();
        inv.add_group("all");
        inv.add_group("ungrouped");
        // The two built-in groups can never form a loop.
        let _ = inv.add_child("all", "ungrouped");
        inv
    }

    /// Reads every source in order (`-i` may be repeated); later sources add to and override
    /// earlier ones. A source containing a comma that is not an existing path is a host list.
    pub fn load(sources: &[String]) -> Result<Self, Diag> {
        let mut inv = Inventory::empty();
        for src in sources {
            if src.is_empty() {
                continue;
            }
            let path = Path::new(src);
            if src.contains(',') && !path.exists() {
                inv.sources.push(Source::HostList(src.clone()));
                inv.current_source = Some(src.clone());
                inv.parse_host_list(src)?;
                inv.current_source = None;
                continue;
            }
            let path = normalize(&expand_home(src));
            if !path.exists() {
                return Err(Diag::new(
                    Loc::new(src.as_str(), 0, 0),
                    "inventory source does not exist",
                )
                .with_hint(
                    "pass an INI or YAML inventory file, a directory of them, or a comma-separated \
                     host list such as `web1,web2,` with -i",
                ));
            }
            inv.sources.push(Source::Path(path.clone()));
            inv.parse_path(&path)?;
            let dir = if path.is_dir() {
                path.clone()
            } else {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            inv.source_vars.push(load_vars_dirs(&dir)?);
        }
        inv.reconcile();
        for vd in &inv.source_vars {
            vd.check(&inv)?;
        }
        Ok(inv)
    }

    fn parse_host_list(&mut self, list: &str) -> Result<(), Diag> {
        for h in list.split(',') {
            let h = h.trim();
            if h.is_empty() {
                continue;
            }
            let (host, port) = match address::parse_address(h, false) {
                Some((host, port)) => (host, port),
                None => (h.to_string(), None),
            };
            if !self.hosts.contains_key(&host) {
                self.add_host(&host, Some("ungrouped"), port)
                    .map_err(|m| Diag::new(Loc::new(list, 0, 0), m))?;
            }
        }
        Ok(())
    }

    fn parse_path(&mut self, path: &Path) -> Result<(), Diag> {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| io_diag(path, "cannot read inventory directory", &e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                let name = entry.file_name().map(|n| n.to_string_lossy().into_owned());
                if name.as_deref().is_some_and(is_ignored_in_dir) {
                    continue;
                }
                self.parse_path(&entry)?;
            }
            return Ok(());
        }
        let mut text = std::fs::read_to_string(path)
            .map_err(|e| io_diag(path, "cannot read inventory file", &e))?;
        let file = path.to_string_lossy().into_owned();
        if crate::vault::is_encrypted(text.as_bytes()) {
            // An encrypted inventory (INI or YAML): its text is a secret as a whole, and
            // every value in it (the YAML reader reveals those of YAML files).
            let plain = crate::vault::decrypt(text.as_bytes(), &Loc::new(file.as_str(), 1, 1))?;
            text = String::from_utf8(plain).map_err(|_| {
                Diag::new(
                    Loc::new(file.as_str(), 1, 1),
                    "vault: the decrypted inventory is not UTF-8 text",
                )
            })?;
        }
        self.current_source = Some(file.clone());
        let result = self.parse_file(&file, &text);
        self.current_source = None;
        result
    }

    /// Tries the `yaml` plugin where Ansible would (no extension, `.yml`, `.yaml`, `.json`), then
    /// `ini` (anything but `.toml`), keeping whatever the failed attempt added out of the way.
    fn parse_file(&mut self, file: &str, text: &str) -> Result<(), Diag> {
        let ext = Path::new(file)
            .extension()
            .map(|e| e.to_string_lossy().into_owned());
        let yaml_ok = matches!(ext.as_deref(), None | Some("yml" | "yaml" | "json"));
        if ext.as_deref() == Some("toml") {
            return Err(
                Diag::new(Loc::new(file, 0, 0), "TOML inventories are not supported")
                    .with_hint("convert the inventory to INI or YAML"),
            );
        }
        let mut yaml_err = None;
        if yaml_ok {
            let saved = self.clone();
            match yaml_source::parse(self, file, text) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    *self = saved;
                    yaml_err = Some(e);
                }
            }
        }
        let saved = self.clone();
        match ini::parse(self, file, text) {
            Ok(()) => Ok(()),
            Err(ini_err) => {
                *self = saved;
                // Report the error of the format the file most likely is.
                match yaml_err {
                    Some(y) if ext.is_some() || y.loc.line > 0 && !looks_like_ini(text) => Err(y),
                    _ => Err(ini_err),
                }
            }
        }
    }

    // ---- building, with Ansible's InventoryData rules --------------------------------------

    pub(crate) fn add_group(&mut self, name: &str) -> &str {
        if !self.groups.contains_key(name) {
            self.groups.insert(name.to_string(), Group::new(name));
        }
        name_of(&self.groups, name)
    }

    /// Adds a host (and puts it in `group`); a port only counts when the host is new.
    pub(crate) fn add_host(
        &mut self,
        name: &str,
        group: Option<&str>,
        port: Option<u16>,
    ) -> Result<(), String> {
        if name.is_empty() {
            return Err("Invalid empty host name provided".into());
        }
        if let Some(g) = group {
            if !self.groups.contains_key(g) {
                return Err(format!("Could not find group {g} in inventory"));
            }
        }
        if !self.hosts.contains_key(name) {
            let mut vars = Vars::new();
            if let Some(p) = port {
                vars.insert("ansible_port".into(), Value::from(p));
            }
            match &self.current_source {
                Some(src) => {
                    vars.insert("inventory_file".into(), Value::String(src.clone()));
                    let dir = Path::new(src)
                        .parent()
                        .map(|p| p.to_string_lossy().into_owned());
                    vars.insert(
                        "inventory_dir".into(),
                        dir.filter(|_| Path::new(src).exists())
                            .map(Value::String)
                            .unwrap_or(Value::Null),
                    );
                }
                None => {
                    vars.insert("inventory_file".into(), Value::Null);
                    vars.insert("inventory_dir".into(), Value::Null);
                }
            }
            self.hosts.insert(
                name.to_string(),
                Host {
                    name: name.to_string(),
                    vars,
                    groups: Vec::new(),
                    implicit: false,
                },
            );
            if LOCALHOST_NAMES.contains(&name) {
                match &self.localhost {
                    None => self.localhost = Some(name.to_string()),
                    Some(first) => self.warnings.push(format!(
                        "A duplicate localhost-like entry was found ({name}). First found \
                         localhost was {first}"
                    )),
                }
            }
        }
        if let Some(g) = group {
            self.put_host_in_group(name, g);
        }
        Ok(())
    }

    fn put_host_in_group(&mut self, host: &str, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            if !g.hosts.iter().any(|h| h == host) {
                g.hosts.push(host.to_string());
            }
        }
        if let Some(h) = self.hosts.get_mut(host) {
            if !h.groups.iter().any(|g| g == group) {
                h.groups.push(group.to_string());
            }
        }
    }

    fn remove_host_from_group(&mut self, host: &str, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.hosts.retain(|h| h != host);
        }
        if let Some(h) = self.hosts.get_mut(host) {
            h.groups.retain(|g| g != group);
        }
    }

    /// Adds `child` (a group, or else a host) to `parent`, refusing loops.
    pub(crate) fn add_child(&mut self, parent: &str, child: &str) -> Result<(), String> {
        if !self.groups.contains_key(parent) {
            return Err(format!("{parent} is not a known group"));
        }
        if self.groups.contains_key(child) {
            if parent == child {
                return Err(format!("can't add group {child} to itself"));
            }
            if self.groups[parent].children.iter().any(|c| c == child) {
                return Ok(());
            }
            if self.group_ancestors(parent).contains(child) {
                return Err(format!(
                    "Adding group '{child}' as child to '{parent}' creates a recursive \
                     dependency loop."
                ));
            }
            if let Some(p) = self.groups.get_mut(parent) {
                p.children.push(child.to_string());
            }
            if let Some(c) = self.groups.get_mut(child) {
                if !c.parents.iter().any(|p| p == parent) {
                    c.parents.push(parent.to_string());
                }
            }
            Ok(())
        } else if self.hosts.contains_key(child) {
            self.put_host_in_group(child, parent);
            Ok(())
        } else {
            Err(format!("{child} is not a known host nor group"))
        }
    }

    pub(crate) fn set_group_var(
        &mut self,
        group: &str,
        key: &str,
        value: Value,
    ) -> Result<(), String> {
        let Some(g) = self.groups.get_mut(group) else {
            return Err(format!("Could not identify group or host named {group}"));
        };
        if key == "ansible_group_priority" {
            g.priority = py_int(&value).ok_or_else(|| {
                format!(
                    "ansible_group_priority must be an integer, got {}",
                    pylit::py_repr(&value)
                )
            })?;
        } else {
            g.vars.insert(key.to_string(), value);
        }
        Ok(())
    }

    pub(crate) fn set_host_var(&mut self, host: &str, key: &str, value: Value) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.vars.insert(key.to_string(), value);
        }
    }

    pub(crate) fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// Ansible's `reconcile_inventory`: parentless groups become children of `all`, hosts in no
    /// group go to `ungrouped`, hosts in a real group leave it.
    fn reconcile(&mut self) {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for g in &names {
            if g != "all" && self.groups[g].parents.is_empty() {
                let _ = self.add_child("all", g);
            }
        }
        let hosts: Vec<String> = self.hosts.keys().cloned().collect();
        for h in &hosts {
            let groups = self.host_groups(h);
            if groups.contains("ungrouped") {
                if groups.iter().any(|g| g != "all" && g != "ungrouped") {
                    self.remove_host_from_group(h, "ungrouped");
                }
            } else if groups.iter().all(|g| g == "all") {
                self.put_host_in_group(h, "ungrouped");
            }
        }
        for h in &hosts {
            if self.groups.contains_key(h) {
                self.warnings
                    .push(format!("Found both group and host with same name: {h}"));
            }
        }
    }

    // ---- queries ----------------------------------------------------------------------------

    /// Hosts in definition order (without the implicit localhost).
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// Groups in definition order, `all` and `ungrouped` first.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }

    /// A host by name. `localhost`, `127.0.0.1` and `::1` answer with the inventory's localhost
    /// if it has one, else with an implicit one (`ansible_connection=local`, in no group).
    pub fn host(&self, name: &str) -> Option<Host> {
        if let Some(h) = self.hosts.get(name) {
            return Some(h.clone());
        }
        if !LOCALHOST_NAMES.contains(&name) {
            return None;
        }
        if let Some(l) = &self.localhost {
            return self.hosts.get(l).cloned();
        }
        let mut vars = Vars::new();
        vars.insert("ansible_connection".into(), Value::String("local".into()));
        Some(Host {
            name: name.to_string(),
            vars,
            groups: Vec::new(),
            implicit: true,
        })
    }

    /// The sources as given, in order.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The `group_vars/`/`host_vars/` found next to the sources.
    pub fn source_vars(&self) -> &[VarsDirs] {
        &self.source_vars
    }

    /// Problems Ansible reports as warnings while reading (duplicate localhost, a name used for
    /// both a host and a group, skipped YAML keys). Whether nothing but the implicit localhost
    /// exists is for the caller to say ([`EMPTY_INVENTORY_WARNING`]).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// True when no source defined any host (only the implicit localhost is available).
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Every group the host belongs to, directly or through a child group (with `all`).
    pub fn host_groups(&self, host: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Some(h) = self.hosts.get(host) else {
            return out;
        };
        for g in &h.groups {
            out.insert(g.clone());
            out.extend(self.group_ancestors(g));
        }
        out
    }

    /// The groups above `group` (not including it).
    pub fn group_ancestors(&self, group: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = vec![group];
        while let Some(g) = todo.pop() {
            if let Some(grp) = self.groups.get(g) {
                for p in &grp.parents {
                    if seen.insert(p.clone()) {
                        todo.push(p);
                    }
                }
            }
        }
        seen
    }

    /// A group's depth: the longest path from `all` (Ansible's `Group.depth`).
    pub fn group_depth(&self, group: &str) -> usize {
        fn depth(
            inv: &Inventory,
            g: &str,
            memo: &mut HashMap<String, usize>,
            guard: usize,
        ) -> usize {
            if let Some(d) = memo.get(g) {
                return *d;
            }
            let d = match inv.groups.get(g) {
                Some(grp) if guard < 10_000 => grp
                    .parents
                    .iter()
                    .map(|p| depth(inv, p, memo, guard + 1) + 1)
                    .max()
                    .unwrap_or(0),
                _ => 0,
            };
            memo.insert(g.to_string(), d);
            d
        }
        depth(self, group, &mut HashMap::new(), 0)
    }

    /// The group and all groups below it, breadth first: the group, its children in order,
    /// then their children (Ansible's `get_descendants(preserve_ordering=True)`).
    fn descendants_ordered(&self, group: &str) -> Vec<String> {
        let mut ordered = vec![group.to_string()];
        let mut seen: BTreeSet<String> = BTreeSet::new();
        seen.insert(group.to_string());
        let mut frontier = vec![group.to_string()];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for g in &frontier {
                for c in self
                    .groups
                    .get(g)
                    .map(|g| g.children.as_slice())
                    .unwrap_or(&[])
                {
                    if seen.insert(c.clone()) {
                        ordered.push(c.clone());
                        next.push(c.clone());
                    }
                }
            }
            frontier = next;
        }
        ordered
    }

    /// All hosts of a group and its descendants, each once (Ansible's `Group.get_hosts`).
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for g in self.descendants_ordered(group) {
            for h in self
                .groups
                .get(&g)
                .map(|g| g.hosts.as_slice())
                .unwrap_or(&[])
            {
                if seen.insert(h.as_str()) {
                    out.push(h.clone());
                }
            }
        }
        out
    }

    /// The `groups` magic variable: every group → its hosts, in inventory order.
    pub fn groups_dict(&self) -> Vars {
        self.groups
            .keys()
            .map(|g| {
                let hosts = self.group_hosts(g).into_iter().map(Value::String).collect();
                (g.clone(), Value::Array(hosts))
            })
            .collect()
    }

    /// `group_names`: the host's groups, sorted, without `all` (with `ungrouped`, as Ansible).
    pub fn group_names(&self, host: &str) -> Vec<String> {
        self.host_groups(host)
            .into_iter()
            .filter(|g| g != "all")
            .collect()
    }

    /// The magic variables that belong to the host itself: `inventory_hostname`,
    /// `inventory_hostname_short`, `group_names`.
    pub fn host_magic_vars(&self, host: &str) -> Vars {
        let mut v = Vars::new();
        v.insert("inventory_hostname".into(), Value::String(host.to_string()));
        let short = if address::is_ip_address(host) {
            host.to_string()
        } else {
            host.split('.').next().unwrap_or(host).to_string()
        };
        v.insert("inventory_hostname_short".into(), Value::String(short));
        let names = self
            .group_names(host)
            .into_iter()
            .map(Value::String)
            .collect();
        v.insert("group_names".into(), Value::Array(names));
        v
    }

    /// The host's groups without `all`, in Ansible's merge order: by depth, then
    /// `ansible_group_priority`, then name (`sort_groups`).
    pub fn sorted_host_groups(&self, host: &str) -> Vec<String> {
        let mut groups: Vec<(usize, i64, String)> = self
            .host_groups(host)
            .into_iter()
            .filter(|g| g != "all")
            .map(|g| {
                (
                    self.group_depth(&g),
                    self.groups.get(&g).map_or(1, |x| x.priority),
                    g,
                )
            })
            .collect();
        groups.sort();
        groups.into_iter().map(|(_, _, g)| g).collect()
    }
}

fn name_of<'a>(groups: &'a IndexMap<String, Group>, name: &str) -> &'a str {
    groups
        .get_key_value(name)
        .map(|(k, _)| k.as_str())
        .unwrap_or("")
}

/// Python's `int(value)` for `ansible_group_priority`.
fn py_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Files Ansible skips in an inventory directory: hidden ones, `group_vars`, `host_vars`,
/// `vars_plugins`, and these endings (`INVENTORY_IGNORE_EXTS`).
pub fn is_ignored_in_dir(name: &str) -> bool {
    const EXTS: [&str; 12] = [
        ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg",
        ".retry",
    ];
    name.starts_with('.')
        || matches!(name, "host_vars" | "group_vars" | "vars_plugins")
        || EXTS.iter().any(|e| name.ends_with(e))
}

fn looks_like_ini(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .any(|l| l.starts_with('[') && l.ends_with(']'))
}

fn io_diag(path: &Path, what: &str, e: &std::io::Error) -> Diag {
    Diag::new(
        Loc::new(path.to_string_lossy().as_ref(), 0, 0),
        format!("{what}: {e}"),
    )
    .with_hint("check that the path exists and is readable")
}

fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(p)
}

/// An absolute path with `.` and `..` resolved lexically (Python's `normpath(abspath(p))`).
fn normalize(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv_from_ini(text: &str) -> Inventory {
        let mut inv = Inventory::empty();
        ini::parse(&mut inv, "t.ini", text).unwrap();
        inv.reconcile();
        inv
    }

    #[test]
    fn ungrouped_hosts_and_children() {
        let inv = inv_from_ini("u1\n[a:children]\nb\n[b]\nh1\n[c]\nh2\nu1\n");
        assert_eq!(inv.group("ungrouped").unwrap().hosts, Vec::<String>::new());
        assert_eq!(inv.group("all").unwrap().children, ["ungrouped", "a", "c"]);
        // Breadth first from `all`: c (h2, u1) before b (h1), as `ansible all --list-hosts`.
        assert_eq!(inv.group_hosts("all"), ["h2", "u1", "h1"]);
        assert_eq!(inv.group_names("h1"), ["a", "b"]);
        assert_eq!(inv.group_depth("b"), 2);
    }

    #[test]
    fn group_names_keep_ungrouped_like_ansible() {
        let inv = inv_from_ini("u1\n[g]\nh1\n");
        assert_eq!(inv.group_names("u1"), ["ungrouped"]);
    }

    #[test]
    fn implicit_localhost_only_by_name() {
        let inv = inv_from_ini("[g]\nh1\n");
        let l = inv.host("localhost").unwrap();
        assert!(l.implicit);
        assert_eq!(l.vars["ansible_connection"], "local");
        assert!(!inv.group_hosts("all").contains(&"localhost".to_string()));
        let inv = inv_from_ini("[g]\n127.0.0.1\n");
        assert_eq!(inv.host("localhost").unwrap().name, "127.0.0.1");
    }

    #[test]
    fn loops_are_refused() {
        let mut inv = Inventory::empty();
        inv.add_group("a");
        inv.add_group("b");
        inv.add_child("a", "b").unwrap();
        assert!(inv.add_child("b", "a").is_err());
    }

    #[test]
    fn ignored_directory_entries() {
        for n in [
            ".hidden",
            "group_vars",
            "x.bak",
            "x~",
            "x.orig",
            "x.cfg",
            "README.md",
            "x.retry",
        ] {
            assert!(is_ignored_in_dir(n), "{n}");
        }
        for n in ["hosts", "hosts.yml", "prod.ini"] {
            assert!(!is_ignored_in_dir(n), "{n}");
        }
    }
}
