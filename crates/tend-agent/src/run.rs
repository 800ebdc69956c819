//! The task loop of one host.

mod undo;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tend_lang::playbook::{role, Loader, RoleScope};
use tend_lang::template::{to_jinja_ser, Layer, OMIT};
use tend_lang::{Scope, Templar};
use tend_proto::{
    Become, Event, Handler, HostState, HostStats, PlanAction, PlannedChange, Program, ResultStatus,
    Task, TaskKind, TaskResult, Value, Vars,
};
use tend_resources::{Args, ChangeKind, ModuleCtx, ModuleOutput, PlanMode};

use crate::builtin;
use crate::loops;
use crate::privilege::{self, Escalation, Resolved};
use crate::sync::{Rendezvous, RunOnce};
use crate::vars::{layer, DynVars};
use crate::worker::spawn::Worker;
use crate::worker::{ModuleRequest, Request, Response, WireLayer, WirePlan};

const NO_LOG_MSG: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

/// What a task, block or section did to the host's run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The host failed (and nothing rescued it yet).
    Failed,
    /// `meta: end_host` / `end_play`: stop this host's play quietly.
    Ended,
}

/// Keywords a task inherits from the blocks, roles and imports around it.
#[derive(Clone, Default)]
struct Inherited {
    when: Vec<Value>,
    tags: Vec<String>,
    block_vars: Vec<Vars>,
    include_params: Vec<Vars>,
    /// Loop variables of enclosing looped includes (data, never templated).
    include_data: Vec<Vars>,
    ignore_errors: Option<Value>,
    any_errors_fatal: Option<Value>,
    check_mode: Option<Value>,
    diff: Option<Value>,
    no_log: Option<Value>,
    environment: Vec<Value>,
    become_: Become,
    /// Inside a block that has a `rescue:` section.
    rescuable: bool,
    /// `delegate_to` of an enclosing block (unrendered).
    delegate_to: Option<String>,
    /// `delegate_facts` of an enclosing block.
    delegate_facts: Option<Value>,
    /// `run_once` of the play or of a block around the task.
    run_once: Option<Value>,
    /// `throttle` of the play or of a block around the task.
    throttle: Option<Value>,
}

/// Where the module of the task running now runs (`delegate_to`).
#[derive(Clone, Debug)]
struct Delegation {
    /// The inventory host named by `delegate_to`.
    host: String,
    /// It runs here after all: on this host, or on localhost when this agent is the controller.
    here: bool,
    /// `delegate_facts`: returned facts belong to the delegate.
    facts: bool,
}

pub struct HostRun<'a> {
    program: &'a Program,
    rendezvous: Option<&'a dyn Rendezvous>,
    /// How often this host reached each run_once task (keys of meeting points).
    run_once_seen: std::collections::HashMap<String, usize>,
    sink: &'a mut dyn FnMut(Event),
    templar: Templar,
    loader: Loader,
    roles: RoleScope,
    role_layers: Vec<Option<[Layer; 3]>>,
    base: BaseLayers,
    facts: Option<Layer>,
    facts_json: Option<Vars>,
    host_facts: DynVars,
    include_vars: DynVars,
    handlers: Vec<Handler>,
    notified: Vec<bool>,
    stats: HostStats,
    started: bool,
    /// Privileged workers started so far, one per way of becoming a user.
    workers: std::collections::HashMap<Escalation, Worker>,
    /// How often this host reached each module task's location (part of a change's key).
    loc_seen: std::collections::HashMap<String, usize>,
    /// The module task running now: its location and occurrence, and the loop item.
    current: (String, usize, Option<usize>),
    /// Plans: the changes of the task running now (one per loop item), for its result.
    task_changes: Vec<PlannedChange>,
    /// Lockstep plays: steps finished so far.
    steps: usize,
    /// The failure that stopped this host came from a task with `any_errors_fatal`.
    fatal_failure: bool,
    /// `delegate_to` of the module task (or loop item) running now.
    delegation: Option<Delegation>,
    /// A run that journals: the module task running now, as its journal entries name it.
    journal_task: Option<tend_resources::journal::JournalCtx>,
}

/// The program-wide layers, converted once.
struct BaseLayers {
    role_defaults: Layer,
    inventory: Layer,
    play_vars: Layer,
    vars_files: Layer,
    role_vars: Layer,
    extra_vars: Layer,
    magic: Layer,
}

impl<'a> HostRun<'a> {
    pub fn new(
        program: &'a Program,
        sink: &'a mut dyn FnMut(Event),
        rendezvous: Option<&'a dyn Rendezvous>,
    ) -> Self {
        let v = &program.vars;
        let base = BaseLayers {
            role_defaults: layer(&v.role_defaults, true),
            inventory: layer(&v.inventory, true),
            play_vars: layer(&v.play_vars, true),
            vars_files: layer(&v.vars_files, true),
            role_vars: layer(&v.role_vars, true),
            extra_vars: layer(&v.extra_vars, true),
            magic: layer(&v.magic, false),
        };
        let roles = RoleScope::with_roles(program.roles.clone());
        let state = &program.vars.host_state;
        let mut host_facts = DynVars::default();
        host_facts.extend(state.host_facts.clone());
        let mut include_vars = DynVars::default();
        include_vars.extend(state.include_vars.clone());
        HostRun {
            program,
            rendezvous,
            steps: 0,
            fatal_failure: false,
            delegation: None,
            run_once_seen: Default::default(),
            sink,
            templar: Templar::new(),
            loader: if program.play.roles_paths.is_empty() {
                Loader::new(Path::new(&program.play.playbook_dir))
            } else {
                Loader::with_roles_paths(
                    Path::new(&program.play.playbook_dir),
                    program.play.roles_paths.iter().map(PathBuf::from).collect(),
                )
            },
            role_layers: vec![None; program.roles.len()],
            roles,
            base,
            facts: None,
            facts_json: None,
            host_facts,
            include_vars,
            handlers: program.handlers.clone(),
            notified: vec![false; program.handlers.len()],
            stats: HostStats::default(),
            started: program.options.start_at_task.is_none(),
            workers: Default::default(),
            loc_seen: Default::default(),
            current: (String::new(), 0, None),
            task_changes: Vec::new(),
            journal_task: None,
        }
    }

    /// Templates read other hosts' `hostvars` from `source` (the controller).
    pub(crate) fn set_other_hosts(
        &mut self,
        source: std::sync::Arc<dyn tend_lang::template::OtherHosts>,
    ) {
        self.templar = self.templar.with_other_hosts(source);
    }

    /// Whether this run reports changes (`tend plan`, `tend apply PLAN`).
    fn plans(&self) -> bool {
        self.program.options.plan || self.program.guard.is_some()
    }

    /// The key of the resource running now (see [`tend_proto::change_key`]).
    fn change_key(&self) -> String {
        let (loc, n, item) = &self.current;
        tend_proto::change_key(self.program.play.index, loc, *n, *item)
    }

    fn host(&self) -> &str {
        &self.program.host
    }

    fn emit(&mut self, e: Event) {
        (self.sink)(e);
    }

    /// Runs the play on this host; returns its counters and what the next play inherits.
    pub fn run(mut self) -> (HostStats, HostState) {
        if let Some(f) = self.program.vars.host_state.facts.clone() {
            self.set_facts(f);
        }
        let flow = if let Some(undo) = &self.program.undo {
            self.run_undo(undo)
        } else if self.program.play.connection.as_deref() == Some("local")
            && tend_lang::ctlfs::is_remote()
        {
            self.refuse_play(&runs_on_controller("this play has `connection: local`"))
        } else {
            let mut flow = Flow::Continue;
            if self.program.play.gather_facts {
                flow = self.gather_facts();
                flow = self.step_done(flow);
            }
            if flow == Flow::Continue {
                flow = if self.lockstep() {
                    self.run_lockstep()
                } else {
                    self.run_list(&self.program.tasks, &Inherited::default())
                };
            }
            flow
        };
        if flow == Flow::Failed && self.program.play.force_handlers {
            self.flush_handlers(&Inherited::default());
        }
        let stats = self.stats;
        let host = self.host().to_string();
        if let Some(rv) = self.rendezvous {
            rv.host_done(&host);
        }
        // Workers end with the run (end of input, then a kill).
        self.workers.clear();
        self.emit(Event::HostDone { host, stats });
        let state = HostState {
            facts: self.facts_json.take(),
            host_facts: self.host_facts.to_json(),
            include_vars: self.include_vars.to_json(),
        };
        (stats, state)
    }

    fn lockstep(&self) -> bool {
        self.program.play.lockstep && self.rendezvous.is_some()
    }

    /// Lockstep plays: the play's top-level tasks one by one, meeting the batch's other hosts
    /// after each (ansible-core's linear strategy, as `any_errors_fatal` and
    /// `max_fail_percentage` need it). A block is one step.
    fn run_lockstep(&mut self) -> Flow {
        let program = self.program;
        let (children, inh) = match program.tasks.as_slice() {
            [w] if w.implicit => match &w.kind {
                TaskKind::Block {
                    block,
                    rescue,
                    always,
                } if rescue.is_empty() && always.is_empty() => {
                    (block.as_slice(), self.inherit(w, &Inherited::default()))
                }
                _ => (program.tasks.as_slice(), Inherited::default()),
            },
            tasks => (tasks, Inherited::default()),
        };
        for t in children {
            let flow = self.run_task(t, &inh);
            // tend's implicit handler flushes between sections meet with the next task (a host
            // that cannot be reached fails at the first real task, as in ansible-core).
            if t.implicit && flow == Flow::Continue {
                continue;
            }
            let flow = self.step_done(flow);
            if flow != Flow::Continue {
                return flow;
            }
        }
        Flow::Continue
    }

    /// The end of a lockstep step: tell the batch how it went; a play stopped for every host
    /// ends here for this one as a failed host (its recap counts no failure, as ansible-core).
    fn step_done(&mut self, flow: Flow) -> Flow {
        let Some(rv) = self.rendezvous.filter(|_| self.program.play.lockstep) else {
            return flow;
        };
        let n = self.steps;
        self.steps += 1;
        let host = self.host().to_string();
        match flow {
            Flow::Continue if rv.step(&host, n, false, false) => Flow::Failed,
            Flow::Failed => {
                rv.step(&host, n, true, self.fatal_failure);
                Flow::Failed
            }
            other => other,
        }
    }

    /// Fails the whole play on this host before any task runs.
    fn refuse_play(&mut self, msg: &str) -> Flow {
        let host = self.host().to_string();
        let loc = self.program.play.loc.clone();
        self.emit(Event::TaskStart {
            host: host.clone(),
            name: "Loading play".into(),
            loc: loc.clone(),
            handler: false,
        });
        self.stats.failed += 1;
        self.emit(Event::TaskResult(TaskResult {
            host,
            task: "Loading play".into(),
            result: failed_result(&loc, msg),
            loc,
            status: ResultStatus::Failed,
            ignored: false,
            handler: false,
            diffs: Vec::new(),
            changes: Vec::new(),
            delegated_to: None,
        }));
        Flow::Failed
    }

    /// Facts are gathered as the play's become user (so `ansible_user_id` says who tasks run
    /// as), in a privileged worker when that is another user.
    fn gather_facts(&mut self) -> Flow {
        let host = self.host().to_string();
        self.emit(Event::TaskStart {
            host: host.clone(),
            name: "Gathering Facts".into(),
            loc: self.program.play.loc.clone(),
            handler: false,
        });
        let play_inh = self.play_inherited();
        let gathered = match self.play_wrapper() {
            None => Ok(tend_resources::facts::gather(&[])),
            Some(w) => {
                let scope = self.scope(&w, &Inherited::default(), None);
                match self.escalation(&w, &play_inh, &scope) {
                    Err(e) => Err(e),
                    Ok(None) => Ok(tend_resources::facts::gather(&[])),
                    Ok(Some(r)) => {
                        match self.escalated(r, &Request::Facts { subset: Vec::new() }) {
                            Ok(Response::Facts(f)) => Ok(f),
                            Ok(Response::Error(e)) => Err(e),
                            Ok(Response::Output(_) | Response::Journal(_)) => {
                                Err("the worker answered facts with something else".into())
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            }
        };
        let (status, result) = match gathered {
            Ok(facts) => {
                // A plan and a compliance check carry the facts to the controller, for
                // policies (docs/policy.md); a run keeps them on the host.
                let result = if self.program.options.plan || self.program.options.report_facts {
                    json!({"changed": false, "ansible_facts": facts.clone()})
                } else {
                    json!({"changed": false})
                };
                self.set_facts(facts);
                self.stats.ok += 1;
                (ResultStatus::Ok, result)
            }
            Err(msg) => {
                self.stats.failed += 1;
                (
                    ResultStatus::Failed,
                    json!({"changed": false, "failed": true, "msg": msg}),
                )
            }
        };
        self.emit(Event::TaskResult(TaskResult {
            host,
            task: "Gathering Facts".into(),
            loc: self.program.play.loc.clone(),
            status,
            ignored: false,
            handler: false,
            result,
            diffs: Vec::new(),
            changes: Vec::new(),
            delegated_to: None,
        }));
        if status == ResultStatus::Failed {
            Flow::Failed
        } else {
            Flow::Continue
        }
    }

    /// The implicit block around the play's tasks, which carries the play's keywords.
    fn play_wrapper(&self) -> Option<Task> {
        self.program
            .tasks
            .first()
            .filter(|t| t.implicit && matches!(t.kind, TaskKind::Block { .. }))
            .map(|t| Task {
                kind: TaskKind::Meta(String::new()),
                ..t.clone()
            })
    }

    /// What handlers and fact gathering inherit from the play: its `become` keywords.
    fn play_inherited(&self) -> Inherited {
        Inherited {
            become_: self
                .program
                .tasks
                .first()
                .filter(|t| t.implicit)
                .map(|t| t.become_.clone())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// How this task's module escalates (`None`: in the agent itself).
    fn escalation(
        &self,
        t: &Task,
        inh: &Inherited,
        scope: &Scope,
    ) -> Result<Option<Resolved>, String> {
        privilege::resolve(
            &self.templar,
            scope,
            &t.become_.over(&inh.become_),
            &self.program.options.become_,
            self.program.become_password.as_ref(),
        )
    }

    /// Sends a request to the worker for this escalation, starting it on first use. A worker
    /// that failed is dropped, so a later task starts a fresh one.
    fn escalated(&mut self, r: Resolved, req: &Request) -> Result<Response, String> {
        let key = r.escalation;
        let worker = match self.workers.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Worker::start(&key, r.password.as_ref())?)
            }
        };
        let res = worker.call(req);
        if res.is_err() {
            self.workers.remove(&key);
        }
        res
    }

    /// Facts are visible as `ansible_facts.x` and, as Ansible injects them, `ansible_x`.
    fn set_facts(&mut self, facts: Vars) {
        let mut top = Vars::new();
        for (k, v) in &facts {
            top.insert(format!("ansible_{k}"), v.clone());
        }
        top.insert("ansible_facts".into(), Value::Object(facts.clone()));
        self.facts = Some(layer(&top, false));
        self.facts_json = Some(facts);
    }

    /// Facts returned by a module, merged over the gathered ones (top-level keys replaced).
    fn merge_facts(&mut self, more: Vars) {
        let mut facts = self.facts_json.clone().unwrap_or_default();
        facts.extend(more);
        self.set_facts(facts);
    }

    fn run_list(&mut self, tasks: &[Task], inh: &Inherited) -> Flow {
        for t in tasks {
            let flow = self.run_task(t, inh);
            if flow != Flow::Continue {
                return flow;
            }
        }
        Flow::Continue
    }

    fn inherit(&self, t: &Task, inh: &Inherited) -> Inherited {
        let mut i = inh.clone();
        i.when.extend(t.when.iter().cloned());
        i.tags.extend(t.tags.iter().cloned());
        if !t.vars.is_empty() {
            i.block_vars.push(t.vars.clone());
        }
        keep(&mut i.ignore_errors, &t.ignore_errors);
        keep(&mut i.any_errors_fatal, &t.any_errors_fatal);
        keep(&mut i.check_mode, &t.check_mode);
        keep(&mut i.diff, &t.diff);
        keep(&mut i.no_log, &t.no_log);
        if let Some(e) = &t.environment {
            i.environment.push(e.clone());
        }
        keep(&mut i.delegate_to, &t.delegate_to);
        keep(&mut i.delegate_facts, &t.delegate_facts);
        keep(&mut i.run_once, &t.run_once);
        keep(&mut i.throttle, &t.throttle);
        i.become_ = t.become_.over(&i.become_);
        i
    }

    fn run_task(&mut self, t: &Task, inh: &Inherited) -> Flow {
        let fatal_flag = !matches!(t.any_errors_fatal, None | Some(Value::Bool(false)));
        if fatal_flag && !self.program.play.lockstep {
            // The controller makes a play lockstep when any task it loaded has the keyword;
            // this one came from a file included at run time.
            let msg = "any_errors_fatal in a file included at run time needs hosts in lockstep, which tend decides before the play starts; set any_errors_fatal on the play or on a block around the include, or import the file statically (import_tasks)";
            return self.fail_task(t, inh, msg, false);
        }
        match &t.kind {
            TaskKind::Block {
                block,
                rescue,
                always,
            } => self.run_block(t, block, rescue, always, inh),
            TaskKind::Meta(what) => self.run_meta(t, what, inh),
            TaskKind::IncludeTasks { .. } | TaskKind::IncludeRole { .. } => {
                self.run_include(t, inh)
            }
            TaskKind::Module(_) => {
                let mut i = inh.clone();
                i.tags.extend(t.tags.iter().cloned());
                if !self.selected(t, &i.tags) {
                    return Flow::Continue;
                }
                self.run_module_task(t, inh, false)
            }
        }
    }

    /// Where the module of `t` runs, rendered with the task's variables (a loop item's, in a
    /// loop: `delegate_to: "{{ item }}"`). `None`: not delegated, or delegated to itself.
    fn delegation(
        &self,
        t: &Task,
        inh: &Inherited,
        scope: &Scope,
    ) -> Result<Option<Delegation>, String> {
        let Some(raw) = t.delegate_to.as_ref().or(inh.delegate_to.as_ref()) else {
            return Ok(None);
        };
        let host = self
            .templar
            .render_str(raw, scope)
            .map_err(|e| format!("cannot render delegate_to `{raw}`: {e}"))?;
        let host = host.trim().to_string();
        if host.is_empty() {
            return Err(format!(
                "delegate_to `{raw}` rendered to an empty host name"
            ));
        }
        if host == self.host() {
            return Ok(None);
        }
        let local = matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1");
        let facts = t.delegate_facts.clone().or(inh.delegate_facts.clone());
        let facts = self.eval_flag(&facts, scope)?.unwrap_or(false);
        Ok(Some(Delegation {
            here: local && !tend_lang::ctlfs::is_remote(),
            host,
            facts,
        }))
    }

    /// Tag selection and `--start-at-task`.
    fn selected(&mut self, t: &Task, tags: &[String]) -> bool {
        let o = &self.program.options;
        let has = |x: &str| tags.iter().any(|t| t == x);
        if !o.tags.is_empty() && !o.tags.iter().any(|s| s == "all") {
            let wanted = has("always")
                || o.tags.iter().any(|s| {
                    has(s)
                        || (s == "tagged" && !tags.is_empty())
                        || (s == "untagged" && tags.is_empty())
                });
            if !wanted {
                return false;
            }
        } else if has("never") && !o.tags.iter().any(|s| has(s) && s != "never") {
            return false;
        }
        if !o.skip_tags.is_empty() {
            let skip = o.skip_tags.iter().any(|s| {
                has(s)
                    || (s == "tagged" && !tags.is_empty())
                    || (s == "untagged" && tags.is_empty())
            });
            if skip {
                return false;
            }
        }
        if !self.started {
            if let Some(name) = &o.start_at_task {
                let display = self.task_display_name(t);
                if t.name.as_deref() == Some(name.as_str()) || &display == name {
                    self.started = true;
                } else {
                    return false;
                }
            }
        }
        true
    }

    fn run_block(
        &mut self,
        t: &Task,
        block: &[Task],
        rescue: &[Task],
        always: &[Task],
        inh: &Inherited,
    ) -> Flow {
        let mut i = self.inherit(t, inh);
        if !rescue.is_empty() {
            i.rescuable = true;
        }
        let mut flow = self.run_list(block, &i);
        if flow == Flow::Failed && !rescue.is_empty() {
            let mut ri = self.inherit(t, inh);
            ri.rescuable = inh.rescuable;
            flow = self.run_list(rescue, &ri);
        }
        if !always.is_empty() && flow != Flow::Ended {
            let mut ai = self.inherit(t, inh);
            ai.rescuable = inh.rescuable;
            let aflow = self.run_list(always, &ai);
            if aflow != Flow::Continue {
                return aflow;
            }
        }
        flow
    }

    fn run_meta(&mut self, t: &Task, what: &str, inh: &Inherited) -> Flow {
        if what == "end_batch" {
            return self.end_batch(t, inh);
        }
        if !t.implicit {
            let mut i = inh.clone();
            i.tags.extend(t.tags.iter().cloned());
            // Meta tasks run regardless of tags, as in Ansible, except when explicitly skipped.
            let scope = self.scope(t, inh, None);
            let conds: Vec<Value> = inh.when.iter().chain(&t.when).cloned().collect();
            match self.eval_when(&conds, &scope) {
                Ok(true) => {}
                Ok(false) => return Flow::Continue,
                Err(msg) => return self.fail_task(t, inh, &msg, false),
            }
        }
        match what {
            "flush_handlers" => self.flush_handlers(inh),
            "end_play" | "end_host" => Flow::Ended,
            "clear_facts" => {
                self.facts = None;
                self.facts_json = None;
                self.host_facts.clear();
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }

    /// `meta: end_batch` ends the batch for every host of it, as ansible-core does: the meta
    /// runs once, on the first host of the batch still running (its `when` is evaluated there
    /// only), and the others take its decision when they reach it. Nobody passes the meta
    /// before the decision, so no host runs a task after it; notified handlers do not run.
    fn end_batch(&mut self, t: &Task, inh: &Inherited) -> Flow {
        let key = self.rendezvous.map(|rv| {
            let n = self.run_once_seen.entry(t.loc.to_string()).or_insert(0);
            *n += 1;
            let key = format!("{}#{}", t.loc, n);
            (rv, key.clone(), rv.run_once(&key, self.host()))
        });
        let decided = |v: &Value| v.get("end_batch") == Some(&Value::Bool(true));
        let lead = match key {
            Some((_, _, RunOnce::Follow(v))) => {
                return if decided(&v) {
                    Flow::Ended
                } else {
                    Flow::Continue
                }
            }
            Some((rv, key, RunOnce::Lead)) => Some((rv, key)),
            None => None,
        };
        let scope = self.scope(t, inh, None);
        let conds: Vec<Value> = inh.when.iter().chain(&t.when).cloned().collect();
        let (flow, end) = match self.eval_when(&conds, &scope) {
            Ok(true) => (Flow::Ended, true),
            Ok(false) => (Flow::Continue, false),
            Err(msg) => (self.fail_task(t, inh, &msg, false), false),
        };
        if let Some((rv, key)) = lead {
            rv.publish(&key, json!({ "end_batch": end }));
        }
        flow
    }

    fn flush_handlers(&mut self, _inh: &Inherited) -> Flow {
        let mut i = 0;
        while i < self.handlers.len() {
            if self.notified[i] {
                self.notified[i] = false;
                let h = self.handlers[i].task.clone();
                let inh = self.play_inherited();
                let flow = self.run_module_task_or_other(&h, &inh, true);
                if flow != Flow::Continue {
                    return flow;
                }
            }
            i += 1;
        }
        Flow::Continue
    }

    fn run_module_task_or_other(&mut self, t: &Task, inh: &Inherited, handler: bool) -> Flow {
        match &t.kind {
            TaskKind::Module(_) => self.run_module_task(t, inh, handler),
            _ => self.run_task(t, inh),
        }
    }

    /// Handlers of a role included at run time. A role's handler that is already known (the
    /// same role included again) is replaced, not added twice.
    fn add_handlers(&mut self, new: Vec<Handler>) {
        for h in new {
            let role_of = |h: &Handler| {
                h.task
                    .role
                    .and_then(|r| self.roles.roles.get(r))
                    .map(|r| r.name.clone())
            };
            let key = (role_of(&h), h.task.name.clone());
            match self
                .handlers
                .iter()
                .position(|e| (role_of(e), e.task.name.clone()) == key && key.1.is_some())
            {
                Some(i) => self.handlers[i] = h,
                None => {
                    self.handlers.push(h);
                    self.notified.push(false);
                }
            }
        }
    }

    fn notify(&mut self, names: &[String], t: &Task) {
        for name in names {
            let mut found = false;
            // By name, the last handler defined with that name wins (as in ansible-core);
            // by `listen` topic, every listener is notified.
            let mut by_name: Option<usize> = None;
            for (i, h) in self.handlers.iter().enumerate() {
                let role_name = h
                    .task
                    .role
                    .and_then(|r| self.roles.roles.get(r))
                    .map(|r| r.name.as_str());
                let hname = h.task.name.as_deref();
                let named = hname == Some(name.as_str())
                    || role_name
                        .is_some_and(|rn| hname.is_some_and(|hn| format!("{rn} : {hn}") == *name));
                if named {
                    by_name = Some(i);
                }
                if h.listen.iter().any(|l| l == name) {
                    self.notified[i] = true;
                    found = true;
                }
            }
            if let Some(i) = by_name {
                self.notified[i] = true;
                found = true;
            }
            if !found {
                let host = Some(self.host().to_string());
                self.emit(Event::Warning {
                    host,
                    msg: format!(
                        "{}: the handler '{name}' notified by this task does not exist",
                        t.loc
                    ),
                });
            }
        }
    }

    /// The variables for a task: every layer in ansible-core's precedence order.
    fn scope(&mut self, t: &Task, inh: &Inherited, extra: Option<Layer>) -> Scope {
        let role = t.role;
        if let Some(r) = role {
            self.ensure_role_layers(r);
        }
        let rl = role.and_then(|r| self.role_layers.get(r).cloned().flatten());
        let b = &self.base;
        let mut layers = Vec::with_capacity(20);
        layers.push(b.role_defaults.clone());
        if let Some([d, _, _]) = &rl {
            layers.push(d.clone());
        }
        layers.push(b.inventory.clone());
        if let Some(f) = &self.facts {
            layers.push(f.clone());
        }
        layers.push(b.play_vars.clone());
        layers.push(b.vars_files.clone());
        layers.push(b.role_vars.clone());
        if let Some([_, v, _]) = &rl {
            layers.push(v.clone());
        }
        for bv in &inh.block_vars {
            layers.push(layer(bv, true));
        }
        if !t.vars.is_empty() && !matches!(t.kind, TaskKind::Block { .. }) {
            layers.push(layer(&t.vars, true));
        }
        layers.push(self.include_vars.layer(true));
        layers.push(self.host_facts.layer(false));
        if let Some([_, _, p]) = &rl {
            layers.push(p.clone());
        }
        for ip in &inh.include_params {
            layers.push(layer(ip, true));
        }
        for d in &inh.include_data {
            layers.push(layer(d, false));
        }
        layers.push(b.extra_vars.clone());
        layers.push(b.magic.clone());
        let mut task_magic = Vars::new();
        task_magic.insert(
            "ansible_check_mode".into(),
            Value::Bool(self.program.options.check),
        );
        task_magic.insert(
            "ansible_diff_mode".into(),
            Value::Bool(self.program.options.diff),
        );
        if let Some(r) = role.and_then(|r| self.roles.roles.get(r)) {
            task_magic.insert("role_name".into(), Value::String(r.name.clone()));
            task_magic.insert("role_path".into(), Value::String(r.path.clone()));
            task_magic.insert("ansible_role_name".into(), Value::String(r.name.clone()));
        }
        layers.push(layer(&task_magic, false));
        if let Some(x) = extra {
            layers.push(x);
        }
        Scope::new(&self.templar, layers)
    }

    fn ensure_role_layers(&mut self, r: usize) {
        if self.role_layers.len() <= r {
            self.role_layers.resize(r + 1, None);
        }
        if self.role_layers[r].is_none() {
            if let Some(info) = self.roles.roles.get(r) {
                self.role_layers[r] = Some([
                    layer(&info.defaults, true),
                    layer(&info.vars, true),
                    layer(&info.params, true),
                ]);
            }
        }
    }

    fn task_display_name(&self, t: &Task) -> String {
        let base = t.display_name();
        match t.role.and_then(|r| self.roles.roles.get(r)) {
            Some(r) => format!("{} : {base}", r.name),
            None => base,
        }
    }

    fn render_name(&self, t: &Task, scope: &Scope) -> String {
        let raw = self.task_display_name(t);
        if Templar::is_template(&raw) {
            self.templar.render_str(&raw, scope).unwrap_or(raw)
        } else {
            raw
        }
    }

    fn eval_when(&self, conds: &[Value], scope: &Scope) -> Result<bool, String> {
        for c in conds {
            match self.templar.eval_condition(c, scope) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => {
                    let shown = match c {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    return Err(format!(
                        "The conditional check '{shown}' failed. The error was: {e}"
                    ));
                }
            }
        }
        Ok(true)
    }

    fn eval_flag(&self, v: &Option<Value>, scope: &Scope) -> Result<Option<bool>, String> {
        match v {
            None => Ok(None),
            Some(v) => self
                .templar
                .eval_condition(v, scope)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }

    /// Reports a task failure that happened before the module ran (bad template, bad loop).
    fn fail_task(&mut self, t: &Task, inh: &Inherited, msg: &str, handler: bool) -> Flow {
        let host = self.host().to_string();
        let name = self.task_display_name(t);
        self.emit(Event::TaskStart {
            host: host.clone(),
            name: name.clone(),
            loc: t.loc.clone(),
            handler,
        });
        let result = json!({"failed": true, "changed": false, "msg": format!("{}: {msg}", t.loc)});
        self.finish(t, inh, name, result, Vec::new(), handler, None)
    }

    fn run_module_task(&mut self, t: &Task, inh: &Inherited, handler: bool) -> Flow {
        let TaskKind::Module(m) = &t.kind else {
            return Flow::Continue;
        };
        let loc = t.loc.to_string();
        let seen = self.loc_seen.entry(loc.clone()).or_insert(0);
        *seen += 1;
        self.current = (loc, *seen, None);
        self.task_changes.clear();
        self.delegation = None;
        let scope = self.scope(t, inh, None);
        let host = self.host().to_string();
        let name = self.render_name(t, &scope);

        let mut lead_key: Option<String> = None;
        if let Some(ro) = t.run_once.as_ref().or(inh.run_once.as_ref()) {
            if self.templar.eval_condition(ro, &scope).unwrap_or(false) {
                if let Some(rv) = self.rendezvous {
                    let n = self.run_once_seen.entry(t.loc.to_string()).or_insert(0);
                    *n += 1;
                    let key = format!("{}#{}", t.loc, n);
                    match rv.run_once(&key, &host) {
                        RunOnce::Lead => lead_key = Some(key),
                        RunOnce::Follow(result) => {
                            self.follow_run_once(t, m, result);
                            return Flow::Continue;
                        }
                    }
                }
            }
        }

        self.emit(Event::TaskStart {
            host: host.clone(),
            name: name.clone(),
            loc: t.loc.clone(),
            handler,
        });
        let conds: Vec<Value> = inh.when.iter().chain(&t.when).cloned().collect();

        let no_log = match self.eval_flag(&t.no_log.clone().or(inh.no_log.clone()), &scope) {
            Ok(v) => v.unwrap_or(false),
            Err(e) => {
                return self.finish(
                    t,
                    inh,
                    name,
                    failed_result(&t.loc, &e),
                    Vec::new(),
                    handler,
                    None,
                )
            }
        };

        self.journal_task = self
            .program
            .options
            .run_id
            .clone()
            .filter(|_| !self.program.options.check)
            .map(|run_id| tend_resources::journal::JournalCtx {
                run_id,
                host: host.clone(),
                play: self.program.play.index,
                task: name.clone(),
                loc: t.loc.to_string(),
                no_log,
            });
        let throttled = match self.throttle(t, inh, &scope) {
            Ok(key) => key,
            Err(e) => {
                let r = failed_result(&t.loc, &e);
                return self.finish(t, inh, name, r, Vec::new(), handler, Some(no_log));
            }
        };
        let (result, diffs) = match &t.loop_ {
            None => match self.eval_when(&conds, &scope) {
                Err(e) => (failed_result(&t.loc, &e), Vec::new()),
                Ok(false) => (skipped_result(&conds), Vec::new()),
                Ok(true) => self.run_once_with_retries(t, m, &scope, inh),
            },
            Some(spec) => {
                // A loop is not even expanded when a condition without the loop variable is
                // false; Ansible evaluates `when` per item, which is the same for such tasks.
                let items = match loops::expand(spec, &self.templar, &scope, &self.search_dirs(t)) {
                    Ok(items) => items,
                    Err(e) => {
                        let r = failed_result(&t.loc, &e);
                        return self.finish(t, inh, name, r, Vec::new(), handler, Some(no_log));
                    }
                };
                self.run_loop(t, m, items, &conds, inh, &name, no_log)
            }
        };
        if let (Some(key), Some(rv)) = (throttled, self.rendezvous) {
            rv.throttle_release(&key, &host);
        }
        if let (Some(key), Some(rv)) = (lead_key, self.rendezvous) {
            rv.publish(&key, result.clone());
        }
        self.finish(t, inh, name, result, diffs, handler, Some(no_log))
    }

    /// `throttle: N` (on the task, a block around it or the play): waits until fewer than N
    /// hosts run this task, then holds a place; the key to release afterwards. 0 (or no
    /// rendezvous: a host alone) is no limit.
    fn throttle(&self, t: &Task, inh: &Inherited, scope: &Scope) -> Result<Option<String>, String> {
        let (Some(v), Some(rv)) = (
            t.throttle.as_ref().or(inh.throttle.as_ref()),
            self.rendezvous,
        ) else {
            return Ok(None);
        };
        let v = self.templar.render_value(v, scope).map_err(|e| e.0)?;
        let n = v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| format!("throttle must be a whole number, not {v}"))?;
        if n <= 0 {
            return Ok(None);
        }
        let key = format!("throttle:{}", t.loc);
        rv.throttle_acquire(&key, self.host(), usize::try_from(n).unwrap_or(usize::MAX));
        Ok(Some(key))
    }

    /// Another host ran this `run_once` task: take over what it registered and set, quietly.
    fn follow_run_once(&mut self, t: &Task, m: &tend_proto::Module, result: Value) {
        if m.name == "set_fact" && result.get("failed") != Some(&Value::Bool(true)) {
            if let Some(Value::Object(facts)) = result.get("ansible_facts") {
                self.host_facts.extend(facts.clone());
            }
        }
        if m.name == "include_vars" {
            if let Some(Value::Object(vars)) = result.get("ansible_facts") {
                self.include_vars.extend(vars.clone());
            }
        }
        if let Some(reg) = &t.register {
            self.host_facts.set(reg, result);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_loop(
        &mut self,
        t: &Task,
        m: &tend_proto::Module,
        items: Vec<Value>,
        conds: &[Value],
        inh: &Inherited,
        name: &str,
        no_log: bool,
    ) -> (Value, Vec<Value>) {
        let loop_var = t
            .loop_control
            .loop_var
            .clone()
            .unwrap_or_else(|| "item".into());
        if items.is_empty() {
            return (
                json!({"changed": false, "skipped": true, "skipped_reason": "No items in the list", "results": []}),
                Vec::new(),
            );
        }
        let n = items.len();
        let mut results = Vec::with_capacity(n);
        let mut all_diffs = Vec::new();
        let host = self.host().to_string();
        for (idx, item) in items.into_iter().enumerate() {
            let mut lv = Vars::new();
            lv.insert(loop_var.clone(), item.clone());
            lv.insert("ansible_loop_var".into(), Value::String(loop_var.clone()));
            if let Some(iv) = &t.loop_control.index_var {
                lv.insert(iv.clone(), json!(idx));
                lv.insert("ansible_index_var".into(), Value::String(iv.clone()));
            }
            if t.loop_control.extended {
                lv.insert(
                    "ansible_loop".into(),
                    json!({"index": idx + 1, "index0": idx, "first": idx == 0, "last": idx + 1 == n,
                           "length": n, "revindex": n - idx, "revindex0": n - idx - 1}),
                );
            }
            let scope = self.scope(t, inh, Some(layer(&lv, false)));
            self.current.2 = Some(idx);
            self.delegation = None;
            let (mut r, diffs) = match self.eval_when(conds, &scope) {
                Err(e) => (failed_result(&t.loc, &e), Vec::new()),
                Ok(false) => (skipped_result(conds), Vec::new()),
                Ok(true) => self.run_once_with_retries(t, m, &scope, inh),
            };
            all_diffs.extend(diffs);
            let label = match &t.loop_control.label {
                Some(l) => self
                    .templar
                    .render_str(l, &scope)
                    .unwrap_or_else(|_| l.clone()),
                None => label_of(&item),
            };
            if let Value::Object(o) = &mut r {
                o.insert(loop_var.clone(), item);
                o.insert("ansible_loop_var".into(), Value::String(loop_var.clone()));
                if let Some(iv) = &t.loop_control.index_var {
                    o.insert(iv.clone(), json!(idx));
                    o.insert("ansible_index_var".into(), Value::String(iv.clone()));
                }
            }
            let status = status_of(&r);
            let shown = if no_log { censor(&r) } else { r.clone() };
            self.emit(Event::ItemResult {
                host: host.clone(),
                task: name.to_string(),
                status,
                label: if no_log { "None".into() } else { label },
                result: shown,
                delegated_to: self.delegation.as_ref().map(|d| d.host.clone()),
            });
            results.push(r);
        }
        self.current.2 = None;
        let changed = results
            .iter()
            .any(|r| r.get("changed") == Some(&Value::Bool(true)));
        let failed = results
            .iter()
            .any(|r| r.get("failed") == Some(&Value::Bool(true)));
        let skipped = results
            .iter()
            .all(|r| r.get("skipped") == Some(&Value::Bool(true)));
        let mut agg = json!({"changed": changed, "results": results});
        if failed {
            agg["failed"] = Value::Bool(true);
            agg["msg"] = Value::String("One or more items failed".into());
        } else {
            agg["msg"] = Value::String("All items completed".into());
        }
        if skipped {
            agg["skipped"] = Value::Bool(true);
        }
        if results
            .iter()
            .any(|r| r.get("unreachable") == Some(&Value::Bool(true)))
        {
            agg["unreachable"] = Value::Bool(true);
        }
        (agg, all_diffs)
    }

    fn run_once_with_retries(
        &mut self,
        t: &Task,
        m: &tend_proto::Module,
        scope: &Scope,
        inh: &Inherited,
    ) -> (Value, Vec<Value>) {
        if t.until.is_empty() {
            return self.run_module(t, m, scope, inh);
        }
        let retries = match self.number(&t.retries, 3.0, scope) {
            Ok(r) => r.max(0.0) as i64,
            Err(e) => return (failed_result(&t.loc, &e), Vec::new()),
        };
        let delay = match self.number(&t.delay, 5.0, scope) {
            Ok(d) => d,
            Err(e) => return (failed_result(&t.loc, &e), Vec::new()),
        };
        let attempts_max = retries + 1;
        let mut attempt = 1;
        loop {
            let (mut r, diffs) = self.run_module(t, m, scope, inh);
            let reg = t.register.clone().unwrap_or_else(|| "__tend_result".into());
            let mut rv = Vars::new();
            rv.insert(reg, r.clone());
            let s2 = scope.with_layers([layer(&rv, false)]);
            let ok = match self.eval_when(&t.until, &s2) {
                Ok(b) => b,
                Err(e) => return (failed_result(&t.loc, &e), diffs),
            };
            if let Value::Object(o) = &mut r {
                o.insert("attempts".into(), json!(attempt));
            }
            if ok {
                if let Value::Object(o) = &mut r {
                    o.insert("failed".into(), Value::Bool(false));
                }
                return (r, diffs);
            }
            if attempt >= attempts_max {
                if let Value::Object(o) = &mut r {
                    // ansible-core reports one attempt fewer than it made when it gives up.
                    o.insert("attempts".into(), json!(attempts_max - 1));
                    o.insert("failed".into(), Value::Bool(true));
                }
                return (r, diffs);
            }
            let host = self.host().to_string();
            let name = self.task_display_name(t);
            self.emit(Event::Warning {
                host: Some(host),
                msg: format!(
                    "FAILED - RETRYING: [{}]: {} ({} retries left).",
                    self.program.host,
                    name,
                    attempts_max - attempt
                ),
            });
            std::thread::sleep(Duration::from_secs_f64(delay.max(0.0)));
            attempt += 1;
        }
    }

    /// A numeric keyword (`retries`, `delay`): a number, a numeric string or a template.
    fn number(&self, v: &Option<Value>, default: f64, scope: &Scope) -> Result<f64, String> {
        let Some(v) = v else { return Ok(default) };
        let v = self.templar.render_value(v, scope).map_err(|e| e.0)?;
        Ok(v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .unwrap_or(default))
    }

    fn search_dirs(&self, t: &Task) -> Vec<PathBuf> {
        let mut dirs = Vec::with_capacity(2);
        if let Some(r) = t.role.and_then(|r| self.roles.roles.get(r)) {
            dirs.push(PathBuf::from(&r.path));
        }
        dirs.push(PathBuf::from(&self.program.play.playbook_dir));
        dirs
    }

    /// Renders arguments, runs the module once, applies changed_when/failed_when.
    /// Renders a module's arguments one by one, so an error names the argument and the template.
    fn render_args(&self, m: &tend_proto::Module, scope: &Scope) -> Result<Vars, String> {
        let mut args = Vars::with_capacity(m.args.len());
        for (k, v) in &m.args {
            let r = self.templar.render_value(v, scope).map_err(|e| {
                let shown = match v {
                    Value::String(s) => format!(": `{}`", shorten(s)),
                    _ => String::new(),
                };
                format!("{e} (in argument `{k}` of `{}`{shown})", m.name)
            })?;
            if r.as_str() != Some(OMIT) {
                args.insert(k.clone(), r);
            }
        }
        if let Some(tpl) = &m.args_template {
            match self
                .templar
                .render_value(&Value::String(tpl.clone()), scope)
            {
                Ok(Value::Object(more)) => {
                    for (k, v) in more {
                        if v.as_str() != Some(OMIT) {
                            args.entry(k).or_insert(v);
                        }
                    }
                }
                Ok(_) => return Err(format!("`{tpl}` must render to a mapping of arguments")),
                Err(e) => return Err(format!("{e} (in the arguments `{tpl}`)")),
            }
        }
        Ok(args)
    }

    fn run_module(
        &mut self,
        t: &Task,
        m: &tend_proto::Module,
        scope: &Scope,
        inh: &Inherited,
    ) -> (Value, Vec<Value>) {
        self.delegation = match self.delegation(t, inh, scope) {
            Ok(d) => d,
            Err(e) => return (failed_result(&t.loc, &e), Vec::new()),
        };
        let args = match self.render_args(m, scope) {
            Ok(a) => a,
            Err(e) => return (failed_result(&t.loc, &e), Vec::new()),
        };
        let check = match self.eval_flag(&t.check_mode.clone().or(inh.check_mode.clone()), scope) {
            Ok(Some(c)) => c,
            Ok(None) => self.program.options.check,
            Err(e) => return (failed_result(&t.loc, &e), Vec::new()),
        };
        let diff = match self.eval_flag(&t.diff.clone().or(inh.diff.clone()), scope) {
            Ok(Some(d)) => d,
            Ok(None) => self.program.options.diff,
            Err(e) => return (failed_result(&t.loc, &e), Vec::new()),
        };
        let environment = match self.environment(t, inh, scope) {
            Ok(e) => e,
            Err(e) => return (failed_result(&t.loc, &e), Vec::new()),
        };
        let search = self.search_dirs(t);
        // Diffs are collected for the history and for plans even without `--diff`; only
        // `--diff` puts them into the registered result and the printed output.
        let collect = diff || self.program.options.collect_diffs || self.plans();
        let key = self.change_key();
        // Under `tend apply PLAN`, a key the controller approved just before the run applies
        // as planned; any other is compared with the plan.
        let planned: Option<Option<Option<String>>> = self
            .program
            .guard
            .as_ref()
            .filter(|g| !g.approved.contains(&key))
            .map(|g| g.expected.get(&key).cloned());
        let mode = match &planned {
            Some(p) => PlanMode::Expect(p.as_ref().and_then(|d| d.as_deref())),
            None if self.program.options.plan => PlanMode::Report,
            None => PlanMode::Off,
        };
        let mut change: Option<PlannedChange> = None;
        let task_name = self.task_display_name(t);
        let planned_change =
            |action: PlanAction, subject: String, diffs: Vec<Value>| PlannedChange {
                key: key.clone(),
                module: m.name.clone(),
                action,
                subject,
                diffs,
                digest: None,
                censored: false,
                changed_since_plan: false,
                args: Some(args.clone()),
            };

        let is_builtin = builtin::BUILTIN_MODULES.contains(&m.name.as_str());
        let out: Result<ModuleOutput, String> = if is_builtin {
            match builtin::run(
                &m.name,
                &args,
                scope,
                &self.templar,
                &search,
                self.program.options.verbosity,
                check,
            ) {
                Ok(builtin::Outcome::Output(o)) => Ok(o),
                Ok(builtin::Outcome::SetFacts(vars, o)) => {
                    match (&self.delegation, self.rendezvous) {
                        (Some(d), Some(rv)) if d.facts => rv.delegated_facts(&d.host, vars, true),
                        _ => self.host_facts.extend(vars),
                    }
                    Ok(o)
                }
                Ok(builtin::Outcome::IncludeVars(vars, o)) => {
                    self.include_vars.extend(vars);
                    Ok(o)
                }
                Err(e) => Err(e),
            }
        } else if let Some(entry) = tend_resources::lookup(&m.name) {
            let call = ModuleCall {
                m,
                args: &args,
                environment: &environment,
                search: &search,
                scope,
            };
            if check && !entry.check_mode {
                if mode != PlanMode::Off {
                    change = Some(planned_change(
                        PlanAction::Run,
                        task_name.clone(),
                        Vec::new(),
                    ));
                }
                Ok(ModuleOutput {
                    skipped: true,
                    msg: Some("Command would have run if not in check mode".into()),
                    ..Default::default()
                })
            } else if let (Some(expected), false, false) = (&planned, check, entry.resource) {
                // An action under `tend apply PLAN`: one that cannot predict its result runs
                // if the plan said it will; one that can is asked first, in check mode.
                let expected = expected.clone();
                let predicted = if entry.check_mode {
                    Some(self.call_module(t, inh, entry, &call, true, true, PlanMode::Off))
                } else {
                    None
                };
                let will_run = match &predicted {
                    None => true,
                    Some(Ok(o)) => o.skipped && !o.changed,
                    Some(Err(_)) => false,
                };
                if will_run {
                    let mut pc = planned_change(PlanAction::Run, task_name.clone(), Vec::new());
                    if expected == Some(None) {
                        change = Some(pc);
                        self.call_module(t, inh, entry, &call, false, collect, PlanMode::Off)
                    } else {
                        pc.changed_since_plan = true;
                        change = Some(pc);
                        Ok(refused(format!(
                            "changed since plan: {}[{task_name}] was not touched: the plan did \
                             not run it; run `tend plan` again and review the new plan",
                            m.name
                        )))
                    }
                } else {
                    match predicted.unwrap_or_else(|| Err(String::new())) {
                        Ok(o) if o.changed && !o.failed => {
                            let mut pc = action_change(
                                planned_change(PlanAction::Update, String::new(), o.diffs),
                                &args,
                                &task_name,
                            );
                            if matches!(&expected, Some(Some(d)) if Some(d) == pc.digest.as_ref()) {
                                change = Some(pc);
                                self.call_module(
                                    t,
                                    inh,
                                    entry,
                                    &call,
                                    false,
                                    collect,
                                    PlanMode::Off,
                                )
                            } else {
                                pc.changed_since_plan = true;
                                let msg = format!(
                                    "changed since plan: {}[{}] was not touched: the host is not \
                                     as it was when the plan was made; run `tend plan` again and \
                                     review the new plan",
                                    m.name, pc.subject
                                );
                                change = Some(pc);
                                Ok(refused(msg))
                            }
                        }
                        _ => self.call_module(t, inh, entry, &call, false, collect, PlanMode::Off),
                    }
                }
            } else {
                let out = self.call_module(t, inh, entry, &call, check, collect, mode);
                if let (Ok(o), true) = (&out, mode != PlanMode::Off) {
                    if let Some(c) = &o.change {
                        let mut pc = planned_change(
                            match c.kind {
                                ChangeKind::Create => PlanAction::Create,
                                ChangeKind::Delete => PlanAction::Delete,
                                ChangeKind::Update | ChangeKind::None => PlanAction::Update,
                            },
                            c.subject.clone(),
                            c.diff_records(),
                        );
                        pc.digest = Some(c.digest());
                        pc.changed_since_plan = o.changed_since_plan;
                        change = Some(pc);
                    } else if check && o.skipped && !o.changed && !entry.resource {
                        // An action that declines check mode itself (`command`): it will run.
                        change = Some(planned_change(
                            PlanAction::Run,
                            task_name.clone(),
                            Vec::new(),
                        ));
                    } else if o.changed && !o.failed && !entry.resource {
                        change = Some(action_change(
                            planned_change(PlanAction::Update, String::new(), o.diffs.clone()),
                            &args,
                            &task_name,
                        ));
                    }
                }
                out
            }
        } else {
            Err(format!("module `{}` is not supported by tend", m.name))
        };

        let journaled = matches!(&out, Ok(o) if o.journaled);
        let (mut result, diffs) = match out {
            Ok(o) => {
                // Facts a module returns (`package_facts`, `service_facts`) join the host's
                // facts, as ansible-core's strategy merges them.
                if !is_builtin && !o.failed {
                    if let Some(Value::Object(facts)) = o.fields.get("ansible_facts") {
                        match (&self.delegation, self.rendezvous) {
                            (Some(d), Some(rv)) if d.facts => {
                                rv.delegated_facts(&d.host, facts.clone(), false)
                            }
                            _ => self.merge_facts(facts.clone()),
                        }
                    }
                }
                let mut r = o.fields;
                r.insert("changed".into(), Value::Bool(o.changed));
                if o.failed {
                    r.insert("failed".into(), Value::Bool(true));
                }
                if o.skipped {
                    r.insert("skipped".into(), Value::Bool(true));
                }
                if let Some(msg) = o.msg {
                    r.insert("msg".into(), Value::String(msg));
                }
                if o.changed_since_plan {
                    r.insert("changed_since_plan".into(), Value::Bool(true));
                }
                if diff && !o.diffs.is_empty() {
                    r.insert("diff".into(), Value::Array(o.diffs.clone()));
                }
                let keep = diff || self.program.options.collect_diffs;
                (r, if keep { o.diffs } else { Vec::new() })
            }
            Err(msg) => {
                let mut r = Vars::new();
                r.insert("changed".into(), Value::Bool(false));
                r.insert("failed".into(), Value::Bool(true));
                r.insert("msg".into(), Value::String(msg));
                (r, Vec::new())
            }
        };

        // changed_when / failed_when see the result under the register name.
        if t.changed_when.is_some() || t.failed_when.is_some() {
            let mut rv = Vars::new();
            let reg = t.register.clone().unwrap_or_else(|| "__tend_result".into());
            rv.insert(reg, Value::Object(result.clone()));
            // Ansible also exposes the result's own keys to these conditions.
            let s2 = scope.with_layers([layer(&result, false), layer(&rv, false)]);
            if let Some(conds) = &t.changed_when {
                if result.get("skipped") != Some(&Value::Bool(true)) {
                    match self.eval_when(conds, &s2) {
                        Ok(c) => {
                            result.insert("changed".into(), Value::Bool(c));
                        }
                        Err(e) => return (failed_result(&t.loc, &e), diffs),
                    }
                }
            }
            if let Some(conds) = &t.failed_when {
                if result.get("skipped") != Some(&Value::Bool(true)) {
                    let mut rv2 = Vars::new();
                    let reg = t.register.clone().unwrap_or_else(|| "__tend_result".into());
                    rv2.insert(reg, Value::Object(result.clone()));
                    let s3 = scope.with_layers([layer(&result, false), layer(&rv2, false)]);
                    match self.eval_when(conds, &s3) {
                        Ok(f) => {
                            result.insert("failed_when_result".into(), Value::Bool(f));
                            result.insert("failed".into(), Value::Bool(f));
                        }
                        Err(e) => return (failed_result(&t.loc, &e), diffs),
                    }
                }
            }
        }
        if !result.contains_key("failed") {
            result.insert("failed".into(), Value::Bool(false));
        }
        // A module that changed something without journaling what it replaced (`command`,
        // `uri` …): the rollback will say it cannot undo it. Written by the agent (it holds
        // no old content), after `changed_when` decided whether it changed anything.
        let elsewhere = self.delegation.as_ref().is_some_and(|d| !d.here);
        if let (Some(j), false, false, false, false) =
            (&self.journal_task, is_builtin, journaled, check, elsewhere)
        {
            if result.get("changed") == Some(&Value::Bool(true)) {
                let noted = tend_resources::journal::record(
                    j,
                    &format!("{}[{}]", m.name, j.task),
                    tend_resources::journal::Restore::Cannot(format!(
                        "`{}` ran at {}",
                        m.name, j.loc
                    )),
                );
                if let Err(e) = noted {
                    result.insert("failed".into(), Value::Bool(true));
                    result.insert(
                        "msg".into(),
                        Value::String(format!("{} ran, but {}", m.name, e.msg)),
                    );
                }
            }
        }
        if let Some(c) = change {
            // Retries run the same key again: the last attempt's change stands.
            self.task_changes.retain(|x| x.key != c.key);
            self.task_changes.push(c);
        }
        (Value::Object(result), diffs)
    }

    /// Runs a module of the registry here or in the become worker.
    #[allow(clippy::too_many_arguments)]
    fn call_module(
        &mut self,
        t: &Task,
        inh: &Inherited,
        entry: &tend_resources::ModuleEntry,
        call: &ModuleCall<'_>,
        check: bool,
        diff: bool,
        plan: PlanMode<'_>,
    ) -> Result<ModuleOutput, String> {
        if let Some(d) = self.delegation.clone().filter(|d| !d.here) {
            return self.module_on_delegate(&d, t, inh, call, check, diff, WirePlan::of(plan));
        }
        match self.escalation(t, inh, call.scope) {
            Err(e) => Err(e),
            Ok(Some(r)) => self.module_in_worker(r, call, check, diff, WirePlan::of(plan)),
            Ok(None) => {
                let ctx = ModuleCtx {
                    check,
                    diff,
                    templar: &self.templar,
                    scope: call.scope,
                    search_dirs: call.search,
                    environment: call.environment,
                    plan,
                    journal: self.journal_task.as_ref(),
                };
                Ok((entry.run)(&Args::new(call.args.clone()), &ctx)
                    .unwrap_or_else(ModuleOutput::from))
            }
        }
    }

    /// Runs a module on the delegate through the controller, with the task's become.
    #[allow(clippy::too_many_arguments)]
    fn module_on_delegate(
        &mut self,
        d: &Delegation,
        t: &Task,
        inh: &Inherited,
        call: &ModuleCall<'_>,
        check: bool,
        diff: bool,
        plan: WirePlan,
    ) -> Result<ModuleOutput, String> {
        let Some(rv) = self.rendezvous else {
            return Err(format!(
                "this task is delegated to `{}`, which needs the controller to reach it",
                d.host
            ));
        };
        let resolved = privilege::resolve_delegated(
            &self.templar,
            call.scope,
            &t.become_.over(&inh.become_),
            &self.program.options.become_,
            self.program.become_password.as_ref(),
        )?;
        let scope = if tend_resources::renders_templates(&call.m.name) {
            WireLayer::export(call.scope)?
        } else {
            Vec::new()
        };
        let (escalation, password) = match resolved {
            Some(r) => (Some(r.escalation), r.password),
            None => (None, None),
        };
        let c = crate::delegate::Call {
            delegate: d.host.clone(),
            from: self.host().to_string(),
            module: ModuleRequest {
                name: call.m.name.clone(),
                args: call.args.clone(),
                check,
                diff,
                environment: call.environment.to_vec(),
                search_dirs: call.search.to_vec(),
                // The delegate's working directory is its own.
                cwd: None,
                scope,
                plan,
                // What it replaces is journaled on the delegate, under the delegate's name.
                journal: self.journal_task.clone().map(|mut j| {
                    j.host = d.host.clone();
                    j
                }),
            },
            escalation,
            password,
        };
        match rv.delegate(c).into_output() {
            Ok(o) => Ok(o),
            Err((msg, false)) => Err(msg),
            Err((msg, true)) => {
                let mut o = ModuleOutput {
                    msg: Some(msg),
                    ..Default::default()
                };
                o.fields.insert("unreachable".into(), Value::Bool(true));
                Ok(o)
            }
        }
    }

    /// Runs a module in the privileged worker of `r`.
    fn module_in_worker(
        &mut self,
        r: Resolved,
        call: &ModuleCall<'_>,
        check: bool,
        diff: bool,
        plan: WirePlan,
    ) -> Result<ModuleOutput, String> {
        let scope = if tend_resources::renders_templates(&call.m.name) {
            WireLayer::export(call.scope)?
        } else {
            Vec::new()
        };
        let req = Request::Module(Box::new(ModuleRequest {
            name: call.m.name.clone(),
            args: call.args.clone(),
            check,
            diff,
            environment: call.environment.to_vec(),
            search_dirs: call.search.to_vec(),
            cwd: std::env::current_dir().ok(),
            scope,
            plan,
            journal: self.journal_task.clone(),
        }));
        match self.escalated(r, &req)? {
            Response::Output(o) => Ok(o.into()),
            Response::Error(e) => Err(e),
            Response::Facts(_) | Response::Journal(_) => {
                Err("the worker answered a module call with something else".into())
            }
        }
    }

    fn environment(
        &self,
        t: &Task,
        inh: &Inherited,
        scope: &Scope,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env: Vec<(String, String)> = Vec::new();
        for e in inh.environment.iter().chain(t.environment.iter()) {
            let v = self.templar.render_value(e, scope).map_err(|e| e.0)?;
            let Value::Object(map) = v else {
                return Err("environment must be a mapping of variable names to values".into());
            };
            for (k, v) in map {
                let s = match v {
                    Value::String(s) => s,
                    Value::Bool(b) => {
                        if b {
                            "True".into()
                        } else {
                            "False".into()
                        }
                    }
                    other => other.to_string(),
                };
                env.retain(|(ek, _)| *ek != k);
                env.push((k, s));
            }
        }
        Ok(env)
    }

    /// Records a task's result: stats, register, notify, event. Returns the flow for the host.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        t: &Task,
        inh: &Inherited,
        name: String,
        result: Value,
        diffs: Vec<Value>,
        handler: bool,
        no_log: Option<bool>,
    ) -> Flow {
        let status = status_of(&result);
        let failed = status == ResultStatus::Failed;
        let ignore_flag = t.ignore_errors.clone().or(inh.ignore_errors.clone());
        // A resource not touched because it changed since the plan does not stop the host:
        // the rest of the plan applies, and the controller lists it at the end.
        let ignore = failed && only_changed_since_plan(&result)
            || failed && ignore_flag.is_some() && {
                let scope = self.scope(t, inh, None);
                self.eval_flag(&ignore_flag, &scope)
                    .ok()
                    .flatten()
                    .unwrap_or(false)
            };
        if let Some(reg) = &t.register {
            self.host_facts.set(reg, result.clone());
        }
        match status {
            ResultStatus::Failed if ignore => {
                self.stats.ok += 1;
                self.stats.ignored += 1;
                if result.get("changed") == Some(&Value::Bool(true)) {
                    self.stats.changed += 1;
                }
            }
            ResultStatus::Failed if inh.rescuable => {
                self.stats.rescued += 1;
                self.host_facts.set("ansible_failed_result", result.clone());
                self.host_facts.set(
                    "ansible_failed_task",
                    json!({"name": name, "action": module_name(t)}),
                );
            }
            ResultStatus::Failed => {
                self.stats.failed += 1;
                let flag = t.any_errors_fatal.clone().or(inh.any_errors_fatal.clone());
                if flag.is_some() {
                    let scope = self.scope(t, inh, None);
                    self.fatal_failure = matches!(self.eval_flag(&flag, &scope), Ok(Some(true)));
                }
            }
            ResultStatus::Skipped => self.stats.skipped += 1,
            ResultStatus::Unreachable => self.stats.unreachable += 1,
            ResultStatus::Ok | ResultStatus::Changed => {
                self.stats.ok += 1;
                if status == ResultStatus::Changed {
                    self.stats.changed += 1;
                }
            }
        }
        if status == ResultStatus::Changed && !t.notify.is_empty() {
            self.notify(&t.notify, t);
        }
        let no_log = no_log.unwrap_or(false);
        let mut changes = std::mem::take(&mut self.task_changes);
        let (shown, diffs) = if no_log {
            // Diffs show what a file holds: a `no_log` task's stay hidden, as in ansible-core
            // (its callbacks get the censored result, without `diff`).
            for c in &mut changes {
                c.censored = true;
                c.diffs.clear();
                c.args = None;
                c.subject = name.clone();
            }
            (censor(&result), Vec::new())
        } else {
            (result, diffs)
        };
        let host = self.host().to_string();
        let delegated_to = self.delegation.take().map(|d| d.host);
        self.emit(Event::TaskResult(TaskResult {
            host,
            task: name,
            loc: t.loc.clone(),
            status,
            ignored: ignore,
            handler,
            result: shown,
            diffs,
            changes,
            delegated_to,
        }));
        // An unreachable delegate stops the host as an unreachable host does.
        if failed && !ignore || status == ResultStatus::Unreachable {
            Flow::Failed
        } else {
            Flow::Continue
        }
    }

    /// Fails a task (not a handler) with a message located at the task.
    fn fail_with(&mut self, t: &Task, inh: &Inherited, name: &str, msg: &str) -> Flow {
        let r = failed_result(&t.loc, msg);
        self.finish(t, inh, name.to_string(), r, Vec::new(), false, None)
    }

    fn run_include(&mut self, t: &Task, inh: &Inherited) -> Flow {
        let mut i = inh.clone();
        i.tags.extend(t.tags.iter().cloned());
        if !self.selected(t, &i.tags) {
            return Flow::Continue;
        }
        let scope = self.scope(t, inh, None);
        let conds: Vec<Value> = inh.when.iter().chain(&t.when).cloned().collect();
        let host = self.host().to_string();
        let name = self.render_name(t, &scope);
        let Some(spec) = &t.loop_ else {
            match self.eval_when(&conds, &scope) {
                Ok(true) => {}
                Ok(false) => {
                    self.emit(Event::TaskStart {
                        host: host.clone(),
                        name: name.clone(),
                        loc: t.loc.clone(),
                        handler: false,
                    });
                    return self.finish(
                        t,
                        inh,
                        name,
                        skipped_result(&conds),
                        Vec::new(),
                        false,
                        None,
                    );
                }
                Err(e) => return self.fail_task(t, inh, &e, false),
            }
            self.emit(Event::TaskStart {
                host,
                name: name.clone(),
                loc: t.loc.clone(),
                handler: false,
            });
            return self.include_one(t, inh, &name, None);
        };
        self.emit(Event::TaskStart {
            host: host.clone(),
            name: name.clone(),
            loc: t.loc.clone(),
            handler: false,
        });
        let items = match loops::expand(spec, &self.templar, &scope, &self.search_dirs(t)) {
            Ok(items) => items,
            Err(e) => return self.fail_with(t, inh, &name, &e),
        };
        if items.is_empty() {
            let r = json!({"changed": false, "skipped": true, "skipped_reason": "No items in the list", "results": []});
            return self.finish(t, inh, name, r, Vec::new(), false, None);
        }
        let loop_var = t
            .loop_control
            .loop_var
            .clone()
            .unwrap_or_else(|| "item".into());
        let mut any_ran = false;
        for (idx, item) in items.into_iter().enumerate() {
            let mut lv = Vars::new();
            lv.insert(loop_var.clone(), item.clone());
            lv.insert("ansible_loop_var".into(), Value::String(loop_var.clone()));
            if let Some(iv) = &t.loop_control.index_var {
                lv.insert(iv.clone(), json!(idx));
            }
            let iscope = self.scope(t, inh, Some(layer(&lv, false)));
            match self.eval_when(&conds, &iscope) {
                Ok(true) => {}
                Ok(false) => {
                    self.emit(Event::ItemResult {
                        host: host.clone(),
                        task: name.clone(),
                        status: ResultStatus::Skipped,
                        label: label_of(&item),
                        result: skipped_result(&conds),
                        delegated_to: None,
                    });
                    continue;
                }
                Err(e) => return self.fail_with(t, inh, &name, &e),
            }
            any_ran = true;
            let flow = self.include_one(t, inh, &name, Some(lv));
            if flow != Flow::Continue {
                return flow;
            }
        }
        if !any_ran {
            self.stats.skipped += 1;
        }
        Flow::Continue
    }

    /// Loads one included file or role and runs its tasks. `loop_vars` are the loop variables
    /// of this iteration, visible to the included tasks.
    fn include_one(
        &mut self,
        t: &Task,
        inh: &Inherited,
        name: &str,
        loop_vars: Option<Vars>,
    ) -> Flow {
        let host = self.host().to_string();
        let mut extra_layers = Vec::new();
        if let TaskKind::IncludeTasks { params, .. } | TaskKind::IncludeRole { params, .. } =
            &t.kind
        {
            extra_layers.push(layer(params, true));
        }
        if let Some(lv) = &loop_vars {
            extra_layers.push(layer(lv, false));
        }
        let scope = self.scope(t, inh, None).with_layers(extra_layers);
        // Included tasks inherit the include's conditions (re-evaluated per task), not its tags.
        let mut child = inh.clone();
        child.when.extend(t.when.iter().cloned());
        if let Some(lv) = loop_vars.clone() {
            child.include_data.push(lv);
        }
        let loaded = match &t.kind {
            TaskKind::IncludeTasks {
                file,
                params,
                apply,
            } => {
                let file = match self.templar.render_str(file, &scope) {
                    Ok(f) => f,
                    Err(e) => return self.fail_with(t, inh, name, &e.0),
                };
                let base = t
                    .role
                    .and_then(|r| self.roles.roles.get(r))
                    .map(|r| PathBuf::from(&r.path).join("tasks"))
                    .or_else(|| Path::new(&*t.loc.file).parent().map(Path::to_path_buf))
                    .unwrap_or_else(|| PathBuf::from(&self.program.play.playbook_dir));
                let path = if Path::new(&file).is_absolute() {
                    PathBuf::from(&file)
                } else {
                    base.join(&file)
                };
                if !params.is_empty() {
                    child.include_params.push(params.clone());
                }
                if let Err(e) = apply_keywords(apply, &mut child) {
                    return self.fail_with(t, inh, name, &e);
                }
                self.loader
                    .load_tasks_file(&path, t.role, &mut self.roles)
                    .map(|tasks| (tasks, path.display().to_string()))
            }
            TaskKind::IncludeRole {
                name: role_name,
                tasks_from,
                params,
                ..
            } => {
                let role_name = match self.templar.render_str(role_name, &scope) {
                    Ok(r) => r,
                    Err(e) => return self.fail_with(t, inh, name, &e.0),
                };
                let before_handlers = self.roles.handlers.len();
                let r = role::include_role(
                    &self.loader,
                    &mut self.roles,
                    &role_name,
                    params.clone(),
                    tasks_from.as_deref(),
                    &t.loc,
                );
                let new_handlers: Vec<Handler> =
                    self.roles.handlers.drain(before_handlers..).collect();
                self.add_handlers(new_handlers);
                r.map(|(_, tasks)| (tasks, role_name))
            }
            _ => return Flow::Continue,
        };
        match loaded {
            Err(diags) => {
                let msg = diags
                    .0
                    .iter()
                    .map(|d| d.render())
                    .collect::<Vec<_>>()
                    .join("\n");
                self.finish(
                    t,
                    inh,
                    name.to_string(),
                    json!({"failed": true, "changed": false, "msg": msg}),
                    Vec::new(),
                    false,
                    None,
                )
            }
            Ok((tasks, what)) => {
                let label = loop_vars
                    .as_ref()
                    .and_then(|lv| lv.get(t.loop_control.loop_var.as_deref().unwrap_or("item")))
                    .map(label_of);
                self.stats.ok += 1;
                self.emit(Event::TaskResult(TaskResult {
                    host,
                    task: name.to_string(),
                    loc: t.loc.clone(),
                    status: ResultStatus::Ok,
                    ignored: false,
                    handler: false,
                    result: json!({"include": what, "changed": false, "item": label}),
                    diffs: Vec::new(),
                    changes: Vec::new(),
                    delegated_to: None,
                }));
                self.run_list(&tasks, &child)
            }
        }
    }
}

/// `include_tasks: {apply: …}`: keywords given to every included task.
fn apply_keywords(apply: &Vars, child: &mut Inherited) -> Result<(), String> {
    for (k, v) in apply {
        match k.as_str() {
            "vars" => match v {
                Value::Object(m) => child.block_vars.push(m.clone()),
                _ => return Err("apply.vars must be a mapping".into()),
            },
            "tags" => match v {
                Value::Array(a) => child
                    .tags
                    .extend(a.iter().filter_map(|t| t.as_str().map(str::to_string))),
                Value::String(s) => child
                    .tags
                    .extend(s.split(',').map(|t| t.trim().to_string())),
                _ => return Err("apply.tags must be a list".into()),
            },
            "when" => match v {
                Value::Array(a) => child.when.extend(a.iter().cloned()),
                other => child.when.push(other.clone()),
            },
            "ignore_errors" => child.ignore_errors = Some(v.clone()),
            "check_mode" => child.check_mode = Some(v.clone()),
            "diff" => child.diff = Some(v.clone()),
            "no_log" => child.no_log = Some(v.clone()),
            "environment" => child.environment.push(v.clone()),
            "become" => child.become_.enabled = Some(v.clone()),
            "become_user" => child.become_.user = Some(v.clone()),
            "become_method" => child.become_.method = Some(v.clone()),
            "become_flags" => child.become_.flags = Some(v.clone()),
            "become_exe" => child.become_.exe = Some(v.clone()),
            other => return Err(format!("`{other}` is not supported in apply")),
        }
    }
    Ok(())
}

/// Why a task that Ansible runs on the controller is refused on a remote host.
/// What a module call needs besides the run's flags.
struct ModuleCall<'a> {
    m: &'a tend_proto::Module,
    args: &'a Vars,
    environment: &'a [(String, String)],
    search: &'a [PathBuf],
    scope: &'a Scope,
}

/// The output of a module that was not run because the host changed since the plan.
fn refused(msg: String) -> ModuleOutput {
    ModuleOutput {
        failed: true,
        changed_since_plan: true,
        msg: Some(msg),
        ..Default::default()
    }
}

/// An action's planned change: named by its main argument, its digest taken over its diffs
/// (actions have no structured change; what they would do shows there).
fn action_change(mut pc: PlannedChange, args: &Vars, task_name: &str) -> PlannedChange {
    pc.subject = ["name", "path", "dest", "key", "repo", "url"]
        .iter()
        .find_map(|k| match args.get(*k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(v @ Value::Array(_)) => Some(v.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| task_name.to_string());
    pc.digest = Some(tend_resources::digest_value(
        "tend-action-v1",
        &json!({"module": pc.module, "subject": pc.subject, "diffs": pc.diffs}),
    ));
    pc
}

/// A failed result whose every failure is a resource that changed since the plan.
fn only_changed_since_plan(r: &Value) -> bool {
    let refused = |r: &Value| r.get("changed_since_plan") == Some(&Value::Bool(true));
    match r.get("results").and_then(Value::as_array) {
        Some(items) => {
            items.iter().any(refused)
                && items
                    .iter()
                    .all(|i| i.get("failed") != Some(&Value::Bool(true)) || refused(i))
        }
        None => refused(r),
    }
}

fn runs_on_controller(what: &str) -> String {
    format!("{what}: Ansible runs it on the controller, but this host is reached over SSH and tend would run it on the host itself, so it refuses it; run such steps in a play for `localhost`, or delegate them (`delegate_to: localhost`)")
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn module_name(t: &Task) -> String {
    match &t.kind {
        TaskKind::Module(m) => m.name.clone(),
        _ => t.display_name(),
    }
}

fn failed_result(loc: &tend_proto::Loc, msg: &str) -> Value {
    json!({"failed": true, "changed": false, "msg": format!("{loc}: {msg}")})
}

fn skipped_result(conds: &[Value]) -> Value {
    let cond = conds.last().map(|c| match c {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    json!({"changed": false, "skipped": true, "skip_reason": "Conditional result was False", "false_condition": cond})
}

fn status_of(r: &Value) -> ResultStatus {
    let flag = |k: &str| r.get(k) == Some(&Value::Bool(true));
    if flag("failed") {
        ResultStatus::Failed
    } else if flag("unreachable") {
        ResultStatus::Unreachable
    } else if flag("skipped") {
        ResultStatus::Skipped
    } else if flag("changed") {
        ResultStatus::Changed
    } else {
        ResultStatus::Ok
    }
}

fn censor(r: &Value) -> Value {
    let changed = r.get("changed").cloned().unwrap_or(Value::Bool(false));
    let mut out = json!({"censored": NO_LOG_MSG, "changed": changed});
    if let Some(f) = r.get("failed") {
        out["failed"] = f.clone();
    }
    if let Some(s) = r.get("skipped") {
        out["skipped"] = s.clone();
    }
    out
}

/// How Ansible shows a loop item: strings as they are, other values as Python reprs.
fn label_of(item: &Value) -> String {
    match item {
        Value::String(s) => s.clone(),
        other => {
            let j = to_jinja_ser(other);
            tend_lang::template::pyrepr_of(&j)
        }
    }
}

/// A keyword a task or block sets wins over the one it inherits; unset, the inherited stays.
fn keep<T: Clone>(inherited: &mut Option<T>, own: &Option<T>) {
    if own.is_some() {
        inherited.clone_from(own);
    }
}
