//! The policy gate: Rego policies evaluated in process (regorus) over one JSON input document
//! (for `tend plan` and `tend apply`: the plan, see `docs/policy.md`), and the policies' own
//! unit tests (`tend policy test`, like `opa test`).
//!
//! A policy directory holds `*.rego` files (read recursively, in name order) and optionally
//! `*.json` data files, merged into `data` at its root. Every package may define the set rules
//! `deny` and `warn`; each of their members is a [`Finding`]: a string, or an object with `msg`
//! and optionally `host` and `task`. Rego v1 is the syntax (`import rego.v1`,
//! `deny contains msg if { … }`), as OPA 1.x reads it.
//!
//! Fails closed: a file that does not parse, a data file that is not JSON, or a rule whose
//! evaluation errors (a complete rule or function with conflicting values, …) is an error, and
//! the caller blocks. Builtins keep OPA's default meaning (a builtin given the wrong type or a
//! bad value is undefined, not an error: `startswith(null, "/etc")` is simply not true), so
//! that policies written for OPA mean the same here. A builtin family regorus is built without
//! (`http.send`, `uuid`, `yaml`, `json.match_schema`, `urlquery`) does not exist: a rule that
//! calls one cannot be evaluated, and blocks.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// Why policies could not be loaded or evaluated. Every variant blocks.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the policy directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("no policies in {dir}: a policy directory holds *.rego files")]
    Empty { dir: PathBuf },
    #[error("cannot read {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// regorus' message starts with `file:line:col` and shows the line.
    #[error("the policy {file} does not parse: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("the policy data file {file} is not usable: {message}")]
    Data { file: PathBuf, message: String },
    #[error("the policy rule {rule} (in {file}) cannot be evaluated: {message}")]
    Eval {
        rule: String,
        file: PathBuf,
        message: String,
    },
    #[error("the input document is not valid for the policies: {0}")]
    Input(String),
}

/// One member of a `deny` or `warn` set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The package the rule is in, as Rego names it (`data.tend.sshd`).
    pub package: String,
    pub msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// What the policies said about one input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub deny: Vec<Finding>,
    pub warn: Vec<Finding>,
}

impl Verdict {
    pub fn denied(&self) -> bool {
        !self.deny.is_empty()
    }
}

/// How one `test_` rule went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The rule is false or undefined.
    Fail,
    /// The rule's evaluation failed: regorus' message.
    Error(String),
}

/// One `test_` rule's result, as `opa test` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResult {
    pub file: PathBuf,
    pub package: String,
    pub name: String,
    pub outcome: Outcome,
}

struct Module {
    file: PathBuf,
    /// `data.<package>`, as regorus returns it.
    package: String,
    /// The `test_` rules the file defines, in order, once each.
    tests: Vec<String>,
}

/// The policies of one or more directories, parsed and ready to evaluate.
pub struct Policies {
    engine: regorus::Engine,
    modules: Vec<Module>,
    /// Each package once, with the first file that declares it (for error messages): rules
    /// are evaluated per package, whichever files it spans.
    packages: Vec<(String, PathBuf)>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("files", &self.files())
            .finish()
    }
}

impl Policies {
    /// Loads every `*.rego` and `*.json` file under each directory. A directory without any
    /// `.rego` file is an error: a policy directory that holds nothing is a mistake, and
    /// passing it would let everything through.
    pub fn load(dirs: &[PathBuf]) -> Result<Policies, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(false);
        // OPA's meaning: a builtin given the wrong type is undefined, not an error (regorus
        // raises by default; a few of its builtins raise whatever this says).
        engine.set_strict_builtin_errors(false);
        let mut modules = Vec::new();
        for dir in dirs {
            let mut files = Vec::new();
            walk(dir, &mut files).map_err(|source| PolicyError::Dir {
                dir: dir.clone(),
                source,
            })?;
            files.sort();
            let before = modules.len();
            for file in files {
                let ext = file.extension().and_then(|e| e.to_str());
                if ext == Some("json") {
                    let text = read(&file)?;
                    engine.add_data_json(&text).map_err(|e| PolicyError::Data {
                        file: file.clone(),
                        message: e.to_string(),
                    })?;
                    continue;
                }
                let text = read(&file)?;
                let tests = test_rules(&text);
                let package = engine
                    .add_policy(file.display().to_string(), text)
                    .map_err(|e| PolicyError::Parse {
                        file: file.clone(),
                        message: e.to_string(),
                    })?;
                modules.push(Module {
                    file,
                    package,
                    tests,
                });
            }
            if modules.len() == before {
                return Err(PolicyError::Empty { dir: dir.clone() });
            }
        }
        let mut packages: Vec<(String, PathBuf)> = Vec::new();
        for m in &modules {
            if !packages.iter().any(|(p, _)| *p == m.package) {
                packages.push((m.package.clone(), m.file.clone()));
            }
        }
        packages.sort();
        Ok(Policies {
            engine,
            modules,
            packages,
        })
    }

    /// The policy files, in load order.
    pub fn files(&self) -> Vec<&Path> {
        self.modules.iter().map(|m| m.file.as_path()).collect()
    }

    /// Evaluates every package's `deny` and `warn` against `input`.
    pub fn evaluate(&mut self, input: &Value) -> Result<Verdict, PolicyError> {
        let json = serde_json::to_string(input).map_err(|e| PolicyError::Input(e.to_string()))?;
        self.set_input(&json)?;
        let mut verdict = Verdict::default();
        for (package, file) in &self.packages {
            for (rule, out) in [("deny", &mut verdict.deny), ("warn", &mut verdict.warn)] {
                let members = members(&mut self.engine, package, file, rule)?;
                collect(package, members, out);
            }
        }
        Ok(verdict)
    }

    /// The members of the set rule `rule` (such as `collect_files`) over every package,
    /// evaluated without input, sorted and once each: what a policy asks to be collected
    /// before it judges. A package without the rule adds nothing; a member that is not a
    /// string, or that `check` refuses, is an error naming the package's file.
    pub fn gather(
        &mut self,
        rule: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Vec<String>, PolicyError> {
        self.set_input("{}")?;
        let mut out = std::collections::BTreeSet::new();
        for (package, file) in &self.packages {
            let refused = |message: String| PolicyError::Eval {
                rule: format!("{package}.{rule}"),
                file: file.clone(),
                message,
            };
            for m in members(&mut self.engine, package, file, rule)? {
                let Value::String(s) = m else {
                    return Err(refused(format!(
                        "members of `{rule}` must be strings (paths or globs), found {m}"
                    )));
                };
                check(&s).map_err(refused)?;
                out.insert(s);
            }
        }
        Ok(out.into_iter().collect())
    }

    fn set_input(&mut self, json: &str) -> Result<(), PolicyError> {
        self.engine
            .set_input_json(json)
            .map_err(|e| PolicyError::Input(e.to_string()))
    }

    /// Runs every `test_` rule, with an empty input unless the test sets one (`with input as`).
    pub fn run_tests(&mut self) -> Vec<TestResult> {
        let _ = self.engine.set_input_json("{}");
        let mut out = Vec::new();
        for m in &self.modules {
            for name in &m.tests {
                let rule = format!("{}.{name}", m.package);
                let outcome = match self.engine.eval_rule(rule) {
                    Ok(regorus::Value::Bool(true)) => Outcome::Pass,
                    Ok(_) => Outcome::Fail,
                    Err(e) => Outcome::Error(e.to_string()),
                };
                out.push(TestResult {
                    file: m.file.clone(),
                    package: m.package.clone(),
                    name: name.clone(),
                    outcome,
                });
            }
        }
        out
    }
}

fn read(file: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(file).map_err(|source| PolicyError::Read {
        file: file.to_path_buf(),
        source,
    })
}

/// The `.rego` and `.json` files under `dir`, hidden entries skipped.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rego" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// The names of the `test_` rules a file defines: rule heads start a line (OPA's test runner
/// finds rules by that prefix too). A name defined several times (incremental rules) counts
/// once.
fn test_rules(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("test_") else {
            continue;
        };
        let tail: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = rest[tail.len()..].trim_start();
        // A rule head goes on with `if`, `{`, `:=`, `=` or `contains`; not `test_x.y` paths.
        let head = after.is_empty()
            || after.starts_with('{')
            || after.starts_with(":=")
            || after.starts_with('=')
            || after.starts_with("if")
            || after.starts_with("contains");
        let name = format!("test_{tail}");
        if head && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The members of the set rule `package.rule`, as JSON; none when the package has no such
/// rule (or it is undefined for this input).
fn members(
    engine: &mut regorus::Engine,
    package: &str,
    file: &Path,
    rule: &str,
) -> Result<Vec<Value>, PolicyError> {
    let path = format!("{package}.{rule}");
    let failed = |message: String| PolicyError::Eval {
        rule: path.clone(),
        file: file.to_path_buf(),
        message,
    };
    let results = engine
        .eval_query(path.clone(), false)
        .map_err(|e| failed(e.to_string()))?;
    let mut out = Vec::new();
    for r in &results.result {
        for expr in &r.expressions {
            match serde_json::to_value(&expr.value).map_err(|e| failed(e.to_string()))? {
                Value::Array(a) => out.extend(a),
                Value::Null => {}
                other => out.push(other),
            }
        }
    }
    Ok(out)
}

/// Adds the members of a `deny`/`warn` set to `out` as findings.
fn collect(package: &str, members: Vec<Value>, out: &mut Vec<Finding>) {
    for m in members {
        let finding = match m {
            Value::String(s) => Finding {
                package: package.to_string(),
                msg: s,
                host: None,
                task: None,
            },
            Value::Object(o) => {
                let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
                Finding {
                    package: package.to_string(),
                    msg: text("msg").unwrap_or_else(|| Value::Object(o.clone()).to_string()),
                    host: text("host"),
                    task: text("task"),
                }
            }
            other => Finding {
                package: package.to_string(),
                msg: other.to_string(),
                host: None,
                task: None,
            },
        };
        out.push(finding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = t.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        t
    }

    const SSHD: &str = r#"package tend.sshd

import rego.v1

deny contains msg if {
	some c in input.changes
	endswith(c.path, "sshd_config")
	regex.match(`(?m)^\s*PermitRootLogin\s+yes`, c.content.after)
	msg := sprintf("%s: PermitRootLogin must be no", [c.path])
}

warn contains {"msg": "a command runs", "host": c.host, "task": c.task} if {
	some c in input.changes
	c.action == "run"
}

test_root_login_denied if {
	count(deny) == 1 with input as {"changes": [{"path": "/etc/ssh/sshd_config", "content": {"after": "PermitRootLogin yes\n"}}]}
}

test_no_login_passes if {
	count(deny) == 0 with input as {"changes": [{"path": "/etc/ssh/sshd_config", "content": {"after": "PermitRootLogin no\n"}}]}
}
"#;

    #[test]
    fn opa_style_v1_policies_deny_and_warn_as_written() {
        let d = dir(&[("sshd.rego", SSHD)]);
        let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
        let v = p
            .evaluate(&json!({"changes": [
                {"host": "web01", "task": "sshd", "path": "/etc/ssh/sshd_config",
                 "action": "update", "content": {"after": "Port 22\nPermitRootLogin yes\n"}},
                {"host": "web02", "task": "reload", "path": "", "action": "run",
                 "content": {"after": ""}},
            ]}))
            .unwrap();
        assert_eq!(
            v.deny,
            vec![Finding {
                package: "data.tend.sshd".into(),
                msg: "/etc/ssh/sshd_config: PermitRootLogin must be no".into(),
                host: None,
                task: None
            }]
        );
        assert_eq!(v.warn.len(), 1);
        assert_eq!(v.warn[0].host.as_deref(), Some("web02"));
        assert_eq!(v.warn[0].task.as_deref(), Some("reload"));
        assert!(v.denied());

        let ok = p
            .evaluate(
                &json!({"changes": [{"host": "a", "path": "/etc/ssh/sshd_config",
                "action": "update", "content": {"after": "PermitRootLogin no\n"}}]}),
            )
            .unwrap();
        assert!(!ok.denied());
    }

    /// OPA's meaning: `startswith(null, …)` is undefined (the rule does not hold), not an
    /// error that would block every plan with a change that has no path (a package).
    #[test]
    fn a_builtin_given_null_is_undefined_as_in_opa() {
        let d = dir(&[(
            "etc.rego",
            "package etc\nimport rego.v1\ndeny contains c.path if {\n  some c in input.changes\n  startswith(c.path, \"/etc/\")\n}\n",
        )]);
        let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
        let v = p
            .evaluate(&json!({"changes": [{"path": null}, {"path": "/etc/x"}]}))
            .unwrap();
        assert_eq!(v.deny.len(), 1, "{v:?}");
        assert_eq!(v.deny[0].msg, "/etc/x");
    }

    #[test]
    fn collect_rules_gather_strings_across_packages() {
        let d = dir(&[
            (
                "a.rego",
                "package a\nimport rego.v1\ncollect_files contains \"/etc/ssh/sshd_config\"\ncollect_files contains \"/etc/*.conf\"\n",
            ),
            (
                "b.rego",
                "package b\nimport rego.v1\ncollect_files contains \"/etc/ssh/sshd_config\"\n",
            ),
            ("c.rego", "package c\nimport rego.v1\ndeny contains \"x\" if { false }\n"),
        ]);
        let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(
            p.gather("collect_files", |_| Ok(())).unwrap(),
            vec![
                "/etc/*.conf".to_string(),
                "/etc/ssh/sshd_config".to_string()
            ]
        );
        assert!(p.gather("collect_metadata", |_| Ok(())).unwrap().is_empty());

        let d = dir(&[(
            "n.rego",
            "package n\nimport rego.v1\ncollect_files contains 42\n",
        )]);
        let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
        let e = p
            .gather("collect_files", |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be strings") && e.contains("n.rego"), "{e}");
    }

    /// Builtins OPA leaves undefined on bad arguments (a rule that uses them simply does not
    /// hold) must not turn into evaluation errors that block every run.
    #[test]
    fn builtins_given_bad_arguments_are_undefined_not_errors() {
        let cases = [
            "to_number(input.s)",
            "count(input.n)",
            "regex.match(\"[\", input.s)",
            "split(input.n, \",\")",
            "lower(input.n)",
            "startswith(input.n, \"/\")",
            "contains(input.missing, \"x\")",
            "object.keys(input.s)",
            "sort(input.n)",
            "json.unmarshal(input.s)",
            "base64.decode(input.n)",
            "time.parse_rfc3339_ns(input.s)",
            "semver.compare(input.s, \"1.0.0\")",
        ];
        let mut failures = Vec::new();
        for expr in cases {
            let policy = format!(
                "package b\nimport rego.v1\ndeny contains \"held\" if {{\n  x := {expr}\n  x == x\n}}\nwarn contains \"not held\" if {{\n  not {expr}\n}}\n"
            );
            let d = dir(&[("b.rego", &policy)]);
            let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
            match p.evaluate(&json!({"s": "not a number [", "n": 42})) {
                Ok(v) => assert!(v.deny.is_empty(), "{expr}: {v:?}"),
                Err(e) => failures.push(format!("{expr}: {e}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The builtins policies reach for beyond strings and regexes are there (docs/policy.md
    /// lists the families that are not).
    #[test]
    fn common_opa_builtin_families_are_available() {
        let d = dir(&[(
            "b.rego",
            r#"package b
import rego.v1
deny contains "base64" if base64.decode("aGk=") == "hi"
deny contains "hex" if hex.encode("hi") == "6869"
deny contains "semver" if semver.compare("1.10.0", "1.9.0") == 1
deny contains "time" if time.now_ns() > time.parse_rfc3339_ns("2020-01-01T00:00:00Z")
deny contains "net" if net.cidr_contains("10.0.0.0/8", "10.1.2.3")
deny contains "graph" if graph.reachable({"a": ["b"], "b": []}, ["a"]) == {"a", "b"}
"#,
        )]);
        let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
        let mut got: Vec<String> = p
            .evaluate(&json!({}))
            .unwrap()
            .deny
            .into_iter()
            .map(|f| f.msg)
            .collect();
        got.sort();
        assert_eq!(got, ["base64", "graph", "hex", "net", "semver", "time"]);
    }

    #[test]
    fn a_package_without_deny_or_warn_says_nothing() {
        let d = dir(&[("x.rego", "package x\nimport rego.v1\nallow := true\n")]);
        let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(p.evaluate(&json!({})).unwrap(), Verdict::default());
    }

    #[test]
    fn a_policy_that_does_not_parse_names_its_file_and_line() {
        let d = dir(&[(
            "bad.rego",
            "package bad\nimport rego.v1\n\ndeny contains msg if {\n  msg := \n}\n",
        )]);
        let e = Policies::load(&[d.path().to_path_buf()]).unwrap_err();
        let PolicyError::Parse { file, message } = &e else {
            panic!("{e}")
        };
        assert!(file.ends_with("bad.rego"));
        assert!(message.contains("bad.rego:"), "{message}");
    }

    #[test]
    fn an_evaluation_error_fails_closed() {
        let d = dir(&[("e.rego", CONFLICT)]);
        let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
        let e = p.evaluate(&json!({"a": true, "b": true})).unwrap_err();
        assert!(matches!(e, PolicyError::Eval { .. }), "{e}");
        assert!(e.to_string().contains("e.rego"), "{e}");
        assert!(p.evaluate(&json!({"a": true})).unwrap().denied());
        assert!(!p.evaluate(&json!({})).unwrap().denied());
    }

    const CONFLICT: &str = "package e\nimport rego.v1\nport := 1 if input.a\nport := 2 if input.b\ndeny contains \"x\" if port > 0\n";

    #[test]
    fn empty_and_missing_directories_are_errors() {
        let d = dir(&[("README.md", "no policies")]);
        assert!(matches!(
            Policies::load(&[d.path().to_path_buf()]).unwrap_err(),
            PolicyError::Empty { .. }
        ));
        assert!(matches!(
            Policies::load(&[d.path().join("nope")]).unwrap_err(),
            PolicyError::Dir { .. }
        ));
    }

    #[test]
    fn data_files_and_nested_directories_load() {
        let d = dir(&[
            (
                "pkgs/allowed.rego",
                "package pkgs\nimport rego.v1\ndeny contains p if {\n  some p in input.packages\n  not p in data.allowed_packages\n}\n",
            ),
            ("pkgs/data.json", r#"{"allowed_packages": ["nginx", "redis-server"]}"#),
        ]);
        let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
        let v = p
            .evaluate(&json!({"packages": ["nginx", "telnetd"]}))
            .unwrap();
        let msgs: Vec<&str> = v.deny.iter().map(|f| f.msg.as_str()).collect();
        assert_eq!(msgs, vec!["telnetd"]);
    }

    #[test]
    fn tests_pass_fail_and_error_like_opa_test() {
        let d = dir(&[
            ("sshd.rego", SSHD),
            (
                "broken_test.rego",
                "package broken\nimport rego.v1\ntest_wrong if {\n  1 == 2\n}\ntest_undefined if {\n  input.nothing\n}\nport := 1 if input.a\nport := 2 if input.b\ntest_errors if {\n  port == 1 with input as {\"a\": true, \"b\": true}\n}\n",
            ),
        ]);
        let mut p = Policies::load(&[d.path().to_path_buf()]).unwrap();
        let r = p.run_tests();
        let got: Vec<(&str, &Outcome)> = r.iter().map(|t| (t.name.as_str(), &t.outcome)).collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], ("test_wrong", &Outcome::Fail));
        assert_eq!(got[1], ("test_undefined", &Outcome::Fail));
        assert!(matches!(got[2], ("test_errors", Outcome::Error(_))));
        assert_eq!(got[3], ("test_root_login_denied", &Outcome::Pass));
        assert_eq!(got[4], ("test_no_login_passes", &Outcome::Pass));
    }

    #[test]
    fn test_rule_heads_are_found_by_their_prefix() {
        let text = "package p\ntest_a if {\n}\ntest_a if {\n}\ntest_b := true\ntest_c {\n}\n  test_indented if true\nnot_test_d if true\ntest_e.x := 1\n";
        assert_eq!(test_rules(text), vec!["test_a", "test_b", "test_c"]);
    }
}
