//! `tend compliance`: the fleet's observed state judged by compliance policies, without a
//! playbook — a report per host, recorded in the history and counted in the metrics.
//!
//! The policies are the `*.rego` files of `--policy DIR`s (default `compliance/` in the
//! current directory). Before anything runs, their `collect_files` and `collect_metadata` set
//! rules are read (evaluated without input): the paths and globs whose content and metadata,
//! or metadata only, each host must report. Every host then runs one play tend builds itself
//! — facts, `package_facts`, `service_facts`, `observe_files` — and as each host finishes,
//! its observation becomes one input document (`docs/policy.md`, "Compliance"; schema
//! `docs/compliance-input.schema.json`) and every package's `deny` and `warn` rules are
//! evaluated on it. The observation lives only in memory: the history keeps each host's
//! verdict and findings, never the facts or file contents it was judged on.
//!
//! A host is **compliant** when no `deny` rule holds, **non-compliant** when one does, and an
//! **error** when it could not be judged: unreachable, a collection that failed, a policy that
//! cannot be evaluated (fails closed). Exit status: 0 every host compliant, 2 a host is
//! non-compliant, 1 an error (it wins), as `tend drift`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::{json, Map, Value};
use tend_policy::{Finding, Policies};
use tend_proto::{Event, ResultStatus, TaskResult};

use crate::cli::{ApplyArgs, ComplianceArgs, ReportFormat};

/// `input.format_version` of the compliance document: raised only when a field changes
/// meaning or goes away.
pub const FORMAT_VERSION: u32 = 1;

/// The default policy directory, in the current directory.
pub const DEFAULT_DIR: &str = "compliance";

/// The set rules naming what to collect: content and metadata, metadata only.
pub const COLLECT_FILES: &str = "collect_files";
pub const COLLECT_METADATA: &str = "collect_metadata";

const EXIT_ERROR: u8 = 1;
const EXIT_NON_COMPLIANT: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Compliant,
    NonCompliant,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Compliant => "compliant",
            Status::NonCompliant => "non_compliant",
            Status::Error => "error",
        }
    }
}

/// One host's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct HostVerdict {
    pub host: String,
    pub status: Status,
    pub deny: Vec<Finding>,
    pub warn: Vec<Finding>,
    /// Why the host could not be judged.
    pub errors: Vec<String>,
    /// What the host could not report (an unreadable directory, a glob past its limit): the
    /// policies were evaluated without it.
    pub incomplete: Vec<String>,
}

/// What one host reported, until it is judged.
#[derive(Default)]
struct Observed {
    facts: Map<String, Value>,
    files: Map<String, Value>,
    incomplete: Vec<String>,
    errors: Vec<String>,
}

impl Observed {
    fn result(&mut self, r: &TaskResult) {
        if matches!(r.status, ResultStatus::Failed | ResultStatus::Unreachable) {
            let msg = r.failure_msg();
            let what = if r.status == ResultStatus::Unreachable {
                "unreachable".to_string()
            } else {
                format!("{} failed", r.task)
            };
            self.errors.push(format!("{what}: {msg}"));
            return;
        }
        if let Some(Value::Object(f)) = r.result.get("ansible_facts") {
            self.facts
                .extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(Value::Object(files)) = r.result.get("files") {
            self.files
                .extend(files.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(Value::Array(errs)) = r.result.get("errors") {
            self.incomplete
                .extend(errs.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
}

/// What every host's input document shares.
struct Context {
    run_id: String,
    vars: BTreeMap<String, Map<String, Value>>,
    groups: HashMap<String, Vec<String>>,
    scrub: tend_store::Scrubber,
    vault: tend_engine::EventScrubber,
}

impl Context {
    /// The input document for one host (`docs/policy.md`, "Compliance").
    fn input(&mut self, host: &str, mut o: Observed) -> Value {
        let packages = o.facts.remove("packages").unwrap_or_else(|| json!({}));
        let services = o.facts.remove("services").unwrap_or_else(|| json!({}));
        let mut facts = Value::Object(o.facts);
        crate::policy::mask(&mut facts, &self.scrub, &mut self.vault);
        json!({
            "format_version": FORMAT_VERSION,
            "kind": "compliance",
            "run_id": self.run_id,
            "tend_version": crate::embedded::VERSION,
            "host": {
                "name": host,
                "groups": self.groups.get(host).cloned().unwrap_or_default(),
                "vars": self.vars.get(host).cloned().unwrap_or_default(),
                "facts": facts,
                "packages": packages,
                "services": services,
                "files": o.files,
                "incomplete": o.incomplete,
            },
        })
    }
}

/// The run's policies, and the context of their input.
struct Judge {
    policies: Policies,
    ctx: Context,
}

impl Judge {
    fn judge(&mut self, host: &str, mut o: Observed) -> HostVerdict {
        let mut v = HostVerdict {
            host: host.to_string(),
            status: Status::Error,
            deny: Vec::new(),
            warn: Vec::new(),
            errors: std::mem::take(&mut o.errors),
            // The policies see it too (`input.host.incomplete`).
            incomplete: o.incomplete.clone(),
        };
        if !v.errors.is_empty() {
            return v;
        }
        let input = self.ctx.input(host, o);
        match self.policies.evaluate(&input) {
            Ok(verdict) => {
                let own = |mut f: Finding, scrub: &tend_store::Scrubber| {
                    f.host.get_or_insert_with(|| host.to_string());
                    let mut m = Value::String(f.msg);
                    scrub.scrub(&mut m);
                    f.msg = m.as_str().unwrap_or_default().to_string();
                    f
                };
                v.deny = verdict
                    .deny
                    .into_iter()
                    .map(|f| own(f, &self.ctx.scrub))
                    .collect();
                v.warn = verdict
                    .warn
                    .into_iter()
                    .map(|f| own(f, &self.ctx.scrub))
                    .collect();
                v.status = if v.deny.is_empty() {
                    Status::Compliant
                } else {
                    Status::NonCompliant
                };
            }
            Err(e) => v.errors.push(e.to_string()),
        }
        v
    }
}

fn stderr_line(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
}

/// The policy directories: `--policy DIR`s, else `compliance/` here.
fn policy_dirs(args: &ComplianceArgs) -> Result<Vec<PathBuf>, String> {
    if !args.policy.is_empty() {
        return Ok(args.policy.clone());
    }
    let dir = PathBuf::from(DEFAULT_DIR);
    if dir.is_dir() {
        Ok(vec![dir])
    } else {
        Err(format!(
            "no compliance policies: there is no {DEFAULT_DIR}/ directory here and no --policy DIR was given"
        ))
    }
}

/// A collect rule names paths on every host, whatever directory tend runs in: only absolute
/// ones mean the same everywhere.
fn absolute(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not an absolute path (collect rules name paths or globs from /)"
        ))
    }
}

/// One collection task of the play tend builds.
fn task(name: &str, module: &str, args: Map<String, Value>) -> tend_proto::Task {
    tend_proto::Task::module(name, module, args, loc())
}

/// Where the collection play's tasks (and the verdict's record) say they come from.
fn loc() -> tend_proto::Loc {
    tend_proto::Loc::new("<tend compliance>", 0, 0)
}

/// `tend compliance`.
pub fn compliance(args: ComplianceArgs) -> ExitCode {
    let dirs = match policy_dirs(&args) {
        Ok(d) => d,
        Err(e) => {
            stderr_line(&format!("error: {e}"));
            stderr_line("hint: put *.rego files in compliance/ or pass --policy DIR (docs/policy.md, \"Compliance\")");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let loaded = Policies::load(&dirs).and_then(|mut p| {
        let content = p.gather(COLLECT_FILES, absolute)?;
        let metadata = p.gather(COLLECT_METADATA, absolute)?;
        Ok((p, content, metadata))
    });
    let (policies, content, metadata) = match loaded {
        Ok(x) => x,
        Err(e) => {
            stderr_line(&format!("error: {e}"));
            stderr_line("hint: fix the policy (`tend policy test DIR` runs its tests); no host was contacted");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let apply_args = ApplyArgs {
        playbook: dirs[0].clone(),
        hosts: args.hosts.clone(),
        // It only reads: no host lock, no run lease, no journal.
        check: true,
        store: crate::history::store_here(&args.store),
        no_history: args.no_history,
        policy: dirs.clone(),
        ..Default::default()
    };
    let mut settings = match crate::settings::apply_settings(&apply_args) {
        Ok(s) => s,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    settings.options.report_facts = true;
    let mut tasks = vec![
        task("Gather the installed packages", "package_facts", Map::new()),
        task("Gather the services", "service_facts", Map::new()),
    ];
    if !content.is_empty() || !metadata.is_empty() {
        let mut a = Map::new();
        a.insert("content".into(), json!(content));
        a.insert("metadata".into(), json!(metadata));
        tasks.push(task(
            "Observe the files the policies read",
            "observe_files",
            a,
        ));
    }
    let prep = match tend_engine::prepare_tasks(settings, &args.pattern, "Compliance", true, tasks)
    {
        Ok(p) => p,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    crate::print_warnings(&prep);
    let hosts: Vec<String> = prep.hosts().into_iter().cloned().collect();
    if hosts.is_empty() {
        stderr_line(&format!(
            "error: no hosts matched `{}`{}",
            args.pattern,
            args.hosts
                .limit
                .as_deref()
                .map(|l| format!(" with --limit {l}"))
                .unwrap_or_default()
        ));
        return ExitCode::from(EXIT_ERROR);
    }
    let run_id = tend_store::new_run_id();
    let scrub = crate::recorder::secret_scrubber(&prep);
    let mut judge = Judge {
        policies,
        ctx: Context {
            run_id: run_id.clone(),
            vars: crate::policy::host_vars(&prep, &scrub),
            groups: hosts
                .iter()
                .map(|h| (h.clone(), prep.inventory.group_names(h)))
                .collect(),
            scrub,
            vault: tend_engine::EventScrubber::new(),
        },
    };
    let mut recorder = if args.no_history {
        None
    } else {
        match crate::recorder::Recorder::start_compliance(&prep, &apply_args, &run_id) {
            Ok(r) => r,
            Err(e) => {
                crate::history::report(&e);
                stderr_line("no host was contacted");
                return ExitCode::from(EXIT_ERROR);
            }
        }
    };
    let recorded_id = recorder.as_ref().map(|r| r.run_id().to_string());
    let mut observed: HashMap<String, Observed> = HashMap::new();
    let mut verdicts: HashMap<String, HostVerdict> = HashMap::new();
    let summary = crate::run_streaming(&prep, |e| match e {
        Event::Warning { host, msg } => {
            let who = host
                .as_deref()
                .map(|h| format!("{h}: "))
                .unwrap_or_default();
            stderr_line(&format!("[WARNING]: {who}{msg}"));
        }
        Event::TaskResult(r) => {
            observed.entry(r.host.clone()).or_default().result(r);
            // The history keeps how each collection went, not what it read.
            if let Some(rec) = recorder.as_mut() {
                let mut kept = r.clone();
                kept.result = match r.result.get("msg") {
                    Some(m) if r.status != ResultStatus::Ok => json!({ "msg": m }),
                    _ => json!({}),
                };
                rec.event(&Event::TaskResult(kept));
            }
        }
        Event::HostDone { host, .. } => {
            let o = observed.remove(host).unwrap_or_default();
            let v = judge.judge(host, o);
            if let Some(rec) = recorder.as_mut() {
                rec.event(&Event::TaskResult(verdict_record(&v)));
                rec.event(e);
            }
            verdicts.insert(host.clone(), v);
        }
        other => {
            if let Some(rec) = recorder.as_mut() {
                rec.event(other);
            }
        }
    });
    // Hosts in inventory order; a host the run never finished is an error, not left out.
    let report: Vec<HostVerdict> = hosts
        .iter()
        .map(|h| {
            verdicts.remove(h).unwrap_or_else(|| HostVerdict {
                host: h.clone(),
                status: Status::Error,
                deny: Vec::new(),
                warn: Vec::new(),
                errors: vec!["the host did not finish the collection".into()],
                incomplete: Vec::new(),
            })
        })
        .collect();
    let record = history_record(&report);
    let exit = exit_code(&report, summary.is_some());
    if let Some(rec) = recorder {
        if let Err((run, e)) = rec.finish_compliance(summary.as_ref(), record, i32::from(exit)) {
            crate::recorder::report_incomplete(&run, &e);
            render(&args, &dirs, &report, None);
            return ExitCode::from(EXIT_ERROR);
        }
    }
    render(&args, &dirs, &report, recorded_id.as_deref());
    ExitCode::from(exit)
}

/// The synthetic task record a host's verdict is kept as in the history.
fn verdict_record(v: &HostVerdict) -> TaskResult {
    TaskResult {
        host: v.host.clone(),
        task: "Compliance policies".into(),
        loc: loc(),
        status: if v.status == Status::Error {
            ResultStatus::Failed
        } else {
            ResultStatus::Ok
        },
        ignored: false,
        handler: false,
        result: json!({
            "compliance": v.status.as_str(),
            "deny": v.deny.iter().map(|f| &f.msg).collect::<Vec<_>>(),
            "warn": v.warn.iter().map(|f| &f.msg).collect::<Vec<_>>(),
            "msg": v.errors.join("; "),
        }),
        diffs: Vec::new(),
        changes: Vec::new(),
        delegated_to: None,
    }
}

/// What the run's end keeps: every finding, and each host's verdict (for the metrics).
fn history_record(report: &[HostVerdict]) -> Value {
    let deny: Vec<&Finding> = report.iter().flat_map(|v| &v.deny).collect();
    let warn: Vec<&Finding> = report.iter().flat_map(|v| &v.warn).collect();
    let hosts: Map<String, Value> = report
        .iter()
        .map(|v| (v.host.clone(), json!(v.status.as_str())))
        .collect();
    json!({
        "deny": deny,
        "warn": warn,
        "hosts": hosts,
    })
}

fn exit_code(report: &[HostVerdict], finished: bool) -> u8 {
    if !finished || report.iter().any(|v| v.status == Status::Error) {
        EXIT_ERROR
    } else if report.iter().any(|v| v.status == Status::NonCompliant) {
        EXIT_NON_COMPLIANT
    } else {
        0
    }
}

#[derive(Default, Serialize)]
struct Totals {
    hosts: usize,
    compliant: usize,
    non_compliant: usize,
    errors: usize,
    deny: usize,
    warn: usize,
}

fn totals(report: &[HostVerdict]) -> Totals {
    let mut t = Totals {
        hosts: report.len(),
        ..Default::default()
    };
    for v in report {
        match v.status {
            Status::Compliant => t.compliant += 1,
            Status::NonCompliant => t.non_compliant += 1,
            Status::Error => t.errors += 1,
        }
        t.deny += v.deny.len();
        t.warn += v.warn.len();
    }
    t
}

fn render(args: &ComplianceArgs, dirs: &[PathBuf], report: &[HostVerdict], run: Option<&str>) {
    let text = match args.output {
        ReportFormat::Human => render_human(dirs, report, run),
        ReportFormat::Json => render_json(dirs, report, run),
    };
    crate::out(&text);
}

fn rate(t: &Totals) -> Option<f64> {
    let judged = t.compliant + t.non_compliant;
    (judged > 0).then(|| t.compliant as f64 / judged as f64)
}

pub fn render_json(dirs: &[PathBuf], report: &[HostVerdict], run: Option<&str>) -> String {
    let t = totals(report);
    let doc = json!({
        "format_version": FORMAT_VERSION,
        "run_id": run,
        "policies": dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "compliance_rate": rate(&t),
        "totals": t,
        "hosts": report,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

pub fn render_human(dirs: &[PathBuf], report: &[HostVerdict], run: Option<&str>) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut s = format!("COMPLIANCE [{}]\n", names.join(", "));
    let width = report.iter().map(|v| v.host.len()).max().unwrap_or(0);
    for v in report {
        let word = match v.status {
            Status::Compliant => "compliant",
            Status::NonCompliant => "NON-COMPLIANT",
            Status::Error => "ERROR",
        };
        s.push_str(&format!("{:<width$}  {word}\n", v.host));
        for e in &v.errors {
            s.push_str(&format!("    error: {e}\n"));
        }
        for f in &v.deny {
            s.push_str(&format!("    deny: {} [{}]\n", f.msg, package(&f.package)));
        }
        for f in &v.warn {
            s.push_str(&format!("    warn: {} [{}]\n", f.msg, package(&f.package)));
        }
        for i in &v.incomplete {
            s.push_str(&format!("    not observed: {i}\n"));
        }
    }
    let t = totals(report);
    s.push_str(&format!(
        "\nCompliance: {} of {} {} compliant, {} non-compliant, {} not judged (error); {} deny, {} warn\n",
        t.compliant,
        t.hosts,
        if t.hosts == 1 { "host" } else { "hosts" },
        t.non_compliant,
        t.errors,
        t.deny,
        t.warn,
    ));
    if let Some(id) = run {
        s.push_str(&format!("Recorded as compliance run {id}\n"));
    }
    s
}

/// `data.compliance.sshd` → `compliance.sshd`.
fn package(p: &str) -> &str {
    p.strip_prefix("data.").unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(msg: &str) -> Finding {
        Finding {
            package: "data.compliance.sshd".into(),
            msg: msg.into(),
            host: Some("web1".into()),
            task: None,
        }
    }

    fn verdict(host: &str, status: Status, deny: &[&str]) -> HostVerdict {
        HostVerdict {
            host: host.into(),
            status,
            deny: deny.iter().map(|m| finding(m)).collect(),
            warn: Vec::new(),
            errors: if status == Status::Error {
                vec!["unreachable: connection refused".into()]
            } else {
                Vec::new()
            },
            incomplete: Vec::new(),
        }
    }

    #[test]
    fn an_error_wins_over_non_compliance_and_the_rate_counts_judged_hosts() {
        let all_ok = [verdict("a", Status::Compliant, &[])];
        assert_eq!(exit_code(&all_ok, true), 0);
        assert_eq!(exit_code(&all_ok, false), EXIT_ERROR);
        let mixed = [
            verdict("a", Status::Compliant, &[]),
            verdict("b", Status::NonCompliant, &["root login"]),
        ];
        assert_eq!(exit_code(&mixed, true), EXIT_NON_COMPLIANT);
        let with_error = [
            verdict("a", Status::Compliant, &[]),
            verdict("b", Status::NonCompliant, &["root login"]),
            verdict("c", Status::Error, &[]),
        ];
        assert_eq!(exit_code(&with_error, true), EXIT_ERROR);
        let t = totals(&with_error);
        assert_eq!(
            (t.compliant, t.non_compliant, t.errors, t.deny),
            (1, 1, 1, 1)
        );
        assert_eq!(rate(&t), Some(0.5));
        let text = render_human(&[PathBuf::from("compliance")], &with_error, Some("r1"));
        assert!(
            text.contains("b  NON-COMPLIANT\n    deny: root login [compliance.sshd]\n"),
            "{text}"
        );
        assert!(
            text.contains("c  ERROR\n    error: unreachable: connection refused\n"),
            "{text}"
        );
        assert!(
            text.contains("Compliance: 1 of 3 hosts compliant, 1 non-compliant, 1 not judged (error); 1 deny, 0 warn\n"),
            "{text}"
        );
        let rec = history_record(&with_error);
        assert_eq!(rec["hosts"]["b"], "non_compliant");
        assert_eq!(rec["deny"][0]["msg"], "root login");
    }

    /// The schema in docs names every field the document has, and requires the ones always
    /// there.
    #[test]
    fn the_input_document_matches_its_schema() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../docs/compliance-input.schema.json"))
                .unwrap();
        let mut scrub = tend_store::Scrubber::default();
        scrub.add("hunter2-canary");
        let mut ctx = Context {
            run_id: "r1".into(),
            vars: BTreeMap::from([(
                "web1".to_string(),
                // Already masked by `policy::host_vars`, which the run uses.
                json!({"db_password": "********", "port": 80})
                    .as_object()
                    .unwrap()
                    .clone(),
            )]),
            groups: HashMap::from([("web1".to_string(), vec!["web".to_string()])]),
            scrub,
            vault: tend_engine::EventScrubber::new(),
        };
        let mut o = Observed::default();
        o.facts.insert("hostname".into(), json!("web1"));
        o.facts.insert("motd".into(), json!("pw hunter2-canary"));
        o.facts
            .insert("packages".into(), json!({"bash": [{"version": "5.2"}]}));
        o.facts.insert("services".into(), json!({}));
        let doc = ctx.input("web1", o);
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let required = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&doc), keys(&schema["properties"]));
        assert_eq!(keys(&doc), required(&schema));
        let host_schema = &schema["properties"]["host"];
        assert_eq!(keys(&doc["host"]), keys(&host_schema["properties"]));
        assert_eq!(keys(&doc["host"]), required(host_schema));
        assert_eq!(doc["host"]["vars"]["port"], 80);
        assert_eq!(doc["host"]["facts"]["motd"], "pw ********");
        assert!(doc["host"]["facts"].get("packages").is_none());
        assert_eq!(doc["host"]["packages"]["bash"][0]["version"], "5.2");
        assert_eq!(doc["host"]["groups"], json!(["web"]));
    }

    #[test]
    fn observations_keep_facts_files_and_errors_apart() {
        let mut o = Observed::default();
        let r = |status, result: Value| TaskResult {
            host: "h".into(),
            task: "Gather the services".into(),
            loc: tend_proto::Loc::new("x", 0, 0),
            status,
            ignored: false,
            handler: false,
            result,
            diffs: Vec::new(),
            changes: Vec::new(),
            delegated_to: None,
        };
        o.result(&r(
            ResultStatus::Ok,
            json!({"ansible_facts": {"packages": {"bash": []}, "hostname": "h"}}),
        ));
        o.result(&r(
            ResultStatus::Ok,
            json!({"files": {"/etc/motd": {"exists": true}}, "errors": ["/root/**: Permission denied"]}),
        ));
        assert_eq!(o.facts["hostname"], "h");
        assert!(o.files.contains_key("/etc/motd"));
        assert_eq!(o.incomplete, vec!["/root/**: Permission denied"]);
        assert!(o.errors.is_empty());
        o.result(&r(ResultStatus::Failed, json!({"msg": "no systemd"})));
        assert_eq!(o.errors, vec!["Gather the services failed: no systemd"]);
    }
}
