//! Hosts reached over SSH: how to reach each one (from its variables), and running a play's
//! Program through a remote agent with the same events, rendezvous and counters as local hosts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use tend_lang::{Diag, Layer, Scope, Templar};
use tend_proto::wire::{FromAgent, ToAgent};
use tend_proto::{Event, HostState, HostStats, Program, ResultStatus, TaskResult, Value, Vars};
use tend_transport::{AgentBinary, ControlDir, Session, SshOptions, SshTarget, TransportError};

/// SSH settings from the command line. Host variables (`ansible_user` …) win over these, as in
/// ansible-core.
#[derive(Clone, Debug, Default)]
pub struct RemoteSettings {
    pub accept_new_host_keys: bool,
    /// `-T/--timeout`: connection timeout in seconds.
    pub timeout: Option<u64>,
    /// `-u/--user`.
    pub user: Option<String>,
    /// `--private-key`.
    pub private_key: Option<String>,
    pub ssh_common_args: Option<String>,
    pub ssh_extra_args: Option<String>,
    /// The agent binary to push (`TEND_AGENT_BINARY`); wins over `embedded_agent`.
    pub agent_binary: Option<PathBuf>,
    /// The agent compiled into the controller (release builds); else the running executable.
    pub embedded_agent: Option<tend_transport::EmbeddedAgent>,
    /// `--ssh-persist SECONDS`: masters outlive the run by this much (0: closed at its end).
    pub ssh_persist: u64,
}

impl RemoteSettings {
    pub fn ssh_options(&self) -> SshOptions {
        let mut o = SshOptions {
            accept_new_host_keys: self.accept_new_host_keys,
            persist: self.ssh_persist,
            ..SshOptions::default()
        };
        if let Some(t) = self.timeout {
            o.connect_timeout = t.max(1);
        }
        if let Some(p) = std::env::var_os("TEND_SSH") {
            o.program = PathBuf::from(p);
        }
        o
    }
}

/// Variables tend reads to reach a host; everything else about SSH comes from the user's ssh
/// configuration.
const PASSWORD_VARS: &[&str] = &[
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
];

/// How to reach `host`, from its inventory variables (rendered: `ansible_host: "{{ ip }}"`).
pub(crate) fn target_of(
    host: &str,
    vars: &Vars,
    extra: &Vars,
    cli: &RemoteSettings,
    loc: &tend_proto::Loc,
) -> Result<SshTarget, Diag> {
    let templar = Templar::new();
    let scope = Scope::new(
        &templar,
        vec![Layer::from_map(vars, true), Layer::from_map(extra, true)],
    );
    let get = |names: &[&str]| -> Result<Option<String>, Diag> {
        for n in names {
            let v = extra.get(*n).or_else(|| vars.get(*n));
            let Some(v) = v else { continue };
            let s = match v {
                Value::String(s) if Templar::is_template(s) => {
                    templar.render_str(s, &scope).map_err(|e| {
                        Diag::new(
                            loc.clone(),
                            format!("host `{host}`: cannot render {n}: {e}"),
                        )
                    })?
                }
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            return Ok(Some(s));
        }
        Ok(None)
    };
    for p in PASSWORD_VARS {
        if vars.contains_key(*p) || extra.contains_key(*p) {
            return Err(Diag::new(
                loc.clone(),
                format!("host `{host}` sets `{p}`: tend does not log in with passwords"),
            )
            .with_hint("use an SSH key (ansible_ssh_private_key_file, or ssh-agent); passwords for sudo go in ansible_become_password"));
        }
    }
    let address = get(&["ansible_host", "ansible_ssh_host"])?.unwrap_or_else(|| host.to_string());
    let port = match get(&["ansible_port", "ansible_ssh_port"])? {
        Some(p) => Some(p.trim().parse::<u16>().map_err(|_| {
            Diag::new(
                loc.clone(),
                format!("host `{host}`: ansible_port `{p}` is not a port number"),
            )
        })?),
        None => None,
    };
    let user = get(&["ansible_user", "ansible_ssh_user"])?.or_else(|| cli.user.clone());
    let key_file = get(&["ansible_ssh_private_key_file", "ansible_private_key_file"])?
        .or_else(|| cli.private_key.clone())
        .map(|k| expand_home(&k));
    let split = |name: &str, raw: Option<String>| -> Result<Vec<String>, Diag> {
        match raw {
            None => Ok(Vec::new()),
            Some(r) => shlex::split(&r).ok_or_else(|| {
                Diag::new(
                    loc.clone(),
                    format!("host `{host}`: cannot split {name} into words: {r}"),
                )
                .with_hint("check the quotes")
            }),
        }
    };
    let common_args = split(
        "ansible_ssh_common_args",
        get(&["ansible_ssh_common_args"])?.or_else(|| cli.ssh_common_args.clone()),
    )?;
    let extra_args = split(
        "ansible_ssh_extra_args",
        get(&["ansible_ssh_extra_args"])?.or_else(|| cli.ssh_extra_args.clone()),
    )?;
    Ok(SshTarget {
        name: host.to_string(),
        address,
        port,
        user,
        key_file,
        common_args,
        extra_args,
        persist: false,
    })
}

fn expand_home(p: &str) -> String {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest).display().to_string(),
        _ => p.to_string(),
    }
}

/// The directory of the master connections: the run's own, or with `--ssh-persist` the stable
/// one that later runs find them in.
pub(crate) fn control_dir(opts: &SshOptions) -> Result<ControlDir, String> {
    if opts.persist > 0 {
        ControlDir::persistent().map_err(|e| format!("--ssh-persist: {e}"))
    } else {
        ControlDir::new()
            .map_err(|e| format!("cannot create a directory for SSH control sockets: {e}"))
    }
}

/// What a run needs to use SSH hosts; made once per run, when the first SSH host comes up.
pub(crate) struct Remote {
    pub agent: AgentBinary,
    pub control: ControlDir,
    pub opts: SshOptions,
    pub targets: HashMap<String, SshTarget>,
    pub bundle: Option<tend_agent::bundle::Bundle>,
    /// The host lock each session takes first, for runs that may change hosts.
    pub lock: Option<crate::LockRequest>,
    /// Sessions between plays: one agent per host for the whole run.
    pub sessions: Mutex<HashMap<String, Session>>,
}

impl Remote {
    /// Ends every session still open (the agents exit and their locks go with them), `forks`
    /// at a time.
    pub fn end_sessions(&self, forks: usize) {
        let open: Vec<Session> = match self.sessions.lock() {
            Ok(mut s) => s.drain().map(|(_, s)| s).collect(),
            Err(_) => return,
        };
        if open.is_empty() {
            return;
        }
        let queue = Mutex::new(open);
        std::thread::scope(|s| {
            for _ in 0..forks.clamp(1, 64) {
                s.spawn(|| loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    match next {
                        Some(session) => session.finish(),
                        None => return,
                    }
                });
            }
        });
    }
}

/// Takes the host's lock in a new session; the host's message when another run holds it.
fn take_lock(
    session: &mut Session,
    host: &str,
    req: &crate::LockRequest,
) -> Result<(), TransportError> {
    let start = std::time::Instant::now();
    session.send(&ToAgent::Lock {
        owner: req.owner.clone(),
        wait_ms: u64::try_from(req.wait.as_millis()).unwrap_or(u64::MAX),
    })?;
    match session.recv()? {
        FromAgent::Locked { .. } => Ok(()),
        FromAgent::NotLocked { holder, error } => {
            let msg = match error {
                Some(e) => tend_agent::hostlock::unusable_message(host, &e),
                None => format!(
                    "{}{}",
                    tend_agent::hostlock::busy_message(host, holder.as_ref(), start.elapsed()),
                    tend_agent::hostlock::not_waited_note(holder.as_ref(), &req.owner, req.wait)
                ),
            };
            Err(TransportError::Unreachable(msg))
        }
        FromAgent::Error { msg } => Err(TransportError::Unreachable(format!(
            "the agent stopped: {msg}"
        ))),
        other => Err(TransportError::Unreachable(format!(
            "the agent answered the lock request with {other:?}"
        ))),
    }
}

/// Runs one play on one SSH host. Every failure to reach or keep the host becomes an
/// UNREACHABLE result with the reason, and the rendezvous is always released.
pub(crate) fn run_host(
    remote: &Remote,
    program: &Program,
    rv: &dyn tend_agent::Rendezvous,
    tx: &Sender<Event>,
) -> (HostStats, HostState) {
    let mut seen = Seen::default();
    match drive(remote, program, rv, tx, &mut seen) {
        Ok(done) => done,
        Err(e) => report_unreachable(program, e.message(), &seen, rv, tx),
    }
}

/// A host that cannot be used at all in this run.
pub(crate) fn unreachable(
    program: &Program,
    why: &str,
    rv: &dyn tend_agent::Rendezvous,
    tx: &Sender<Event>,
) -> (HostStats, HostState) {
    report_unreachable(program, why, &Seen::default(), rv, tx)
}

fn report_unreachable(
    program: &Program,
    why: &str,
    seen: &Seen,
    rv: &dyn tend_agent::Rendezvous,
    tx: &Sender<Event>,
) -> (HostStats, HostState) {
    let host = program.host.clone();
    rv.host_unreachable(&host);
    rv.host_done(&host);
    let task = seen
        .task
        .clone()
        .unwrap_or_else(|| first_task_name(program));
    if seen.task.is_none() {
        let _ = tx.send(Event::TaskStart {
            host: host.clone(),
            name: task.clone(),
            loc: program.play.loc.clone(),
            handler: false,
        });
    }
    let _ = tx.send(Event::TaskResult(TaskResult {
        host: host.clone(),
        task,
        loc: program.play.loc.clone(),
        status: ResultStatus::Unreachable,
        ignored: false,
        handler: false,
        result: serde_json::json!({
            "changed": false,
            "msg": why,
            "unreachable": true,
        }),
        diffs: Vec::new(),
        changes: Vec::new(),
        delegated_to: None,
    }));
    let mut stats = seen.stats;
    stats.unreachable += 1;
    let _ = tx.send(Event::HostDone { host, stats });
    (stats, program.vars.host_state.clone())
}

fn first_task_name(p: &Program) -> String {
    if p.play.gather_facts {
        "Gathering Facts".into()
    } else {
        first_leaf(&p.tasks)
            .map(|t| t.display_name())
            .unwrap_or_else(|| "connect".into())
    }
}

/// The first task a user wrote (plays wrap their tasks in implicit blocks).
fn first_leaf(tasks: &[tend_proto::Task]) -> Option<&tend_proto::Task> {
    tasks.iter().find_map(|t| match &t.kind {
        tend_proto::TaskKind::Block { block, .. } if t.name.is_none() || t.implicit => {
            first_leaf(block)
        }
        _ if t.implicit => None,
        _ => Some(t),
    })
}

/// What the controller saw of a session, to report a connection lost mid-play.
#[derive(Default)]
struct Seen {
    task: Option<String>,
    stats: HostStats,
}

impl Seen {
    /// Counts the way the recap does, for the results that arrived before a connection dropped.
    fn note(&mut self, e: &Event) {
        match e {
            Event::TaskStart { name, .. } => self.task = Some(name.clone()),
            Event::TaskResult(r) => match r.status {
                ResultStatus::Ok => self.stats.ok += 1,
                ResultStatus::Changed => {
                    self.stats.ok += 1;
                    self.stats.changed += 1;
                }
                ResultStatus::Skipped => self.stats.skipped += 1,
                ResultStatus::Failed if r.ignored => {
                    self.stats.ok += 1;
                    self.stats.ignored += 1;
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// A new agent session on `target`, holding the host's lock when the run takes locks (a
/// second session of the same run shares it: the lock file names this run).
pub(crate) fn open_session(
    remote: &Remote,
    target: &SshTarget,
    tx: &Sender<Event>,
) -> Result<Session, TransportError> {
    let bundle_hash = remote.bundle.as_ref().map(|b| b.hash());
    let mut session = Session::open(
        target,
        &remote.opts,
        &remote.control,
        &remote.agent,
        bundle_hash,
    )?;
    for w in session.warnings.drain(..) {
        let _ = tx.send(Event::Warning {
            host: Some(target.name.clone()),
            msg: w,
        });
    }
    if let Some(req) = &remote.lock {
        take_lock(&mut session, &target.name, req)?;
    }
    Ok(session)
}

fn drive(
    remote: &Remote,
    program: &Program,
    rv: &dyn tend_agent::Rendezvous,
    tx: &Sender<Event>,
    seen: &mut Seen,
) -> Result<(HostStats, HostState), TransportError> {
    let host = &program.host;
    let target = remote
        .targets
        .get(host)
        .ok_or_else(|| TransportError::Unreachable(format!("no SSH settings for host {host}")))?;
    let bundle_hash = remote.bundle.as_ref().map(|b| b.hash());
    let pooled = remote.sessions.lock().ok().and_then(|mut s| s.remove(host));
    let mut session = match pooled {
        Some(s) => s,
        None => open_session(remote, target, tx)?,
    };
    if let Some(b) = &remote.bundle {
        if !session.has_bundle {
            session.send_bundle(b.hash(), b.bytes())?;
        }
    }
    session.send(&ToAgent::Run {
        program: Box::new(program.clone()),
        bundle: bundle_hash.map(str::to_string),
    })?;
    let mut released = false;
    loop {
        match session.recv() {
            Ok(FromAgent::Event(e)) => {
                seen.note(&e);
                let _ = tx.send(*e);
            }
            Ok(FromAgent::RunOnceAsk { key }) => {
                let answer = match rv.run_once(&key, host) {
                    tend_agent::RunOnce::Lead => None,
                    tend_agent::RunOnce::Follow(v) => Some(v),
                };
                session.send(&ToAgent::RunOnceAnswer {
                    key,
                    result: answer,
                })?;
            }
            Ok(FromAgent::RunOncePublish { key, result }) => rv.publish(&key, result),
            Ok(FromAgent::HostvarsAsk { host: other }) => {
                let vars = rv.hostvars(&other);
                session.send(&ToAgent::HostvarsAnswer { host: other, vars })?;
            }
            Ok(FromAgent::DelegateAsk { call }) => {
                let reply = match tend_agent::delegate::Call::from_value(call) {
                    Ok(c) => rv.delegate(c),
                    Err(e) => tend_agent::delegate::Reply::error(e),
                };
                session.send(&ToAgent::DelegateAnswer {
                    reply: reply.to_value(),
                })?;
            }
            Ok(FromAgent::DelegatedFacts {
                host: to,
                facts,
                set_fact,
            }) => rv.delegated_facts(&to, facts, set_fact),
            Ok(FromAgent::Step { n, failed, fatal }) => {
                let stop = rv.step(host, n, failed, fatal);
                session.send(&ToAgent::StepAnswer { n, stop })?;
            }
            Ok(FromAgent::ThrottleAcquire { key, limit }) => {
                rv.throttle_acquire(&key, host, limit);
                session.send(&ToAgent::ThrottleGranted { key })?;
            }
            Ok(FromAgent::ThrottleRelease { key }) => rv.throttle_release(&key, host),
            Ok(FromAgent::RendezvousDone) => {
                released = true;
                rv.host_done(host);
            }
            Ok(FromAgent::PlayDone { stats, state }) => {
                if !released {
                    rv.host_done(host);
                }
                // Kept for the host's next play; ended with the run.
                if let Ok(mut pool) = remote.sessions.lock() {
                    pool.insert(host.clone(), session);
                }
                return Ok((stats, *state));
            }
            Ok(FromAgent::Hello { .. })
            | Ok(FromAgent::CallDone { .. })
            | Ok(FromAgent::Locked { .. })
            | Ok(FromAgent::NotLocked { .. }) => {}
            Ok(FromAgent::Error { msg }) => {
                return Err(TransportError::Unreachable(format!(
                    "the agent stopped: {msg}"
                )))
            }
            // Releasing the rendezvous twice (here and on the error path) is harmless.
            Err(e) => return Err(e),
        }
    }
}
