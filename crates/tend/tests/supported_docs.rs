//! `docs/supported.md` must not lie: its generated sections are derived here from the code, and
//! this test fails when the page and the code disagree in either direction.
//! `TEND_BLESS=1 cargo test -p tend --test supported_docs` rewrites the generated sections.
//!
//! - modules: `tend_agent::supported_modules()`;
//! - play and task keywords: the lists `tend_lang::playbook` exports, each one also checked by
//!   loading a playbook that uses it (accepted) or refuses it (refused, with the reason);
//! - filters, tests, lookups: the templating environment itself, probed with every name
//!   ansible-core 2.19 and Jinja2 define plus every name tend's template code registers.

use std::path::{Path, PathBuf};

use minijinja::ErrorKind;
use tend_lang::playbook;

fn docs_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/supported.md")
}

fn template_src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tend-lang/src/template")
}

/// ansible-core 2.19's `ansible.builtin` filters.
const ANSIBLE_FILTERS: &[&str] = &[
    "b64decode",
    "b64encode",
    "basename",
    "bool",
    "checksum",
    "combinations",
    "combine",
    "comment",
    "commonpath",
    "dict2items",
    "difference",
    "dirname",
    "expanduser",
    "expandvars",
    "extract",
    "fileglob",
    "flatten",
    "from_json",
    "from_yaml",
    "from_yaml_all",
    "hash",
    "human_readable",
    "human_to_bytes",
    "intersect",
    "items2dict",
    "log",
    "mandatory",
    "md5",
    "normpath",
    "password_hash",
    "path_join",
    "permutations",
    "pow",
    "product",
    "quote",
    "random",
    "realpath",
    "regex_escape",
    "regex_findall",
    "regex_replace",
    "regex_search",
    "rekey_on_member",
    "relpath",
    "root",
    "sha1",
    "shuffle",
    "split",
    "splitext",
    "strftime",
    "subelements",
    "symmetric_difference",
    "ternary",
    "to_datetime",
    "to_json",
    "to_nice_json",
    "to_nice_yaml",
    "to_uuid",
    "to_yaml",
    "type_debug",
    "union",
    "unique",
    "unvault",
    "urldecode",
    "urlsplit",
    "vault",
    "win_basename",
    "win_dirname",
    "win_splitdrive",
    "zip",
    "zip_longest",
];

/// Jinja2 3.1's built-in filters.
const JINJA_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "capitalize",
    "center",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "filesizeformat",
    "first",
    "float",
    "forceescape",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "random",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "string",
    "striptags",
    "sum",
    "title",
    "tojson",
    "trim",
    "truncate",
    "unique",
    "upper",
    "urlencode",
    "urlize",
    "wordcount",
    "wordwrap",
    "xmlattr",
];

/// ansible-core 2.19's `ansible.builtin` tests.
const ANSIBLE_TESTS: &[&str] = &[
    "abs",
    "all",
    "any",
    "change",
    "changed",
    "contains",
    "directory",
    "exists",
    "failed",
    "failure",
    "falsy",
    "file",
    "finished",
    "is_abs",
    "is_dir",
    "is_file",
    "is_link",
    "is_mount",
    "is_same_file",
    "issubset",
    "issuperset",
    "link",
    "link_exists",
    "match",
    "mount",
    "nan",
    "reachable",
    "regex",
    "same_file",
    "search",
    "skip",
    "skipped",
    "started",
    "subset",
    "succeeded",
    "success",
    "successful",
    "superset",
    "timedout",
    "truthy",
    "unreachable",
    "uri",
    "url",
    "urn",
    "vault_encrypted",
    "vaulted_file",
    "version",
    "version_compare",
];

/// Jinja2 3.1's built-in tests.
const JINJA_TESTS: &[&str] = &[
    "boolean",
    "callable",
    "defined",
    "divisibleby",
    "eq",
    "equalto",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sameas",
    "sequence",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// ansible-core 2.19's `ansible.builtin` lookups.
const ANSIBLE_LOOKUPS: &[&str] = &[
    "config",
    "csvfile",
    "dict",
    "env",
    "file",
    "fileglob",
    "first_found",
    "indexed_items",
    "ini",
    "inventory_hostnames",
    "items",
    "lines",
    "list",
    "nested",
    "password",
    "pipe",
    "random_choice",
    "sequence",
    "subelements",
    "template",
    "together",
    "unvault",
    "url",
    "varnames",
    "vars",
];

/// Every `add_filter("name"` / `add_test("name"` in tend's template code, so a new tend filter
/// can never be missing from the page.
fn registered(kind: &str) -> Vec<String> {
    let needle = format!("add_{kind}(\"");
    let mut out = Vec::new();
    let mut dirs = vec![template_src()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("template sources").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for piece in text.split(&needle).skip(1) {
                    if let Some(end) = piece.find('"') {
                        out.push(piece[..end].to_string());
                    }
                }
            }
        }
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Probes the real templating environment: does a filter/test of that name exist?
fn exists(env: &minijinja::Environment<'static>, source: &str, unknown: ErrorKind) -> bool {
    // `probe` is undefined: a filter that exists fails fast on it (password_hash on a real
    // value takes seconds in a debug build), one that does not is an unknown-filter error.
    match env.render_str(source, ()) {
        Ok(_) => true,
        Err(e) => {
            assert_ne!(
                e.kind(),
                ErrorKind::SyntaxError,
                "probe `{source}` does not parse: {e}"
            );
            e.kind() != unknown
        }
    }
}

struct Lists {
    sections: Vec<(&'static str, String)>,
}

fn split(candidates: Vec<String>, supported: impl Fn(&str) -> bool) -> (Vec<String>, Vec<String>) {
    let (yes, no): (Vec<String>, Vec<String>) =
        sorted(candidates).into_iter().partition(|n| supported(n));
    (yes, no)
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        return "(none)\n".into();
    }
    list.iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
        + "\n"
}

fn reasons(list: &[(&str, &str)]) -> String {
    let mut list = list.to_vec();
    list.sort();
    list.iter()
        .map(|(n, why)| format!("- `{n}`: {why}\n"))
        .collect()
}

/// Loads a one-play playbook and says whether tend accepted it.
fn loads(play: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("site.yml");
    std::fs::write(&path, play).expect("write playbook");
    std::fs::write(dir.path().join("vars.yml"), "x: 1\n").expect("write vars");
    playbook::load(&path).map(|_| ()).map_err(|d| d.to_string())
}

/// A task using `keyword` with a value of the right shape.
fn task_with(keyword: &str) -> String {
    let value = match keyword {
        "loop" | "with_items" | "with_list" | "with_nested" | "with_cartesian"
        | "with_together" => "[1, 2]",
        "with_dict" | "vars" | "environment" | "args" => "{a: 1}",
        "with_fileglob" => "['*.txt']",
        "with_sequence" => "start=1 end=3",
        "with_subelements" => "[[{a: [1]}], a]",
        "loop_control" => "{loop_var: it}",
        "become" => "true",
        "become_method" => "sudo",
        "become_user" => "nobody",
        "delegate_to" => "localhost",
        "retries" | "delay" | "throttle" => "3",
        _ => "'true'",
    };
    match keyword {
        "block" | "rescue" | "always" => {
            let mut t = "    - block:\n        - debug: msg=hi\n".to_string();
            if keyword != "block" {
                t.push_str(&format!("      {keyword}:\n        - debug: msg=hi\n"));
            }
            t
        }
        "action" | "local_action" => format!("    - {keyword}: debug msg=hi\n"),
        _ => format!("    - debug: msg=hi\n      {keyword}: {value}\n"),
    }
}

fn play_with(keyword: &str) -> String {
    let value = match keyword {
        "hosts" => "all",
        "vars" | "environment" => "{a: 1}",
        "vars_files" => "[vars.yml]",
        "pre_tasks" | "tasks" | "post_tasks" | "handlers" | "health" => "[{debug: msg=hi}]",
        "roles" => "[]",
        "become" => "true",
        "become_method" => "sudo",
        "become_user" => "nobody",
        "connection" => "local",
        "gather_subset" => "[min]",
        "gather_timeout" => "10",
        "fact_path" => "/etc/ansible/facts.d",
        "name" => "A play",
        "serial" => "[1, \"50%\"]",
        "max_fail_percentage" => "30",
        "throttle" => "2",
        "order" => "sorted",
        "needs" => "[]",
        _ => "true",
    };
    let hosts = if keyword == "hosts" {
        ""
    } else {
        "  hosts: all\n"
    };
    format!("- {keyword}: {value}\n{hosts}")
}

fn derive() -> Lists {
    let modules: Vec<String> = tend_agent::supported_modules()
        .iter()
        .map(|s| s.to_string())
        .collect();

    for kw in playbook::TASK_KEYWORDS
        .iter()
        .chain(playbook::LOOP_KEYWORDS)
    {
        let play = format!("- hosts: all\n  tasks:\n{}", task_with(kw));
        if let Err(e) = loads(&play) {
            panic!("task keyword `{kw}` is listed as supported but refused:\n{play}\n{e}");
        }
    }
    for (kw, _) in playbook::REFUSED_TASK_KEYWORDS {
        let play = format!("- hosts: all\n  tasks:\n    - debug: msg=hi\n      {kw}: 1\n");
        assert!(
            loads(&play).is_err(),
            "task keyword `{kw}` is listed as refused but accepted"
        );
    }
    for kw in playbook::PLAY_KEYWORDS {
        if let Err(e) = loads(&play_with(kw)) {
            panic!(
                "play keyword `{kw}` is listed as supported but refused:\n{}\n{e}",
                play_with(kw)
            );
        }
    }
    for (kw, _) in playbook::REFUSED_PLAY {
        let play = format!("- hosts: all\n  {kw}: 1\n");
        assert!(
            loads(&play).is_err(),
            "play keyword `{kw}` is listed as refused but accepted"
        );
    }

    let templar = tend_lang::Templar::new();
    let env = templar.env();
    let mut filter_candidates = strings(ANSIBLE_FILTERS);
    filter_candidates.extend(strings(JINJA_FILTERS));
    let tend_filters = registered("filter");
    filter_candidates.extend(tend_filters.iter().cloned());
    let (filters, _) = split(filter_candidates, |n| {
        exists(
            env,
            &format!("{{{{ probe | {n} }}}}"),
            ErrorKind::UnknownFilter,
        )
    });
    let (_, ansible_filters_missing) =
        split(strings(ANSIBLE_FILTERS), |n| filters.iter().any(|f| f == n));
    for f in &tend_filters {
        assert!(
            filters.contains(f),
            "filter `{f}` is registered but the environment does not know it"
        );
    }

    let mut test_candidates = strings(ANSIBLE_TESTS);
    test_candidates.extend(strings(JINJA_TESTS));
    let tend_tests = registered("test");
    test_candidates.extend(tend_tests.iter().cloned());
    let (tests, _) = split(test_candidates, |n| {
        exists(
            env,
            &format!("{{{{ probe is {n} }}}}"),
            ErrorKind::UnknownTest,
        )
    });
    let (_, ansible_tests_missing) =
        split(strings(ANSIBLE_TESTS), |n| tests.iter().any(|t| t == n));

    let (lookups, lookups_missing) = split(strings(ANSIBLE_LOOKUPS), |n| {
        match env.render_str(&format!("{{{{ lookup('{n}') }}}}"), ()) {
            Ok(_) => true,
            Err(e) => !e.to_string().contains("is not supported"),
        }
    });

    let mut play_keywords = strings(playbook::PLAY_KEYWORDS);
    play_keywords.sort();
    let mut task_keywords = strings(playbook::TASK_KEYWORDS);
    task_keywords.sort();

    Lists {
        sections: vec![
            ("modules", names(&sorted(modules))),
            ("play-keywords", names(&play_keywords)),
            ("play-keywords-refused", reasons(playbook::REFUSED_PLAY)),
            ("task-keywords", names(&task_keywords)),
            (
                "loop-keywords",
                names(&sorted(strings(playbook::LOOP_KEYWORDS))),
            ),
            (
                "task-keywords-refused",
                reasons(playbook::REFUSED_TASK_KEYWORDS),
            ),
            ("filters", names(&filters)),
            ("filters-missing", names(&ansible_filters_missing)),
            ("tests", names(&tests)),
            ("tests-missing", names(&ansible_tests_missing)),
            ("lookups", names(&lookups)),
            ("lookups-missing", names(&lookups_missing)),
        ],
    }
}

fn markers(section: &str) -> (String, String) {
    (
        format!("<!-- BEGIN GENERATED {section} -->\n"),
        format!("<!-- END GENERATED {section} -->"),
    )
}

/// The page with every generated section replaced by `lists`.
fn rewrite(page: &str, lists: &Lists) -> Result<String, String> {
    let mut page = page.to_string();
    for (section, body) in &lists.sections {
        let (begin, end) = markers(section);
        let start = page
            .find(&begin)
            .ok_or_else(|| format!("docs/supported.md has no `{}`", begin.trim()))?
            + begin.len();
        let stop = page[start..]
            .find(&end)
            .ok_or_else(|| format!("docs/supported.md has no `{end}`"))?
            + start;
        page.replace_range(start..stop, body);
    }
    Ok(page)
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn supported_md_matches_the_code() {
    let path = docs_path();
    let page = std::fs::read_to_string(&path).expect("docs/supported.md");
    let lists = derive();
    let expected = rewrite(&page, &lists).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("TEND_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expected).expect("write docs/supported.md");
        return;
    }
    if expected == page {
        return;
    }
    // Say exactly which names are missing or stale, section by section.
    let mut problems = Vec::new();
    for (section, body) in &lists.sections {
        let (begin, end) = markers(section);
        let current = page
            .split_once(&begin)
            .and_then(|(_, rest)| rest.split_once(&end))
            .map(|(body, _)| body)
            .unwrap_or_default();
        let want = backticked(body);
        let have = backticked(current);
        for n in want.iter().filter(|n| !have.contains(n)) {
            problems.push(format!(
                "{section}: `{n}` is supported but missing from the page"
            ));
        }
        for n in have.iter().filter(|n| !want.contains(n)) {
            problems.push(format!(
                "{section}: `{n}` is on the page but not in the code"
            ));
        }
        if want == have && body != current {
            problems.push(format!("{section}: same names, different text"));
        }
    }
    panic!(
        "{} is out of date:\n  {}\nrun `TEND_BLESS=1 cargo test -p tend --test supported_docs` and commit the result",
        Path::new("docs/supported.md").display(),
        problems.join("\n  ")
    );
}
