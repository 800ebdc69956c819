//! `tend drift [--fix]`: every host checked against the playbook (check mode with diffs) and
//! reported as compliance, not as a recap.
//!
//! The report is one more consumer of the run's event stream (beside the audit writer): each
//! task result (or loop item) of a module that manages state is a *resource*, classified as
//!
//! - **in state**: ok and unchanged in check mode;
//! - **drifted**: would change; worded from the agent's diff records (before = the host,
//!   after = the playbook) as what happened outside tend;
//! - **error**: failed (not ignored) or unreachable;
//! - **not checkable**: skipped in check mode (a `command` without `creates` …) or a failure the
//!   playbook ignores or rescues — counted apart, never as in state.
//!
//! Tasks skipped by `when`, handlers, and modules that only read (`debug`, `stat` …) are not
//! resources. Any changed task counts as drifted, so the report agrees with the history's
//! metrics (a drift check counts a host drifted when it had a change to make).

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::{json, Value};
use tend_proto::{Event, ResultStatus, TaskKind, TaskResult, Vars};
use tend_store::{RunKind, Scrubber};

use crate::cli::{ApplyArgs, DriftArgs, OutputFormat, ReportFormat};

/// The version of the `--output json` document; bumped only when a field changes meaning or
/// goes away (new fields may appear in any version).
const FORMAT_VERSION: u32 = 1;

/// Exit status when an error was found (it wins over drift).
const EXIT_ERROR: u8 = 1;
/// Exit status when drift was found and nothing failed.
const EXIT_DRIFT: u8 = 2;

/// Registered modules that only read the host: never a resource (nor are `command`/`shell`
/// without `creates`/`removes`, and the agent's built-ins: `debug`, `set_fact` …).
const READ_ONLY: &[&str] = &[
    "stat",
    "find",
    "slurp",
    "observe_files",
    "package_facts",
    "service_facts",
    "wait_for",
];

/// One way a resource differs from its declared state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drift {
    /// `module[id]`, e.g. `file[/etc/motd]`.
    pub resource: String,
    pub task: String,
    /// `file:line:col` of the task.
    pub loc: String,
    /// What happened outside tend, e.g. `mode changed outside tend: declared 0644, found 0600`.
    pub message: String,
    /// The attribute that differs, when the module reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<Value>,
    /// A unified diff from the declared content (`---`) to the content found (`+++`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// A resource that could not be checked, or failed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Note {
    pub resource: String,
    pub task: String,
    pub loc: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub in_state: u64,
    pub drifted: u64,
    pub errors: u64,
    pub not_checkable: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    InState,
    Drifted,
    Error,
}

impl HostStatus {
    fn as_str(self) -> &'static str {
        match self {
            HostStatus::InState => "in state",
            HostStatus::Drifted => "drifted",
            HostStatus::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct HostReport {
    pub host: String,
    pub status: HostStatus,
    pub counts: Counts,
    pub drifts: Vec<Drift>,
    pub errors: Vec<Note>,
    pub not_checkable: Vec<Note>,
    /// Errors of the play under way (a `rescue` may still turn them into a continue).
    #[serde(skip)]
    play_errors: usize,
}

impl HostReport {
    fn new(host: &str) -> Self {
        HostReport {
            host: host.to_string(),
            status: HostStatus::InState,
            counts: Counts::default(),
            drifts: Vec::new(),
            errors: Vec::new(),
            not_checkable: Vec::new(),
            play_errors: 0,
        }
    }

    fn settle(&mut self) {
        self.status = if self.counts.errors > 0 {
            HostStatus::Error
        } else if self.counts.drifted > 0 {
            HostStatus::Drifted
        } else {
            HostStatus::InState
        };
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub hosts: u64,
    /// Hosts whose check finished without an error (the base of the host compliance).
    pub hosts_checked: u64,
    pub hosts_in_state: u64,
    pub hosts_drifted: u64,
    pub hosts_with_errors: u64,
    /// Resources in state or drifted (the base of the resource compliance).
    pub resources_checked: u64,
    pub in_state: u64,
    pub drifted: u64,
    pub errors: u64,
    pub not_checkable: u64,
}

/// Percentages, rounded to 0.1; `None` when nothing was checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Compliance {
    /// Hosts fully in state / hosts checked.
    pub hosts_percent: Option<f64>,
    /// Resources in state / resources checked.
    pub resources_percent: Option<f64>,
}

/// The drift report of one check run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    hosts: Vec<HostReport>,
    index: HashMap<String, usize>,
}

/// What the playbook says about a task, found by its location.
#[derive(Default)]
pub struct TaskIndex {
    modules: HashMap<String, (String, Vars)>,
}

impl TaskIndex {
    pub fn new(playbook: &tend_lang::playbook::Playbook) -> Self {
        fn walk(tasks: &[tend_proto::Task], out: &mut HashMap<String, (String, Vars)>) {
            for t in tasks {
                match &t.kind {
                    TaskKind::Module(m) => {
                        out.insert(t.loc.to_string(), (m.name.clone(), m.args.clone()));
                    }
                    TaskKind::Block {
                        block,
                        rescue,
                        always,
                    } => {
                        walk(block, out);
                        walk(rescue, out);
                        walk(always, out);
                    }
                    _ => {}
                }
            }
        }
        let mut modules = HashMap::new();
        for play in &playbook.plays {
            walk(&play.tasks, &mut modules);
            let handlers: Vec<tend_proto::Task> =
                play.handlers.iter().map(|h| h.task.clone()).collect();
            walk(&handlers, &mut modules);
        }
        TaskIndex { modules }
    }

    fn get(&self, loc: &str) -> Option<(&str, &Vars)> {
        self.modules.get(loc).map(|(m, a)| (m.as_str(), a))
    }
}

/// How one resource came out.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    InState,
    Drifted(Vec<Drift>),
    Error(Note),
    NotCheckable(Note),
    /// Not a resource (a `when` that was false, a module that only reads).
    NotCounted,
}

impl Report {
    /// A report for these hosts (in this order); hosts that report nothing stay in state.
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a String>) -> Self {
        let mut r = Report::default();
        for h in hosts {
            r.host(h);
        }
        r
    }

    fn host(&mut self, host: &str) -> &mut HostReport {
        let i = match self.index.get(host) {
            Some(&i) => i,
            None => {
                self.hosts.push(HostReport::new(host));
                self.index.insert(host.to_string(), self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        };
        &mut self.hosts[i]
    }

    /// Takes one event of the check run. Secrets are masked before anything is kept.
    pub fn event(&mut self, e: &Event, tasks: &TaskIndex, scrub: &Scrubber) {
        match e {
            Event::TaskResult(r) => {
                let outcomes = classify(r, tasks, scrub);
                let h = self.host(&r.host);
                for o in outcomes {
                    match o {
                        Outcome::InState => h.counts.in_state += 1,
                        Outcome::Drifted(d) => {
                            h.counts.drifted += 1;
                            h.drifts.extend(d);
                        }
                        Outcome::Error(n) => {
                            h.counts.errors += 1;
                            h.play_errors += 1;
                            h.errors.push(n);
                        }
                        Outcome::NotCheckable(n) => {
                            h.counts.not_checkable += 1;
                            h.not_checkable.push(n);
                        }
                        Outcome::NotCounted => {}
                    }
                }
                h.settle();
            }
            Event::HostDone { host, stats } => {
                let h = self.host(host);
                // Failures of this play that left the host without a failure were rescued:
                // the playbook handled them, as the recap (and the metrics) count them.
                if stats.failed == 0 && stats.unreachable == 0 && h.play_errors > 0 {
                    let at = h.errors.len() - h.play_errors.min(h.errors.len());
                    for mut n in h.errors.drain(at..) {
                        n.message = format!("failed (rescued by the playbook): {}", n.message);
                        h.counts.errors -= 1;
                        h.counts.not_checkable += 1;
                        h.not_checkable.push(n);
                    }
                }
                h.play_errors = 0;
                // A host the engine could not reach may end without a task result.
                if stats.unreachable > 0 && h.counts.errors == 0 {
                    h.counts.errors += 1;
                    h.errors.push(Note {
                        resource: String::new(),
                        task: String::new(),
                        loc: String::new(),
                        message: "unreachable".into(),
                    });
                }
                h.settle();
            }
            _ => {}
        }
    }

    pub fn hosts(&self) -> &[HostReport] {
        &self.hosts
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            hosts: self.hosts.len() as u64,
            ..Default::default()
        };
        for h in &self.hosts {
            match h.status {
                HostStatus::Error => t.hosts_with_errors += 1,
                HostStatus::InState => {
                    t.hosts_checked += 1;
                    t.hosts_in_state += 1;
                }
                HostStatus::Drifted => t.hosts_checked += 1,
            }
            t.hosts_drifted += u64::from(h.counts.drifted > 0);
            t.in_state += h.counts.in_state;
            t.drifted += h.counts.drifted;
            t.errors += h.counts.errors;
            t.not_checkable += h.counts.not_checkable;
        }
        t.resources_checked = t.in_state + t.drifted;
        t
    }

    pub fn compliance(&self) -> Compliance {
        let t = self.totals();
        let pct =
            |n: u64, of: u64| (of > 0).then(|| (n as f64 * 1000.0 / of as f64).round() / 10.0);
        Compliance {
            hosts_percent: pct(t.hosts_in_state, t.hosts_checked),
            resources_percent: pct(t.in_state, t.resources_checked),
        }
    }

    /// Hosts with a drift to correct, in report order.
    pub fn drifted_hosts(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| h.counts.drifted > 0)
            .map(|h| h.host.clone())
            .collect()
    }

    pub fn exit_code(&self) -> u8 {
        let t = self.totals();
        if t.errors > 0 {
            EXIT_ERROR
        } else if t.drifted > 0 {
            EXIT_DRIFT
        } else {
            0
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "hosts": self.hosts,
            "totals": self.totals(),
            "compliance": self.compliance(),
        })
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "nothing".into(),
        other => other.to_string(),
    }
}

fn scrubbed(scrub: &Scrubber, v: &Value) -> Value {
    let mut v = v.clone();
    scrub.scrub(&mut v);
    v
}

/// The resources of one task result.
fn classify(r: &TaskResult, tasks: &TaskIndex, scrub: &Scrubber) -> Vec<Outcome> {
    let (module, args) = match tasks.get(&r.loc.to_string()) {
        Some((m, a)) => (Some(m), Some(a)),
        None => (None, None),
    };
    let task = text_of(&scrubbed(scrub, &Value::String(r.task.clone())));
    let loc = r.loc.to_string();
    let result = scrubbed(scrub, &r.result);
    let ctx = Ctx {
        module,
        args,
        task: &task,
        loc: &loc,
        host: &r.host,
        ignored: r.ignored,
    };
    if r.status == ResultStatus::Unreachable {
        return vec![Outcome::Error(ctx.note(&result, "unreachable"))];
    }
    if r.handler {
        // A handler runs because something drifted; only its failure is news.
        return match r.status {
            ResultStatus::Failed if !r.ignored => {
                vec![Outcome::Error(ctx.note(&result, "failed"))]
            }
            _ => Vec::new(),
        };
    }
    let censored = result.get("censored").is_some();
    match result.get("results").and_then(Value::as_array) {
        Some(items) if !censored => items
            .iter()
            .map(|item| {
                let diffs: Vec<Value> = item
                    .get("diff")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                ctx.outcome(item, &diffs)
            })
            .collect(),
        _ => {
            // A no_log result carries no details, and its diffs must not be shown either.
            let diffs: Vec<Value> = if censored {
                Vec::new()
            } else {
                r.diffs.iter().map(|d| scrubbed(scrub, d)).collect()
            };
            vec![ctx.outcome(&result, &diffs)]
        }
    }
}

struct Ctx<'a> {
    module: Option<&'a str>,
    args: Option<&'a Vars>,
    task: &'a str,
    loc: &'a str,
    host: &'a str,
    ignored: bool,
}

fn flag(v: &Value, k: &str) -> bool {
    v.get(k) == Some(&Value::Bool(true))
}

/// A literal (untemplated) string, or list of strings, among a module's arguments.
fn literal_arg(args: &Vars, keys: &[&str]) -> Option<String> {
    let lit = |v: &Value| match v {
        Value::String(s) if !s.contains("{{") && !s.contains("{%") => Some(s.clone()),
        _ => None,
    };
    keys.iter().find_map(|k| match args.get(*k)? {
        Value::Array(a) => {
            let names: Option<Vec<String>> = a.iter().map(lit).collect();
            names.filter(|n| !n.is_empty()).map(|n| n.join(","))
        }
        v => lit(v),
    })
}

impl Ctx<'_> {
    fn module_name(&self) -> &str {
        self.module.unwrap_or("task")
    }

    /// `module[id]`: the id from the result (`dest`, `path`, `name`), else the literal
    /// arguments, else the loop item, else the task's name.
    fn resource(&self, result: &Value) -> String {
        let from_result = ["dest", "path", "name"]
            .iter()
            .find_map(|k| result.get(*k).and_then(Value::as_str).map(str::to_string));
        let id = from_result
            .or_else(|| {
                self.args
                    .and_then(|a| literal_arg(a, &["dest", "path", "name", "pkg"]))
            })
            .or_else(|| {
                let var = result.get("ansible_loop_var").and_then(Value::as_str)?;
                result.get(var).map(text_of)
            })
            .unwrap_or_else(|| self.task.to_string());
        format!("{}[{id}]", self.module_name())
    }

    fn note(&self, result: &Value, default: &str) -> Note {
        let msg = result
            .get("msg")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or(default);
        Note {
            resource: self.resource(result),
            task: self.task.to_string(),
            loc: self.loc.to_string(),
            message: msg.to_string(),
        }
    }

    fn counts_when_ok(&self) -> bool {
        match self.module {
            // A command is a resource only when it names what it creates or removes.
            Some("command" | "shell") => self
                .args
                .is_some_and(|a| a.contains_key("creates") || a.contains_key("removes")),
            Some(m) => tend_resources::lookup(m).is_some() && !READ_ONLY.contains(&m),
            // A task loaded at run time (include_tasks, include_role): its module is unknown
            // here, so only a change or a failure is counted.
            None => false,
        }
    }

    fn outcome(&self, result: &Value, diffs: &[Value]) -> Outcome {
        if flag(result, "failed") {
            return if self.ignored {
                let mut n = self.note(result, "failed");
                n.message = format!("failed (ignored by the playbook): {}", n.message);
                Outcome::NotCheckable(n)
            } else {
                Outcome::Error(self.note(result, "failed"))
            };
        }
        if flag(result, "unreachable") {
            return Outcome::Error(self.note(result, "unreachable"));
        }
        if flag(result, "skipped") {
            let by_when = result.get("skip_reason").and_then(Value::as_str)
                == Some("Conditional result was False")
                || result.get("skipped_reason").and_then(Value::as_str)
                    == Some("No items in the list");
            return if by_when {
                Outcome::NotCounted
            } else {
                Outcome::NotCheckable(self.note(result, "skipped in check mode"))
            };
        }
        if flag(result, "changed") {
            return Outcome::Drifted(self.drifts(result, diffs));
        }
        if self.counts_when_ok() {
            Outcome::InState
        } else {
            Outcome::NotCounted
        }
    }

    fn drift(&self, resource: &str, message: String) -> Drift {
        Drift {
            resource: resource.to_string(),
            task: self.task.to_string(),
            loc: self.loc.to_string(),
            message,
            field: None,
            declared: None,
            found: None,
            diff: None,
        }
    }

    /// What happened outside tend, from the diff records and the registered result.
    fn drifts(&self, result: &Value, diffs: &[Value]) -> Vec<Drift> {
        let resource = self.resource(result);
        if result.get("censored").is_some() {
            return vec![self.drift(
                &resource,
                "changed outside tend (details hidden: no_log)".into(),
            )];
        }
        let module = self.module_name();
        let mut out = Vec::new();
        if matches!(
            module,
            "service" | "systemd" | "systemd_service" | "sysvinit"
        ) {
            out.extend(self.service_drifts(&resource, result));
        }
        for d in diffs {
            if let Some(prepared) = d.get("prepared").and_then(Value::as_str) {
                out.extend(self.package_drifts(prepared));
                continue;
            }
            let text = |v: Option<&Value>| matches!(v, None | Some(Value::Null | Value::String(_)));
            match (d.get("before"), d.get("after")) {
                (Some(Value::Object(found)), Some(Value::Object(declared))) => {
                    out.extend(self.field_drifts(&resource, found, declared));
                }
                (found, declared) if text(found) && text(declared) => {
                    out.push(self.content_drift(&resource, d));
                }
                _ => {}
            }
        }
        if out.is_empty() {
            let msg = match (module, self.args) {
                ("command" | "shell", _) => {
                    "would run again: the command reports a change on every run (give it creates/removes or changed_when)".to_string()
                }
                (_, Some(a)) if matches!(a.get("state").and_then(Value::as_str), Some("restarted" | "reloaded")) => {
                    "would restart: state restarted/reloaded acts on every run".to_string()
                }
                _ => "differs from the declared state (the module reports no details)".to_string(),
            };
            out.push(self.drift(&resource, msg));
        }
        out
    }

    fn field_drifts(
        &self,
        resource: &str,
        found: &serde_json::Map<String, Value>,
        declared: &serde_json::Map<String, Value>,
    ) -> Vec<Drift> {
        let resource = match found.get("path").and_then(Value::as_str) {
            Some(p) => format!("{}[{p}]", self.module_name()),
            None => resource.to_string(),
        };
        let mut out = Vec::new();
        let keys: Vec<&String> = declared
            .keys()
            .chain(found.keys().filter(|k| !declared.contains_key(*k)))
            .collect();
        for k in keys {
            if k == "path" {
                continue;
            }
            let f = found.get(k).cloned().unwrap_or(Value::Null);
            let d = declared.get(k).cloned().unwrap_or(Value::Null);
            if f == d {
                continue;
            }
            let message = if k == "state" && f == "absent" {
                format!("removed outside tend (declared {})", text_of(&d))
            } else if k == "state" && d == "absent" {
                format!("created outside tend (found {})", text_of(&f))
            } else {
                format!(
                    "{k} changed outside tend: declared {}, found {}",
                    text_of(&d),
                    text_of(&f)
                )
            };
            let mut drift = self.drift(&resource, message);
            drift.field = Some(k.clone());
            drift.declared = Some(d);
            drift.found = Some(f);
            out.push(drift);
        }
        out
    }

    fn content_drift(&self, resource: &str, d: &Value) -> Drift {
        let found = d.get("before").and_then(Value::as_str).unwrap_or("");
        let declared = d.get("after").and_then(Value::as_str).unwrap_or("");
        let found_exists = d.get("before_header").is_some() || !found.is_empty();
        let declared_exists = d.get("after_header").is_some() || !declared.is_empty();
        let resource = match d.get("before_header").and_then(Value::as_str) {
            Some(p) if p.starts_with('/') => format!("{}[{p}]", self.module_name()),
            _ => resource.to_string(),
        };
        if !found_exists {
            return self.drift(&resource, "removed outside tend".into());
        }
        if !declared_exists {
            return self.drift(&resource, "created outside tend (declared absent)".into());
        }
        let mut drift = self.drift(&resource, "content changed outside tend:".into());
        drift.field = Some("content".into());
        drift.diff = Some(unified_diff(declared, found, self.host));
        drift
    }

    /// `apt`/`package`: the packages apt would install, remove or upgrade.
    fn package_drifts(&self, prepared: &str) -> Vec<Drift> {
        let plan = AptPlan::parse(prepared);
        let module = self.module_name();
        let mut out = Vec::new();
        for p in &plan.installed {
            out.push(self.drift(&format!("{module}[{p}]"), "removed outside tend".into()));
        }
        for p in &plan.removed {
            out.push(self.drift(
                &format!("{module}[{p}]"),
                "installed outside tend (declared absent)".into(),
            ));
        }
        for p in &plan.upgraded {
            out.push(self.drift(
                &format!("{module}[{p}]"),
                "a newer version is available (declared latest)".into(),
            ));
        }
        out
    }

    fn service_drifts(&self, resource: &str, result: &Value) -> Vec<Drift> {
        let status = result.get("status").and_then(Value::as_object);
        let prop = |k: &str| status.and_then(|s| s.get(k)).and_then(Value::as_str);
        let mut out = Vec::new();
        let declared_state = result.get("state").and_then(Value::as_str);
        let literal_state = self
            .args
            .and_then(|a| a.get("state"))
            .and_then(Value::as_str);
        let acts_always = matches!(literal_state, Some("restarted" | "reloaded"));
        let running =
            prop("ActiveState").map(|s| matches!(s, "active" | "activating" | "reloading"));
        match (declared_state, running) {
            (Some("started"), Some(false)) if !acts_always => {
                out.push(self.state_drift(resource, "stopped", "started"))
            }
            (Some("stopped"), Some(true)) => {
                out.push(self.state_drift(resource, "started", "stopped"))
            }
            (Some("started"), None) if !acts_always && status.is_none() => {
                out.push(self.state_drift(resource, "stopped", "started"))
            }
            (Some("stopped"), None) if status.is_none() => {
                out.push(self.state_drift(resource, "started", "stopped"))
            }
            _ => {}
        }
        if let (Some(want), Some(have)) = (
            result.get("enabled").and_then(Value::as_bool),
            prop("UnitFileState"),
        ) {
            let is_enabled = have.starts_with("enabled");
            if want != is_enabled && matches!(have, "enabled" | "enabled-runtime" | "disabled") {
                let (found, declared) = if want {
                    ("disabled", "enabled")
                } else {
                    ("enabled", "disabled")
                };
                let mut d = self.drift(
                    resource,
                    format!("{found} outside tend (declared {declared})"),
                );
                d.field = Some("enabled".into());
                d.declared = Some(Value::Bool(want));
                d.found = Some(Value::Bool(is_enabled));
                out.push(d);
            }
        }
        out
    }

    fn state_drift(&self, resource: &str, found: &str, declared: &str) -> Drift {
        let mut d = self.drift(
            resource,
            format!("{found} outside tend (declared {declared})"),
        );
        d.field = Some("state".into());
        d.declared = Some(Value::String(declared.into()));
        d.found = Some(Value::String(found.into()));
        d
    }
}

/// What apt's simulation says it would do (ansible's `prepared` diff).
#[derive(Debug, Default, PartialEq)]
struct AptPlan {
    /// Named packages that would be installed (dependencies pulled in are left out).
    installed: Vec<String>,
    removed: Vec<String>,
    upgraded: Vec<String>,
}

impl AptPlan {
    fn parse(prepared: &str) -> AptPlan {
        let mut sections: HashMap<&str, Vec<String>> = HashMap::new();
        let mut current: Option<&str> = None;
        for line in prepared.lines() {
            if let Some(rest) = line.strip_prefix("The following ") {
                current = if rest.starts_with("additional packages will be installed") {
                    Some("additional")
                } else if rest.starts_with("NEW packages will be installed") {
                    Some("new")
                } else if rest.starts_with("packages will be REMOVED") {
                    Some("removed")
                } else if rest.starts_with("packages will be upgraded") {
                    Some("upgraded")
                } else {
                    None
                };
                continue;
            }
            match current {
                Some(sec) if line.starts_with(' ') => {
                    let names = line
                        .split_whitespace()
                        .map(|n| n.trim_end_matches('*').to_string());
                    sections.entry(sec).or_default().extend(names);
                }
                _ => current = None,
            }
        }
        let mut take = |k: &str| sections.remove(k).unwrap_or_default();
        let additional = take("additional");
        AptPlan {
            installed: take("new")
                .into_iter()
                .filter(|p| !additional.contains(p))
                .collect(),
            removed: take("removed"),
            upgraded: take("upgraded"),
        }
    }
}

/// A unified diff from what the playbook declares to what the host has.
fn unified_diff(declared: &str, found: &str, host: &str) -> String {
    let diff = similar::TextDiff::from_lines(declared, found);
    let mut out = format!("--- declared\n+++ found on {host}\n");
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&hunk.to_string());
    }
    out
}

/// A note about one host's resource (the fix run's lines).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostNote {
    pub host: String,
    #[serde(flatten)]
    pub note: Note,
}

/// What the fix run changed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FixReport {
    pub run_id: Option<String>,
    /// The hosts it ran on: those that drifted.
    pub hosts: Vec<String>,
    /// Changes to resources the check found drifted.
    pub corrected: Vec<HostNote>,
    /// Other changes the run made (a command that runs every time, a resource that drifted
    /// between the check and the fix).
    pub also_changed: Vec<HostNote>,
    pub errors: Vec<HostNote>,
    /// Host and task location of every drift the check found.
    #[serde(skip)]
    drifted: std::collections::HashSet<(String, String)>,
}

impl FixReport {
    fn new(report: &Report) -> Self {
        FixReport {
            hosts: report.drifted_hosts(),
            drifted: report
                .hosts()
                .iter()
                .flat_map(|h| h.drifts.iter().map(|d| (h.host.clone(), d.loc.clone())))
                .collect(),
            ..Default::default()
        }
    }

    fn event(&mut self, e: &Event, tasks: &TaskIndex, scrub: &Scrubber) {
        let Event::TaskResult(r) = e else { return };
        for o in classify(r, tasks, scrub) {
            match o {
                Outcome::Drifted(d) => {
                    let mut seen: Vec<&str> = Vec::new();
                    for x in &d {
                        if seen.contains(&x.resource.as_str()) {
                            continue;
                        }
                        seen.push(&x.resource);
                        let was_drift = self.drifted.contains(&(r.host.clone(), x.loc.clone()));
                        let note = HostNote {
                            host: r.host.clone(),
                            note: Note {
                                resource: x.resource.clone(),
                                task: x.task.clone(),
                                loc: x.loc.clone(),
                                message: if was_drift { "corrected" } else { "changed" }.into(),
                            },
                        };
                        if was_drift {
                            self.corrected.push(note);
                        } else {
                            self.also_changed.push(note);
                        }
                    }
                }
                Outcome::Error(note) => self.errors.push(HostNote {
                    host: r.host.clone(),
                    note,
                }),
                _ => {}
            }
        }
    }
}

/// The apply arguments of the check (or fix) run.
fn apply_args(a: &DriftArgs, check: bool) -> ApplyArgs {
    ApplyArgs {
        playbook: a.playbook.clone(),
        hosts: a.hosts.clone(),
        extra_vars: a.extra_vars.clone(),
        tags: a.tags.clone(),
        skip_tags: a.skip_tags.clone(),
        check,
        diff: true,
        output: OutputFormat::Human,
        store: a.store.clone(),
        no_history: a.no_history,
        policy: a.policy.clone(),
        lock_timeout: a.lock_timeout,
        ..Default::default()
    }
}

fn stderr_line(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
}

/// One run of the playbook, recorded as `kind`; events go to `on_event` too.
/// `Err(exit status)` when it could not run or its history is incomplete (already reported).
fn run_recorded(
    prep: &mut tend_engine::Prepared,
    args: &ApplyArgs,
    kind: RunKind,
    policy: Option<Value>,
    mut on_event: impl FnMut(&Event),
) -> Result<Option<String>, u8> {
    let run_id = tend_store::new_run_id();
    if !args.check {
        // A fix changes hosts: it locks them like any apply.
        crate::lock_hosts(prep, &run_id, args.lock_timeout);
    }
    let mut recorder = if args.no_history {
        None
    } else {
        match crate::recorder::Recorder::start_as(prep, args, &run_id, kind, None) {
            Ok(r) => r,
            Err(e) => {
                crate::history::report(&e);
                stderr_line("nothing was checked or changed");
                return Err(EXIT_ERROR);
            }
        }
    };
    let run_id = recorder.as_ref().map(|r| r.run_id().to_string());
    let summary = crate::run_streaming(prep, |e| {
        if let Event::Warning { msg, .. } = e {
            stderr_line(&format!("[WARNING]: {msg}"));
        }
        on_event(e);
        if let Some(r) = recorder.as_mut() {
            r.event(e);
        }
    });
    if let Some(Err((run, e))) = recorder.map(|r| r.finish_with_policy(summary.as_ref(), policy)) {
        crate::recorder::report_incomplete(&run, &e);
        return Err(EXIT_ERROR);
    }
    if summary.is_none() {
        stderr_line("error: the run stopped unexpectedly (internal error)");
        return Err(EXIT_ERROR);
    }
    Ok(run_id)
}

/// `tend drift`.
pub fn drift(args: DriftArgs) -> ExitCode {
    let check_args = apply_args(&args, true);
    let settings = match crate::settings::apply_settings(&check_args) {
        Ok(s) => s,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut prep = match tend_engine::prepare(settings.clone()) {
        Ok(p) => p,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    crate::print_warnings(&prep);
    let scrub = crate::recorder::secret_scrubber(&prep);
    let tasks = TaskIndex::new(&prep.playbook);
    let mut report = Report::new(prep.hosts());
    let check_run = match run_recorded(&mut prep, &check_args, RunKind::Drift, None, |e| {
        report.event(e, &tasks, &scrub)
    }) {
        Ok(id) => id,
        Err(code) => return ExitCode::from(code),
    };
    let check_code = report.exit_code();
    if args.output == ReportFormat::Human {
        crate::out(&render_report(&report, check_run.as_deref()));
    }
    if !args.fix {
        if args.output == ReportFormat::Json {
            crate::out(&json_document(&report, check_run.as_deref(), None));
        }
        return ExitCode::from(check_code);
    }

    // --fix: a real apply of the same playbook on the hosts that drifted.
    let mut fix = FixReport::new(&report);
    let targets = fix.hosts.clone();
    if !targets.is_empty() {
        let mut fix_settings = settings;
        fix_settings.options.check = false;
        fix_settings.limit = Some(targets.join(","));
        let mut fix_prep = match tend_engine::prepare(fix_settings) {
            Ok(p) => p,
            Err(e) => {
                crate::report_error(&e);
                return ExitCode::from(EXIT_ERROR);
            }
        };
        let fix_args = apply_args(&args, false);
        // With policies the fix is planned and judged first; a deny corrects nothing.
        let policy = match crate::policy::load(&fix_args, &args.playbook) {
            Ok(Some(mut p)) => {
                match crate::plan::plan_before_apply(&mut fix_prep, &mut p, &fix_args, RunKind::Fix)
                {
                    Ok(record) => Some(record),
                    Err(code) => {
                        stderr_line("the drift was not corrected: the policies deny the fix");
                        return code;
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                stderr_line(&format!(
                    "error: {e}\nthe drift was not corrected\nhint: fix the policy (`tend policy test DIR` runs its tests)"
                ));
                return ExitCode::from(EXIT_ERROR);
            }
        };
        match run_recorded(&mut fix_prep, &fix_args, RunKind::Fix, policy, |e| {
            fix.event(e, &tasks, &scrub)
        }) {
            Ok(id) => fix.run_id = id,
            Err(code) => return ExitCode::from(code),
        }
        // Hosts run in parallel: list them in report order.
        let order = |h: &str| targets.iter().position(|t| t == h);
        fix.corrected.sort_by_key(|n| order(&n.host));
        fix.also_changed.sort_by_key(|n| order(&n.host));
        fix.errors.sort_by_key(|n| order(&n.host));
    }
    match args.output {
        ReportFormat::Human => crate::out(&render_fix(&fix)),
        ReportFormat::Json => crate::out(&json_document(&report, check_run.as_deref(), Some(&fix))),
    }
    if check_code == EXIT_ERROR || !fix.errors.is_empty() {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    }
}

/// The `--output json` document (docs/architecture.md, "Drift").
fn json_document(report: &Report, run_id: Option<&str>, fix: Option<&FixReport>) -> String {
    let mut doc = json!({
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
    });
    if let (Value::Object(d), Value::Object(r)) = (&mut doc, report.to_json()) {
        d.extend(r);
        d.insert(
            "fix".into(),
            fix.map_or(Value::Null, |f| serde_json::to_value(f).unwrap_or_default()),
        );
    }
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn percent(p: Option<f64>) -> String {
    match p {
        None => "n/a".into(),
        Some(p) if p.fract() == 0.0 => format!("{p:.0}%"),
        Some(p) => format!("{p:.1}%"),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn located(n: &Note) -> String {
    if n.loc.is_empty() {
        n.message.clone()
    } else {
        format!("{} ({}): {}", n.task, n.loc, n.message)
    }
}

/// The report for people: drifts worded as what happened, errors, what could not be checked,
/// one line per host, totals and compliance.
pub fn render_report(report: &Report, run_id: Option<&str>) -> String {
    let mut s = String::new();
    for h in report.hosts() {
        for d in &h.drifts {
            s.push_str(&format!("{}: {}: {}\n", h.host, d.resource, d.message));
            if let Some(diff) = &d.diff {
                for line in diff.lines() {
                    s.push_str(&format!("    {line}\n"));
                }
            }
        }
    }
    for h in report.hosts() {
        for n in &h.errors {
            s.push_str(&format!("{}: error: {}\n", h.host, located(n)));
        }
    }
    for h in report.hosts() {
        for n in &h.not_checkable {
            s.push_str(&format!("{}: not checkable: {}\n", h.host, located(n)));
        }
    }
    if !s.is_empty() {
        s.push('\n');
    }
    let width = report
        .hosts()
        .iter()
        .map(|h| h.host.len())
        .max()
        .unwrap_or(0);
    for h in report.hosts() {
        let c = h.counts;
        s.push_str(&format!(
            "{:<width$}  {:<8}  {} in state, {} drifted, {}, {} not checkable\n",
            h.host,
            h.status.as_str(),
            c.in_state,
            c.drifted,
            plural(c.errors, "error", "errors"),
            c.not_checkable,
        ));
    }
    let t = report.totals();
    let c = report.compliance();
    s.push_str(&format!(
        "\nDrift: {} drifted on {} of {}; {}; {} not checkable (not counted as in state)\n",
        plural(t.drifted, "resource", "resources"),
        t.hosts_drifted,
        plural(t.hosts, "host", "hosts"),
        plural(t.errors, "error", "errors"),
        t.not_checkable,
    ));
    s.push_str(&format!(
        "Compliance: hosts {} ({} of {} checked hosts fully in state), resources {} ({} of {} checked resources in state)\n",
        percent(c.hosts_percent),
        t.hosts_in_state,
        t.hosts_checked,
        percent(c.resources_percent),
        t.in_state,
        t.resources_checked,
    ));
    if let Some(id) = run_id {
        s.push_str(&format!("Recorded as drift run {id}\n"));
    }
    s
}

/// What `--fix` corrected.
pub fn render_fix(fix: &FixReport) -> String {
    let mut s = String::from("\n");
    if fix.hosts.is_empty() {
        s.push_str("Fix: nothing to correct\n");
        return s;
    }
    for n in &fix.corrected {
        s.push_str(&format!("{}: {}: corrected\n", n.host, n.note.resource));
    }
    for n in &fix.also_changed {
        s.push_str(&format!(
            "{}: {}: changed as well (it had not drifted): {} ({})\n",
            n.host, n.note.resource, n.note.task, n.note.loc
        ));
    }
    for n in &fix.errors {
        s.push_str(&format!("{}: error: {}\n", n.host, located(&n.note)));
    }
    s.push_str(&format!(
        "Fix: {} corrected on {}; {}\n",
        plural(fix.corrected.len() as u64, "resource", "resources"),
        plural(fix.hosts.len() as u64, "host", "hosts"),
        plural(fix.errors.len() as u64, "error", "errors"),
    ));
    if let Some(id) = &fix.run_id {
        s.push_str(&format!("Recorded as fix run {id}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_proto::Loc;

    fn index(entries: &[(&str, &str, Value)]) -> TaskIndex {
        let mut modules = HashMap::new();
        for (loc, m, args) in entries {
            let args = args.as_object().cloned().unwrap_or_default();
            modules.insert(loc.to_string(), (m.to_string(), args));
        }
        TaskIndex { modules }
    }

    fn result(host: &str, line: u32, status: ResultStatus, r: Value, diffs: Vec<Value>) -> Event {
        Event::TaskResult(TaskResult {
            host: host.into(),
            task: format!("task {line}"),
            loc: Loc::new("site.yml", line, 7),
            status,
            ignored: false,
            handler: false,
            result: r,
            diffs,
            changes: Vec::new(),
            delegated_to: None,
        })
    }

    fn messages(r: &Report, host: &str) -> Vec<String> {
        r.hosts()
            .iter()
            .find(|h| h.host == host)
            .unwrap()
            .drifts
            .iter()
            .map(|d| format!("{}: {}", d.resource, d.message))
            .collect()
    }

    #[test]
    fn drifts_are_worded_as_what_happened_outside_tend() {
        let idx = index(&[
            (
                "site.yml:1:7",
                "file",
                json!({"path": "/etc/motd", "mode": "0644"}),
            ),
            ("site.yml:2:7", "copy", json!({"dest": "/etc/app.conf"})),
            ("site.yml:3:7", "package", json!({"name": "hello"})),
            (
                "site.yml:4:7",
                "service",
                json!({"name": "cron", "state": "started", "enabled": true}),
            ),
            ("site.yml:5:7", "debug", json!({"msg": "hi"})),
            ("site.yml:6:7", "command", json!({"cmd": "true"})),
        ]);
        let hosts = ["web01".to_string(), "web02".to_string()];
        let mut r = Report::new(hosts.iter());
        let none = Scrubber::default();
        let mut feed = |e: Event| r.event(&e, &idx, &none);
        feed(result(
            "web01",
            1,
            ResultStatus::Changed,
            json!({"changed": true, "path": "/etc/motd", "mode": "0644"}),
            vec![
                json!({"before": {"path": "/etc/motd", "mode": "0600"}, "after": {"path": "/etc/motd", "mode": "0644"}}),
            ],
        ));
        feed(result(
            "web01",
            2,
            ResultStatus::Changed,
            json!({"changed": true, "dest": "/etc/app.conf"}),
            vec![
                json!({"before": "a\nb\nhacked\n", "after": "a\nb\n", "before_header": "/etc/app.conf", "after_header": "/etc/app.conf"}),
            ],
        ));
        feed(result(
            "web01",
            3,
            ResultStatus::Changed,
            json!({"changed": true, "stdout": "..."}),
            vec![
                json!({"prepared": "The following additional packages will be installed:\n  libfoo\nThe following NEW packages will be installed:\n  hello libfoo\n0 upgraded, 2 newly installed, 0 to remove and 0 not upgraded."}),
            ],
        ));
        feed(result(
            "web01",
            4,
            ResultStatus::Changed,
            json!({"changed": true, "name": "cron", "state": "started", "enabled": true,
                   "status": {"ActiveState": "inactive", "UnitFileState": "enabled"}}),
            vec![],
        ));
        feed(result(
            "web01",
            5,
            ResultStatus::Ok,
            json!({"changed": false, "msg": "hi"}),
            vec![],
        ));
        feed(result(
            "web01",
            6,
            ResultStatus::Skipped,
            json!({"changed": false, "skipped": true, "msg": "Command would have run if not in check mode"}),
            vec![],
        ));
        for line in 1..=4 {
            feed(result(
                "web02",
                line,
                ResultStatus::Ok,
                json!({"changed": false}),
                vec![],
            ));
        }
        feed(result(
            "web02",
            6,
            ResultStatus::Skipped,
            json!({"changed": false, "skipped": true, "skip_reason": "Conditional result was False"}),
            vec![],
        ));

        assert_eq!(
            messages(&r, "web01"),
            [
                "file[/etc/motd]: mode changed outside tend: declared 0644, found 0600",
                "copy[/etc/app.conf]: content changed outside tend:",
                "package[hello]: removed outside tend",
                "service[cron]: stopped outside tend (declared started)",
            ]
        );
        let web01 = &r.hosts()[0];
        assert_eq!(
            web01.drifts[1].diff.as_deref(),
            Some("--- declared\n+++ found on web01\n@@ -1,2 +1,3 @@\n a\n b\n+hacked\n")
        );
        assert_eq!(
            web01.counts,
            Counts {
                in_state: 0,
                drifted: 4,
                errors: 0,
                not_checkable: 1
            }
        );
        assert_eq!(web01.status, HostStatus::Drifted);
        assert_eq!(
            r.hosts()[1].counts,
            Counts {
                in_state: 4,
                drifted: 0,
                errors: 0,
                not_checkable: 0
            }
        );
        let t = r.totals();
        assert_eq!((t.hosts, t.hosts_checked, t.hosts_in_state), (2, 2, 1));
        assert_eq!((t.resources_checked, t.in_state, t.drifted), (8, 4, 4));
        assert_eq!(
            r.compliance(),
            Compliance {
                hosts_percent: Some(50.0),
                resources_percent: Some(50.0)
            }
        );
        assert_eq!(r.exit_code(), EXIT_DRIFT);
        let text = render_report(&r, None);
        assert!(text.contains("web01: not checkable: task 6 (site.yml:6:7): Command would have run if not in check mode\n"), "{text}");
        assert!(text.contains("Compliance: hosts 50% (1 of 2 checked hosts fully in state), resources 50% (4 of 8 checked resources in state)\n"), "{text}");
    }

    #[test]
    fn an_error_wins_over_drift_and_the_host_is_not_counted_as_checked() {
        let idx = index(&[("site.yml:1:7", "file", json!({"path": "/x"}))]);
        let hosts = ["a".to_string(), "b".to_string()];
        let mut r = Report::new(hosts.iter());
        let none = Scrubber::default();
        r.event(
            &result(
                "a",
                1,
                ResultStatus::Changed,
                json!({"changed": true, "path": "/x"}),
                vec![],
            ),
            &idx,
            &none,
        );
        r.event(
            &result(
                "b",
                1,
                ResultStatus::Unreachable,
                json!({"unreachable": true, "msg": "ssh: connect refused"}),
                vec![],
            ),
            &idx,
            &none,
        );
        assert_eq!(r.exit_code(), EXIT_ERROR);
        let t = r.totals();
        assert_eq!(
            (t.hosts_checked, t.hosts_with_errors, t.hosts_in_state),
            (1, 1, 0)
        );
        assert_eq!(r.compliance().hosts_percent, Some(0.0));
        assert_eq!(r.hosts()[1].errors[0].message, "ssh: connect refused");
        assert_eq!(
            messages(&r, "a"),
            ["file[/x]: differs from the declared state (the module reports no details)"]
        );
    }

    #[test]
    fn secrets_and_no_log_results_are_never_shown() {
        let idx = index(&[("site.yml:1:7", "template", json!({"dest": "/etc/app.conf"}))]);
        let hosts = ["a".to_string()];
        let mut r = Report::new(hosts.iter());
        let mut s = Scrubber::default();
        s.add("hunter22");
        r.event(&result("a", 1, ResultStatus::Changed, json!({"changed": true, "dest": "/etc/app.conf"}),
            vec![json!({"before": "pw=hunter22\nx\n", "after": "pw=hunter22\n", "before_header": "/etc/app.conf", "after_header": "t.j2"})]), &idx, &s);
        // A no_log result: censored, and its diff records are dropped.
        r.event(
            &result(
                "a",
                2,
                ResultStatus::Changed,
                json!({"censored": "hidden", "changed": true}),
                vec![json!({"before": "secret-old", "after": "secret-new"})],
            ),
            &idx,
            &s,
        );
        let doc = json_document(&r, None, None);
        assert!(
            !doc.contains("hunter22") && !doc.contains("secret-"),
            "{doc}"
        );
        assert!(doc.contains("pw=********"), "{doc}");
        assert!(
            doc.contains("changed outside tend (details hidden: no_log)"),
            "{doc}"
        );
    }

    #[test]
    fn loops_count_each_item_and_word_state_changes() {
        let idx = index(&[(
            "site.yml:1:7",
            "file",
            json!({"path": "{{ item }}", "state": "directory"}),
        )]);
        let hosts = ["a".to_string()];
        let mut r = Report::new(hosts.iter());
        let none = Scrubber::default();
        r.event(&result("a", 1, ResultStatus::Changed, json!({"changed": true, "results": [
            {"changed": false, "path": "/srv/a", "item": "/srv/a", "ansible_loop_var": "item"},
            {"changed": true, "path": "/srv/b", "item": "/srv/b", "ansible_loop_var": "item",
             "diff": [{"before": {"path": "/srv/b", "state": "absent"}, "after": {"path": "/srv/b", "state": "directory"}}]},
            {"changed": false, "skipped": true, "skip_reason": "Conditional result was False"},
        ]}), vec![]), &idx, &none);
        assert_eq!(
            messages(&r, "a"),
            ["file[/srv/b]: removed outside tend (declared directory)"]
        );
        assert_eq!(
            r.hosts()[0].counts,
            Counts {
                in_state: 1,
                drifted: 1,
                errors: 0,
                not_checkable: 0
            }
        );
    }

    #[test]
    fn services_and_rescued_failures() {
        let idx = index(&[
            (
                "site.yml:1:7",
                "systemd",
                json!({"name": "nginx", "state": "stopped", "enabled": false}),
            ),
            (
                "site.yml:2:7",
                "service",
                json!({"name": "cron", "state": "started"}),
            ),
            ("site.yml:3:7", "apt", json!({"name": "nope"})),
        ]);
        let hosts = ["a".to_string()];
        let mut r = Report::new(hosts.iter());
        let none = Scrubber::default();
        r.event(
            &result(
                "a",
                1,
                ResultStatus::Changed,
                json!({"changed": true, "name": "nginx", "state": "stopped", "enabled": false,
            "status": {"ActiveState": "active", "UnitFileState": "enabled"}}),
                vec![],
            ),
            &idx,
            &none,
        );
        // A sysvinit host reports no unit status: the declared state tells what was found.
        r.event(
            &result(
                "a",
                2,
                ResultStatus::Changed,
                json!({"changed": true, "name": "cron", "state": "started"}),
                vec![],
            ),
            &idx,
            &none,
        );
        r.event(
            &result(
                "a",
                3,
                ResultStatus::Failed,
                json!({"failed": true, "msg": "No package matching 'nope' is available"}),
                vec![],
            ),
            &idx,
            &none,
        );
        assert_eq!(r.exit_code(), EXIT_ERROR);
        r.event(
            &Event::HostDone {
                host: "a".into(),
                stats: tend_proto::HostStats {
                    ok: 2,
                    changed: 2,
                    rescued: 1,
                    ..Default::default()
                },
            },
            &idx,
            &none,
        );
        assert_eq!(
            messages(&r, "a"),
            [
                "systemd[nginx]: started outside tend (declared stopped)",
                "systemd[nginx]: enabled outside tend (declared disabled)",
                "service[cron]: stopped outside tend (declared started)",
            ]
        );
        let h = &r.hosts()[0];
        assert_eq!(
            h.counts,
            Counts {
                in_state: 0,
                drifted: 2,
                errors: 0,
                not_checkable: 1
            }
        );
        assert_eq!(
            h.not_checkable[0].message,
            "failed (rescued by the playbook): No package matching 'nope' is available"
        );
        assert_eq!(r.exit_code(), EXIT_DRIFT);
    }

    #[test]
    fn apt_plans_name_the_declared_packages() {
        let p = AptPlan::parse("The following packages will be REMOVED:\n  tree*\nThe following packages will be upgraded:\n  tend-demo\n1 upgraded, 0 newly installed, 1 to remove and 0 not upgraded.");
        assert_eq!(
            p,
            AptPlan {
                installed: vec![],
                removed: vec!["tree".into()],
                upgraded: vec!["tend-demo".into()]
            }
        );
    }
}
