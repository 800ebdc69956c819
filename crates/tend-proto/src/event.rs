use serde::{Deserialize, Serialize};

use crate::{Loc, PlannedChange, Value};

/// Where a batch sits in its play's rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayBatch {
    /// 1-based.
    pub number: usize,
    /// How many batches the play has.
    pub of: usize,
    /// Hosts in the batch, those that failed in an earlier play included.
    pub size: usize,
}

/// One thing that happened during a run. The human printer, `--output json`, the recap file and
/// (later) the audit store are all consumers of this one stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A play starts on some hosts: all of them, or one batch (`serial`). `hosts` are those
    /// that run; hosts of the batch that failed in an earlier play are left out.
    PlayStart {
        name: String,
        hosts: Vec<String>,
        /// Which batch this is, when the play matched any host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<PlayBatch>,
    },
    /// A play's health gate (`health:`) starts on the hosts of a batch that converged; the
    /// results that follow are the gate's.
    HealthStart {
        /// The play's name.
        name: String,
        hosts: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<PlayBatch>,
    },
    /// A play did not run: a play it `needs` failed or was skipped (tend's play graph).
    PlaySkipped {
        name: String,
        reason: String,
    },
    TaskStart {
        host: String,
        name: String,
        loc: Loc,
        handler: bool,
    },
    /// One item of a looped task.
    ItemResult {
        host: String,
        task: String,
        status: ResultStatus,
        label: String,
        result: Value,
        /// The task ran on this inventory host (`delegate_to`): printed `host -> delegate`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delegated_to: Option<String>,
    },
    TaskResult(TaskResult),
    Warning {
        host: Option<String>,
        msg: String,
    },
    /// A host finished the play; `stats` are its counters for this play.
    HostDone {
        host: String,
        stats: HostStats,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Ok,
    Changed,
    Failed,
    Skipped,
    Unreachable,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskResult {
    pub host: String,
    pub task: String,
    pub loc: Loc,
    pub status: ResultStatus,
    /// A failure that `ignore_errors` turned into a continue.
    #[serde(default)]
    pub ignored: bool,
    #[serde(default)]
    pub handler: bool,
    /// The registered result, with secrets already replaced (no_log).
    pub result: Value,
    /// `--diff` output: Ansible-shaped `{before, after, before_header, after_header}` records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<Value>,
    /// Under `tend plan` and `tend apply PLAN` (`RunOptions::plan`, `Program::guard`): each
    /// resource's change, one per loop item for a looped task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<PlannedChange>,
    /// The task ran on this inventory host (`delegate_to`): printed `host -> delegate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_to: Option<String>,
}

/// The per-host counters of a PLAY RECAP, counted as ansible-core counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

impl TaskResult {
    /// The result's `msg` when it is text, else "failed" (what a failure is called when its
    /// module gave no message).
    pub fn failure_msg(&self) -> &str {
        self.result
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or("failed")
    }
}

impl HostStats {
    pub fn add(&mut self, other: &HostStats) {
        self.ok += other.ok;
        self.changed += other.changed;
        self.unreachable += other.unreachable;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.rescued += other.rescued;
        self.ignored += other.ignored;
    }
}
