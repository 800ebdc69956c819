//! Rollback, seen from the controller.
//!
//! A rollback is an ordinary [`Program`] with [`Program::undo`] set (see
//! `crates/tend-agent/src/run/undo.rs`): the agent runs no tasks and restores, newest first,
//! what the run's journal on the host says was replaced. So it runs through the same paths as
//! any play — in-process for local hosts, `run {program}` on an SSH host's agent session — and
//! its results are ordinary task results (`rollback file[/etc/app.conf]`, with diffs) for the
//! printer, the history and the recap.
//!
//! Two callers:
//! - `tend rollback RUN` prepares an ad-hoc play on the hosts the run changed with
//!   [`crate::Settings::undo`] set, so every compiled program is an undo program, and runs it
//!   with [`crate::run`] like any run.
//! - A failed health gate rolls its batch back mid-run: [`undo_batch`] (from `run_plays`, with
//!   the run's own id, [`tend_proto::RunOptions::run_id`]) runs [`undo_program`]s on the
//!   batch's hosts and returns their counters.

use std::sync::mpsc::Sender;
use std::sync::Mutex;

use tend_proto::{Event, HostStats, Program, Undo};

use crate::{compile, LocalLock, Prepared, RemoteCtx};

/// `base` (any program compiled for the host: its variables, become settings and
/// connection are what the undo needs) turned into the undo of `undo`: no tasks, no
/// handlers, no facts, no plan guard, not in check mode, journaling nothing.
pub fn undo_program(mut base: Program, undo: Undo) -> Program {
    base.undo = Some(undo);
    base.tasks.clear();
    base.handlers.clear();
    base.roles.clear();
    base.play.gather_facts = false;
    base.play.lockstep = false;
    base.play.force_handlers = false;
    base.guard = None;
    base.options.check = false;
    base.options.run_id = None;
    base.options.start_at_task = None;
    base.options.tags.clear();
    base.options.skip_tags.clear();
    base
}

/// Rolls back what this run changed on `who.batch` in `plays` (a health gate's batch):
/// each host's [`undo_program`], compiled from play `play`, runs on its usual path (bounded by
/// `forks`), its results go to `tx` as task results. `batch` names the batch in messages
/// (`2/3`). Per host, in the order they finished, the rollback's counters; a run without a
/// run id (`--no-history` runs still have one; only check runs do not) rolls back nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn undo_batch(
    prep: &Prepared,
    remote: Option<&RemoteCtx>,
    local: &LocalLock,
    play: usize,
    who: &compile::PlayHosts,
    plays: Option<Vec<usize>>,
    batch: Option<String>,
    tx: &Sender<Event>,
) -> Vec<(String, HostStats)> {
    let Some(run_id) = prep.settings.options.run_id.clone() else {
        return Vec::new();
    };
    let hosts = who.batch;
    let undo = Undo {
        run_id,
        plays,
        batch,
    };
    let results: Mutex<Vec<(String, HostStats)>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    let rv = tend_agent::LocalRendezvous::new(hosts.to_vec());
    let forks = prep.settings.forks.max(1).min(hosts.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..forks {
            let (next, results, rv, undo) = (&next, &results, &rv, &undo);
            let tx = tx.clone();
            s.spawn(move || loop {
                let i = {
                    let Ok(mut n) = next.lock() else { return };
                    *n += 1;
                    *n - 1
                };
                let Some(host) = hosts.get(i) else { return };
                let stats = match compile::compile_for(prep, play, host, who) {
                    Ok(p) => {
                        let program = undo_program(p, undo.clone());
                        crate::run_program(prep, remote, local, &program, rv, &tx).0
                    }
                    Err(d) => {
                        let _ = tx.send(Event::Warning {
                            host: Some(host.clone()),
                            msg: format!("cannot roll back {host}: {}", d.render()),
                        });
                        HostStats {
                            failed: 1,
                            ..Default::default()
                        }
                    }
                };
                if let Ok(mut r) = results.lock() {
                    r.push((host.clone(), stats));
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run changes two local hosts; a health gate's rollback of the first batch restores
    /// that host only, from the journal both share on this machine.
    #[test]
    fn a_batch_is_rolled_back_mid_run_and_only_its_hosts() {
        let d = tempfile::tempdir().unwrap();
        // This test binary's only journal user (set before anything journals).
        std::env::set_var(
            tend_resources::journal::JOURNAL_DIR_ENV,
            d.path().join("journal"),
        );
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        for h in ["a", "b"] {
            std::fs::write(root.join(h), "old\n").unwrap();
        }
        std::fs::write(
            d.path().join("site.yml"),
            "- hosts: all\n  gather_facts: false\n  serial: 1\n  tasks:\n    - copy: \
             {content: \"new\\n\", dest: \"{{ root }}/{{ inventory_hostname }}\"}\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("inv"),
            "a ansible_connection=local\nb ansible_connection=local\n",
        )
        .unwrap();
        let mut extra = tend_proto::Vars::new();
        extra.insert("root".into(), root.display().to_string().into());
        let mut settings = crate::Settings {
            playbook: d.path().join("site.yml"),
            inventories: vec![d.path().join("inv").display().to_string()],
            extra_vars: extra,
            forks: 2,
            ..Default::default()
        };
        settings.options.run_id = Some("engine-rollback-1".into());
        let prep = crate::prepare(settings).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let summary = crate::run(&prep, &tx);
        assert_eq!(summary.stats["a"].changed, 1);
        assert_eq!(std::fs::read_to_string(root.join("b")).unwrap(), "new\n");

        let all: Vec<String> = vec!["a".into(), "b".into()];
        let batch: Vec<String> = vec!["a".into()];
        let who = compile::PlayHosts {
            all: &all,
            active: &all,
            batch: &batch,
            gate: false,
        };
        let local = LocalLock::default();
        let done = undo_batch(
            &prep,
            None,
            &local,
            0,
            &who,
            Some(vec![0]),
            Some("1/2".into()),
            &tx,
        );
        drop(tx);
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].0.as_str(), done[0].1.changed), ("a", 1));
        assert_eq!(std::fs::read_to_string(root.join("a")).unwrap(), "old\n");
        assert_eq!(std::fs::read_to_string(root.join("b")).unwrap(), "new\n");
        let names: Vec<String> = rx
            .iter()
            .filter_map(|e| match e {
                Event::TaskResult(r) if r.host == "a" => Some(r.task),
                _ => None,
            })
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("rollback copy[")),
            "{names:?}"
        );
    }

    #[test]
    fn an_undo_program_runs_nothing_but_the_undo() {
        let mut p: Program = serde_json::from_value(serde_json::json!({
            "version": 1, "host": "h1",
            "play": {"name": "p", "loc": {"file": "site.yml", "line": 1, "col": 3},
                     "gather_facts": true, "playbook_dir": "/x", "force_handlers": false,
                     "check_mode": null, "diff": null, "no_log": null, "environment": null},
            "vars": {"role_defaults": {}, "inventory": {}, "play_vars": {}, "vars_files": {},
                     "role_vars": {}, "extra_vars": {}, "magic": {}},
            "roles": [], "tasks": [], "handlers": [],
            "options": {"check": false, "diff": false, "tags": ["x"], "skip_tags": [],
                        "start_at_task": null, "verbosity": 0, "run_id": "r1"}
        }))
        .unwrap();
        p.play.lockstep = true;
        let undo = Undo {
            run_id: "r0".into(),
            plays: Some(vec![1]),
            batch: Some("1/3".into()),
        };
        let u = undo_program(p, undo.clone());
        assert_eq!(u.undo, Some(undo));
        assert!(!u.play.gather_facts && !u.play.lockstep);
        assert!(u.options.run_id.is_none() && u.options.tags.is_empty());
        // It survives the wire as SSH hosts get it.
        let back: Program = serde_json::from_str(&serde_json::to_string(&u).unwrap()).unwrap();
        assert_eq!(back.undo.unwrap().plays, Some(vec![1]));
    }
}
