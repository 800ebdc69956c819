//! The policy gate (`tend plan`, `tend apply`) and `tend policy test`.
//!
//! Policies are the `*.rego` files of the `--policy DIR`s, or of `policies/` beside the
//! playbook when there is one; without either, nothing here runs and plans and applies are as
//! before. The policies see one JSON document built from the plan ([`input`]; its shape is
//! `docs/policy-input.schema.json`, explained in `docs/policy.md`): every planned change with
//! its host, task and rendered content, and each host's variables and facts, secrets masked.
//! A `deny` blocks (`tend plan` exits 1 and saves no plan; `tend apply` changes nothing on any
//! host), a `warn` is printed; both go into the run's record in the history. A policy that does
//! not parse or cannot be evaluated blocks too.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Map, Value};
use tend_policy::{Outcome, Policies, Verdict};
use tend_proto::PlanAction;

use crate::cli::{ApplyArgs, PolicyCmdArgs, PolicyCommand};
use crate::plan::PlanFile;

/// `input.format_version`: raised only when a field changes meaning or goes away; new fields
/// may appear within a version.
pub const FORMAT_VERSION: u32 = 1;

/// The default policy directory, beside the playbook.
pub const DEFAULT_DIR: &str = "policies";

/// The policy directories of a run: `--policy DIR`s, else `policies/` beside the playbook when
/// it exists, else none.
pub fn dirs(args: &ApplyArgs, playbook: &Path) -> Vec<PathBuf> {
    if !args.policy.is_empty() {
        return args.policy.clone();
    }
    let dir = playbook
        .parent()
        .map(|p| p.join(DEFAULT_DIR))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    if dir.is_dir() {
        vec![dir]
    } else {
        Vec::new()
    }
}

/// The run's policies, or `None` when it has none. An error blocks the run.
pub fn load(args: &ApplyArgs, playbook: &Path) -> Result<Option<Policies>, String> {
    let dirs = dirs(args, playbook);
    if dirs.is_empty() {
        return Ok(None);
    }
    Policies::load(&dirs).map(Some).map_err(|e| e.to_string())
}

/// Each host's variables (inventory, group and host vars, the play's vars files as the
/// inventory sees them, extra vars last), secrets masked: values of secret-looking names,
/// every value the history masks, and every string decrypted from a vault.
pub fn host_vars(
    prep: &tend_engine::Prepared,
    scrub: &tend_store::Scrubber,
) -> BTreeMap<String, Map<String, Value>> {
    let mut vault = tend_engine::EventScrubber::new();
    prep.hosts()
        .into_iter()
        .map(|h| {
            let mut vars = prep.inventory.host_vars(h, Some(&prep.playbook_vars));
            for (k, v) in &prep.settings.extra_vars {
                vars.insert(k.clone(), v.clone());
            }
            let mut v = Value::Object(vars);
            mask(&mut v, scrub, &mut vault);
            let Value::Object(vars) = v else {
                unreachable!("masking keeps an object an object")
            };
            (h.clone(), vars)
        })
        .collect()
}

/// Masks secrets in a value, in place (see [`host_vars`]).
pub fn mask(v: &mut Value, scrub: &tend_store::Scrubber, vault: &mut tend_engine::EventScrubber) {
    fn walk(v: &mut Value, vault: &mut tend_engine::EventScrubber) {
        match v {
            Value::String(s) => {
                if let Some(m) = vault.text(s) {
                    *s = m;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, vault)),
            Value::Object(m) => m.values_mut().for_each(|x| walk(x, vault)),
            _ => {}
        }
    }
    walk(v, vault);
    mask_names(v);
    scrub.scrub(v);
}

/// Replaces the values of secret-looking names (`db_password`, `api_token` …), at any depth.
fn mask_names(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(mask_names),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if tend_store::secret_looking(k) && !x.is_null() {
                    *x = Value::String(tend_store::MASK.into());
                } else {
                    mask_names(x);
                }
            }
        }
        _ => {}
    }
}

/// The document the policies evaluate: see `docs/policy.md`.
pub fn input(plan: &PlanFile, vars: &BTreeMap<String, Map<String, Value>>) -> Value {
    let mut hosts = Map::new();
    let mut changes = Vec::new();
    for h in &plan.hosts {
        hosts.insert(
            h.host.clone(),
            json!({
                "name": h.host,
                "vars": vars.get(&h.host).cloned().unwrap_or_default(),
                "facts": h.facts.clone(),
            }),
        );
        for c in &h.changes {
            changes.push(change(&h.host, h.tasks.get(&c.key), c));
        }
    }
    let totals = plan.totals();
    json!({
        "format_version": FORMAT_VERSION,
        "kind": "plan",
        "plan_id": plan.id,
        "tend_version": plan.tend_version,
        "playbook": plan.options.playbook.display().to_string(),
        "check": false,
        "limit": plan.options.limit,
        "git": plan.git,
        "summary": {"add": totals.add, "change": totals.change, "destroy": totals.destroy,
                    "run": totals.run, "hosts": totals.hosts},
        "hosts": hosts,
        "changes": changes,
    })
}

/// One planned change as policies see it: the field records merged into `before`/`after`, the
/// content record as `content`, `path` when the resource has one.
fn change(host: &str, task: Option<&String>, c: &tend_proto::PlannedChange) -> Value {
    let mut before = Map::new();
    let mut after = Map::new();
    let mut content = Value::Null;
    for d in &c.diffs {
        match (d.get("before"), d.get("after")) {
            (Some(Value::Object(b)), Some(Value::Object(a))) => {
                before.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
                after.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            (b, a)
                if content.is_null()
                    && (b.is_some_and(Value::is_string) || a.is_some_and(Value::is_string)) =>
            {
                let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
                content = json!({
                    "before": text(b),
                    "after": text(a),
                    "before_header": d.get("before_header"),
                    "after_header": d.get("after_header"),
                });
            }
            _ => {}
        }
    }
    let path = after
        .get("path")
        .or_else(|| before.get("path"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            matches!(
                c.module.as_str(),
                "file" | "copy" | "template" | "lineinfile" | "blockinfile" | "replace"
            )
            .then(|| c.subject.clone())
        });
    let action = match c.action {
        PlanAction::Create => "create",
        PlanAction::Update => "update",
        PlanAction::Delete => "delete",
        PlanAction::Run => "run",
    };
    let (play, loc) = key_parts(&c.key);
    // Collections are never null: `some x in null` is an error in Rego.
    let mut args = Value::Object(c.args.clone().unwrap_or_default());
    mask_names(&mut args);
    let packages = if PACKAGE_MODULES.contains(&c.module.as_str()) {
        package_names(&c.subject)
    } else {
        Vec::new()
    };
    json!({
        "host": host,
        "key": c.key,
        "play": play,
        "task": task.cloned().unwrap_or_default(),
        "loc": loc,
        "module": c.module,
        "action": action,
        "subject": c.subject,
        "path": path,
        "before": before,
        "after": after,
        "content": content,
        "censored": c.censored,
        "args": args,
        "packages": packages,
    })
}

/// Modules whose subject names packages.
const PACKAGE_MODULES: &[&str] = &["apt", "package", "dnf", "yum", "pip", "apk", "pacman"];

/// The package names of a package change's subject (`nginx`, `nginx,redis-server`, or a JSON
/// list), without version pins (`nginx=1.22*` → `nginx`).
fn package_names(subject: &str) -> Vec<String> {
    let names: Vec<String> = match serde_json::from_str::<Vec<String>>(subject) {
        Ok(list) => list,
        Err(_) => subject.split(',').map(str::to_string).collect(),
    };
    names
        .iter()
        .map(|n| {
            n.trim()
                .split(['=', '<', '>', ' '])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// A change key's play number and task location (`2:site.yml:9:3#1[0]` → 2, `site.yml:9:3`).
fn key_parts(key: &str) -> (Option<u64>, String) {
    let (play, rest) = key.split_once(':').unwrap_or(("", key));
    let loc = rest.rsplit_once('#').map(|(l, _)| l).unwrap_or(rest);
    (play.parse().ok(), loc.to_string())
}

/// Evaluates the policies on a plan and prints what they say (stderr). `Err` blocks: the
/// message names the policy file and what went wrong.
pub fn gate(policies: &mut Policies, input: &Value) -> Result<Verdict, String> {
    let verdict = policies.evaluate(input).map_err(|e| e.to_string())?;
    let mut err = std::io::stderr().lock();
    for (kind, list) in [("warn", &verdict.warn), ("deny", &verdict.deny)] {
        for f in list {
            let _ = writeln!(err, "Policy: {kind}: {}{}", f.msg, whence(f));
        }
    }
    Ok(verdict)
}

/// ` (host, task)` as far as the finding names them.
fn whence(f: &tend_policy::Finding) -> String {
    match (&f.host, &f.task) {
        (Some(h), Some(t)) => format!(" ({h}, {t})"),
        (Some(h), None) => format!(" ({h})"),
        (None, Some(t)) => format!(" ({t})"),
        (None, None) => String::new(),
    }
}

/// The findings as the history keeps them.
pub fn record(verdict: &Verdict) -> Value {
    serde_json::to_value(verdict).unwrap_or(Value::Null)
}

/// What a policy error records: it blocked the run.
pub fn record_error(e: &str) -> Value {
    json!({"deny": [], "warn": [], "error": e})
}

/// `tend policy …`.
pub fn policy_cmd(args: PolicyCmdArgs) -> ExitCode {
    match args.command {
        PolicyCommand::Test(a) => test(&a.dirs),
    }
}

/// `tend policy test [DIR…]`.
#[allow(clippy::print_stdout)]
fn test(dirs: &[PathBuf]) -> ExitCode {
    let dirs = if dirs.is_empty() {
        vec![PathBuf::from(DEFAULT_DIR)]
    } else {
        dirs.to_vec()
    };
    let mut policies = match Policies::load(&dirs) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            return ExitCode::from(1);
        }
    };
    let results = policies.run_tests();
    let mut out = String::new();
    let (mut pass, mut fail, mut error) = (0, 0, 0);
    for r in &results {
        let name = format!("{}.{}", r.package, r.name);
        match &r.outcome {
            Outcome::Pass => {
                pass += 1;
                out.push_str(&format!("PASS {name} ({})\n", r.file.display()));
            }
            Outcome::Fail => {
                fail += 1;
                out.push_str(&format!("FAIL {name} ({})\n", r.file.display()));
            }
            Outcome::Error(e) => {
                error += 1;
                out.push_str(&format!("ERROR {name} ({}): {e}\n", r.file.display()));
            }
        }
    }
    out.push_str(&format!(
        "{} tests: {pass} passed, {fail} failed, {error} errors\n",
        results.len()
    ));
    crate::out(&out);
    if results.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "error: no test_ rules in {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(1);
    }
    if fail + error > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_play_and_location() {
        assert_eq!(
            key_parts("0:site.yml:4:7#1"),
            (Some(0), "site.yml:4:7".into())
        );
        assert_eq!(key_parts("2:t.yml:9:3#3[0]"), (Some(2), "t.yml:9:3".into()));
    }

    #[test]
    fn package_subjects_become_names() {
        assert_eq!(package_names("nginx"), vec!["nginx"]);
        assert_eq!(
            package_names(r#"["nginx=1.22*","redis-server"]"#),
            vec!["nginx", "redis-server"]
        );
        assert_eq!(package_names("a, b>=2"), vec!["a", "b"]);
    }

    #[test]
    fn secrets_in_vars_are_masked_by_name_and_value() {
        let mut s = tend_store::Scrubber::default();
        s.add("hunter2-canary");
        let mut v = json!({"db_password": "x", "nested": {"api_token": "y", "port": 5432},
                           "motd": "the password is hunter2-canary"});
        mask(&mut v, &s, &mut tend_engine::EventScrubber::new());
        assert_eq!(v["db_password"], "********");
        assert_eq!(v["nested"]["api_token"], "********");
        assert_eq!(v["nested"]["port"], 5432);
        assert_eq!(v["motd"], "the password is ********");
    }
}
