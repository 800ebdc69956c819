//! Plans: `tend plan` (check mode with diffs everywhere, printed like OpenTofu's plan and
//! saved as versioned JSON), `tend show PLAN`, and `tend apply PLAN` (exactly that plan).
//!
//! The plan file holds the options that shape the run, the sha256 of every input
//! ([`tend_engine::input_digests`]), the git commit, and per host each planned change with
//! its key and the digest of what the agent observed. Applying it: the inputs are hashed
//! again and the plan refused if one changed; each host's agent gets the planned digests
//! ([`tend_proto::PlanGuard`]) and touches a resource only when the change it would make now
//! has the planned digest — anything else is "changed since plan", reported as a failed and
//! ignored task (the rest of the host and the other hosts still apply), listed at the end,
//! and the run exits 2. A plan may be applied once: its id is recorded in the run's start in
//! the history, and a second apply is refused naming the run that applied it.
//!
//! Plans are recorded in the history as `plan` runs. They take no host leases: a plan
//! changes nothing, so two plans (or a plan during an apply) may run at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tend_proto::{Event, PlanAction, PlanGuard, PlannedChange, ResultStatus};
use tend_store::{GitInfo, RunKind, Scrubber};

use crate::cli::{ApplyArgs, OutputFormat, PlanArgs, ReportFormat, ShowArgs};

/// The plan file's `format` value.
pub const FORMAT: &str = "tend-plan";
/// The plan file's format version; a tend refuses a plan of another version.
pub const VERSION: u32 = 1;

/// A saved plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanFile {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub tend_version: String,
    pub created: String,
    /// The directory `tend plan` ran in: relative paths in `options` and `inputs` are
    /// relative to it (inputs inside the playbook directory: relative to that).
    pub dir: String,
    pub options: PlanOptions,
    /// sha256 of every input, by path (see [`tend_engine::input_digests`]).
    pub inputs: BTreeMap<String, String>,
    #[serde(default)]
    pub git: Option<GitInfo>,
    /// Every host the plan covers, in inventory order, with its planned changes.
    pub hosts: Vec<HostPlan>,
}

/// The command-line options that shape the run, as given to `tend plan`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PlanOptions {
    pub playbook: PathBuf,
    #[serde(default)]
    pub inventory: Vec<String>,
    #[serde(default)]
    pub extra_vars: Vec<String>,
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub skip_tags: Vec<String>,
    #[serde(default)]
    pub start_at_task: Option<String>,
    #[serde(default, rename = "become")]
    pub become_: bool,
    #[serde(default)]
    pub become_user: Option<String>,
    #[serde(default)]
    pub become_method: Option<String>,
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostPlan {
    pub host: String,
    #[serde(default)]
    pub changes: Vec<PlannedChange>,
    /// The name of the task behind each change, by change key (for policies and people).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, String>,
    /// The facts the plan gathered on the host (secrets masked), for policies.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub facts: serde_json::Map<String, Value>,
}

/// What a plan adds up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub run: usize,
    pub hosts: usize,
}

impl PlanFile {
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            hosts: self.hosts.len(),
            ..Default::default()
        };
        for c in self.hosts.iter().flat_map(|h| &h.changes) {
            match c.action {
                PlanAction::Create => t.add += 1,
                PlanAction::Update => t.change += 1,
                PlanAction::Delete => t.destroy += 1,
                PlanAction::Run => t.run += 1,
            }
        }
        t
    }

    fn has_changes(&self) -> bool {
        self.hosts.iter().any(|h| !h.changes.is_empty())
    }

    /// The plan as JSON (what `-o` writes and `--output json` prints).
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert(
                "summary".into(),
                serde_json::to_value(self.totals()).unwrap_or(Value::Null),
            );
        }
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads a plan file, refusing other formats and versions.
    pub fn read(path: &Path) -> Result<PlanFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read plan {}: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a tend plan (not JSON: {e})", path.display()))?;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(format!(
                "{} is not a tend plan (no \"format\": \"{FORMAT}\")",
                path.display()
            ));
        }
        let version = v.get("version").and_then(Value::as_u64).unwrap_or(0);
        if version != u64::from(VERSION) {
            return Err(format!(
                "{} is a tend plan of format version {version}; this tend reads version {VERSION}: make the plan again with this tend",
                path.display()
            ));
        }
        serde_json::from_value(v)
            .map_err(|e| format!("{} is not a valid tend plan: {e}", path.display()))
    }
}

/// `tend apply FILE`: whether FILE is a saved plan rather than a playbook (a JSON document
/// naming the plan format; playbooks are YAML lists).
pub fn plan_file(path: &Path) -> Option<PathBuf> {
    is_plan_file(path).then(|| path.to_path_buf())
}

fn is_plan_file(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 256];
    let n = std::io::Read::read(&mut f, &mut head).unwrap_or(0);
    let head = String::from_utf8_lossy(&head[..n]);
    let compact: String = head.chars().filter(|c| !c.is_whitespace()).collect();
    compact.starts_with(&format!("{{\"format\":\"{FORMAT}\""))
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// The plan as `tend plan` prints it.
pub fn render(plan: &PlanFile) -> String {
    let mut out = String::new();
    for h in &plan.hosts {
        for c in &h.changes {
            let what = match c.action {
                PlanAction::Create => "will be created",
                PlanAction::Update => "will be updated in-place",
                PlanAction::Delete => "will be destroyed",
                PlanAction::Run => "will run",
            };
            out.push_str(&format!(
                "# {}: {}[{}] {what}\n",
                h.host, c.module, c.subject
            ));
            if c.censored {
                out.push_str("  (the change is hidden: the task has no_log)\n");
            }
            for d in &c.diffs {
                out.push_str(&render_record(d));
            }
            out.push('\n');
        }
    }
    let t = plan.totals();
    if !plan.has_changes() {
        out.push_str("No changes: every host matches the playbook.\n");
    }
    let hosts = if t.hosts == 1 { "host" } else { "hosts" };
    out.push_str(&format!(
        "Plan: {} to add, {} to change, {} to destroy on {} {hosts}.",
        t.add, t.change, t.destroy, t.hosts
    ));
    if t.run > 0 {
        let actions = if t.run == 1 { "action" } else { "actions" };
        out.push_str(&format!(" {} {actions} will run.", t.run));
    }
    out.push('\n');
    out
}

/// One diff record: field changes as `~ field: before -> after`, content as a unified diff.
fn render_record(d: &Value) -> String {
    let mut out = String::new();
    match (d.get("before"), d.get("after")) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            for (k, av) in a {
                if k == "path" {
                    continue;
                }
                let bv = b.get(k).unwrap_or(&Value::Null);
                if bv != av {
                    out.push_str(&format!("  ~ {k}: {bv} -> {av}\n"));
                }
            }
        }
        _ => {
            let text = crate::printer::render_diff(d);
            for line in text.trim_end_matches('\n').lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Secrets

fn scrub_change(s: &Scrubber, c: &mut PlannedChange) {
    let mut subject = Value::String(std::mem::take(&mut c.subject));
    s.scrub(&mut subject);
    c.subject = subject.as_str().unwrap_or_default().to_string();
    for d in &mut c.diffs {
        s.scrub(d);
    }
    if let Some(args) = c.args.take() {
        let mut v = Value::Object(args);
        s.scrub(&mut v);
        if let Value::Object(m) = v {
            c.args = Some(m);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// The `-e @FILE` arguments' files.
fn extra_var_files(extra: &[String]) -> Vec<PathBuf> {
    extra
        .iter()
        .filter_map(|e| e.trim().strip_prefix('@').map(PathBuf::from))
        .collect()
}

/// Every input's digest; plan files are not inputs (the one being written, and others).
fn inputs(
    prep: &tend_engine::Prepared,
    options: &PlanOptions,
    plan_path: Option<&Path>,
) -> Result<BTreeMap<String, String>, String> {
    let skip: Vec<PathBuf> = plan_path.into_iter().map(Path::to_path_buf).collect();
    let all = tend_engine::input_digests(prep, &extra_var_files(&options.extra_vars), &skip)
        .map_err(|e| format!("{e}; every input of a plan must be readable"))?;
    let base =
        std::path::absolute(&prep.playbook.dir).unwrap_or_else(|_| prep.playbook.dir.clone());
    Ok(all
        .into_iter()
        .filter(|(name, _)| !(name.ends_with(".json") && is_plan_file(&base.join(name))))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The run

/// What the event stream says about a plan or a plan's apply.
#[derive(Default)]
struct Collector {
    /// Per host, the changes reported, in order.
    changes: BTreeMap<String, Vec<PlannedChange>>,
    /// Failed (not ignored) tasks and unreachable hosts: `host: task (loc): msg`.
    errors: Vec<String>,
    /// Per host, the task name behind each change key.
    tasks: BTreeMap<String, BTreeMap<String, String>>,
    /// Per host, the facts its tasks reported (`ansible_facts` of results).
    facts: BTreeMap<String, serde_json::Map<String, Value>>,
}

impl Collector {
    fn event(&mut self, e: &Event) {
        if let Event::TaskResult(r) = e {
            if !r.changes.is_empty() {
                let tasks = self.tasks.entry(r.host.clone()).or_default();
                for c in &r.changes {
                    tasks.insert(c.key.clone(), r.task.clone());
                }
                self.changes
                    .entry(r.host.clone())
                    .or_default()
                    .extend(r.changes.iter().cloned());
            }
            if let Some(Value::Object(f)) = r.result.get("ansible_facts") {
                let facts = self.facts.entry(r.host.clone()).or_default();
                facts.extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let failed = r.status == ResultStatus::Failed && !r.ignored;
            if failed || r.status == ResultStatus::Unreachable {
                let msg = r.failure_msg();
                let what = if r.status == ResultStatus::Unreachable {
                    "UNREACHABLE"
                } else {
                    "failed"
                };
                self.errors
                    .push(format!("{}: {} ({}) {what}: {msg}", r.host, r.task, r.loc));
            }
        }
    }
}

fn options_of(a: &ApplyArgs) -> PlanOptions {
    PlanOptions {
        playbook: a.playbook.clone(),
        inventory: a.hosts.inventory.clone(),
        extra_vars: a.extra_vars.clone(),
        limit: a.hosts.limit.clone(),
        tags: a.tags.clone(),
        skip_tags: a.skip_tags.clone(),
        start_at_task: a.start_at_task.clone(),
        become_: a.hosts.become_,
        become_user: a.hosts.become_user.clone(),
        become_method: a.hosts.become_method.clone(),
        connection: a.hosts.connection.clone(),
    }
}

fn error(msg: &str, hint: Option<&str>) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {msg}");
    if let Some(h) = hint {
        let _ = writeln!(err, "hint: {h}");
    }
    ExitCode::from(1)
}

/// What to do about a policy that blocks by failing.
const POLICY_HINT: &str = "fix the policy (`tend policy test DIR` runs its tests); `--policy DIR` names the policy directories";

/// `tend plan`.
pub fn plan(args: PlanArgs) -> ExitCode {
    if args.run.dry_run_orchestration {
        if args.out.is_some() || args.detailed_exitcode {
            let _ = writeln!(
                std::io::stderr(),
                "error: --dry-run-orchestration prints the order of a run and saves no plan: -o/--out and --detailed-exitcode do not go with it"
            );
            return ExitCode::from(crate::EXIT_BAD_INPUT);
        }
        return crate::orchestration::dry_run(&args.run);
    }
    let mut run = args.run;
    if run.check {
        // Harmless: a plan is check mode anyway.
        run.check = false;
    }
    let options = options_of(&run);
    if args.out.is_some() {
        // The plan file keeps the -e arguments to run them again: no secret may be inline.
        let inline_secret = run.extra_vars.iter().any(|e| {
            let shown = crate::recorder::recorded_argv(&["-e".to_string(), e.clone()]);
            shown.get(1) != Some(e)
        });
        if inline_secret {
            return error(
                "an -e argument holds a secret-looking variable, and a saved plan keeps its -e arguments as given",
                Some("put secrets in a vars file and pass it as -e @FILE: the plan keeps only the file's name and digest"),
            );
        }
    }
    let mut settings = match crate::settings::apply_settings(&run) {
        Ok(s) => s,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(1);
        }
    };
    settings.options.check = true;
    settings.options.plan = true;
    settings.options.collect_diffs = !run.no_history;
    let prep = match tend_engine::prepare(settings) {
        Ok(p) => p,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(1);
        }
    };
    crate::print_warnings(&prep);
    if run.syntax_check || run.list_hosts || run.list_tasks {
        crate::out(&crate::settings::listing(&prep, &run));
        return ExitCode::SUCCESS;
    }
    // Loaded before planning: a policy that does not parse stops here.
    let mut policies = match crate::policy::load(&run, &run.playbook) {
        Ok(p) => p,
        Err(e) => return error(&e, Some(POLICY_HINT)),
    };
    let plan_path = args
        .out
        .as_deref()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    let inputs = match inputs(&prep, &options, plan_path.as_deref()) {
        Ok(i) => i,
        Err(e) => return error(&e, None),
    };
    // Recorded as a check-only run: no leases (see the module's documentation).
    run.check = true;
    let mut recorder = if run.no_history {
        None
    } else {
        match crate::recorder::Recorder::start_as(
            &prep,
            &run,
            &tend_store::new_run_id(),
            RunKind::Plan,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return crate::history::report(&e),
        }
    };
    let id = recorder
        .as_ref()
        .map(|r| r.run_id().to_string())
        .unwrap_or_else(tend_store::new_run_id);
    let mut collector = Collector::default();
    let summary = crate::run_streaming(&prep, |e| {
        collector.event(e);
        if let Event::Warning { msg, .. } = e {
            let _ = writeln!(std::io::stderr(), "[WARNING]: {msg}");
        }
        if let Some(r) = recorder.as_mut() {
            r.event(e);
        }
    });
    if summary.is_none() {
        if let Some(r) = recorder {
            let _ = r.finish(None);
        }
        return error("the plan stopped unexpectedly (internal error)", None);
    }

    let hosts: Vec<String> = prep.hosts().into_iter().cloned().collect();
    let scrub = crate::recorder::secret_scrubber(&prep);
    let playbook_dir = prep.playbook.dir.clone();
    let plan = PlanFile {
        format: FORMAT.into(),
        version: VERSION,
        id,
        tend_version: crate::embedded::VERSION.into(),
        created: tend_store::time::now(),
        dir: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        options,
        inputs,
        git: tend_store::git::git_info(if playbook_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &playbook_dir
        }),
        hosts: host_plans(&hosts, &mut collector, &scrub),
    };
    let gate = policies.as_mut().map(|p| {
        let input = crate::policy::input(&plan, &crate::policy::host_vars(&prep, &scrub));
        crate::policy::gate(p, &input)
    });
    let recorded = recorder.map(|r| {
        let policy = gate.as_ref().map(|g| match g {
            Ok(v) => crate::policy::record(v),
            Err(e) => crate::policy::record_error(e),
        });
        r.finish_with_policy(summary.as_ref(), policy)
    });

    let mut failed = false;
    let mut blocked = false;
    match &gate {
        Some(Err(e)) => {
            let _ = writeln!(std::io::stderr(), "error: {e}\nhint: {POLICY_HINT}");
            blocked = true;
        }
        Some(Ok(v)) if v.denied() => {
            let _ = writeln!(
                std::io::stderr(),
                "error: the policies deny this plan ({} deny)",
                v.deny.len()
            );
            blocked = true;
        }
        _ => {}
    }
    if !collector.errors.is_empty() {
        let mut err = std::io::stderr().lock();
        for e in &collector.errors {
            let _ = writeln!(err, "error: {e}");
        }
        failed = true;
    }
    if let Some(Err((run_id, e))) = &recorded {
        let _ = writeln!(
            std::io::stderr(),
            "error: plan {run_id} finished, but its history is incomplete: {e}"
        );
        failed = true;
    }
    match run.output {
        OutputFormat::Human => crate::out(&render(&plan)),
        OutputFormat::Json => crate::out(&plan.to_json()),
    }
    if failed {
        if args.out.is_some() {
            let _ = writeln!(
                std::io::stderr(),
                "error: the plan is incomplete, so it was not saved\nhint: fix the errors above and run `tend plan` again"
            );
        }
        return ExitCode::from(1);
    }
    if blocked {
        if let Some(path) = &args.out {
            let _ = writeln!(
                std::io::stderr(),
                "error: the policies block this plan, so it was not saved to {}\nhint: change the playbook (or the policy) and run `tend plan` again",
                path.display()
            );
        }
        return ExitCode::from(1);
    }
    if let Some(path) = &args.out {
        if let Err(e) = save(path, &plan) {
            return error(&e, None);
        }
        let _ = writeln!(
            std::io::stderr(),
            "Saved the plan to {}: `tend show {0}` shows it, `tend apply {0}` applies exactly it.",
            path.display()
        );
    }
    if args.detailed_exitcode && plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Each host's plan from what a plan pass collected, secrets masked.
fn host_plans(hosts: &[String], collector: &mut Collector, scrub: &Scrubber) -> Vec<HostPlan> {
    let mut vault = tend_engine::EventScrubber::new();
    hosts
        .iter()
        .map(|h| {
            let mut facts = Value::Object(collector.facts.remove(h).unwrap_or_default());
            crate::policy::mask(&mut facts, scrub, &mut vault);
            HostPlan {
                host: h.clone(),
                changes: collector
                    .changes
                    .remove(h)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut c| {
                        scrub_change(scrub, &mut c);
                        c
                    })
                    .collect(),
                tasks: collector.tasks.remove(h).unwrap_or_default(),
                facts: match facts {
                    Value::Object(m) => m,
                    _ => Default::default(),
                },
            }
        })
        .collect()
}

/// Writes the plan atomically; a new file is 0600 (it holds file contents), an existing one
/// keeps its owner and mode.
fn save(path: &Path, plan: &PlanFile) -> Result<(), String> {
    use tend_resources::fsutil::{atomic_write, Attrs, Mode};
    let attrs = if path.exists() {
        Attrs::default()
    } else {
        Attrs {
            mode: Some(Mode::Octal(0o600)),
            ..Default::default()
        }
    };
    atomic_write(path, plan.to_json().as_bytes(), &attrs, None, None)
        .map_err(|e| format!("cannot save the plan to {}: {e}", path.display()))
}

/// `tend show PLAN`.
pub fn show(args: ShowArgs) -> ExitCode {
    match PlanFile::read(&args.plan) {
        Ok(p) => {
            match args.output {
                ReportFormat::Human => crate::out(&render(&p)),
                ReportFormat::Json => crate::out(&p.to_json()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => error(&e, Some("`tend plan PLAYBOOK -o FILE` saves a plan")),
    }
}

/// Options of `tend apply` that would change what the plan runs.
fn refused_options(a: &ApplyArgs) -> Vec<&'static str> {
    let mut r = Vec::new();
    let mut check = |on: bool, name: &'static str| {
        if on {
            r.push(name);
        }
    };
    check(!a.hosts.inventory.is_empty(), "-i/--inventory");
    check(!a.extra_vars.is_empty(), "-e/--extra-vars");
    check(a.hosts.limit.is_some(), "-l/--limit");
    check(!a.tags.is_empty(), "-t/--tags");
    check(!a.skip_tags.is_empty(), "--skip-tags");
    check(a.check, "-C/--check");
    check(a.hosts.connection.is_some(), "-c/--connection");
    check(a.hosts.become_, "-b/--become");
    check(a.hosts.become_user.is_some(), "--become-user");
    check(a.hosts.become_method.is_some(), "--become-method");
    check(a.start_at_task.is_some(), "--start-at-task");
    check(
        a.list_hosts || a.list_tasks || a.syntax_check,
        "--list-hosts/--list-tasks/--syntax-check",
    );
    check(a.dry_run_orchestration, "--dry-run-orchestration");
    r
}

/// `tend apply PLAN`.
pub fn apply_plan(args: ApplyArgs, file: &Path) -> ExitCode {
    let refused = refused_options(&args);
    if !refused.is_empty() {
        return error(
            &format!(
                "{} cannot be given with a plan file: {} applies exactly the options it was planned with",
                refused.join(", "),
                file.display()
            ),
            Some("run `tend plan` again with the options you want, then apply that plan"),
        );
    }
    if args.no_history {
        return error(
            &format!(
                "cannot apply the plan {} with --no-history: a plan may be applied once, and the history is where tend records that it was",
                file.display()
            ),
            Some("apply the plan with the history on, or run the playbook itself with `tend apply PLAYBOOK --no-history`"),
        );
    }
    let plan = match PlanFile::read(file) {
        Ok(p) => p,
        Err(e) => return error(&e, None),
    };
    // Said first, before inputs are hashed; checked again under the leases when the run starts.
    let spec = crate::recorder::store_spec(
        &args.store.store,
        tend_store::StoreSpec::beside(&plan_dir_playbook(&plan)),
    );
    if let Ok(mut store) = tend_store::Store::open_existing(&spec) {
        if let Ok(runs) = store.runs(&Default::default()) {
            if let Some(r) = runs
                .into_iter()
                .find(|r| r.start.plan.as_deref() == Some(&plan.id))
            {
                return crate::history::report(&tend_store::StoreError::PlanApplied {
                    plan: plan.id.clone(),
                    run: r.run_id,
                    by: format!("started {} by {}", r.start.started, r.start.user),
                });
            }
        }
    }
    let plan_path = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    // Relative paths of the plan mean what they meant where it was made.
    let mut args = args;
    for d in &mut args.policy {
        if let Ok(abs) = std::path::absolute(&*d) {
            *d = abs;
        }
    }
    if let Some(s) = &args.store.store {
        let spec = tend_store::StoreSpec::parse(s);
        if let tend_store::StoreSpec::Sqlite(p) = spec {
            if let Ok(abs) = std::path::absolute(&p) {
                args.store.store = Some(abs.display().to_string());
            }
        }
    }
    if let Err(e) = std::env::set_current_dir(&plan.dir) {
        return error(
            &format!(
                "cannot enter {}, where the plan {} was made: {e}",
                plan.dir,
                file.display()
            ),
            Some("apply the plan on the machine and checkout it was made in"),
        );
    }
    let o = &plan.options;
    args.playbook = o.playbook.clone();
    args.hosts.inventory = o.inventory.clone();
    args.extra_vars = o.extra_vars.clone();
    args.hosts.limit = o.limit.clone();
    args.tags = o.tags.clone();
    args.skip_tags = o.skip_tags.clone();
    args.start_at_task = o.start_at_task.clone();
    args.hosts.become_ = o.become_;
    args.hosts.become_user = o.become_user.clone();
    args.hosts.become_method = o.become_method.clone();
    args.hosts.connection = o.connection.clone();

    let mut settings = match crate::settings::apply_settings(&args) {
        Ok(s) => s,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(1);
        }
    };
    settings.options.collect_diffs = true;
    settings.guards = Some(
        plan.hosts
            .iter()
            .map(|h| {
                let expected = h
                    .changes
                    .iter()
                    .map(|c| (c.key.clone(), c.digest.clone()))
                    .collect();
                (
                    h.host.clone(),
                    PlanGuard {
                        expected,
                        approved: Default::default(),
                    },
                )
            })
            .collect(),
    );
    let mut prep = match tend_engine::prepare(settings) {
        Ok(p) => p,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(1);
        }
    };
    crate::print_warnings(&prep);
    let now = match inputs(&prep, o, Some(&plan_path)) {
        Ok(i) => i,
        Err(e) => return error(&e, None),
    };
    let changed = changed_inputs(&plan.inputs, &now);
    if !changed.is_empty() {
        return error(
            &format!(
                "the inputs of plan {} changed since it was made, so it was not applied:\n{}",
                file.display(),
                changed
                    .iter()
                    .map(|c| format!("  {c}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            Some("run `tend plan` again and review the new plan"),
        );
    }
    let hosts: Vec<String> = prep.hosts().into_iter().cloned().collect();
    let planned: Vec<&str> = plan.hosts.iter().map(|h| h.host.as_str()).collect();
    if hosts.iter().any(|h| !planned.contains(&h.as_str())) {
        let new: Vec<&str> = hosts
            .iter()
            .map(String::as_str)
            .filter(|h| !planned.contains(h))
            .collect();
        return error(
            &format!(
                "the plan {} does not cover {}, which the run now targets",
                file.display(),
                new.join(", ")
            ),
            Some("run `tend plan` again and review the new plan"),
        );
    }

    // The policies judge the plan as it was reviewed, before anything changes.
    let policy = match crate::policy::load(&args, &args.playbook) {
        Ok(None) => None,
        Ok(Some(mut p)) => match policy_gate(
            &mut p,
            &plan,
            &prep,
            &crate::recorder::secret_scrubber(&prep),
        ) {
            Ok(v) => Some(v),
            Err(blocked) => {
                record_blocked(
                    &prep,
                    &args,
                    RunKind::Apply,
                    blocked,
                    &format!("plan {}", plan.id),
                );
                return ExitCode::from(1);
            }
        },
        Err(e) => return error(&e, Some(POLICY_HINT)),
    };
    refresh(&mut prep);
    let run_id = tend_store::new_run_id();
    crate::lock_hosts(&mut prep, &run_id, args.lock_timeout);
    let mut recorder = match crate::recorder::Recorder::start_as(
        &prep,
        &args,
        &run_id,
        RunKind::Apply,
        Some(&plan.id),
    ) {
        Ok(r) => r,
        Err(e) => {
            crate::history::report(&e);
            let _ = writeln!(std::io::stderr(), "nothing was changed");
            return ExitCode::from(1);
        }
    };
    if recorder.is_none() {
        return error(
            &format!(
                "cannot apply the plan {}: the history cannot be written, and a plan may be applied once, which tend records there",
                file.display()
            ),
            Some("name a store with --store PATH|postgres://… (or TEND_STORE)"),
        );
    }
    let mut printer = crate::printer::Printer::new(args.output, args.verbose).diffs(args.diff);
    let mut collector = Collector::default();
    let summary = crate::run_streaming(&prep, |e| {
        printer.event(e);
        collector.event(e);
        if let Some(r) = recorder.as_mut() {
            r.event(e);
        }
    });
    let recorded = recorder.map(|r| r.finish_with_policy(summary.as_ref(), policy));
    let Some(summary) = summary else {
        return ExitCode::from(250);
    };
    let stats: Vec<_> = summary.stats.iter().map(|(h, s)| (h.clone(), *s)).collect();
    printer.recap(&stats);
    printer.skipped_plays(&summary.skipped);
    drop(printer);
    let scrub = crate::recorder::secret_scrubber(&prep);
    let mut not_touched = Vec::new();
    for (host, changes) in &collector.changes {
        for c in changes.iter().filter(|c| c.changed_since_plan) {
            let mut c = c.clone();
            scrub_change(&scrub, &mut c);
            not_touched.push(format!("  {host}: {}[{}]", c.module, c.subject));
        }
    }
    let mut code = summary.exit_code() as u8;
    if !not_touched.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "error: {} resource(s) changed since plan {} and were not touched:\n{}\nhint: run `tend plan` again and review the new plan",
            not_touched.len(),
            plan.id,
            not_touched.join("\n")
        );
        if code == 0 {
            code = 2;
        }
    }
    if let Some(Err((run, e))) = recorded {
        crate::recorder::report_incomplete(&run, &e);
        if code == 0 {
            code = 1;
        }
    }
    ExitCode::from(code)
}

/// Evaluates policies on a plan and prints what they say. `Ok`: the record of the findings
/// (warnings at most); `Err`: the record of why the plan is blocked (after saying so).
fn policy_gate(
    policies: &mut tend_policy::Policies,
    plan: &PlanFile,
    prep: &tend_engine::Prepared,
    scrub: &Scrubber,
) -> Result<Value, Value> {
    let input = crate::policy::input(plan, &crate::policy::host_vars(prep, scrub));
    match crate::policy::gate(policies, &input) {
        Ok(v) if v.denied() => {
            let _ = writeln!(
                std::io::stderr(),
                "error: the policies deny this plan ({} deny), so nothing was changed on any host\nhint: change the playbook (or the policy) and run again",
                v.deny.len()
            );
            Err(crate::policy::record(&v))
        }
        Ok(v) => Ok(crate::policy::record(&v)),
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: {e}\nnothing was changed on any host\nhint: {POLICY_HINT}"
            );
            Err(crate::policy::record_error(&e))
        }
    }
}

/// Records in the history an apply the policies blocked before anything ran (unless the run
/// keeps no history). `what`: what was blocked (`plan ID`, `playbook site.yml`).
fn record_blocked(
    prep: &tend_engine::Prepared,
    args: &ApplyArgs,
    kind: RunKind,
    policy: Value,
    what: &str,
) {
    if args.no_history {
        return;
    }
    let run_id = tend_store::new_run_id();
    match crate::recorder::Recorder::start_as(prep, args, &run_id, kind, None) {
        Ok(Some(r)) => {
            if let Err((run, e)) = r.finish_blocked(policy, &format!("the policies blocked {what}"))
            {
                crate::recorder::report_incomplete(&run, &e);
            }
        }
        Ok(None) => {}
        Err(e) => {
            crate::history::report(&e);
        }
    }
}

/// `tend apply PLAYBOOK` with policies: plans every host first (check mode with diffs, as
/// `tend plan` does), evaluates the policies on that plan, and either refuses the whole apply
/// (`Err`: the exit status; nothing changed anywhere, the block recorded) or arms each host's
/// guard with exactly the planned changes, approved, so that the apply makes those and only
/// those: a change the plan did not hold is refused as changed since plan. A host the plan
/// pass could not reach gets the changes planned so far, which may be none. `Ok`: the
/// findings' record, for the apply's record. `kind`: what the blocked run is recorded as
/// (`apply`, or `fix` for `tend drift --fix`).
pub fn plan_before_apply(
    prep: &mut tend_engine::Prepared,
    policies: &mut tend_policy::Policies,
    args: &ApplyArgs,
    kind: RunKind,
) -> Result<Value, ExitCode> {
    let options = prep.settings.options.clone();
    prep.settings.options.check = true;
    prep.settings.options.plan = true;
    prep.settings.options.collect_diffs = true;
    let mut collector = Collector::default();
    let summary = crate::run_streaming(prep, |e| collector.event(e));
    prep.settings.options = options;
    if summary.is_none() {
        let _ = error(
            "the plan before the apply stopped unexpectedly (internal error); nothing was changed",
            None,
        );
        return Err(ExitCode::from(250));
    }
    let hosts: Vec<String> = prep.hosts().into_iter().cloned().collect();
    let scrub = crate::recorder::secret_scrubber(prep);
    // Each host's guard: exactly the planned changes (keys and digests of the raw, unmasked
    // changes), all approved; taken before the plan masks them.
    let guards: BTreeMap<String, PlanGuard> = hosts
        .iter()
        .map(|h| {
            let changes = collector
                .changes
                .get(h)
                .map(Vec::as_slice)
                .unwrap_or_default();
            (
                h.clone(),
                PlanGuard {
                    expected: changes
                        .iter()
                        .map(|c| (c.key.clone(), c.digest.clone()))
                        .collect(),
                    approved: changes.iter().map(|c| c.key.clone()).collect(),
                },
            )
        })
        .collect();
    let plan = PlanFile {
        format: FORMAT.into(),
        version: VERSION,
        id: tend_store::new_run_id(),
        tend_version: crate::embedded::VERSION.into(),
        created: tend_store::time::now(),
        dir: String::new(),
        options: options_of(args),
        inputs: BTreeMap::new(),
        git: None,
        hosts: host_plans(&hosts, &mut collector, &scrub),
    };
    let record = match policy_gate(policies, &plan, prep, &scrub) {
        Ok(r) => r,
        Err(blocked) => {
            record_blocked(
                prep,
                args,
                kind,
                blocked,
                &format!("playbook {}", args.playbook.display()),
            );
            return Err(ExitCode::from(1));
        }
    };
    prep.settings.guards = Some(guards);
    Ok(record)
}

/// Plans every host again, just before the apply and before anything changes, and approves in
/// each host's guard the keys whose change is still the planned one; a key whose change differs
/// gets a digest that matches nothing (refused as changed since plan); a key the plan lacks
/// stays absent (refused too). Comparing here rather than while applying is what makes a plan
/// applicable at all: an apply's earlier tasks change what later ones observe (a package brings
/// its config file; a second `lineinfile` sees the first one's line), so digests taken mid-run
/// differ from the plan's even when nobody touched the host. An edit in the seconds between this
/// pass and the apply is not seen. A host this pass could not plan (unreachable, failed) keeps
/// the plain guard: every change there is compared with the plan as it is made.
fn refresh(prep: &mut tend_engine::Prepared) {
    let options = prep.settings.options.clone();
    let guards = prep.settings.guards.take();
    prep.settings.options.check = true;
    prep.settings.options.plan = true;
    prep.settings.options.collect_diffs = true;
    let mut collector = Collector::default();
    let mut failed = BTreeSet::new();
    let summary = crate::run_streaming(prep, |e| {
        collector.event(e);
        if let Event::TaskResult(r) = e {
            if (r.status == ResultStatus::Failed && !r.ignored)
                || r.status == ResultStatus::Unreachable
            {
                failed.insert(r.host.clone());
            }
        }
    });
    prep.settings.options = options;
    let Some(mut guards) = guards else {
        return;
    };
    if summary.is_some() {
        for (host, guard) in guards.iter_mut() {
            if failed.contains(host) {
                continue;
            }
            for c in collector.changes.get(host).into_iter().flatten() {
                match guard.expected.get_mut(&c.key) {
                    Some(planned) if *planned == c.digest => {
                        guard.approved.insert(c.key.clone());
                    }
                    Some(planned) => *planned = Some(String::new()),
                    None => {}
                }
            }
        }
    }
    prep.settings.guards = Some(guards);
}

/// The plan's playbook, as a path from here.
fn plan_dir_playbook(plan: &PlanFile) -> PathBuf {
    Path::new(&plan.dir).join(&plan.options.playbook)
}

/// Inputs that differ between a plan and now: changed, gone, or new.
pub fn changed_inputs(
    planned: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, digest) in planned {
        match now.get(name) {
            Some(d) if d == digest => {}
            Some(_) => out.push(format!("{name} (changed)")),
            None => out.push(format!("{name} (removed)")),
        }
    }
    for name in now.keys().filter(|n| !planned.contains_key(*n)) {
        out.push(format!("{name} (new)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(key: &str, action: PlanAction, subject: &str, diffs: Vec<Value>) -> PlannedChange {
        PlannedChange {
            key: key.into(),
            module: "template".into(),
            action,
            subject: subject.into(),
            diffs,
            digest: Some("ab".into()),
            censored: false,
            changed_since_plan: false,
            args: None,
        }
    }

    fn plan(hosts: Vec<HostPlan>) -> PlanFile {
        PlanFile {
            format: FORMAT.into(),
            version: VERSION,
            id: "p1".into(),
            tend_version: "x".into(),
            created: "now".into(),
            dir: "/".into(),
            options: PlanOptions::default(),
            inputs: BTreeMap::new(),
            git: None,
            hosts,
        }
    }

    #[test]
    fn a_plan_reads_like_opentofus() {
        let p = plan(vec![
            HostPlan {
                host: "web01".into(),
                changes: vec![
                    change(
                        "0:site.yml:4:7#1",
                        PlanAction::Update,
                        "/etc/nginx/nginx.conf",
                        vec![
                            json!({"before": {"path": "/etc/nginx/nginx.conf", "mode": "0644"},
                                   "after": {"path": "/etc/nginx/nginx.conf", "mode": "0600"}}),
                            json!({"before": "a\n", "after": "b\n",
                                   "before_header": "/etc/nginx/nginx.conf",
                                   "after_header": "nginx.conf.j2"}),
                        ],
                    ),
                    PlannedChange {
                        module: "command".into(),
                        digest: None,
                        ..change("0:site.yml:9:7#1", PlanAction::Run, "reload", vec![])
                    },
                ],
                ..Default::default()
            },
            HostPlan {
                host: "web02".into(),
                changes: vec![PlannedChange {
                    censored: true,
                    module: "copy".into(),
                    ..change(
                        "0:site.yml:12:7#1",
                        PlanAction::Create,
                        "Install key",
                        vec![],
                    )
                }],
                ..Default::default()
            },
            HostPlan {
                host: "db01".into(),
                changes: vec![],
                ..Default::default()
            },
        ]);
        assert_eq!(
            render(&p),
            "# web01: template[/etc/nginx/nginx.conf] will be updated in-place\n\
             \x20 ~ mode: \"0644\" -> \"0600\"\n\
             \x20 --- before: /etc/nginx/nginx.conf\n\
             \x20 +++ after: nginx.conf.j2\n\
             \x20 @@ -1 +1 @@\n\
             \x20 -a\n\
             \x20 +b\n\
             \n\
             # web01: command[reload] will run\n\
             \n\
             # web02: copy[Install key] will be created\n\
             \x20 (the change is hidden: the task has no_log)\n\
             \n\
             Plan: 1 to add, 1 to change, 0 to destroy on 3 hosts. 1 action will run.\n"
        );
        assert_eq!(
            render(&plan(vec![HostPlan {
                host: "a".into(),
                changes: vec![], ..Default::default()
            }])),
            "No changes: every host matches the playbook.\nPlan: 0 to add, 0 to change, 0 to destroy on 1 host.\n"
        );
    }

    #[test]
    fn a_saved_plan_reads_back_and_other_files_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = plan(vec![HostPlan {
            host: "web01".into(),
            changes: vec![change("k", PlanAction::Delete, "/x", vec![])],
            ..Default::default()
        }]);
        let path = t.path().join("plan.json");
        save(&path, &p).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(is_plan_file(&path));
        let back = PlanFile::read(&path).unwrap();
        assert_eq!(render(&back), render(&p));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["summary"]["destroy"], 1);

        let yml = t.path().join("site.yml");
        std::fs::write(&yml, "- hosts: all\n").unwrap();
        assert!(!is_plan_file(&yml));
        assert!(PlanFile::read(&yml)
            .unwrap_err()
            .contains("not a tend plan"));
        let old = t.path().join("old.json");
        std::fs::write(&old, r#"{"format": "tend-plan", "version": 99}"#).unwrap();
        assert!(PlanFile::read(&old).unwrap_err().contains("version 99"));
    }

    #[test]
    fn changed_inputs_are_named_changed_removed_or_new() {
        let m = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let planned = m(&[("site.yml", "1"), ("templates/a.j2", "2"), ("inv", "3")]);
        let now = m(&[("site.yml", "1"), ("templates/a.j2", "9"), ("new.yml", "4")]);
        assert_eq!(
            changed_inputs(&planned, &now),
            vec!["inv (removed)", "templates/a.j2 (changed)", "new.yml (new)"]
        );
        assert!(changed_inputs(&planned, &planned).is_empty());
    }

    #[test]
    fn options_that_shape_the_run_are_refused_with_a_plan() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from([
            "tend",
            "apply",
            "plan.json",
            "-e",
            "x=1",
            "-l",
            "web",
            "-f",
            "5",
            "-D",
        ]);
        let crate::cli::Command::Apply(a) = cli.command else {
            panic!()
        };
        assert_eq!(refused_options(&a), vec!["-e/--extra-vars", "-l/--limit"]);
    }
}
