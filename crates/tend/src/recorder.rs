//! The audit writer: a consumer of the run's event stream beside the printer. It records the
//! run's start, each host's result as the host finishes a play, and the end.
//!
//! Failure policy:
//! - A store named with `--store`/`TEND_STORE` that cannot be opened, a store of a newer schema,
//!   a first record that cannot be written, or a host leased by another run: tend stops before
//!   anything runs (Terraform's rule for its state: what you configured is a promise).
//! - The default store (`.tend/history.db` beside the playbook) that cannot be created — a
//!   read-only checkout, a playbook directory of another user: tend warns loudly and runs
//!   without history (teams that rely on the audit trail name their store).
//! - A write that fails during the run does not stop the run (stopping half-way would leave
//!   hosts half-changed): tend warns at once, keeps going, and ends with exit status 1 if the
//!   run would otherwise have succeeded, saying the history of this run is incomplete.
//! - Renewing the run's leases is a write like the others: a failure warns and the run goes
//!   on (the hosts' own locks still keep other runs out).
//!
//! Writing: host results go to a writer thread, which commits whatever has queued up (at most
//! [`BATCH_MAX`] records) in one transaction — group commit: one fsync for many hosts when
//! they finish together, no added delay when they do not. The chain order is the order the
//! results arrived in. The same thread renews the run's leases every [`LEASE_RENEW`].

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tend_proto::Event;
use tend_store::{
    HostResult, RunEnd, RunKind, RunStart, RunStatus, Store, StoreError, StoreSpec, TaskRecord,
};

use crate::cli::ApplyArgs;

/// A run lease lasts this long unless its run renews it: a run that died frees its hosts within
/// minutes (or at once with `tend unlock`).
const LEASE_TTL: Duration = Duration::from_secs(5 * 60);

/// How often a live run renews its leases (well inside [`LEASE_TTL`]).
const LEASE_RENEW: Duration = Duration::from_secs(60);

/// At most this many host results in one transaction.
const BATCH_MAX: usize = 256;

/// Secret-looking variables shorter than this are not masked everywhere (masking `16` in every
/// result would destroy the record, and such values protect nothing).
const MIN_SECRET_LEN: usize = 4;

pub struct Recorder {
    run_id: String,
    play: String,
    pending: HashMap<String, Vec<TaskRecord>>,
    /// Host results on their way to the writer thread.
    queue: Option<mpsc::Sender<HostResult>>,
    writer: Option<JoinHandle<Writer>>,
}

/// The writer thread's side: the store, and what went wrong so far.
struct Writer {
    store: Store,
    run_id: String,
    /// How many hosts the run leased (0: none, nothing to renew).
    leases: usize,
    ttl: Duration,
    renew_every: Duration,
    /// The first write that failed.
    failed: Option<StoreError>,
    /// A renewal warning was shown (say it once, not every minute).
    renew_warned: bool,
}

impl Writer {
    fn spawn(self, rx: mpsc::Receiver<HostResult>) -> std::io::Result<JoinHandle<Writer>> {
        std::thread::Builder::new()
            .name("tend-history".into())
            .spawn(move || self.serve(rx))
    }

    fn serve(mut self, rx: mpsc::Receiver<HostResult>) -> Writer {
        let mut next_renew = Instant::now() + self.renew_every;
        let mut batch = Vec::with_capacity(BATCH_MAX);
        loop {
            let wait = next_renew.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(first) => {
                    batch.push(first);
                    while batch.len() < BATCH_MAX {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = self.store.record_hosts(&self.run_id, &batch) {
                        self.write_failed(e);
                    }
                    batch.clear();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return self,
            }
            if self.leases > 0 && Instant::now() >= next_renew {
                self.renew();
                next_renew = Instant::now() + self.renew_every;
            }
        }
    }

    fn renew(&mut self) {
        let problem = match self.store.renew_leases(&self.run_id, self.ttl) {
            Ok(n) if n as usize >= self.leases => return,
            Ok(n) => format!(
                "{} of this run's {} host leases expired before they could be renewed; another run may take those hosts in the history store (their host locks still hold)",
                self.leases - n as usize,
                self.leases
            ),
            Err(e) => format!("cannot renew this run's host leases ({e}); the run goes on"),
        };
        if !self.renew_warned {
            self.renew_warned = true;
            let _ = writeln!(std::io::stderr(), "[WARNING]: {problem}");
        }
    }

    fn write_failed(&mut self, e: StoreError) {
        if self.failed.is_none() {
            let _ = writeln!(
                std::io::stderr(),
                "[WARNING]: cannot record to the history ({e}); the run goes on, its history will be incomplete"
            );
            self.failed = Some(e);
        }
    }
}

/// Which store a command uses: `--store`/`TEND_STORE`, else `default`.
pub fn store_spec(arg: &Option<String>, default: StoreSpec) -> StoreSpec {
    match arg.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => StoreSpec::parse(s),
        None => default,
    }
}

/// The user tend runs as.
pub fn user() -> String {
    tend_resources::fsutil::user_name(rustix::process::getuid().as_raw())
}

/// The controller's host name (the kernel's, as `uname -n` prints it).
pub fn controller() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Every string in `v` (recursively) is a secret.
fn mark_all(store: &mut Store, v: &Value) {
    match v {
        Value::String(s) if s.len() >= MIN_SECRET_LEN => store.mark_secret(s),
        Value::Array(a) => a.iter().for_each(|x| mark_all(store, x)),
        Value::Object(m) => m.values().for_each(|x| mark_all(store, x)),
        _ => {}
    }
}

/// Values under secret-looking names, at any depth.
fn mark_secret_vars(store: &mut Store, vars: &serde_json::Map<String, Value>) {
    for (k, v) in vars {
        if tend_store::secret_looking(k) {
            mark_all(store, v);
        } else if let Value::Object(m) = v {
            mark_secret_vars(store, m);
        }
    }
}

/// The command line as recorded: `--store` URLs without password, secret-looking `-e` values
/// masked (file names such as `--vault-password-file F` or `-e @F` are kept: they are not the
/// secret).
pub fn recorded_argv(argv: &[String]) -> Vec<String> {
    let mask_extra = |v: &str| -> String {
        if v.starts_with('@') {
            return v.to_string();
        }
        if v.trim_start().starts_with(['{', '[']) {
            return match serde_json::from_str::<Value>(v) {
                Ok(mut j) => {
                    mask_keys(&mut j);
                    j.to_string()
                }
                Err(_) if tend_store::secret_looking(v) => tend_store::MASK.into(),
                Err(_) => v.to_string(),
            };
        }
        v.split(' ')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if tend_store::secret_looking(k) => {
                    format!("{k}={}", tend_store::MASK)
                }
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = Vec::with_capacity(argv.len());
    let mut next: Option<&str> = None;
    for a in argv {
        if let Some(opt) = next.take() {
            out.push(match opt {
                "-e" => mask_extra(a),
                _ => tend_store::redact_url(a),
            });
            continue;
        }
        if a == "-e" || a == "--extra-vars" {
            next = Some("-e");
        } else if a == "--store" {
            next = Some("--store");
        }
        let shown = if let Some(v) = a.strip_prefix("--extra-vars=") {
            format!("--extra-vars={}", mask_extra(v))
        } else if let Some(v) = a.strip_prefix("-e").filter(|v| !v.is_empty()) {
            format!("-e{}", mask_extra(v))
        } else if let Some(v) = a.strip_prefix("--store=") {
            format!("--store={}", tend_store::redact_url(v))
        } else {
            a.clone()
        };
        out.push(shown);
    }
    out
}

fn mask_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if tend_store::secret_looking(k) {
                    *x = Value::String(tend_store::MASK.into());
                } else {
                    mask_keys(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_keys),
        _ => {}
    }
}

impl Recorder {
    /// Opens the store, takes the run's leases (unless in check mode) and records the start of
    /// run `run_id`. Any error here means nothing runs.
    pub fn start(
        prep: &tend_engine::Prepared,
        args: &ApplyArgs,
        run_id: &str,
    ) -> Result<Option<Recorder>, StoreError> {
        Self::start_as(prep, args, run_id, RunKind::Apply, None)
    }

    /// [`Recorder::start`] for a run of `kind`; `plan`: the id of the plan `tend apply PLAN`
    /// applies, recorded in the start, and refused (after the leases are taken, so two applies
    /// of one plan cannot both pass) when a run already applied it.
    pub fn start_as(
        prep: &tend_engine::Prepared,
        args: &ApplyArgs,
        run_id: &str,
        kind: RunKind,
        plan: Option<&str>,
    ) -> Result<Option<Recorder>, StoreError> {
        Self::start_with(prep, args, run_id, kind, plan, None)
    }

    /// [`Recorder::start_as`] for `tend rollback`: a `rollback` run that names the run it undoes.
    pub fn start_rollback(
        prep: &tend_engine::Prepared,
        args: &ApplyArgs,
        run_id: &str,
        of: &str,
    ) -> Result<Option<Recorder>, StoreError> {
        Self::start_with(prep, args, run_id, RunKind::Rollback, None, Some(of))
    }

    /// [`Recorder::start_as`] for `tend compliance`: a `compliance` run, which only reads (no
    /// leases: `args.check` is set).
    pub fn start_compliance(
        prep: &tend_engine::Prepared,
        args: &ApplyArgs,
        run_id: &str,
    ) -> Result<Option<Recorder>, StoreError> {
        Self::start_with(prep, args, run_id, RunKind::Compliance, None, None)
    }

    fn start_with(
        prep: &tend_engine::Prepared,
        args: &ApplyArgs,
        run_id: &str,
        kind: RunKind,
        plan: Option<&str>,
        rolls_back: Option<&str>,
    ) -> Result<Option<Recorder>, StoreError> {
        let spec = store_spec(&args.store.store, StoreSpec::beside(&args.playbook));
        let explicit = args
            .store
            .store
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty());
        let mut store = match Store::open(&spec) {
            Ok(s) => s,
            Err(e @ StoreError::Open { .. }) if !explicit => {
                let _ = writeln!(
                    std::io::stderr(),
                    "[WARNING]: this run is not recorded in the history: {e}; name a store with --store PATH|postgres://… (or TEND_STORE), or pass --no-history"
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };

        let hosts: Vec<String> = prep.hosts().into_iter().cloned().collect();
        if let Some(p) = &prep.settings.become_password {
            store.mark_secret(p.expose());
        }
        mark_secret_vars(&mut store, &prep.settings.extra_vars);
        for s in tend_lang::vault::revealed() {
            store.mark_secret(&s);
        }
        let mut groups = BTreeMap::new();
        for h in &hosts {
            mark_secret_vars(
                &mut store,
                &prep.inventory.host_vars(h, Some(&prep.playbook_vars)),
            );
            groups.insert(h.clone(), prep.inventory.group_names(h));
        }

        let run_id = run_id.to_string();
        let user = user();
        let leased = !args.check && !hosts.is_empty();
        let leases = if leased { hosts.len() } else { 0 };
        if leased {
            store.acquire_lease_wait(
                &hosts,
                &run_id,
                &user,
                LEASE_TTL,
                Duration::from_secs(args.lock_timeout),
            )?;
        }
        if let Some(plan) = plan {
            let applied = store.runs(&Default::default()).map(|runs| {
                runs.into_iter()
                    .find(|r| r.start.plan.as_deref() == Some(plan))
            });
            let refusal = match applied {
                Ok(Some(r)) => Some(StoreError::PlanApplied {
                    plan: plan.to_string(),
                    run: r.run_id,
                    by: format!("started {} by {}", r.start.started, r.start.user),
                }),
                Ok(None) => None,
                Err(e) => Some(e),
            };
            if let Some(e) = refusal {
                if leased {
                    let _ = store.release_leases(&run_id);
                }
                return Err(e);
            }
        }
        let playbook_dir = args
            .playbook
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let argv: Vec<String> = std::env::args().collect();
        let start = RunStart {
            kind,
            check: args.check,
            argv: recorded_argv(&argv),
            user: user.clone(),
            controller: controller(),
            started: tend_store::time::now(),
            playbook: Some(args.playbook.display().to_string()),
            git: tend_store::git::git_info(playbook_dir),
            hosts,
            groups,
            plan: plan.map(str::to_string),
            rolls_back: rolls_back.map(str::to_string),
        };
        if let Err(e) = store.start_run(&run_id, &start) {
            if leased {
                let _ = store.release_leases(&run_id);
            }
            return Err(e);
        }
        let writer = Writer {
            store,
            run_id: run_id.clone(),
            leases,
            ttl: LEASE_TTL,
            renew_every: LEASE_RENEW,
            failed: None,
            renew_warned: false,
        };
        Ok(Some(Recorder::with_writer(run_id, writer)?))
    }

    /// The id of the run being recorded.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Starts the writer thread. A thread that cannot start is like a first record that
    /// cannot be written: nothing runs (the leases are released).
    fn with_writer(run_id: String, writer: Writer) -> Result<Recorder, StoreError> {
        let (tx, rx) = mpsc::channel();
        let location = writer.store.location().to_string();
        match writer.spawn(rx) {
            Ok(handle) => Ok(Recorder {
                run_id,
                play: String::new(),
                pending: HashMap::new(),
                queue: Some(tx),
                writer: Some(handle),
            }),
            Err(e) => Err(StoreError::Backend {
                location,
                reason: format!("cannot start the history writer thread: {e}"),
            }),
        }
    }

    pub fn event(&mut self, e: &Event) {
        match e {
            Event::PlayStart { name, .. } => self.play = name.clone(),
            // A batch's health gate is recorded as its own part of the play.
            Event::HealthStart { name, .. } => self.play = format!("{name} (health)"),
            Event::TaskResult(r) => {
                self.pending
                    .entry(r.host.clone())
                    .or_default()
                    .push(TaskRecord {
                        name: r.task.clone(),
                        loc: r.loc.to_string(),
                        status: serde_json::to_value(r.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        changed: r.status == tend_proto::ResultStatus::Changed,
                        handler: r.handler,
                        ignored: r.ignored,
                        // A no_log result arrives censored (the agent drops its diffs too);
                        // its diffs would tell the secret all the same.
                        diffs: if r.result.get("censored").is_some() {
                            Vec::new()
                        } else {
                            r.diffs.clone()
                        },
                        result: r.result.clone(),
                    });
            }
            Event::HostDone { host, stats } => {
                let result = HostResult {
                    host: host.clone(),
                    play: self.play.clone(),
                    stats: *stats,
                    tasks: self.pending.remove(host).unwrap_or_default(),
                };
                // The writer only goes away by panicking; finish() reports that.
                if let Some(q) = &self.queue {
                    let _ = q.send(result);
                }
            }
            Event::TaskStart { .. }
            | Event::ItemResult { .. }
            | Event::Warning { .. }
            | Event::PlaySkipped { .. } => {}
        }
    }

    /// Waits for the writer to write every host result, records the end (`summary` is `None`
    /// when the run itself crashed) and releases the leases. `Err` when any record of this run
    /// could not be written.
    pub fn finish(
        self,
        summary: Option<&tend_engine::Summary>,
    ) -> Result<(), (String, StoreError)> {
        self.finish_with_policy(summary, None)
    }

    /// [`Recorder::finish`], with what the policies said about the run's plan.
    pub fn finish_with_policy(
        self,
        summary: Option<&tend_engine::Summary>,
        policy: Option<Value>,
    ) -> Result<(), (String, StoreError)> {
        let mut end = run_end(summary, summary.map_or(250, |s| s.exit_code()));
        // A run the policies blocked (a denied plan) exits 1 whatever its hosts did.
        let blocked = policy.as_ref().is_some_and(|p| {
            p.get("error").is_some()
                || p.get("deny")
                    .and_then(Value::as_array)
                    .is_some_and(|d| !d.is_empty())
        });
        if blocked && end.exit_code == 0 {
            end.exit_code = 1;
        }
        end.policy = policy;
        self.end(end)
    }

    /// Ends a `compliance` run: its verdicts (`policy`, with `hosts`) and its exit status.
    pub fn finish_compliance(
        self,
        summary: Option<&tend_engine::Summary>,
        policy: Value,
        exit_code: i32,
    ) -> Result<(), (String, StoreError)> {
        let mut end = run_end(summary, exit_code);
        end.policy = Some(policy);
        self.end(end)
    }

    /// Ends a run the policies blocked before anything ran: an `error` run that changed
    /// nothing, with the findings.
    pub fn finish_blocked(self, policy: Value, why: &str) -> Result<(), (String, StoreError)> {
        let end = RunEnd {
            status: RunStatus::Error,
            error: Some(why.to_string()),
            policy: Some(policy),
            ..RunEnd::new(BTreeMap::new(), 1)
        };
        self.end(end)
    }

    fn end(mut self, end: RunEnd) -> Result<(), (String, StoreError)> {
        drop(self.queue.take());
        let joined = self.writer.take().map(JoinHandle::join);
        let Some(Ok(mut w)) = joined else {
            return Err((
                self.run_id,
                StoreError::Backend {
                    location: String::from("(history writer)"),
                    reason: "the history writer thread stopped unexpectedly".into(),
                },
            ));
        };
        if let Err(e) = w.store.end_run(&self.run_id, &end) {
            w.write_failed(e);
        }
        if w.leases > 0 {
            if let Err(e) = w.store.release_leases(&self.run_id) {
                w.write_failed(e);
            }
        }
        match w.failed {
            Some(e) => Err((self.run_id, e)),
            None => Ok(()),
        }
    }
}

/// A run's end record: each host's counters, or (`summary` is `None`: the run itself crashed)
/// an `error` run.
fn run_end(summary: Option<&tend_engine::Summary>, exit_code: i32) -> RunEnd {
    match summary {
        Some(s) => RunEnd::new(
            s.stats.iter().map(|(h, st)| (h.clone(), *st)).collect(),
            exit_code,
        ),
        None => RunEnd {
            status: RunStatus::Error,
            error: Some("the run stopped unexpectedly (internal error)".into()),
            ..RunEnd::new(BTreeMap::new(), exit_code)
        },
    }
}

/// Says that run `run` finished but a write of its history failed (`Recorder::finish`'s error).
pub fn report_incomplete(run: &str, e: &StoreError) {
    let _ = writeln!(
        std::io::stderr(),
        "error: run {run} finished, but its history is incomplete: {e}\nhint: `tend audit verify` shows what the store holds"
    );
}

/// Every value that must not be shown: the become password, and values of secret-looking
/// variables (extra vars, inventory and playbook variables), as the audit writer masks them.
pub fn secret_scrubber(prep: &tend_engine::Prepared) -> tend_store::Scrubber {
    use tend_store::Scrubber;
    fn all(s: &mut Scrubber, v: &Value) {
        match v {
            Value::String(x) if x.len() >= MIN_SECRET_LEN => s.add(x),
            Value::Array(a) => a.iter().for_each(|x| all(s, x)),
            Value::Object(m) => m.values().for_each(|x| all(s, x)),
            _ => {}
        }
    }
    fn named(s: &mut Scrubber, vars: &serde_json::Map<String, Value>) {
        for (k, v) in vars {
            if tend_store::secret_looking(k) {
                all(s, v);
            } else if let Value::Object(m) = v {
                named(s, m);
            }
        }
    }
    let mut s = Scrubber::default();
    if let Some(p) = &prep.settings.become_password {
        s.add(p.expose());
    }
    named(&mut s, &prep.settings.extra_vars);
    for play in &prep.playbook.plays {
        named(&mut s, &play.vars);
    }
    for h in prep.hosts() {
        named(
            &mut s,
            &prep.inventory.host_vars(h, Some(&prep.playbook_vars)),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    /// The writer thread renews the run's leases while it lives (another run cannot take the
    /// hosts, well past one TTL); once it is gone (the run died), they expire within a TTL.
    #[test]
    fn the_writer_renews_leases_until_it_stops() {
        let d = tempfile::tempdir().unwrap();
        let spec = StoreSpec::Sqlite(d.path().join("history.db"));
        let hosts = vec!["web1".to_string()];
        let ttl = Duration::from_millis(800);
        let mut store = Store::open(&spec).unwrap();
        store.acquire_lease(&hosts, "r1", "alice", ttl).unwrap();
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            store,
            run_id: "r1".into(),
            leases: 1,
            ttl,
            renew_every: Duration::from_millis(200),
            failed: None,
            renew_warned: false,
        }
        .spawn(rx)
        .unwrap();
        let mut other = Store::open(&spec).unwrap();
        let start = Instant::now();
        while start.elapsed() < ttl * 3 {
            match other.acquire_lease(&hosts, "r2", "bob", ttl) {
                Err(StoreError::Leased(h)) => assert_eq!(h.run_id, "r1"),
                got => panic!(
                    "the renewed lease was taken after {:?}: {got:?}",
                    start.elapsed()
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(tx);
        let w = writer.join().unwrap();
        assert!(w.failed.is_none());
        assert!(other.acquire_lease(&hosts, "r2", "bob", ttl).is_err());
        std::thread::sleep(ttl + Duration::from_millis(100));
        other.acquire_lease(&hosts, "r2", "bob", ttl).unwrap();
    }

    #[test]
    fn recorded_command_lines_hide_secrets_not_file_names() {
        let got = recorded_argv(&argv(&[
            "tend",
            "apply",
            "site.yml",
            "-e",
            "db_password=hunter2 port=80",
            "--extra-vars={\"api_token\": \"t0k\", \"x\": 1}",
            "-e@vault.yml",
            "--vault-password-file",
            "pw.txt",
            "--store",
            "postgres://u:pw@db/h",
        ]));
        assert_eq!(
            got,
            argv(&[
                "tend",
                "apply",
                "site.yml",
                "-e",
                "db_password=******** port=80",
                "--extra-vars={\"api_token\":\"********\",\"x\":1}",
                "-e@vault.yml",
                "--vault-password-file",
                "pw.txt",
                "--store",
                "postgres://u:***@db/h",
            ])
        );
    }
}
