//! Rollback on the host: a [`Program`] with `undo` runs no tasks; it restores what run
//! `undo.run_id` replaced here, from the journal that run left (see
//! [`tend_resources::journal`]), newest change first.
//!
//! Each journaled change becomes one ordinary task result named `rollback RESOURCE`
//! (`rollback file[/etc/app.conf]`), so printer, history and recap need nothing new: `changed`
//! when it put something back, `ok` when it was already back, `failed` with the reason when it
//! cannot (`cannot restore command[…]: `command` ran at site.yml:12:7`, or the module's own
//! error, such as a package version the repositories no longer have). What was restored is
//! marked so in the journal; a second rollback finds nothing left to do.
//!
//! Changes a become worker made are in that user's journal (root's, typically, when the login
//! user is not root): with the same become settings as the run (`-b`, `-K`), the agent asks its
//! worker for them, merges them by time with its own, and has the worker restore them.

use serde_json::json;
use tend_proto::{Event, Loc, Module, Task, TaskKind, Undo, Value};
use tend_resources::journal::{self, Entry};
use tend_resources::{Args, ModuleCtx, ModuleOutput, PlanMode};

use super::{Flow, HostRun, Inherited, ModuleCall};
use crate::privilege::Resolved;
use crate::worker::{Request, Response, WirePlan};

/// Who journaled an entry, and so who restores it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Agent,
    Worker,
}

impl HostRun<'_> {
    pub(super) fn run_undo(&mut self, undo: &Undo) -> Flow {
        let host = self.host().to_string();
        let plays = undo.plays.as_deref();
        let what = match &undo.batch {
            Some(b) => format!("run {} (batch {b})", undo.run_id),
            None => format!("run {}", undo.run_id),
        };
        let mut entries: Vec<(Source, Entry)> =
            match journal::pending(&journal::base_dir(), &undo.run_id, &host, plays) {
                Ok(e) => e.into_iter().map(|e| (Source::Agent, e)).collect(),
                Err(e) => return self.undo_failed(&format!("cannot roll back {what}: {}", e.msg)),
            };
        let mut hint = "";
        match self.undo_escalation() {
            Err(e) => return self.undo_failed(&format!("cannot roll back {what}: {e}")),
            Ok(None) => {
                if !rustix::process::geteuid().is_root() {
                    hint = " (changes made with become are in the become user's journal: \
                            roll back with -b as the run ran)";
                }
            }
            Ok(Some(r)) => {
                let req = Request::Pending {
                    run_id: undo.run_id.clone(),
                    host: host.clone(),
                    plays: undo.plays.clone(),
                };
                match self.escalated(r, &req) {
                    Ok(Response::Journal(e)) => {
                        entries.extend(e.into_iter().map(|e| (Source::Worker, e)))
                    }
                    Ok(Response::Error(e)) | Err(e) => {
                        return self.undo_failed(&format!(
                            "cannot read the become user's rollback journal of {what}: {e}"
                        ))
                    }
                    Ok(_) => {
                        return self.undo_failed("the worker answered a journal read with a result")
                    }
                }
            }
        }
        if entries.is_empty() {
            let t = undo_task("rollback".into(), Loc::default());
            let result = json!({
                "changed": false, "failed": false,
                "msg": format!("nothing to restore: {what} journaled no change here that is not restored yet{hint}"),
            });
            self.emit_start(&t);
            return self.finish(
                &t,
                &Inherited::default(),
                "rollback".into(),
                result,
                Vec::new(),
                false,
                None,
            );
        }
        // Newest first: a later change may rest on an earlier one (a config file of a package).
        // Units last, whenever they changed: a service restarted by the run (a handler after
        // its configuration changed) is restarted again once the files it reads are back.
        entries.sort_by_key(|(_, e)| (!is_unit(e), e.at, e.seq));
        let mut flow = Flow::Continue;
        for (source, e) in entries.iter().rev() {
            if self.restore_entry(*source, e, &undo.run_id) == Flow::Failed {
                flow = Flow::Failed;
            }
        }
        flow
    }

    /// The worker that holds the become user's journal, when the run's become settings name a
    /// user other than the agent's.
    fn undo_escalation(&mut self) -> Result<Option<Resolved>, String> {
        let t = undo_task("rollback".into(), Loc::default());
        let inh = Inherited::default();
        let scope = self.scope(&t, &inh, None);
        self.escalation(&t, &inh, &scope)
    }

    fn emit_start(&mut self, t: &Task) {
        let host = self.host().to_string();
        self.emit(Event::TaskStart {
            host,
            name: t.name.clone().unwrap_or_default(),
            loc: t.loc.clone(),
            handler: false,
        });
    }

    fn undo_failed(&mut self, msg: &str) -> Flow {
        let t = undo_task("rollback".into(), Loc::default());
        self.emit_start(&t);
        let r = json!({"changed": false, "failed": true, "msg": msg});
        self.finish(
            &t,
            &Inherited::default(),
            "rollback".into(),
            r,
            Vec::new(),
            false,
            None,
        )
    }

    fn restore_entry(&mut self, source: Source, e: &Entry, run_id: &str) -> Flow {
        let name = format!("rollback {}", e.resource);
        let t = undo_task(name.clone(), parse_loc(&e.loc));
        let inh = Inherited::default();
        self.emit_start(&t);
        let mut result = serde_json::Map::new();
        result.insert(
            "restored_from".into(),
            json!({"task": e.task, "loc": e.loc}),
        );
        let mut diffs = Vec::new();
        let mut changed = false;
        let mut failure = e.cannot.clone();
        if failure.is_none() {
            for step in &e.steps {
                match self.restore_step(source, step) {
                    Ok(o) if !o.failed => {
                        changed |= o.changed;
                        diffs.extend(o.diffs.into_iter().map(|d| name_blob(d, run_id)));
                    }
                    Ok(o) => {
                        failure = Some(o.msg.unwrap_or_else(|| "the module failed".into()));
                        break;
                    }
                    Err(msg) => {
                        failure = Some(msg);
                        break;
                    }
                }
            }
        }
        if failure.is_none() {
            let marked = match source {
                Source::Agent => {
                    journal::mark_restored(&journal::base_dir(), run_id, e.seq).map_err(|e| e.msg)
                }
                Source::Worker => self.mark_in_worker(run_id, e.seq),
            };
            if let Err(m) = marked {
                failure = Some(format!("restored, but not marked so in the journal: {m}"));
            }
        }
        result.insert("changed".into(), Value::Bool(changed));
        match failure {
            Some(why) => {
                result.insert("failed".into(), Value::Bool(true));
                result.insert(
                    "msg".into(),
                    Value::String(format!("cannot restore {}: {why}", e.resource)),
                );
            }
            None => {
                result.insert("failed".into(), Value::Bool(false));
                let msg = if changed {
                    format!("restored {} as it was before {run_id}", e.resource)
                } else {
                    format!("{} is already as it was before {run_id}", e.resource)
                };
                result.insert("msg".into(), Value::String(msg));
            }
        }
        self.finish(
            &t,
            &inh,
            name,
            Value::Object(result),
            diffs,
            false,
            Some(e.no_log),
        )
    }

    fn restore_step(
        &mut self,
        source: Source,
        step: &journal::StoredStep,
    ) -> Result<ModuleOutput, String> {
        let Some(entry) = tend_resources::lookup(&step.module) else {
            return Err(format!("module `{}` is not supported by tend", step.module));
        };
        let t = undo_task("rollback".into(), Loc::default());
        let scope = self.scope(&t, &Inherited::default(), None);
        match source {
            Source::Agent => {
                let ctx = ModuleCtx {
                    check: false,
                    diff: true,
                    templar: &self.templar,
                    scope: &scope,
                    search_dirs: &[],
                    environment: &[],
                    plan: PlanMode::Off,
                    journal: None,
                };
                Ok((entry.run)(&Args::new(step.args.clone()), &ctx)
                    .unwrap_or_else(ModuleOutput::from))
            }
            Source::Worker => {
                let Some(r) = self.undo_escalation()? else {
                    return Err("the become user that journaled it is not configured".into());
                };
                let m = Module {
                    name: step.module.clone(),
                    args: step.args.clone(),
                    args_template: None,
                    loc: Loc::default(),
                };
                let call = ModuleCall {
                    m: &m,
                    args: &step.args,
                    environment: &[],
                    search: &[],
                    scope: &scope,
                };
                self.module_in_worker(r, &call, false, true, WirePlan::Off)
            }
        }
    }

    fn mark_in_worker(&mut self, run_id: &str, seq: u64) -> Result<(), String> {
        let Some(r) = self.undo_escalation()? else {
            return Err("the become user that journaled it is not configured".into());
        };
        let req = Request::Restored {
            run_id: run_id.to_string(),
            seq,
        };
        match self.escalated(r, &req)? {
            Response::Error(e) => Err(e),
            _ => Ok(()),
        }
    }
}

/// An entry that puts a service unit back (its steps are `systemd`/`service` states).
fn is_unit(e: &Entry) -> bool {
    !e.steps.is_empty()
        && e.steps
            .iter()
            .all(|s| matches!(s.module.as_str(), "systemd" | "service" | "systemd_service"))
}

/// A diff whose `after` comes from a journal blob names it as what it is.
fn name_blob(mut d: Value, run_id: &str) -> Value {
    if let Some(h) = d.get_mut("after_header") {
        if h.as_str().is_some_and(|s| s.contains("/blobs/")) {
            *h = Value::String(format!("as before run {run_id}"));
        }
    }
    d
}

/// The task a rollback result is reported as (at the location of the task that made the
/// change).
fn undo_task(name: String, loc: Loc) -> Task {
    let mut t = Task::new(TaskKind::Meta("rollback".into()), loc);
    t.name = Some(name);
    t
}

/// `file:line:col` back into a location (a file name may hold colons).
fn parse_loc(s: &str) -> Loc {
    let mut parts = s.rsplitn(3, ':');
    let (col, line, file) = (parts.next(), parts.next(), parts.next());
    match (
        file,
        line.and_then(|l| l.parse().ok()),
        col.and_then(|c| c.parse().ok()),
    ) {
        (Some(f), Some(l), Some(c)) => Loc::new(f, l, c),
        _ => Loc::new(s, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_loc;

    #[test]
    fn locations_read_back() {
        let l = parse_loc("/srv/a:b/site.yml:12:7");
        assert_eq!((&*l.file, l.line, l.col), ("/srv/a:b/site.yml", 12, 7));
        assert_eq!(parse_loc("<command line>").line, 0);
    }
}
