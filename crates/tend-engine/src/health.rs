//! Health gates: a play's `health:` tasks run on each batch after the batch converged (its
//! tasks and handlers done), on the batch's hosts that did not fail, with the state the batch
//! left on them (facts, registered values). The gate is a Program like the play's — the same
//! compile, `run_batch` and `run_host` path, local and over SSH — whose tasks are the health
//! tasks; its results are ordinary events after a [`Event::HealthStart`].
//!
//! A health task that fails (not ignored, not rescued) on a host, or a host that becomes
//! unreachable, fails the gate: the host counts as failed, the rollout stops (no later batch,
//! no later play; exit status 2), a warning names the host, the task and its message, and the
//! batch is rolled back ([`roll_back_batch`]).

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, Sender};

use tend_proto::{Event, HostState, PlayBatch, ResultStatus};

use crate::batches::Stop;
use crate::compile::PlayHosts;
use crate::{HostFailure, LocalLock, PlayRun, Prepared, RemoteCtx};

/// One batch that converged, as its gate needs it.
pub(crate) struct Gate<'a> {
    /// The play's number.
    pub idx: usize,
    /// Every host of the play, in its order (`ansible_play_hosts_all`).
    pub all: &'a [String],
    /// The batch's hosts that ran it (those that failed earlier left out).
    pub batch: &'a [String],
    pub info: PlayBatch,
    pub remote: Option<&'a RemoteCtx>,
    pub local: &'a LocalLock,
    /// `hostvars` and delegation for the gate's tasks.
    pub fleet: &'a crate::peers::Fleet<'a>,
}

/// Runs the play's health gate on the batch, if it has one. Counters go into the play's
/// `out`, host state into `states`; hosts that fail the gate join `failed` (and `out.failed`).
/// `Some` when the gate failed: the rollout stops there.
pub(crate) fn check(
    prep: &Prepared,
    gate: &Gate,
    failed: &mut HashSet<String>,
    states: &mut HashMap<String, HostState>,
    out: &mut PlayRun,
    tx: &Sender<Event>,
) -> Option<(Stop, String)> {
    let play = &prep.playbook.plays[gate.idx];
    if play.health.is_empty() {
        return None;
    }
    let hosts: Vec<String> = gate
        .batch
        .iter()
        .filter(|h| !failed.contains(*h))
        .cloned()
        .collect();
    if hosts.is_empty() {
        return None;
    }
    let _ = tx.send(Event::HealthStart {
        name: play.name.clone(),
        hosts: hosts.clone(),
        batch: Some(gate.info),
    });
    let active: Vec<String> = gate
        .all
        .iter()
        .filter(|h| !failed.contains(*h))
        .cloned()
        .collect();
    let who = PlayHosts {
        all: gate.all,
        active: &active,
        batch: &hosts,
        gate: true,
    };
    let (ran, reasons) = {
        let states: &HashMap<String, HostState> = states;
        let (gtx, grx) = mpsc::channel::<Event>();
        let fwd = tx.clone();
        std::thread::scope(|s| {
            // Passes every event on, noting the first failure of each host for the warning.
            let watcher = s.spawn(move || {
                let mut first: HashMap<String, String> = HashMap::new();
                for e in grx {
                    if let Some((host, why)) = failure_of(&e) {
                        first.entry(host).or_insert(why);
                    }
                    let _ = fwd.send(e);
                }
                first
            });
            let (ran, _) = crate::run_batch(
                prep,
                gate.remote,
                gate.local,
                gate.fleet,
                gate.idx,
                &who,
                states,
                tend_agent::StepRule::default(),
                &gtx,
            );
            drop(gtx);
            (ran, watcher.join().unwrap_or_default())
        })
    };
    let mut bad = Vec::new();
    for (host, stats, state) in ran {
        let why = if stats.unreachable > 0 {
            Some(HostFailure::Unreachable)
        } else if stats.failed > 0 {
            Some(HostFailure::Failed)
        } else {
            None
        };
        if let Some(why) = why {
            failed.insert(host.clone());
            out.failed.push((host.clone(), why));
            bad.push(host.clone());
        }
        states.insert(host.clone(), state);
        out.stats.entry(host).or_default().add(&stats);
    }
    if bad.is_empty() {
        return None;
    }
    bad.sort_by_key(|h| hosts.iter().position(|x| x == h));
    let msg = gate_failed_message(&play.name, &bad, &reasons, gate.info);
    let _ = tx.send(Event::Warning {
        host: None,
        msg: msg.clone(),
    });
    roll_back_batch(prep, gate, out, tx);
    Some((Stop::HealthGate, msg))
}

/// `health gate of play "web" failed on web2: check /healthz: Status code was 500; rollout
/// stopped after batch 2/3`.
fn gate_failed_message(
    play: &str,
    bad: &[String],
    reasons: &HashMap<String, String>,
    info: PlayBatch,
) -> String {
    let why: Vec<String> = bad
        .iter()
        .map(|h| match reasons.get(h) {
            Some(r) => format!("{h}: {r}"),
            None => format!("{h}: the host failed"),
        })
        .collect();
    format!(
        "health gate of play \"{play}\" failed on {}; rollout stopped after batch {}/{}",
        why.join(", "),
        info.number,
        info.of
    )
}

/// A failed (not ignored) or unreachable result: its host and `task: message`.
fn failure_of(e: &Event) -> Option<(String, String)> {
    let Event::TaskResult(r) = e else {
        return None;
    };
    let bad = match r.status {
        ResultStatus::Failed => !r.ignored,
        ResultStatus::Unreachable => true,
        _ => false,
    };
    if !bad {
        return None;
    }
    let msg = match r.result.get("msg") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "failed".into(),
    };
    Some((r.host.clone(), format!("{}: {msg}", r.task)))
}

/// Undoes what the batch's play changed on its hosts, after its gate failed: every host that
/// ran the batch (those that failed during it too) restores, from its journal, what this run
/// replaced in this play ([`crate::rollback::undo_batch`]), newest change first and units
/// last. The results are ordinary task results (`rollback file[…]`) and count in the hosts'
/// recap; a warning then says what was restored and what could not be.
fn roll_back_batch(prep: &Prepared, gate: &Gate, out: &mut PlayRun, tx: &Sender<Event>) {
    let play = &prep.playbook.plays[gate.idx];
    let label = format!("{}/{}", gate.info.number, gate.info.of);
    if prep.settings.options.run_id.is_none() || prep.settings.options.check {
        return;
    }
    let _ = tx.send(Event::Warning {
        host: None,
        msg: format!(
            "rolling back batch {label} of play \"{}\" on {}",
            play.name,
            gate.batch.join(", ")
        ),
    });
    let who = PlayHosts {
        all: gate.all,
        active: gate.batch,
        batch: gate.batch,
        gate: false,
    };
    let ran = crate::rollback::undo_batch(
        prep,
        gate.remote,
        gate.local,
        gate.idx,
        &who,
        Some(vec![gate.idx]),
        Some(label.clone()),
        tx,
    );
    let mut incomplete: Vec<String> = Vec::new();
    let mut ordered = ran;
    ordered.sort_by_key(|(h, _)| gate.batch.iter().position(|x| x == h));
    for (host, stats) in ordered {
        if stats.failed > 0 || stats.unreachable > 0 {
            incomplete.push(host.clone());
        }
        out.stats.entry(host).or_default().add(&stats);
    }
    let msg = if incomplete.is_empty() {
        format!(
            "batch {label} of play \"{}\" rolled back on {}",
            play.name,
            gate.batch.join(", ")
        )
    } else {
        format!(
            "batch {label} of play \"{}\" could not be rolled back completely on {} (see the \
             failed rollback results above); `tend rollback RUN --limit HOST` retries",
            play.name,
            incomplete.join(", ")
        )
    };
    let _ = tx.send(Event::Warning { host: None, msg });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(host: &str, status: ResultStatus, ignored: bool, msg: &str) -> Event {
        Event::TaskResult(tend_proto::TaskResult {
            host: host.into(),
            task: "check".into(),
            loc: tend_proto::Loc::new("site.yml", 3, 7),
            status,
            ignored,
            handler: false,
            result: json!({ "msg": msg }),
            diffs: Vec::new(),
            changes: Vec::new(),
            delegated_to: None,
        })
    }

    #[test]
    fn only_real_failures_fail_a_gate() {
        assert_eq!(
            failure_of(&result("w1", ResultStatus::Failed, false, "boom")),
            Some(("w1".into(), "check: boom".into()))
        );
        assert_eq!(
            failure_of(&result("w1", ResultStatus::Unreachable, false, "gone")),
            Some(("w1".into(), "check: gone".into()))
        );
        assert_eq!(
            failure_of(&result("w1", ResultStatus::Failed, true, "x")),
            None
        );
        assert_eq!(failure_of(&result("w1", ResultStatus::Ok, false, "")), None);
    }

    #[test]
    fn the_warning_names_hosts_tasks_and_the_batch() {
        let mut reasons = HashMap::new();
        reasons.insert("web2".to_string(), "check: Status code was 500".to_string());
        let info = PlayBatch {
            number: 2,
            of: 3,
            size: 1,
        };
        assert_eq!(
            gate_failed_message("web", &["web2".into(), "web3".into()], &reasons, info),
            "health gate of play \"web\" failed on web2: check: Status code was 500, web3: the host failed; rollout stopped after batch 2/3"
        );
    }
}
