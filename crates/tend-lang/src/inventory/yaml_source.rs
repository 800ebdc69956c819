//! YAML inventories, read as ansible-core's `yaml` plugin reads them.
//!
//! ```yaml
//! all:
//!   hosts:
//!     web01: {http_port: 80}
//!   children:
//!     db:
//!       hosts:
//!         db[01:02]:
//!   vars:
//!     ntp: pool.ntp.org
//! ```
//!
//! Top-level keys are groups; each group may have `hosts`, `children` (groups, recursively) and
//! `vars`. Empty values are fine. Keys Ansible skips with a warning are skipped with a warning.

use tend_proto::Value;

use super::ini::expand_hostpattern;
use super::Inventory;
use crate::diag::Diag;
use crate::yaml::{Node, NodeValue};

const HINT: &str = "a YAML inventory maps group names to {hosts: …, children: …, vars: …}";

pub(super) fn parse(inv: &mut Inventory, file: &str, text: &str) -> Result<(), Diag> {
    let doc = crate::yaml::parse(file, text)?;
    let Some(groups) = doc.as_map() else {
        let msg = if doc.is_null() {
            "Parsed empty YAML file".to_string()
        } else {
            format!(
                "YAML inventory has invalid structure, it should be a dictionary, got {}",
                doc.kind()
            )
        };
        return Err(Diag::new(doc.loc.clone(), msg).with_hint(HINT));
    };
    if groups.is_empty() {
        return Err(Diag::new(doc.loc.clone(), "Parsed empty YAML file").with_hint(HINT));
    }
    if let Some(p) = doc.get("plugin") {
        return Err(Diag::new(
            p.loc.clone(),
            "Plugin configuration YAML file, not YAML inventory",
        )
        .with_hint("inventory plugins are not supported by tend; list the hosts in INI or YAML"));
    }
    for (k, v) in groups {
        parse_group(inv, k, v, 0)?;
    }
    Ok(())
}

fn name_of(k: &Node, what: &str) -> Result<String, Diag> {
    match &k.value {
        NodeValue::Str(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Diag::new(
            k.loc.clone(),
            format!(
                "Invalid {what} name supplied, expected a string but got {}",
                k.kind()
            ),
        )
        .with_hint("quote names that look like numbers or booleans")),
    }
}

/// Reads one group definition; returns its name, or `None` when Ansible skips it.
fn parse_group(
    inv: &mut Inventory,
    key: &Node,
    data: &Node,
    depth: usize,
) -> Result<Option<String>, Diag> {
    if depth > 100 {
        return Err(Diag::new(
            key.loc.clone(),
            "groups are nested more than 100 levels deep",
        ));
    }
    if !matches!(data.value, NodeValue::Map(_) | NodeValue::Null) {
        inv.warnings.push(format!(
            "Skipping '{}' as this is not a valid group definition",
            key.scalar_string().unwrap_or_default()
        ));
        return Ok(None);
    }
    let group = name_of(key, "group")?;
    inv.add_group(&group);
    let Some(entries) = data.as_map() else {
        return Ok(Some(group));
    };
    for (k, v) in entries {
        let section = k.scalar_string().unwrap_or_default();
        let is_section = matches!(section.as_str(), "vars" | "children" | "hosts");
        // A bare string is shorthand for a one-key mapping.
        let single;
        let v = match (&v.value, is_section) {
            (NodeValue::Str(s), true) => {
                single = Node {
                    value: NodeValue::Map(vec![(
                        Node {
                            value: NodeValue::Str(s.clone()),
                            loc: v.loc.clone(),
                        },
                        Node {
                            value: NodeValue::Null,
                            loc: v.loc.clone(),
                        },
                    )]),
                    loc: v.loc.clone(),
                };
                &single
            }
            _ => v,
        };
        if is_section && !matches!(v.value, NodeValue::Map(_) | NodeValue::Null) {
            return Err(Diag::new(
                v.loc.clone(),
                format!(
                    "Invalid \"{section}\" entry for \"{group}\" group, requires a dictionary, found \
                     {} instead.",
                    v.kind()
                ),
            )
            .with_hint(HINT));
        }
        if !matches!(v.value, NodeValue::Map(_) | NodeValue::Null) {
            inv.warnings.push(format!(
                "Skipping key ({section}) in group ({group}) as it is not a mapping, it is {}",
                v.kind()
            ));
            continue;
        }
        let Some(items) = v.as_map() else { continue };
        match section.as_str() {
            "vars" => {
                for (vk, vv) in items {
                    let name = vk.scalar_string().unwrap_or_default();
                    inv.set_group_var(&group, &name, vv.to_value())
                        .map_err(|m| Diag::new(vk.loc.clone(), m))?;
                }
            }
            "children" => {
                for (ck, cv) in items {
                    if let Some(child) = parse_group(inv, ck, cv, depth + 1)? {
                        inv.add_child(&group, &child)
                            .map_err(|m| Diag::new(ck.loc.clone(), m).with_hint(HINT))?;
                    }
                }
            }
            "hosts" => {
                for (hk, hv) in items {
                    let pattern = match &hk.value {
                        NodeValue::Str(s) => s.clone(),
                        _ => {
                            return Err(Diag::new(
                                hk.loc.clone(),
                                format!(
                                    "Host pattern {} must be a string. Enclose integers/floats in \
                                     quotation marks.",
                                    hk.scalar_string().unwrap_or_default()
                                ),
                            )
                            .with_hint("quote the host name"))
                        }
                    };
                    let (hosts, port) =
                        expand_hostpattern(&pattern).map_err(|m| Diag::new(hk.loc.clone(), m))?;
                    let vars = match &hv.value {
                        NodeValue::Map(_) | NodeValue::Null => hv.to_value(),
                        _ => {
                            return Err(Diag::new(
                                hv.loc.clone(),
                                format!(
                                    "Invalid data from file, expected dictionary and got {}",
                                    hv.kind()
                                ),
                            )
                            .with_hint("host variables are a mapping: `host: {var: value}`"))
                        }
                    };
                    for h in &hosts {
                        inv.add_host(h, Some(&group), port)
                            .map_err(|m| Diag::new(hk.loc.clone(), m))?;
                        if let Value::Object(vars) = &vars {
                            for (k, v) in vars {
                                inv.set_host_var(h, k, v.clone());
                            }
                        }
                    }
                }
            }
            other => inv.warnings.push(format!(
                "Skipping unexpected key ({other}) in group ({group}), only \"vars\", \"children\" \
                 and \"hosts\" are valid"
            )),
        }
    }
    Ok(Some(group))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> Result<Inventory, Diag> {
        let mut inv = Inventory::empty();
        parse(&mut inv, "t.yml", text)?;
        inv.reconcile();
        Ok(inv)
    }

    #[test]
    fn groups_hosts_children_vars() {
        let inv = load(
            "all:\n  hosts:\n    solo:\n  vars:\n    x: 1\n  children:\n    web:\n      hosts:\n        \
             web[1:2]:\n          p: 80\n      children:\n        inner:\n          hosts: h9\n",
        )
        .unwrap();
        assert_eq!(inv.group("all").unwrap().vars["x"], json!(1));
        assert_eq!(inv.host("web2").unwrap().vars["p"], json!(80));
        assert_eq!(inv.group_names("h9"), ["inner", "web"]);
        assert_eq!(inv.group_names("solo"), ["ungrouped"]);
    }

    #[test]
    fn bad_shapes() {
        assert!(load("- a\n").is_err());
        assert!(load("plugin: aws_ec2\n").is_err());
        let e = load("g:\n  hosts:\n    1: {}\n").unwrap_err();
        assert!(e.msg.contains("must be a string"), "{e}");
        let inv = load("g:\n  hosts: {h: }\n  bogus: {}\nx: 5\n").unwrap();
        assert_eq!(inv.warnings().len(), 2);
    }
}
