//! The controller side of a run: load and check every input before anything runs, compile one
//! [`Program`] per host and play, run the hosts (bounded by `forks`), and pass every event on.

pub mod batches;
mod bundle;
mod compile;
mod extra_vars;
pub mod graph;
mod health;
mod inputs;
mod peers;
mod remote;
pub mod rollback;
mod scrub;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use indexmap::IndexMap;
use tend_lang::inventory::{parse_limit, Inventory, VarsDirs};
use tend_lang::playbook::{self, Playbook};
use tend_lang::{Diag, Diags};
use tend_proto::{Event, HostState, HostStats, RunOptions, Secret, Vars};

pub use bundle::bundle_roots;
pub use compile::compile;
pub use extra_vars::parse_extra_vars;
pub use inputs::{input_digests, InputError};
pub use remote::RemoteSettings;
pub use scrub::EventScrubber;
pub use tend_transport::EmbeddedAgent;

/// Everything a run needs, resolved from the command line once.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub playbook: PathBuf,
    pub inventories: Vec<String>,
    pub extra_vars: Vars,
    pub limit: Option<String>,
    pub options: RunOptions,
    pub forks: usize,
    /// `-c/--connection`: the connection for hosts that do not set `ansible_connection`.
    pub connection: Option<String>,
    /// How SSH hosts are reached.
    pub remote: RemoteSettings,
    /// `-K/--ask-become-pass`: the password typed on the controller.
    pub become_password: Option<Secret>,
    /// `tend apply PLAN`: per host, the changes the plan holds (a host without an entry gets
    /// an empty guard: nothing may change there).
    pub guards: Option<std::collections::BTreeMap<String, tend_proto::PlanGuard>>,
    /// Runs that may change hosts lock each one for the whole run; `None` takes no lock.
    pub lock: Option<LockRequest>,
    /// `tend rollback`: every host's program restores this run's journal instead of running
    /// tasks (see [`rollback`]).
    pub undo: Option<tend_proto::Undo>,
}

/// The host lock a run takes on every host before its first task there (see
/// [`tend_agent::hostlock`]): held until the run ends, or until the process holding it dies.
#[derive(Clone, Debug)]
pub struct LockRequest {
    /// Who this run is, as the next run will be told.
    pub owner: tend_proto::wire::LockOwner,
    /// How long to wait for another run's lock (`--lock-timeout`).
    pub wait: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad input: nothing ran.
    #[error("{0}")]
    Input(Diags),
}

impl From<Diag> for EngineError {
    fn from(d: Diag) -> Self {
        EngineError::Input(Diags(vec![d]))
    }
}

impl From<Diags> for EngineError {
    fn from(d: Diags) -> Self {
        EngineError::Input(d)
    }
}

/// Inputs loaded and checked: a run can start.
pub struct Prepared {
    pub settings: Settings,
    pub playbook: Playbook,
    pub inventory: Inventory,
    pub playbook_vars: VarsDirs,
    /// For each play, the hosts it targets (pattern ∩ limit), in inventory order.
    pub play_hosts: Vec<Vec<String>>,
    /// What each play waits for (`needs:`, else the play before it).
    pub graph: graph::PlayGraph,
    pub warnings: Vec<String>,
    /// A one-module run (`tend ping`), not a playbook: no files to ship.
    pub adhoc: bool,
    /// Hosts reached over SSH, and how.
    ssh_targets: HashMap<String, tend_transport::SshTarget>,
    /// Vault-encrypted files decrypted for remote agents ([`tend_lang::vault::known`]).
    vault_known: std::collections::BTreeMap<String, Secret>,
}

impl Prepared {
    /// Every host the run targets, each once, in the order its plays first name it.
    pub fn hosts(&self) -> Vec<&String> {
        let mut seen = std::collections::HashSet::new();
        self.play_hosts
            .iter()
            .flatten()
            .filter(|h| seen.insert(*h))
            .collect()
    }
}

/// Loads inventory and playbook and checks everything that can be checked before running:
/// syntax, modules, handler names, host patterns.
pub fn prepare(settings: Settings) -> Result<Prepared, EngineError> {
    let inventory = Inventory::load(&settings.inventories)?;
    let playbook = playbook::load(&settings.playbook)?;
    prepare_with(settings, inventory, playbook, false)
}

/// One module on the hosts that match `pattern`, like `ansible PATTERN -m MODULE -a ARGS`:
/// a one-task play without fact gathering, checked and run like any playbook.
pub fn prepare_adhoc(
    settings: Settings,
    pattern: &str,
    module: &str,
    args: Vars,
) -> Result<Prepared, EngineError> {
    let loc = tend_proto::Loc::new("<command line>", 0, 0);
    let task = tend_proto::Task::module(module, module, args, loc);
    prepare_tasks(settings, pattern, "Ansible Ad-Hoc", false, vec![task])
}

/// A one-play run tend builds itself (`tend ping`, `tend rollback`, `tend compliance`): `tasks`
/// on the hosts that match `pattern`, gathering facts first when asked; checked and run like
/// any playbook.
pub fn prepare_tasks(
    mut settings: Settings,
    pattern: &str,
    name: &str,
    gather_facts: bool,
    tasks: Vec<tend_proto::Task>,
) -> Result<Prepared, EngineError> {
    let inventory = Inventory::load(&settings.inventories)?;
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let loc = tend_proto::Loc::new("<command line>", 0, 0);
    let play = playbook::Play {
        name: name.into(),
        loc,
        hosts: pattern.to_string(),
        gather_facts,
        vars: Vars::new(),
        vars_files: Vec::new(),
        dir: dir.clone(),
        roles: Vec::new(),
        tasks,
        handlers: Vec::new(),
        force_handlers: false,
        tags: Vec::new(),
        connection: None,
        rollout: Default::default(),
        health: Vec::new(),
        needs: None,
    };
    settings.playbook = dir.join("<adhoc>");
    let playbook = Playbook {
        path: settings.playbook.clone(),
        dir,
        plays: vec![play],
    };
    prepare_with(settings, inventory, playbook, true)
}

fn prepare_with(
    settings: Settings,
    inventory: Inventory,
    playbook: Playbook,
    adhoc: bool,
) -> Result<Prepared, EngineError> {
    let playbook_vars = tend_lang::inventory::load_vars_dirs(&playbook.dir)?;
    let mut warnings: Vec<String> = inventory.warnings().to_vec();
    let limit = match &settings.limit {
        Some(l) => Some(parse_limit(l)?),
        None => None,
    };
    let mut errors = Vec::new();
    let supported = tend_agent::supported_modules();
    let mut play_hosts = Vec::new();
    let mut ssh_targets: HashMap<String, tend_transport::SshTarget> = HashMap::new();
    let mut local_hosts: HashSet<String> = HashSet::new();
    for play in &playbook.plays {
        compile::check_play(play, &supported, &mut errors);
        compile::check_delegates(play, &inventory, &mut errors);
        let pattern = if tend_lang::Templar::is_template(&play.hosts) {
            render_pattern(&play.hosts, &settings.extra_vars)
                .map_err(|e| Diag::new(play.loc.clone(), e))?
        } else {
            play.hosts.clone()
        };
        match inventory.select(&pattern, limit.as_deref()) {
            Ok(sel) => {
                warnings.extend(sel.warnings);
                for h in &sel.hosts {
                    if ssh_targets.contains_key(h) || local_hosts.contains(h) {
                        continue;
                    }
                    let vars = inventory.host_vars(h, Some(&playbook_vars));
                    match connection_of(h, &vars, settings.connection.as_deref()).as_str() {
                        "local" => {
                            local_hosts.insert(h.clone());
                        }
                        "ssh" | "smart" => match remote::target_of(
                            h,
                            &vars,
                            &settings.extra_vars,
                            &settings.remote,
                            &play.loc,
                        ) {
                            Ok(t) => {
                                ssh_targets.insert(h.clone(), t);
                            }
                            Err(d) => errors.push(d),
                        },
                        conn => errors.push(
                            Diag::new(play.loc.clone(), format!("host `{h}` uses the `{conn}` connection, which tend does not support"))
                                .with_hint("tend reaches hosts with `ssh` (OpenSSH, the default) or `local`"),
                        ),
                    }
                }
                play_hosts.push(sel.hosts);
            }
            Err(e) => errors.push(e.at(play.loc.clone())),
        }
    }
    let graph = graph::PlayGraph::build(&playbook.plays).unwrap_or_else(|e| {
        errors.extend(e);
        Default::default()
    });
    if !errors.is_empty() {
        return Err(EngineError::Input(Diags(errors)));
    }
    // A host in several plays keeps its master connection between them.
    let mut plays_of: HashMap<&str, usize> = HashMap::new();
    for hosts in &play_hosts {
        for h in hosts {
            *plays_of.entry(h.as_str()).or_default() += 1;
        }
    }
    for (h, t) in ssh_targets.iter_mut() {
        t.persist = plays_of.get(h.as_str()).copied().unwrap_or(0) > 1;
    }
    let mut prep = Prepared {
        settings,
        playbook,
        inventory,
        playbook_vars,
        play_hosts,
        graph,
        warnings,
        adhoc,
        ssh_targets,
        vault_known: Default::default(),
    };
    if tend_lang::vault::has_secrets() {
        scrub::decrypt_ahead(&bundle_roots(&prep));
        if !prep.ssh_targets.is_empty() {
            prep.vault_known = tend_lang::vault::known();
        }
    }
    Ok(prep)
}

/// How tend reaches a host: its `ansible_connection`, else `-c`, else local for the names of
/// this machine (like Ansible's implicit localhost) and ssh for everything else.
fn connection_of(host: &str, vars: &Vars, cli: Option<&str>) -> String {
    if let Some(c) = vars.get("ansible_connection").and_then(|v| v.as_str()) {
        return c.to_string();
    }
    if let Some(c) = cli {
        return c.to_string();
    }
    if matches!(host, "localhost" | "127.0.0.1" | "::1") {
        "local".into()
    } else {
        "ssh".into()
    }
}

/// `hosts:` may use extra vars (`hosts: "{{ target }}"`).
fn render_pattern(pattern: &str, extra: &Vars) -> Result<String, String> {
    let t = tend_lang::Templar::new();
    let scope = tend_lang::Scope::new(&t, vec![tend_lang::Layer::from_map(extra, true)]);
    t.render_str(pattern, &scope)
        .map_err(|e| format!("cannot render hosts pattern: {e}"))
}

/// The result of a whole run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Per host, counters summed over plays, in the order hosts first appeared.
    pub stats: IndexMap<String, HostStats>,
    /// Why the rollout stopped before its end (`any_errors_fatal`, `max_fail_percentage`, a
    /// batch where every host failed), and the message printed.
    pub stopped: Option<(batches::Stop, String)>,
    /// Plays skipped because a play they need failed or was skipped (`needs:`), with why.
    pub skipped: Vec<(String, String)>,
}

impl Summary {
    /// ansible-playbook's exit status: 2 if a host failed (or `max_fail_percentage` or a
    /// health gate stopped the rollout, or a play was skipped for a failed `needs`), 4 if one
    /// was unreachable, else 0.
    pub fn exit_code(&self) -> i32 {
        let threshold = matches!(
            self.stopped,
            Some((
                batches::Stop::MaxFailPercentage | batches::Stop::HealthGate,
                _
            ))
        );
        if threshold || !self.skipped.is_empty() || self.stats.values().any(|s| s.failed > 0) {
            2
        } else if self.stats.values().any(|s| s.unreachable > 0) {
            4
        } else {
            0
        }
    }
}

/// Runs every play on its hosts. Events go to `tx`; compile errors of one host fail that host.
/// Every SSH host keeps one agent session for the whole run (so its lock spans every play);
/// the sessions end, and the locks with them, when the run ends.
pub fn run(prep: &Prepared, tx: &Sender<Event>) -> Summary {
    let remote = (!prep.ssh_targets.is_empty()).then(|| remote_context(prep, tx));
    let local = LocalLock::default();
    let fleet = peers::Fleet::new(prep, remote.as_ref(), tx);
    let summary = run_plays(prep, remote.as_ref(), &local, &fleet, tx);
    // A delegate's serving session and the host's own session share one master connection
    // (whichever came first is it, and it waits for the other): end them together.
    std::thread::scope(|s| {
        s.spawn(|| fleet.end());
        if let Some(Ok(r)) = &remote {
            r.end_sessions(prep.settings.forks);
        }
    });
    drop(fleet);
    if let Some(Ok(r)) = &remote {
        let targets: Vec<_> = r.targets.values().cloned().collect();
        tend_transport::close_masters(&targets, &r.opts, &r.control);
    }
    summary
}

/// The host lock of this machine, for the hosts that run here in-process (`connection:
/// local`): taken once, by the first such host, and shared by all of them (a second `flock`
/// of the same file from this process would wait for the first).
#[derive(Default)]
struct LocalLock(
    Mutex<Option<Result<tend_agent::hostlock::HostLock, tend_agent::hostlock::LockError>>>,
);

impl LocalLock {
    /// `Err` is the message to report for `host`.
    fn ensure(&self, settings: &Settings, host: &str) -> Result<(), String> {
        let Some(req) = &settings.lock else {
            return Ok(());
        };
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let got = slot.get_or_insert_with(|| {
            let cache = tend_agent::serve::default_cache_dir();
            let (dir, shared) = tend_agent::hostlock::lock_dir(&cache);
            tend_agent::hostlock::acquire(&dir, shared, &req.owner, req.wait)
        });
        match got {
            Ok(_) => Ok(()),
            Err(e) => {
                let note = match e {
                    tend_agent::hostlock::LockError::Busy { holder, .. } => {
                        tend_agent::hostlock::not_waited_note(holder.as_ref(), &req.owner, req.wait)
                    }
                    _ => "",
                };
                Err(format!("{}{note}", e.message(host)))
            }
        }
    }
}

/// `tend ssh-close`: asks the persistent master connections (`--ssh-persist`) of the hosts
/// that `pattern` selects to exit. Per SSH host, in inventory order, whether it had one.
pub fn close_persistent(
    settings: Settings,
    pattern: &str,
) -> Result<Vec<(String, bool)>, EngineError> {
    let prep = prepare_adhoc(settings, pattern, "ping", Vars::new())?;
    let control = tend_transport::ControlDir::persistent()
        .map_err(|e| Diag::new(tend_proto::Loc::new("<ssh-close>", 0, 0), e))?;
    let opts = prep.settings.remote.ssh_options();
    let targets: Vec<&tend_transport::SshTarget> = prep.play_hosts[0]
        .iter()
        .filter_map(|h| prep.ssh_targets.get(h))
        .collect();
    let closed = tend_transport::exit_masters(&targets, &opts, &control);
    Ok(targets.iter().map(|t| t.name.clone()).zip(closed).collect())
}

/// Everything SSH hosts share in a run: the agent to push, the sockets' directory, the bundle.
fn remote_context(prep: &Prepared, tx: &Sender<Event>) -> Result<remote::Remote, String> {
    let remote_settings = &prep.settings.remote;
    let agent = match (
        &remote_settings.agent_binary,
        &remote_settings.embedded_agent,
    ) {
        (Some(p), _) => tend_transport::AgentBinary::from_path(p).map_err(|e| {
            format!(
                "cannot read the agent binary {} (TEND_AGENT_BINARY): {e}",
                p.display()
            )
        })?,
        (None, Some(e)) => tend_transport::AgentBinary::embedded(e)?,
        (None, None) => tend_transport::AgentBinary::current()
            .map_err(|e| format!("cannot read the tend binary to push to hosts: {e}"))?,
    };
    let opts = prep.settings.remote.ssh_options();
    let control = remote::control_dir(&opts)?;
    // What the agents read as the controller's files: the playbook tree and its roles.
    let roots = bundle_roots(prep);
    let bundle = if roots.is_empty() {
        None
    } else {
        let b = tend_agent::bundle::Bundle::build(&roots)
            .map_err(|e| format!("cannot pack the playbook directory for the hosts: {e}"))?;
        for w in b.warnings() {
            let _ = tx.send(Event::Warning {
                host: None,
                msg: w.clone(),
            });
        }
        Some(b)
    };
    Ok(remote::Remote {
        agent,
        control,
        opts,
        targets: prep.ssh_targets.clone(),
        bundle,
        lock: prep.settings.lock.clone(),
        sessions: Default::default(),
    })
}

type RemoteCtx = Result<remote::Remote, String>;

/// Runs every play (see [`run_play`]) in the order of the play graph ([`graph::run`]): in file
/// order for a playbook without `needs`, where a play whose failures stop the rollout ends the
/// run.
fn run_plays(
    prep: &Prepared,
    remote: Option<&RemoteCtx>,
    local: &LocalLock,
    fleet: &peers::Fleet,
    tx: &Sender<Event>,
) -> Summary {
    let one = |idx: usize,
               excluded: &HashSet<String>,
               states: HashMap<String, HostState>,
               tx: &Sender<Event>| {
        run_play(prep, remote, local, fleet, idx, excluded, states, tx)
    };
    graph::run(
        &prep.graph,
        &prep.playbook.plays,
        &prep.play_hosts,
        tx,
        &one,
    )
}

/// Why a host leaves the plays after the one it failed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFailure {
    /// A task failed (not ignored, not rescued).
    Failed,
    Unreachable,
    /// It was still running when `any_errors_fatal` or `max_fail_percentage` stopped its
    /// batch: it leaves later plays, though its recap shows no failure.
    Stopped,
}

impl HostFailure {
    pub fn word(self) -> &'static str {
        match self {
            HostFailure::Failed => "failed",
            HostFailure::Unreachable => "unreachable",
            HostFailure::Stopped => "stopped",
        }
    }
}

/// What one play did.
#[derive(Debug, Default)]
pub(crate) struct PlayRun {
    /// Per host, this play's counters, in the order hosts first appeared in it.
    pub(crate) stats: IndexMap<String, HostStats>,
    /// Hosts that failed in this play (not those excluded before it), in the order they did.
    pub(crate) failed: Vec<(String, HostFailure)>,
    /// What each host that ran hands on to the next play.
    pub(crate) states: HashMap<String, HostState>,
    /// Set when the play's failures stopped the rollout.
    pub(crate) stopped: Option<(batches::Stop, String)>,
}

/// Runs one play, batch by batch (`serial`, `order`; see [`batches`]): each batch is the play
/// on its hosts only, handlers included, then the next batch. Hosts in `excluded` (they failed
/// or were unreachable earlier) and hosts that fail in a batch stay in later batches' counts
/// but run nothing more. A batch whose failures stop the rollout ends the play. `states`: what
/// the play's hosts bring from earlier plays (only theirs).
#[allow(clippy::too_many_arguments)]
fn run_play(
    prep: &Prepared,
    remote: Option<&RemoteCtx>,
    local: &LocalLock,
    fleet: &peers::Fleet,
    idx: usize,
    excluded: &HashSet<String>,
    mut states: HashMap<String, HostState>,
    tx: &Sender<Event>,
) -> PlayRun {
    let play = &prep.playbook.plays[idx];
    let mut out = PlayRun::default();
    let mut failed: HashSet<String> = excluded.clone();
    let rollout = &play.rollout;
    let ordered = batches::order_hosts(&prep.play_hosts[idx], rollout.order, &play.name);
    let batch_list = batches::split(&ordered, &rollout.serial);
    if batch_list.is_empty() {
        let _ = tx.send(Event::PlayStart {
            name: play.name.clone(),
            hosts: Vec::new(),
            batch: None,
        });
    }
    let of = batch_list.len();
    for (number, batch) in batch_list.into_iter().enumerate() {
        let hosts: Vec<String> = batch
            .iter()
            .filter(|h| !failed.contains(*h))
            .cloned()
            .collect();
        let _ = tx.send(Event::PlayStart {
            name: play.name.clone(),
            hosts: hosts.clone(),
            batch: Some(tend_proto::PlayBatch {
                number: number + 1,
                of,
                size: batch.len(),
            }),
        });
        for h in &hosts {
            out.stats.entry(h.clone()).or_default();
        }
        let mut outcome = batches::BatchOutcome {
            hosts: batch.len(),
            earlier: batch.len() - hosts.len(),
            ..Default::default()
        };
        let rule = tend_agent::StepRule {
            batch_size: batch.len(),
            any_errors_fatal: rollout.any_errors_fatal,
            max_fail_percentage: rollout.max_fail_percentage,
        };
        let active: Vec<String> = ordered
            .iter()
            .filter(|h| !failed.contains(*h))
            .cloned()
            .collect();
        let who = compile::PlayHosts {
            all: &ordered,
            active: &active,
            batch: &hosts,
            gate: false,
        };
        let (ran, task_fatal) = run_batch(prep, remote, local, fleet, idx, &who, &states, rule, tx);
        for (host, stats, state) in ran {
            let why = if stats.unreachable > 0 {
                outcome.unreachable += 1;
                Some(HostFailure::Unreachable)
            } else if stats.failed > 0 {
                outcome.failed += 1;
                Some(HostFailure::Failed)
            } else {
                None
            };
            if let Some(why) = why {
                failed.insert(host.clone());
                out.failed.push((host.clone(), why));
            }
            states.insert(host.clone(), state);
            out.stats.entry(host).or_default().add(&stats);
        }
        // A task's own any_errors_fatal that fired counts as the play's (ansible-core checks
        // both in the same place).
        let verdict = if task_fatal && !rollout.any_errors_fatal {
            let r = tend_lang::playbook::Rollout {
                any_errors_fatal: true,
                ..rollout.clone()
            };
            batches::verdict(&r, outcome)
        } else {
            batches::verdict(rollout, outcome)
        };
        if verdict.fail_rest {
            for h in &hosts {
                if failed.insert(h.clone()) {
                    out.failed.push((h.clone(), HostFailure::Stopped));
                }
            }
        }
        if let Some(stop) = verdict.stop {
            let msg = stop.describe(&play.name, outcome, rollout);
            // A play whose hosts all failed ends the run as before, without a word more;
            // a rule that stopped a rollout says which.
            if stop != batches::Stop::AllFailed {
                let _ = tx.send(Event::Warning {
                    host: None,
                    msg: msg.clone(),
                });
            }
            out.stopped = Some((stop, msg));
            break;
        }
        let gate = health::Gate {
            idx,
            all: &ordered,
            batch: &hosts,
            info: tend_proto::PlayBatch {
                number: number + 1,
                of,
                size: batch.len(),
            },
            remote,
            local,
            fleet,
        };
        if let Some(stop) = health::check(prep, &gate, &mut failed, &mut states, &mut out, tx) {
            out.stopped = Some(stop);
            break;
        }
    }
    out.states = states;
    out
}

/// One batch of one play: its hosts run at once, bounded by `forks` — except in a lockstep
/// play (`any_errors_fatal`, `max_fail_percentage`), where every host of the batch runs at
/// once since they meet after each task (`serial` bounds such a batch). Per host, in the order
/// they finished: counters and what the next play inherits.
#[allow(clippy::too_many_arguments)]
fn run_batch(
    prep: &Prepared,
    remote: Option<&RemoteCtx>,
    local: &LocalLock,
    fleet: &peers::Fleet,
    idx: usize,
    who: &compile::PlayHosts,
    states: &HashMap<String, HostState>,
    rule: tend_agent::StepRule,
    tx: &Sender<Event>,
) -> (Vec<(String, HostStats, HostState)>, bool) {
    let hosts = who.batch;
    if hosts.is_empty() {
        return (Vec::new(), false);
    }
    let results: Mutex<Vec<(String, HostStats, HostState)>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    let lockstep = !who.gate && compile::lockstep(&prep.playbook.plays[idx]);
    let (forks, rendezvous) = if lockstep {
        (
            hosts.len(),
            tend_agent::LocalRendezvous::lockstep(hosts.to_vec(), rule),
        )
    } else {
        (
            prep.settings.forks.max(1).min(hosts.len()),
            tend_agent::LocalRendezvous::new(hosts.to_vec()),
        )
    };
    // The rendezvous, answering `hostvars` and delegated calls too.
    let peers = fleet.peers(&rendezvous);
    std::thread::scope(|s| {
        for _ in 0..forks {
            let tx = tx.clone();
            let (next, results, rv) = (&next, &results, &peers);
            s.spawn(move || loop {
                let i = {
                    let Ok(mut n) = next.lock() else { return };
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(host) = hosts.get(i) else { return };
                let state = fleet.start(host, states.get(host).cloned().unwrap_or_default());
                let (stats, state) = run_host(prep, remote, local, idx, host, who, state, rv, &tx);
                // Other hosts' `hostvars` see it from now on, in this play too.
                fleet.publish(host, state.clone());
                if let Ok(mut r) = results.lock() {
                    r.push((host.clone(), stats, state));
                }
            });
        }
    });
    (
        results.into_inner().unwrap_or_default(),
        rendezvous.fatal_failed(),
    )
}

#[allow(clippy::too_many_arguments)]
fn run_host(
    prep: &Prepared,
    remote: Option<&RemoteCtx>,
    local: &LocalLock,
    play: usize,
    host: &str,
    who: &compile::PlayHosts,
    state: HostState,
    rv: &dyn tend_agent::Rendezvous,
    tx: &Sender<Event>,
) -> (HostStats, HostState) {
    match compile::compile_for(prep, play, host, who) {
        Ok(mut program) => {
            program.vars.host_state = state;
            run_program(prep, remote, local, &program, rv, tx)
        }
        Err(d) => {
            let sink = |e: Event| {
                let _ = tx.send(e);
            };
            // The host cannot run this play (e.g. a vars file it needs is missing): report it as
            // a failed task of that host, like ansible-core does.
            let stats = HostStats {
                failed: 1,
                ..Default::default()
            };
            sink(Event::TaskResult(tend_proto::TaskResult {
                host: host.to_string(),
                task: "Loading play".into(),
                loc: d.loc.clone(),
                status: tend_proto::ResultStatus::Failed,
                ignored: false,
                handler: false,
                result: serde_json::json!({"failed": true, "msg": d.render()}),
                diffs: Vec::new(),
                changes: Vec::new(),
                delegated_to: None,
            }));
            rv.step(host, 0, true, false);
            rv.host_done(host);
            sink(Event::HostDone {
                host: host.to_string(),
                stats,
            });
            (stats, state)
        }
    }
}

/// Runs one host's compiled program: in-process for local hosts (under this machine's host
/// lock), on the host's agent session for SSH hosts.
pub(crate) fn run_program(
    prep: &Prepared,
    remote: Option<&RemoteCtx>,
    local: &LocalLock,
    program: &tend_proto::Program,
    rv: &dyn tend_agent::Rendezvous,
    tx: &Sender<Event>,
) -> (HostStats, HostState) {
    let host = program.host.as_str();
    let mut sink = |e: Event| {
        let _ = tx.send(e);
    };
    // `connection: local` on a play runs its tasks here, for every host (as Ansible).
    let local_play = program.play.connection.as_deref() == Some("local");
    match (prep.ssh_targets.contains_key(host) && !local_play, remote) {
        (false, _) => match local.ensure(&prep.settings, host) {
            Ok(()) => tend_agent::run(program, &mut sink, Some(rv)),
            Err(why) => remote::unreachable(program, &why, rv, tx),
        },
        (true, Some(Ok(r))) => remote::run_host(r, program, rv, tx),
        (true, _) => {
            let why = match remote {
                Some(Err(e)) => e.clone(),
                _ => "no SSH context".into(),
            };
            remote::unreachable(program, &why, rv, tx)
        }
    }
}
