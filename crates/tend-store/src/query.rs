//! History read back from the chain: the list of runs and one run in full.

use std::collections::BTreeMap;

use serde::Serialize;
use tend_proto::HostStats;

use crate::chain::{kind, Record, RecordFilter};
use crate::records::{HostResult, RunEnd, RunKind, RunStart};
use crate::{time, Result, Store, StoreError};

/// `tend history` filters; all must match.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// The run targeted this host.
    pub host: Option<String>,
    /// succeeded, failed, unreachable, error, or `unfinished` (no end recorded).
    pub status: Option<String>,
    pub kind: Option<RunKind>,
    /// Started at or after (a stored-format timestamp, see [`time::bound`]).
    pub since: Option<String>,
    /// Started before.
    pub until: Option<String>,
}

pub const STATUSES: &[&str] = &["succeeded", "failed", "unreachable", "error", "unfinished"];

impl RunFilter {
    /// Checks the values a person typed; errors say what is accepted.
    pub fn check(&self) -> Result<()> {
        if let Some(s) = &self.status {
            if !STATUSES.contains(&s.as_str()) {
                return Err(StoreError::BadFilter(format!(
                    "unknown status `{s}`: use one of {}",
                    STATUSES.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// One line of `tend history`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    /// seq of its run_start record.
    pub seq: i64,
    pub start: RunStart,
    /// `None`: no end recorded (running, interrupted, or its end deleted).
    pub end: Option<RunEnd>,
}

impl RunSummary {
    pub fn status(&self) -> &'static str {
        self.end
            .as_ref()
            .map_or("unfinished", |e| e.status.as_str())
    }

    /// Seconds from start to end.
    pub fn duration(&self) -> Option<f64> {
        let end = self.end.as_ref()?;
        Some((time::parse(&end.ended)? - time::parse(&self.start.started)?) as f64 / 1000.0)
    }

    fn matches(&self, f: &RunFilter) -> bool {
        f.host
            .as_ref()
            .is_none_or(|h| self.start.hosts.iter().any(|x| x == h))
            && f.status.as_ref().is_none_or(|s| self.status() == s)
            && f.kind.is_none_or(|k| self.start.kind == k)
            && f.since
                .as_ref()
                .is_none_or(|s| self.start.started.as_str() >= s.as_str())
            && f.until
                .as_ref()
                .is_none_or(|u| self.start.started.as_str() < u.as_str())
    }
}

/// `tend history show`: the run and what each host did.
#[derive(Clone, Debug, Serialize)]
pub struct RunDetail {
    pub summary: RunSummary,
    /// In the order hosts finished (one per host and play).
    pub hosts: Vec<HostResult>,
    /// Hand unlocks of this run's leases.
    pub unlocks: Vec<serde_json::Value>,
}

impl RunDetail {
    /// Each host's counters (from the end record, else summed from its results).
    pub fn host_stats(&self) -> BTreeMap<String, HostStats> {
        if let Some(e) = &self.summary.end {
            return e.hosts.clone();
        }
        let mut out: BTreeMap<String, HostStats> = BTreeMap::new();
        for h in &self.hosts {
            out.entry(h.host.clone()).or_default().add(&h.stats);
        }
        out
    }
}

impl Store {
    fn parse<T: serde::de::DeserializeOwned>(&self, r: &Record) -> Result<T> {
        serde_json::from_str(&r.body).map_err(|e| StoreError::BadRecord {
            location: self.location.clone(),
            seq: r.seq,
            reason: e.to_string(),
        })
    }

    /// Every run (its start and end records), oldest first.
    pub(crate) fn all_runs(&mut self) -> Result<Vec<RunSummary>> {
        let records = self.records(&RecordFilter {
            kinds: &[kind::RUN_START, kind::RUN_END],
            run_id: None,
        })?;
        let mut runs: Vec<RunSummary> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut ends: BTreeMap<String, RunEnd> = BTreeMap::new();
        for r in &records {
            match r.kind.as_str() {
                kind::RUN_START => {
                    let start: RunStart = self.parse(r)?;
                    index.insert(r.run_id.clone(), runs.len());
                    runs.push(RunSummary {
                        run_id: r.run_id.clone(),
                        seq: r.seq,
                        start,
                        end: None,
                    });
                }
                _ => {
                    ends.insert(r.run_id.clone(), self.parse(r)?);
                }
            }
        }
        for (run, end) in ends {
            if let Some(&i) = index.get(&run) {
                runs[i].end = Some(end);
            }
        }
        Ok(runs)
    }

    /// Runs matching `filter`, oldest first.
    pub fn runs(&mut self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        filter.check()?;
        Ok(self
            .all_runs()?
            .into_iter()
            .filter(|r| r.matches(filter))
            .collect())
    }

    /// The run whose id is `id` or starts with it.
    pub fn run(&mut self, id: &str) -> Result<RunDetail> {
        let runs = self.all_runs()?;
        let exact = runs.iter().position(|r| r.run_id == id);
        let found: Vec<usize> = match exact {
            Some(i) => vec![i],
            None => runs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.run_id.starts_with(id))
                .map(|(i, _)| i)
                .collect(),
        };
        let i = match found.as_slice() {
            [] => return Err(StoreError::NoRun(id.to_string())),
            [i] => *i,
            many => {
                return Err(StoreError::AmbiguousRun {
                    prefix: id.to_string(),
                    runs: many.iter().map(|&i| runs[i].run_id.clone()).collect(),
                })
            }
        };
        let summary = runs.into_iter().nth(i).expect("index from the same list");
        let records = self.records(&RecordFilter {
            kinds: &[kind::HOST_RESULT, kind::UNLOCK],
            run_id: Some(&summary.run_id),
        })?;
        let mut hosts = Vec::new();
        let mut unlocks = Vec::new();
        for r in &records {
            if r.kind == kind::HOST_RESULT {
                hosts.push(self.parse(r)?);
            } else {
                unlocks.push(self.parse(r)?);
            }
        }
        Ok(RunDetail {
            summary,
            hosts,
            unlocks,
        })
    }
}
