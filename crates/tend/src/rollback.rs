//! `tend rollback RUN`: restores, on each host a run changed, what the run's changes replaced.
//!
//! The run is read from the history (which hosts it changed); each of those hosts runs an undo
//! program (`tend_engine::rollback`) that restores the host's journal of the run, newest change
//! first. The hosts are locked as an apply locks them (run lease + host lock), and the
//! rollback is recorded as a run of kind `rollback` with its diffs.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use tend_proto::{Event, ResultStatus};
use tend_store::{RunKind, Store, StoreSpec};

use crate::cli::{ApplyArgs, RollbackArgs};
use crate::printer::Printer;

const EXIT_ERROR: u8 = 1;
const EXIT_NOT_RESTORED: u8 = 2;

fn stderr_line(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
}

fn fail(msg: &str, hint: Option<&str>) -> ExitCode {
    stderr_line(&format!("error: {msg}"));
    if let Some(h) = hint {
        stderr_line(&format!("hint: {h}"));
    }
    ExitCode::from(EXIT_ERROR)
}

/// Why a run cannot be rolled back, if it cannot.
fn refusal(id: &str, kind: RunKind, check: bool) -> Option<String> {
    match kind {
        _ if check => Some(format!(
            "run {id} was a check (--check): it changed nothing, so there is nothing to roll back"
        )),
        RunKind::Plan | RunKind::Drift | RunKind::Compliance => Some(format!(
            "run {id} was a {}: it changed nothing, so there is nothing to roll back",
            kind.as_str()
        )),
        RunKind::Rollback => Some(format!(
            "run {id} is itself a rollback; tend does not journal what a rollback replaces \
             (apply the playbook again to redo the run)"
        )),
        RunKind::Apply | RunKind::Fix => None,
    }
}

/// `tend rollback`.
pub fn rollback(args: RollbackArgs) -> ExitCode {
    // The history commands' store; the rollback is recorded in the same store.
    let store = crate::history::store_here(&args.store);
    let spec = StoreSpec::parse(store.store.as_deref().unwrap_or_default());
    let detail = match Store::open_existing(&spec).and_then(|mut s| s.run(&args.run)) {
        Ok(d) => d,
        Err(e) => return crate::history::report(&e),
    };
    let run = &detail.summary;
    let id = run.run_id.clone();
    if let Some(why) = refusal(&id, run.start.kind, run.start.check) {
        return fail(
            &why,
            Some("`tend history` lists the runs that changed hosts"),
        );
    }
    if run.end.is_none() {
        stderr_line(&format!(
            "[WARNING]: run {id} has no recorded end (still running, or interrupted): \
             restoring what its journals hold so far"
        ));
    }
    // Hosts where the run changed something, or failed part-way through a change.
    let stats = detail.host_stats();
    let touched: BTreeSet<String> = stats
        .iter()
        .filter(|(_, s)| s.changed > 0 || s.failed > 0)
        .map(|(h, _)| h.clone())
        .collect();
    for h in &run.start.hosts {
        if !touched.contains(h) {
            stderr_line(&format!(
                "{h}: nothing to restore (run {id} changed nothing there)"
            ));
        }
    }
    if touched.is_empty() {
        stderr_line(&format!(
            "Rollback: run {id} changed no host; nothing to do"
        ));
        return ExitCode::SUCCESS;
    }

    let apply_args = ApplyArgs {
        playbook: run
            .start
            .playbook
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("<rollback>")),
        hosts: args.hosts.clone(),
        diff: args.diff,
        verbose: args.verbose,
        output: args.output,
        store,
        lock_timeout: args.lock_timeout,
        ..Default::default()
    };
    let mut settings = match crate::settings::apply_settings(&apply_args) {
        Ok(s) => s,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(crate::EXIT_BAD_INPUT);
        }
    };
    settings.options.collect_diffs = true;
    settings.undo = Some(tend_proto::Undo {
        run_id: id.clone(),
        plays: None,
        batch: None,
    });
    let pattern: Vec<&str> = touched.iter().map(String::as_str).collect();
    let mut prep = match tend_engine::prepare_adhoc(
        settings,
        &pattern.join(":"),
        "ping",
        Default::default(),
    ) {
        Ok(p) => p,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(crate::EXIT_BAD_INPUT);
        }
    };
    prep.playbook.plays[0].name = format!("Rollback of run {id}");
    let targeted: BTreeSet<&String> = prep.play_hosts[0].iter().collect();
    let inventory: BTreeSet<String> = prep.inventory.hosts().map(|h| h.name.clone()).collect();
    let mut missing = false;
    for h in &touched {
        if targeted.contains(h) {
            continue;
        }
        if inventory.contains(h) {
            stderr_line(&format!("{h}: not rolled back (outside --limit)"));
        } else {
            missing = true;
            stderr_line(&format!(
                "error: {h}: run {id} changed it, but it is not in the inventory; nothing \
                 there was restored (pass the run's inventory with -i)"
            ));
        }
    }
    if targeted.is_empty() {
        stderr_line("Rollback: no host to roll back");
        return ExitCode::from(if missing { EXIT_ERROR } else { 0 });
    }

    let rollback_id = tend_store::new_run_id();
    crate::lock_hosts(&mut prep, &rollback_id, args.lock_timeout);
    // A rollback journals nothing itself.
    prep.settings.options.run_id = None;
    let mut recorder =
        match crate::recorder::Recorder::start_rollback(&prep, &apply_args, &rollback_id, &id) {
            Ok(r) => r,
            Err(e) => {
                crate::history::report(&e);
                stderr_line("nothing was restored");
                return ExitCode::from(EXIT_ERROR);
            }
        };
    let mut printer = Printer::new(args.output, args.verbose).diffs(args.diff);
    let mut not_restored: Vec<(String, String)> = Vec::new();
    let summary = crate::run_streaming(&prep, |e| {
        printer.event(e);
        if let Some(r) = recorder.as_mut() {
            r.event(e);
        }
        if let Event::TaskResult(r) = e {
            if r.status == ResultStatus::Failed {
                not_restored.push((r.host.clone(), r.failure_msg().to_string()));
            }
        }
    });
    let recorded = recorder.map(|r| r.finish(summary.as_ref()));
    let Some(summary) = summary else {
        return fail("the rollback stopped unexpectedly (internal error)", None);
    };
    let stats: Vec<_> = summary.stats.iter().map(|(h, s)| (h.clone(), *s)).collect();
    printer.recap(&stats);
    printer.flush();
    let unreachable: Vec<&String> = summary
        .stats
        .iter()
        .filter(|(_, s)| s.unreachable > 0)
        .map(|(h, _)| h)
        .collect();
    if !not_restored.is_empty() {
        stderr_line(&format!(
            "Rollback of run {id}: {} change(s) could not be restored:",
            not_restored.len()
        ));
        for (h, msg) in &not_restored {
            stderr_line(&format!("  {h}: {msg}"));
        }
    }
    for h in &unreachable {
        stderr_line(&format!(
            "error: {h} was unreachable: nothing there was restored; run `tend rollback {id} \
             --limit {h}` when it is back"
        ));
    }
    if let Some(Err((run, e))) = recorded {
        crate::recorder::report_incomplete(&run, &e);
        return ExitCode::from(EXIT_ERROR);
    }
    if missing || !unreachable.is_empty() {
        ExitCode::from(EXIT_ERROR)
    } else if !not_restored.is_empty() {
        ExitCode::from(EXIT_NOT_RESTORED)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_runs_that_changed_hosts_can_be_rolled_back() {
        assert!(refusal("r", RunKind::Apply, false).is_none());
        assert!(refusal("r", RunKind::Fix, false).is_none());
        for (k, check) in [
            (RunKind::Apply, true),
            (RunKind::Plan, false),
            (RunKind::Drift, false),
            (RunKind::Compliance, true),
            (RunKind::Rollback, false),
        ] {
            let why = refusal("r1", k, check).unwrap();
            assert!(why.contains("run r1"), "{why}");
        }
    }
}
