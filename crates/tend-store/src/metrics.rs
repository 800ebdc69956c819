//! Metrics computed from the history (run starts and ends only), per UTC day, per inventory
//! group (as recorded in each run's start) and in total.
//!
//! Definitions (a "host run" is one host in one finished run; a host run is *clean* when it
//! had no failed task and was not unreachable):
//!
//! - **runs**, **run success rate**: finished runs that touched the bucket, and the share whose
//!   host runs in the bucket were all clean (a day's bucket holds every host of the run).
//! - **deployments** (deployment frequency): finished `apply` runs, not in check mode, clean in
//!   the bucket and with at least one change there.
//! - **drift checks**, **drift detected** (drift frequency): host runs of `drift` runs, and those
//!   that found a change to make.
//! - **compliance rate**: of the hosts whose *last* drift check in the bucket is counted, the
//!   share found in state.
//! - **policy checks**, **policy compliance rate**: host results of `compliance` runs (the
//!   observed state judged by compliance policies; a host that could not be judged is not
//!   counted), and of the hosts whose *last* such check in the bucket is counted, the share no
//!   `deny` rule held for.
//! - **provisioning time**: for each host, from the start of the first run that named it to the
//!   end of its first clean, changing, non-check `apply`/`fix` run — counted in the bucket of
//!   that converge.
//! - **MTTR**: from a drift run that found a host drifted to the end of the next run that put
//!   it right (a clean non-check `apply`/`fix`, or a `drift` run that finds it in state) —
//!   counted in the bucket of the correction.
//!
//! Unfinished runs count nowhere but `runs_unfinished`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tend_proto::HostStats;

use crate::records::{RunKind, RunStatus};
use crate::{time, Result, Store};

/// One bucket's figures. Rates and averages are `None` when nothing was there to measure.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Bucket {
    pub runs: u64,
    pub runs_succeeded: u64,
    pub runs_unfinished: u64,
    pub run_success_rate: Option<f64>,
    pub deployments: u64,
    pub drift_checks: u64,
    pub drift_detected: u64,
    pub hosts_checked: u64,
    pub hosts_compliant: u64,
    pub compliance_rate: Option<f64>,
    pub policy_checks: u64,
    pub policy_violations: u64,
    pub hosts_policy_checked: u64,
    pub hosts_policy_compliant: u64,
    pub policy_compliance_rate: Option<f64>,
    pub hosts_provisioned: u64,
    pub provisioning_seconds_avg: Option<f64>,
    pub drift_corrected: u64,
    pub mttr_seconds_avg: Option<f64>,
    #[serde(skip)]
    last_check: BTreeMap<String, bool>,
    #[serde(skip)]
    last_policy_check: BTreeMap<String, bool>,
    #[serde(skip)]
    provisioning_sum: f64,
    #[serde(skip)]
    repair_sum: f64,
}

impl Bucket {
    fn finish(&mut self) {
        /// `part / whole`, when there is a whole.
        fn ratio(part: f64, whole: u64) -> Option<f64> {
            (whole > 0).then(|| part / whole as f64)
        }
        /// Hosts at their last check, and those found right.
        fn last(checks: &BTreeMap<String, bool>) -> (u64, u64) {
            let ok = checks.values().filter(|&&ok| ok).count();
            (checks.len() as u64, ok as u64)
        }
        let finished = self.runs - self.runs_unfinished;
        self.run_success_rate = ratio(self.runs_succeeded as f64, finished);
        (self.hosts_checked, self.hosts_compliant) = last(&self.last_check);
        self.compliance_rate = ratio(self.hosts_compliant as f64, self.hosts_checked);
        (self.hosts_policy_checked, self.hosts_policy_compliant) = last(&self.last_policy_check);
        self.policy_compliance_rate = ratio(
            self.hosts_policy_compliant as f64,
            self.hosts_policy_checked,
        );
        self.provisioning_seconds_avg = ratio(self.provisioning_sum, self.hosts_provisioned);
        self.mttr_seconds_avg = ratio(self.repair_sum, self.drift_corrected);
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub total: Bucket,
    /// Keyed by UTC day, `2025-01-02`.
    pub days: BTreeMap<String, Bucket>,
    /// Keyed by inventory group.
    pub groups: BTreeMap<String, Bucket>,
}

fn clean(s: &HostStats) -> bool {
    s.failed == 0 && s.unreachable == 0
}

fn secs(from: &str, to: &str) -> Option<f64> {
    Some((time::parse(to)? - time::parse(from)?) as f64 / 1000.0)
}

impl Metrics {
    /// The buckets a host run counts in: total, its day, its groups.
    fn buckets<'a>(&'a mut self, day: &str, groups: &[String]) -> Vec<&'a mut Bucket> {
        let Metrics {
            total,
            days,
            groups: g,
        } = self;
        let mut wanted: BTreeSet<&str> = groups.iter().map(String::as_str).collect();
        wanted.remove("all");
        for name in &wanted {
            g.entry(name.to_string()).or_default();
        }
        let day_bucket = days.entry(day.to_string()).or_default();
        let mut out = vec![total, day_bucket];
        out.extend(
            g.iter_mut()
                .filter(|(k, _)| wanted.contains(k.as_str()))
                .map(|(_, b)| b),
        );
        out
    }
}

impl Store {
    /// Every metric, from the whole history.
    pub fn metrics(&mut self) -> Result<Metrics> {
        let runs = self.all_runs()?;
        let mut m = Metrics::default();
        // Per host: first seen, whether provisioned, open drift incident (detected at).
        let mut first_seen: BTreeMap<String, String> = BTreeMap::new();
        let mut provisioned: BTreeSet<String> = BTreeSet::new();
        let mut open_drift: BTreeMap<String, String> = BTreeMap::new();
        for run in &runs {
            let start = &run.start;
            for h in &start.hosts {
                first_seen
                    .entry(h.clone())
                    .or_insert_with(|| start.started.clone());
            }
            let no_groups = Vec::new();
            let groups_of = |h: &str| start.groups.get(h).unwrap_or(&no_groups);
            let Some(end) = &run.end else {
                let day = time::day(&start.started).to_string();
                let all_groups: Vec<String> = start
                    .hosts
                    .iter()
                    .flat_map(|h| groups_of(h).iter().cloned())
                    .collect();
                for b in m.buckets(&day, &all_groups) {
                    b.runs += 1;
                    b.runs_unfinished += 1;
                }
                continue;
            };
            let day = time::day(&end.ended).to_string();
            let errored = end.status == RunStatus::Error;
            let applying = matches!(start.kind, RunKind::Apply | RunKind::Fix) && !start.check;

            // Runs, success and deployments, per bucket over the hosts in it.
            let mut per_bucket: BTreeMap<Option<String>, (bool, bool)> = BTreeMap::new();
            per_bucket.insert(None, (true, false));
            for (h, s) in &end.hosts {
                let entries = std::iter::once(None).chain(
                    groups_of(h)
                        .iter()
                        .filter(|g| *g != "all")
                        .cloned()
                        .map(Some),
                );
                for key in entries {
                    let e = per_bucket.entry(key).or_insert((true, false));
                    e.0 &= clean(s);
                    e.1 |= s.changed > 0;
                }
            }
            for (key, (ok, changed)) in per_bucket {
                let ok = ok && !errored;
                let deploy = ok && changed && start.kind == RunKind::Apply && !start.check;
                let targets: Vec<&mut Bucket> = match &key {
                    None => vec![&mut m.total, m.days.entry(day.clone()).or_default()],
                    Some(g) => vec![m.groups.entry(g.clone()).or_default()],
                };
                for b in targets {
                    b.runs += 1;
                    b.runs_succeeded += u64::from(ok);
                    b.deployments += u64::from(deploy);
                }
            }

            // Per host: policy compliance, drift, provisioning, repairs.
            let verdicts = end
                .policy
                .as_ref()
                .and_then(|p| p.get("hosts"))
                .and_then(serde_json::Value::as_object);
            for (h, s) in &end.hosts {
                let groups = groups_of(h).clone();
                let verdict = verdicts
                    .and_then(|v| v.get(h))
                    .and_then(serde_json::Value::as_str);
                if let (RunKind::Compliance, Some(v @ ("compliant" | "non_compliant"))) =
                    (start.kind, verdict)
                {
                    let ok = v == "compliant";
                    for b in m.buckets(&day, &groups) {
                        b.policy_checks += 1;
                        b.policy_violations += u64::from(!ok);
                        b.last_policy_check.insert(h.clone(), ok);
                    }
                }
                if start.kind == RunKind::Drift && clean(s) {
                    let drifted = s.changed > 0;
                    for b in m.buckets(&day, &groups) {
                        b.drift_checks += 1;
                        b.drift_detected += u64::from(drifted);
                        b.last_check.insert(h.clone(), !drifted);
                    }
                    if drifted {
                        open_drift.entry(h.clone()).or_insert(end.ended.clone());
                    } else if let Some(at) = open_drift.remove(h) {
                        let d = secs(&at, &end.ended).unwrap_or(0.0);
                        for b in m.buckets(&day, &groups) {
                            b.drift_corrected += 1;
                            b.repair_sum += d;
                        }
                    }
                }
                if applying && clean(s) && !errored {
                    if let Some(at) = open_drift.remove(h) {
                        let d = secs(&at, &end.ended).unwrap_or(0.0);
                        for b in m.buckets(&day, &groups) {
                            b.drift_corrected += 1;
                            b.repair_sum += d;
                        }
                    }
                    if s.changed > 0 && !provisioned.contains(h) {
                        provisioned.insert(h.clone());
                        let from = first_seen.get(h).cloned().unwrap_or_default();
                        let d = secs(&from, &end.ended).unwrap_or(0.0);
                        for b in m.buckets(&day, &groups) {
                            b.hosts_provisioned += 1;
                            b.provisioning_sum += d;
                        }
                    }
                }
            }
        }
        m.total.finish();
        m.days.values_mut().for_each(Bucket::finish);
        m.groups.values_mut().for_each(Bucket::finish);
        Ok(m)
    }
}

/// The metrics as JSON.
pub fn to_json(m: &Metrics) -> serde_json::Value {
    serde_json::to_value(m).unwrap_or_default()
}

/// The metrics in the Prometheus text exposition format (version 0.0.4): one gauge family per
/// figure, a sample without labels for the total, one per `day` and one per `group`.
pub fn to_prometheus(m: &Metrics) -> String {
    type Get = fn(&Bucket) -> Option<f64>;
    let families: &[(&str, &str, Get)] = &[
        ("tend_runs", "Finished and unfinished runs.", |b| {
            Some(b.runs as f64)
        }),
        (
            "tend_runs_succeeded",
            "Runs without a failed or unreachable host.",
            |b| Some(b.runs_succeeded as f64),
        ),
        (
            "tend_run_success_ratio",
            "Succeeded runs over finished runs.",
            |b| b.run_success_rate,
        ),
        (
            "tend_deployments",
            "Clean non-check apply runs that changed something.",
            |b| Some(b.deployments as f64),
        ),
        ("tend_drift_checks", "Hosts checked by drift runs.", |b| {
            Some(b.drift_checks as f64)
        }),
        (
            "tend_drift_detected",
            "Drift checks that found a host drifted.",
            |b| Some(b.drift_detected as f64),
        ),
        (
            "tend_compliance_ratio",
            "Hosts in state at their last drift check.",
            |b| b.compliance_rate,
        ),
        (
            "tend_policy_checks",
            "Hosts judged by compliance policies.",
            |b| Some(b.policy_checks as f64),
        ),
        (
            "tend_policy_violations",
            "Policy checks where a deny rule held.",
            |b| Some(b.policy_violations as f64),
        ),
        (
            "tend_policy_compliance_ratio",
            "Hosts no deny rule held for at their last policy check.",
            |b| b.policy_compliance_rate,
        ),
        (
            "tend_hosts_provisioned",
            "Hosts that converged for the first time.",
            |b| Some(b.hosts_provisioned as f64),
        ),
        (
            "tend_provisioning_seconds_avg",
            "Average time from a host's first run to its first converge.",
            |b| b.provisioning_seconds_avg,
        ),
        ("tend_drift_corrected", "Drifted hosts put right.", |b| {
            Some(b.drift_corrected as f64)
        }),
        (
            "tend_mttr_seconds_avg",
            "Average time from drift detected to corrected.",
            |b| b.mttr_seconds_avg,
        ),
    ];
    let mut out = String::new();
    for (name, help, get) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        let mut sample = |labels: String, b: &Bucket| {
            if let Some(v) = get(b) {
                out.push_str(&format!("{name}{labels} {}\n", number(v)));
            }
        };
        sample(String::new(), &m.total);
        for (day, b) in &m.days {
            sample(format!("{{day=\"{}\"}}", label(day)), b);
        }
        for (group, b) in &m.groups {
            sample(format!("{{group=\"{}\"}}", label(group)), b);
        }
    }
    out
}

/// A label value escaped as the format wants: backslash, double quote, newline.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_help_type_and_escaped_labels() {
        let mut m = Metrics::default();
        m.total.runs = 3;
        m.total.run_success_rate = Some(2.0 / 3.0);
        m.groups.insert(
            "we\"b".into(),
            Bucket {
                runs: 1,
                ..Default::default()
            },
        );
        let text = to_prometheus(&m);
        assert!(text.contains("# HELP tend_runs Finished and unfinished runs.\n# TYPE tend_runs gauge\ntend_runs 3\ntend_runs{group=\"we\\\"b\"} 1\n"), "{text}");
        assert!(text.contains("tend_run_success_ratio 0.6666666666666666\n"));
        assert!(
            !text.contains("\ntend_mttr_seconds_avg "),
            "no sample without data"
        );
    }
}
