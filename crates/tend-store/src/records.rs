//! What the records of a run say: `run_start`, one `host_result` per host and play as it
//! finishes, `run_end`. Bodies are these structs as JSON; unknown fields are kept by readers
//! (serde ignores them), so later versions may add fields without a migration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tend_proto::HostStats;

use crate::chain::{kind, Record};
use crate::{Result, Store};

/// What replaces a secret value in a record.
pub const MASK: &str = "********";

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    #[default]
    Apply,
    Plan,
    Drift,
    Rollback,
    Fix,
    /// `tend compliance`: the hosts' observed state judged by compliance policies.
    Compliance,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Apply => "apply",
            RunKind::Plan => "plan",
            RunKind::Drift => "drift",
            RunKind::Rollback => "rollback",
            RunKind::Fix => "fix",
            RunKind::Compliance => "compliance",
        }
    }

    pub fn parse(s: &str) -> Option<RunKind> {
        [
            RunKind::Apply,
            RunKind::Plan,
            RunKind::Drift,
            RunKind::Rollback,
            RunKind::Fix,
            RunKind::Compliance,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every host ran without a failure.
    Succeeded,
    /// A host failed.
    Failed,
    /// No host failed, one was unreachable.
    Unreachable,
    /// tend itself failed (a crash of the run, not of a host).
    Error,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Unreachable => "unreachable",
            RunStatus::Error => "error",
        }
    }

    /// From the recap counters, as ansible-playbook's exit status decides.
    pub fn from_stats<'a>(stats: impl IntoIterator<Item = &'a HostStats>) -> RunStatus {
        let mut status = RunStatus::Succeeded;
        for s in stats {
            if s.failed > 0 {
                return RunStatus::Failed;
            }
            if s.unreachable > 0 {
                status = RunStatus::Unreachable;
            }
        }
        status
    }
}

/// The repository the playbook lives in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    /// The commit checked out (`None` in a repository without commits).
    pub commit: Option<String>,
    /// The branch, if HEAD names one.
    #[serde(default)]
    pub branch: Option<String>,
    /// Uncommitted changes (tracked or untracked); `None` when `git` could not tell.
    pub dirty: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStart {
    pub kind: RunKind,
    /// Check mode (`--check`): nothing was changed.
    #[serde(default)]
    pub check: bool,
    /// The command line, with secret values masked.
    pub argv: Vec<String>,
    pub user: String,
    /// The machine tend ran on.
    pub controller: String,
    pub started: String,
    #[serde(default)]
    pub playbook: Option<String>,
    #[serde(default)]
    pub git: Option<GitInfo>,
    /// Every host the run targets, in inventory order.
    pub hosts: Vec<String>,
    /// Each host's inventory groups (for metrics per group).
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// `tend apply PLAN`: the id of the plan applied (a plan may be applied once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// A rollback: the id of the run it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolls_back: Option<String>,
}

/// One task's outcome on one host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub name: String,
    /// `file:line:col` of the task.
    pub loc: String,
    /// ok, changed, failed, skipped, unreachable.
    pub status: String,
    pub changed: bool,
    #[serde(default)]
    pub handler: bool,
    #[serde(default)]
    pub ignored: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<Value>,
    /// The registered result (no_log results arrive censored).
    #[serde(default)]
    pub result: Value,
}

/// A host finished a play.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostResult {
    pub host: String,
    pub play: String,
    pub stats: HostStats,
    pub tasks: Vec<TaskRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    pub ended: String,
    pub status: RunStatus,
    /// Counters summed over hosts.
    pub totals: HostStats,
    /// Each host's counters summed over plays.
    pub hosts: BTreeMap<String, HostStats>,
    #[serde(default)]
    pub exit_code: i32,
    /// What went wrong when status is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the Rego policies said about the run's plan (`{"deny": [...], "warn": [...]}`,
    /// each finding `{package, msg, host?, task?}`), when policies were evaluated. A
    /// `compliance` run adds `"hosts": {host: "compliant" | "non_compliant" | "error"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Value>,
}

impl RunEnd {
    pub fn new(hosts: BTreeMap<String, HostStats>, exit_code: i32) -> RunEnd {
        let mut totals = HostStats::default();
        for s in hosts.values() {
            totals.add(s);
        }
        RunEnd {
            ended: crate::time::now(),
            status: RunStatus::from_stats(hosts.values()),
            totals,
            hosts,
            exit_code,
            error: None,
            policy: None,
        }
    }
}

/// Replaces every occurrence of a secret value in a record, in strings and in keys.
#[derive(Clone, Debug, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    pub fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
            // Longest first: a secret containing another is masked whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    fn text(&self, s: &str) -> Option<String> {
        if !self.secrets.iter().any(|x| s.contains(x.as_str())) {
            return None;
        }
        let mut out = s.to_string();
        for x in &self.secrets {
            out = out.replace(x.as_str(), MASK);
        }
        Some(out)
    }

    pub fn scrub(&self, v: &mut Value) {
        if self.secrets.is_empty() {
            return;
        }
        match v {
            Value::String(s) => {
                if let Some(t) = self.text(s) {
                    *s = t;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.scrub(x)),
            Value::Object(m) => {
                let keyed: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
                for (k, mut x) in keyed {
                    self.scrub(&mut x);
                    m.insert(self.text(&k).unwrap_or(k), x);
                }
            }
            Value::Number(n) => {
                if let Some(t) = self.text(&n.to_string()) {
                    *v = Value::String(t);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }
}

/// Variable and option names whose values are secrets (`db_password`, `api_token`, …).
pub fn secret_looking(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "pass",
        "secret",
        "token",
        "credential",
        "private_key",
        "apikey",
        "api_key",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// A new run id: time-sortable (UTC start time) and unique (random suffix), e.g.
/// `20250102-030405-9f1c2a`.
pub fn new_run_id() -> String {
    let ts = crate::time::now();
    let compact: String = ts
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect::<String>();
    let mut rnd = [0u8; 3];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut rnd))
        .is_ok();
    if !random {
        let n = crate::time::now_millis() as u64 ^ (u64::from(std::process::id()) << 20);
        rnd = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
    }
    format!("{}-{}-{}", &compact[..8], &compact[8..], hex::encode(rnd))
}

fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

impl Store {
    pub fn start_run(&mut self, run_id: &str, start: &RunStart) -> Result<Record> {
        self.append(run_id, kind::RUN_START, "", &to_value(start))
    }

    pub fn record_host(&mut self, run_id: &str, result: &HostResult) -> Result<Record> {
        self.append(run_id, kind::HOST_RESULT, &result.host, &to_value(result))
    }

    /// Several host results of one run, in order, in one transaction (see
    /// [`Store::append_many`]).
    pub fn record_hosts(&mut self, run_id: &str, results: &[HostResult]) -> Result<Vec<Record>> {
        let items: Vec<(&str, &str, Value)> = results
            .iter()
            .map(|r| (kind::HOST_RESULT, r.host.as_str(), to_value(r)))
            .collect();
        self.append_many(run_id, &items)
    }

    pub fn end_run(&mut self, run_id: &str, end: &RunEnd) -> Result<Record> {
        self.append(run_id, kind::RUN_END, "", &to_value(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scrubbing_masks_secrets_everywhere() {
        let mut s = Scrubber::default();
        s.add("hunter2");
        s.add("4242");
        let mut v = json!({"msg": "pw is hunter2!", "hunter2": [1, 4242, "x4242"], "ok": true});
        s.scrub(&mut v);
        assert_eq!(
            v,
            json!({"msg": "pw is ********!", "********": [1, "********", "x********"], "ok": true})
        );
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id();
        assert_eq!(a.len(), 22, "{a}");
        assert!(a.starts_with("20"));
        assert_ne!(a, new_run_id());
    }

    #[test]
    fn secret_names() {
        for n in [
            "db_password",
            "ansible_become_pass",
            "API_TOKEN",
            "aws_secret_key",
        ] {
            assert!(secret_looking(n), "{n}");
        }
        for n in ["user", "port", "package"] {
            assert!(!secret_looking(n), "{n}");
        }
    }
}
