//! Where a host's inventory-derived variables come from, and which wins. The one place these
//! rules live.
//!
//! ansible-core merges these layers in this order, each later one replacing (not deep-merging)
//! top-level keys of the earlier ones (`VariableManager.get_vars` with the default
//! `VARIABLE_PRECEDENCE`, `hash_behaviour = replace`):
//!
//! | # | layer                            | Ansible's name           |
//! |---|----------------------------------|--------------------------|
//! | 1 | inventory file vars of `all`     | `all_inventory`          |
//! | 2 | inventory file vars of the host's groups, parents before children, then by `ansible_group_priority`, then by name | `groups_inventory` |
//! | 3 | inventory `group_vars/all`       | `all_plugins_inventory`  |
//! | 4 | playbook `group_vars/all`        | `all_plugins_play`       |
//! | 5 | inventory `group_vars/<group>` (same group order; per source, sources in `-i` order) | `groups_plugins_inventory` |
//! | 6 | playbook `group_vars/<group>`    | `groups_plugins_play`    |
//! | 7 | inventory file host vars (with `inventory_hostname`, `inventory_hostname_short`, `group_names`) | `host.get_vars()` |
//! | 8 | inventory `host_vars/<host>`     | inventory host_vars      |
//! | 9 | playbook `host_vars/<host>`      | playbook host_vars       |
//!
//! Everything above these (facts, play vars, role vars, extra vars …) is the engine's business.

use tend_proto::Vars;

use super::{Inventory, VarsDirs};

/// The inventory-derived variable layers, lowest precedence first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InventoryLayer {
    InventoryFileAll,
    InventoryFileGroups,
    InventoryGroupVarsAll,
    PlaybookGroupVarsAll,
    InventoryGroupVars,
    PlaybookGroupVars,
    InventoryFileHost,
    InventoryHostVars,
    PlaybookHostVars,
}

/// The merge order, lowest first.
pub const ORDER: [InventoryLayer; 9] = [
    InventoryLayer::InventoryFileAll,
    InventoryLayer::InventoryFileGroups,
    InventoryLayer::InventoryGroupVarsAll,
    InventoryLayer::PlaybookGroupVarsAll,
    InventoryLayer::InventoryGroupVars,
    InventoryLayer::PlaybookGroupVars,
    InventoryLayer::InventoryFileHost,
    InventoryLayer::InventoryHostVars,
    InventoryLayer::PlaybookHostVars,
];

impl Inventory {
    /// A host's variables from the inventory and the `group_vars/`/`host_vars/` next to it and
    /// (if given) next to the playbook, merged in Ansible's order ([`ORDER`]). Includes
    /// `inventory_hostname`, `inventory_hostname_short`, `group_names`, `inventory_file` and
    /// `inventory_dir`; `groups` is a magic variable the engine adds on top
    /// ([`Inventory::groups_dict`]). An unknown host has no variables.
    pub fn host_vars(&self, host: &str, playbook_dirs: Option<&VarsDirs>) -> Vars {
        let mut out = Vars::new();
        let Some(h) = self.host(host) else { return out };
        let groups = if h.implicit {
            Vec::new()
        } else {
            self.sorted_host_groups(&h.name)
        };
        for layer in ORDER {
            for vars in self.layer(layer, &h, &groups, playbook_dirs) {
                merge(&mut out, &vars);
            }
        }
        out
    }

    /// The pieces of one layer, in the order they are merged.
    fn layer<'a>(
        &'a self,
        layer: InventoryLayer,
        host: &super::Host,
        groups: &'a [String],
        playbook: Option<&'a VarsDirs>,
    ) -> Vec<std::borrow::Cow<'a, Vars>> {
        use std::borrow::Cow;
        use InventoryLayer::*;
        let inv_dirs = &self.source_vars;
        match layer {
            InventoryFileAll => self
                .group("all")
                .map(|g| Cow::Borrowed(&g.vars))
                .into_iter()
                .collect(),
            InventoryFileGroups => groups
                .iter()
                .filter_map(|g| self.group(g).map(|g| Cow::Borrowed(&g.vars)))
                .collect(),
            InventoryGroupVarsAll => inv_dirs
                .iter()
                .filter_map(|d| d.group("all"))
                .map(Cow::Borrowed)
                .collect(),
            PlaybookGroupVarsAll => playbook
                .and_then(|d| d.group("all"))
                .map(Cow::Borrowed)
                .into_iter()
                .collect(),
            // Source-major, as `get_vars_from_inventory_sources` loops: every group of the
            // first source, then every group of the second.
            InventoryGroupVars => inv_dirs
                .iter()
                .flat_map(|d| groups.iter().filter_map(move |g| d.group(g)))
                .map(Cow::Borrowed)
                .collect(),
            PlaybookGroupVars => playbook
                .into_iter()
                .flat_map(|d| groups.iter().filter_map(move |g| d.group(g)))
                .map(Cow::Borrowed)
                .collect(),
            InventoryFileHost => {
                let mut v = host.vars.clone();
                let magic = self.host_magic_vars(&host.name);
                merge(&mut v, &magic);
                vec![Cow::Owned(v)]
            }
            InventoryHostVars => inv_dirs
                .iter()
                .filter_map(|d| d.host(&host.name))
                .map(Cow::Borrowed)
                .collect(),
            PlaybookHostVars => playbook
                .and_then(|d| d.host(&host.name))
                .map(Cow::Borrowed)
                .into_iter()
                .collect(),
        }
    }

    /// A group's own variables as `ansible-inventory` shows them: inventory file vars, then
    /// `group_vars/<group>` of every source.
    pub fn group_vars(&self, group: &str) -> Vars {
        let mut out = self
            .group(group)
            .map(|g| g.vars.clone())
            .unwrap_or_default();
        for d in &self.source_vars {
            if let Some(v) = d.group(group) {
                merge(&mut out, v);
            }
        }
        out
    }
}

/// Replace semantics: a later layer's key replaces the earlier value whole.
fn merge(into: &mut Vars, from: &Vars) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each layer sets `v` (and its own marker); the highest layer present must win, and
    /// removing it must reveal the one below.
    #[test]
    fn each_layer_overrides_the_one_below() {
        // (layer, file to write relative to the inventory dir or playbook dir, content)
        let table: &[(InventoryLayer, &str, &str)] = &[
            (
                InventoryLayer::InventoryFileAll,
                "inv/hosts",
                "[all:vars]\nv=all_file\n",
            ),
            (
                InventoryLayer::InventoryFileGroups,
                "inv/hosts",
                "[parent:vars]\nv=parent_file\n[child:vars]\nv=child_file\n",
            ),
            (
                InventoryLayer::InventoryGroupVarsAll,
                "inv/group_vars/all.yml",
                "v: inv_gv_all\n",
            ),
            (
                InventoryLayer::PlaybookGroupVarsAll,
                "pb/group_vars/all.yml",
                "v: pb_gv_all\n",
            ),
            (
                InventoryLayer::InventoryGroupVars,
                "inv/group_vars/parent.yml",
                "v: inv_gv_parent\n",
            ),
            (
                InventoryLayer::PlaybookGroupVars,
                "pb/group_vars/parent.yml",
                "v: pb_gv_parent\n",
            ),
            (
                InventoryLayer::InventoryFileHost,
                "inv/hosts",
                "h v=host_file\n",
            ),
            (
                InventoryLayer::InventoryHostVars,
                "inv/host_vars/h.yml",
                "v: inv_hv\n",
            ),
            (
                InventoryLayer::PlaybookHostVars,
                "pb/host_vars/h.yml",
                "v: pb_hv\n",
            ),
        ];
        assert_eq!(table.iter().map(|r| r.0).collect::<Vec<_>>(), ORDER);
        let expected = [
            "all_file",
            "child_file",
            "inv_gv_all",
            "pb_gv_all",
            "inv_gv_parent",
            "pb_gv_parent",
            "host_file",
            "inv_hv",
            "pb_hv",
        ];
        // Use the first n layers; the n-th must win.
        for n in 1..=table.len() {
            let t = tempfile::tempdir().unwrap();
            let mut hosts = String::from("[child]\nh\n[parent:children]\nchild\n");
            let mut host_line_vars = String::new();
            for (_, path, content) in &table[..n] {
                if *path == "inv/hosts" {
                    if let Some(rest) = content.strip_prefix("h ") {
                        host_line_vars = rest.trim().to_string();
                    } else {
                        hosts.push_str(content);
                    }
                } else {
                    let p = t.path().join(path);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, content).unwrap();
                }
            }
            hosts = hosts.replacen("[child]\nh\n", &format!("[child]\nh {host_line_vars}\n"), 1);
            std::fs::create_dir_all(t.path().join("inv")).unwrap();
            std::fs::create_dir_all(t.path().join("pb")).unwrap();
            std::fs::write(t.path().join("inv/hosts"), &hosts).unwrap();
            let src = t.path().join("inv/hosts").to_string_lossy().into_owned();
            let inv = Inventory::load(&[src]).unwrap();
            let pb = super::super::load_vars_dirs(&t.path().join("pb")).unwrap();
            let vars = inv.host_vars("h", Some(&pb));
            assert_eq!(
                vars["v"],
                json!(expected[n - 1]),
                "with the first {n} layers"
            );
        }
    }

    #[test]
    fn group_order_is_depth_then_priority_then_name() {
        let mut inv = Inventory::empty();
        for g in ["b", "a", "deep", "top"] {
            inv.add_group(g);
        }
        inv.add_host("h", Some("a"), None).unwrap();
        inv.add_host("h", Some("b"), None).unwrap();
        inv.add_host("h", Some("deep"), None).unwrap();
        inv.add_child("top", "deep").unwrap();
        inv.set_group_var("a", "v", json!("a")).unwrap();
        inv.set_group_var("b", "v", json!("b")).unwrap();
        inv.reconcile();
        assert_eq!(inv.sorted_host_groups("h"), ["a", "b", "top", "deep"]);
        assert_eq!(inv.host_vars("h", None)["v"], json!("b"));
        inv.set_group_var("a", "ansible_group_priority", json!(10))
            .unwrap();
        assert_eq!(inv.sorted_host_groups("h"), ["b", "top", "a", "deep"]);
        assert_eq!(inv.host_vars("h", None)["v"], json!("a"));
    }

    #[test]
    fn implicit_localhost_gets_all_vars_but_no_groups() {
        let mut inv = Inventory::empty();
        inv.set_group_var("all", "x", json!(1)).unwrap();
        let v = inv.host_vars("localhost", None);
        assert_eq!(v["x"], json!(1));
        assert_eq!(v["ansible_connection"], json!("local"));
        assert_eq!(v["group_names"], json!([]));
        assert_eq!(v["inventory_hostname"], json!("localhost"));
    }
}
