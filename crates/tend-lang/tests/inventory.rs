//! Inventories compared with what ansible-core 2.19 prints for the same files.
//!
//! The expected outputs under `fixtures/inventory/expected/` were recorded with
//! `fixtures/inventory/gen.sh` (`ansible-inventory --list/--graph/--host`, `ansible --list-hosts`);
//! these tests do not need Ansible.

use std::path::PathBuf;

use tend_lang::inventory::output::to_python_json;
use tend_lang::inventory::{load_vars_dirs, parse_limit, Inventory};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory")
}

fn src(rel: &str) -> String {
    fixtures().join(rel).to_string_lossy().into_owned()
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("expected").join(name))
        .unwrap()
        .trim_end()
        .to_string()
}

fn load(rels: &[&str]) -> Inventory {
    let sources: Vec<String> = rels.iter().map(|r| src(r)).collect();
    Inventory::load(&sources).unwrap_or_else(|e| panic!("{}", e.render()))
}

#[track_caller]
fn same(actual: &str, expected: &str, what: &str) {
    if actual != expected {
        let diff = similar_lines(expected, actual);
        panic!("{what} differs from ansible-inventory:\n{diff}");
    }
}

fn similar_lines(a: &str, b: &str) -> String {
    let mut out = String::new();
    let (al, bl): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    for i in 0..al.len().max(bl.len()) {
        let (x, y) = (
            al.get(i).copied().unwrap_or(""),
            bl.get(i).copied().unwrap_or(""),
        );
        if x != y {
            out.push_str(&format!(
                "line {}:\n  ansible: {x}\n  tend:    {y}\n",
                i + 1
            ));
            if out.len() > 2000 {
                break;
            }
        }
    }
    out
}

#[test]
fn ini_list_graph_and_host_match_ansible() {
    let inv = load(&["ini/hosts.ini"]);
    same(
        &to_python_json(&inv.to_list_json(None, None)),
        &expected("ini-list.json"),
        "--list",
    );
    same(
        &inv.to_graph("all", false).unwrap(),
        &expected("ini-graph.txt"),
        "--graph",
    );
    same(
        &inv.to_graph("all", true).unwrap(),
        &expected("ini-graph-vars.txt"),
        "--graph --vars",
    );
    same(
        &to_python_json(&inv.host_json("db-a", None).unwrap()),
        &expected("ini-host-db-a.json"),
        "--host db-a",
    );
}

#[test]
fn yaml_list_and_graph_match_ansible() {
    let inv = load(&["yaml/hosts.yml"]);
    same(
        &to_python_json(&inv.to_list_json(None, None)),
        &expected("yaml-list.json"),
        "--list",
    );
    same(
        &inv.to_graph("all", false).unwrap(),
        &expected("yaml-graph.txt"),
        "--graph",
    );
    same(
        &inv.to_graph("all", true).unwrap(),
        &expected("yaml-graph-vars.txt"),
        "--graph --vars",
    );
    assert!(
        inv.warnings()
            .iter()
            .any(|w| w.contains("Skipping 'bogus'")),
        "{:?}",
        inv.warnings()
    );
}

#[test]
fn directory_with_group_and_host_vars_matches_ansible() {
    let inv = load(&["dir"]);
    same(
        &to_python_json(&inv.to_list_json(None, None)),
        &expected("dir-list.json"),
        "--list",
    );
    same(
        &inv.to_graph("all", false).unwrap(),
        &expected("dir-graph.txt"),
        "--graph",
    );
    same(
        &inv.to_graph("all", true).unwrap(),
        &expected("dir-graph-vars.txt"),
        "--graph --vars",
    );
}

#[test]
fn playbook_adjacent_vars_match_ansible() {
    let inv = load(&["dir"]);
    let pb = load_vars_dirs(&fixtures().join("playbook")).unwrap();
    same(
        &to_python_json(&inv.to_list_json(None, Some(&pb))),
        &expected("dir-playbook-list.json"),
        "--playbook-dir --list",
    );
}

#[test]
fn several_sources_match_ansible() {
    let inv = load(&["ini/hosts.ini", "yaml/hosts.yml", "dir"]);
    same(
        &to_python_json(&inv.to_list_json(None, None)),
        &expected("multi-list.json"),
        "--list",
    );
}

#[test]
fn patterns_select_what_ansible_selects() {
    let inv = load(&["ini/hosts.ini", "yaml/hosts.yml", "dir"]);
    let mut failures = Vec::new();
    for line in expected("patterns.tsv").lines() {
        let (pattern, hosts) = line.split_once('\t').unwrap_or((line, ""));
        let got = match inv.select(pattern, None) {
            Ok(s) => s.hosts.join(" "),
            Err(e) => format!("error: {e}"),
        };
        if got != hosts {
            failures.push(format!("{pattern}\n  ansible: {hosts}\n  tend:    {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unmatched_pattern_warns_like_ansible() {
    let inv = load(&["ini/hosts.ini"]);
    let s = inv.select("web:nonexistent", None).unwrap();
    assert_eq!(
        s.warnings,
        ["Could not match supplied host pattern, ignoring: nonexistent"]
    );
}

#[test]
fn limit_narrows_selection() {
    let inv = load(&["ini/hosts.ini"]);
    let limit = parse_limit("dbs:!db-b").unwrap();
    assert_eq!(inv.select("prod", Some(&limit)).unwrap().hosts, ["db-a"]);
}

#[test]
fn precedence_through_the_fixture_layers() {
    let inv = load(&["dir"]);
    let pb = load_vars_dirs(&fixtures().join("playbook")).unwrap();
    let layer = |h: &str| {
        inv.host_vars(h, Some(&pb))["layer"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(layer("web01"), "inv_hv_web01");
    assert_eq!(layer("web02"), "pb_hv_web02");
    assert_eq!(layer("web03"), "pb_gv_web");
    assert_eq!(layer("db01"), "inv_gv_db");
    assert_eq!(layer("cache01"), "pb_gv_all");
    let v = inv.host_vars("web01", None);
    assert_eq!(v["inventory_hostname"], "web01");
    assert_eq!(v["group_names"], serde_json::json!(["app", "web"]));
    assert!(v["inventory_file"]
        .as_str()
        .unwrap()
        .ends_with("01-hosts.ini"));
}

#[test]
fn missing_source_is_a_located_error_with_a_hint() {
    let e = Inventory::load(&["/nonexistent/hosts".to_string()]).unwrap_err();
    assert_eq!(&*e.loc.file, "/nonexistent/hosts");
    assert!(e.hint.is_some());
}

#[test]
fn host_list_source() {
    let inv = Inventory::load(&["a.example.com,b:2222,".to_string()]).unwrap();
    let names: Vec<&str> = inv.hosts().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["a.example.com", "b"]);
    assert_eq!(inv.host_vars("b", None)["ansible_port"], 2222);
    assert_eq!(
        inv.host_vars("a.example.com", None)["inventory_hostname_short"],
        "a"
    );
}

#[test]
fn empty_inventory_has_only_implicit_localhost() {
    let inv = Inventory::empty();
    assert!(inv.is_empty());
    assert!(inv.select("all", None).unwrap().hosts.is_empty());
    assert_eq!(inv.select("localhost", None).unwrap().hosts, ["localhost"]);
}
