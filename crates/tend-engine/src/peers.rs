//! What hosts learn of each other through the controller: `hostvars` of other hosts (facts,
//! `set_fact` and registered values they got in earlier plays, and what they published so far
//! in this one) and delegated module calls (`delegate_to`, `delegate_facts`).
//!
//! Nothing is sent ahead: an agent asks for `hostvars[X]` when a template reads it (once per
//! host and program), so a fleet costs what its templates read, not the square of its size.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};

use tend_agent::delegate::{Call, Reply, Served};
use tend_agent::{Rendezvous, RunOnce};
use tend_proto::wire::{FromAgent, ToAgent};
use tend_proto::{Event, HostState, Value, Vars};
use tend_transport::{Session, SshTarget};

use crate::{remote, Prepared, RemoteCtx};

/// The controller's side of a run shared by every play: what it knows of each host, and the
/// sessions that serve delegated calls.
pub(crate) struct Fleet<'a> {
    prep: &'a Prepared,
    remote: Option<&'a RemoteCtx>,
    tx: Sender<Event>,
    known: Known,
    /// Delegated calls to hosts that run on this machine.
    served: Served,
    /// Per SSH delegate, one session that serves calls, opened on first use; calls to one
    /// delegate take turns on it.
    sessions: Mutex<HashMap<String, Arc<Mutex<Option<Session>>>>>,
    /// An SSH context for delegates of a run that had no SSH host of its own.
    own_remote: OnceLock<RemoteCtx>,
    /// Inventory variables per host, computed once.
    inventory_vars: Mutex<HashMap<String, Vars>>,
}

/// Each host's state as the controller last heard it, and facts delegated to it since.
#[derive(Default)]
struct Known {
    states: Mutex<HashMap<String, HostState>>,
    /// Facts delegated to a host (`delegate_facts`) while its own program was running: they
    /// stay over what it reports at the end of that program.
    pending: Mutex<HashMap<String, HostState>>,
}

fn overlay(state: &mut HostState, more: &HostState) {
    if let Some(f) = &more.facts {
        state.facts.get_or_insert_with(Vars::new).extend(f.clone());
    }
    state.host_facts.extend(more.host_facts.clone());
}

impl<'a> Fleet<'a> {
    pub fn new(prep: &'a Prepared, remote: Option<&'a RemoteCtx>, tx: &Sender<Event>) -> Self {
        Fleet {
            prep,
            remote,
            tx: tx.clone(),
            known: Known::default(),
            served: Served::new(),
            sessions: Mutex::new(HashMap::new()),
            own_remote: OnceLock::new(),
            inventory_vars: Mutex::new(HashMap::new()),
        }
    }

    /// What `host` starts its next program with: `state` (what its earlier plays left) and
    /// the facts other hosts delegated to it since.
    pub fn start(&self, host: &str, mut state: HostState) -> HostState {
        if let Some(p) = lock(&self.known.pending).remove(host) {
            overlay(&mut state, &p);
        }
        state
    }

    /// `host` finished a program with `state`; later programs and `hostvars` lookups see it.
    pub fn publish(&self, host: &str, mut state: HostState) {
        if let Some(p) = lock(&self.known.pending).remove(host) {
            overlay(&mut state, &p);
        }
        lock(&self.known.states).insert(host.to_string(), state);
    }

    /// `delegate_facts`: facts that a task of another host gathered for `host`.
    pub fn delegated_facts(&self, host: &str, facts: Vars, set_fact: bool) {
        let more = if set_fact {
            HostState {
                host_facts: facts,
                ..Default::default()
            }
        } else {
            HostState {
                facts: Some(facts),
                ..Default::default()
            }
        };
        overlay(
            lock(&self.known.states)
                .entry(host.to_string())
                .or_default(),
            &more,
        );
        overlay(
            lock(&self.known.pending)
                .entry(host.to_string())
                .or_default(),
            &more,
        );
    }

    /// `hostvars[host]`: inventory and magic variables, then facts (also as `ansible_*`),
    /// `include_vars`, `set_fact` and registered values — the order a host's own scope has.
    /// `None` for a host not in the inventory.
    pub fn hostvars(&self, host: &str) -> Option<Value> {
        let inv = &self.prep.inventory;
        inv.host(host)?;
        let mut out = lock(&self.inventory_vars)
            .entry(host.to_string())
            .or_insert_with(|| {
                let mut v = inv.host_vars(host, Some(&self.prep.playbook_vars));
                v.extend(inv.host_magic_vars(host));
                v
            })
            .clone();
        let state = lock(&self.known.states).get(host).cloned();
        if let Some(s) = state {
            if let Some(facts) = s.facts {
                for (k, v) in &facts {
                    out.insert(format!("ansible_{k}"), v.clone());
                }
                out.insert("ansible_facts".into(), Value::Object(facts));
            }
            out.extend(s.include_vars);
            out.extend(s.host_facts);
        }
        Some(Value::Object(out))
    }

    /// Runs a delegated call: here for a local delegate, else on the delegate's agent.
    pub fn delegate(&self, call: Call) -> Reply {
        let to = call.delegate.clone();
        let inv = &self.prep.inventory;
        let local_name = matches!(to.as_str(), "localhost" | "127.0.0.1" | "::1");
        if inv.host(&to).is_none() && !local_name {
            return Reply::error(not_in_inventory(&to));
        }
        let vars = inv.host_vars(&to, Some(&self.prep.playbook_vars));
        let connection = crate::connection_of(&to, &vars, self.prep.settings.connection.as_deref());
        match connection.as_str() {
            "local" => self.served.call(call),
            "ssh" | "smart" => match self.target(&to, &vars) {
                Ok(t) => self.on_ssh(&t, call),
                Err(e) => Reply::error(e),
            },
            other => Reply::error(format!(
                "delegate `{to}` uses the `{other}` connection, which tend does not support"
            )),
        }
    }

    fn target(&self, host: &str, vars: &Vars) -> Result<SshTarget, String> {
        if let Some(t) = self.prep.ssh_targets.get(host) {
            return Ok(t.clone());
        }
        remote::target_of(
            host,
            vars,
            &self.prep.settings.extra_vars,
            &self.prep.settings.remote,
            &self.prep.playbook.plays[0].loc,
        )
        .map_err(|d| d.render())
    }

    fn remote(&self) -> Result<&remote::Remote, String> {
        let ctx = match self.remote {
            Some(r) => r,
            None => self
                .own_remote
                .get_or_init(|| crate::remote_context(self.prep, &self.tx)),
        };
        ctx.as_ref().map_err(Clone::clone)
    }

    /// A call on an SSH delegate, through its serving session (opened on first use, over the
    /// host's master connection when the run has one).
    fn on_ssh(&self, target: &SshTarget, call: Call) -> Reply {
        let r = match self.remote() {
            Ok(r) => r,
            Err(e) => return Reply::unreachable(e),
        };
        let slot = lock(&self.sessions)
            .entry(target.name.clone())
            .or_default()
            .clone();
        let mut session = lock(&slot);
        let bundle = r.bundle.as_ref().map(|b| b.hash().to_string());
        let answer = (|| {
            if session.is_none() {
                *session = Some(remote::open_session(r, target, &self.tx)?);
            }
            let s = session
                .as_mut()
                .ok_or_else(|| tend_transport::TransportError::Unreachable("no session".into()))?;
            if let Some(b) = &r.bundle {
                if !s.has_bundle {
                    s.send_bundle(b.hash(), b.bytes())?;
                }
            }
            s.send(&ToAgent::Call {
                call: call.to_value(),
                bundle,
            })?;
            loop {
                match s.recv()? {
                    FromAgent::CallDone { reply } => return Ok(Reply::from_value(reply)),
                    FromAgent::Error { msg } => {
                        return Err(tend_transport::TransportError::Unreachable(format!(
                            "the agent stopped: {msg}"
                        )))
                    }
                    _ => {}
                }
            }
        })();
        match answer {
            Ok(reply) => reply,
            Err(e) => {
                // A broken session is dropped; the next call opens a new one.
                if let Some(s) = session.take() {
                    s.finish();
                }
                Reply::unreachable(format!("delegate `{}`: {}", target.name, e.message()))
            }
        }
    }

    /// Ends the sessions that served delegated calls.
    pub fn end(&self) {
        let slots: Vec<_> = lock(&self.sessions).drain().map(|(_, s)| s).collect();
        for slot in slots {
            if let Some(s) = lock(&slot).take() {
                s.finish();
            }
        }
        if let Some(Ok(r)) = self.own_remote.get() {
            r.end_sessions(self.prep.settings.forks);
        }
    }

    /// The rendezvous of one batch, answering `hostvars` and delegation too.
    pub fn peers<'b>(&'b self, rv: &'b tend_agent::LocalRendezvous) -> Peers<'b> {
        Peers { rv, fleet: self }
    }
}

/// The message for `delegate_to` naming a host the inventory does not have.
pub(crate) fn not_in_inventory(host: &str) -> String {
    format!(
        "delegate_to: `{host}` is not a host of the inventory; tend does not make implicit \
         hosts (ansible-core would try it over ssh): add `{host}` to the inventory (with its \
         ansible_host), or delegate to a host that is there"
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A batch's rendezvous with the controller's answers for `hostvars` and delegation. Every
/// other question goes to the batch's own rendezvous: a method added to [`Rendezvous`] must be
/// passed on here too (the trait's defaults would silently answer for it).
pub(crate) struct Peers<'a> {
    rv: &'a tend_agent::LocalRendezvous,
    fleet: &'a Fleet<'a>,
}

impl Rendezvous for Peers<'_> {
    fn run_once(&self, key: &str, host: &str) -> RunOnce {
        self.rv.run_once(key, host)
    }
    fn publish(&self, key: &str, result: Value) {
        self.rv.publish(key, result)
    }
    fn host_done(&self, host: &str) {
        self.rv.host_done(host)
    }
    fn step(&self, host: &str, n: usize, failed: bool, fatal: bool) -> bool {
        self.rv.step(host, n, failed, fatal)
    }
    fn host_unreachable(&self, host: &str) {
        self.rv.host_unreachable(host)
    }
    fn throttle_acquire(&self, key: &str, host: &str, limit: usize) {
        self.rv.throttle_acquire(key, host, limit)
    }
    fn throttle_release(&self, key: &str, host: &str) {
        self.rv.throttle_release(key, host)
    }
    fn hostvars(&self, host: &str) -> Option<Value> {
        self.fleet.hostvars(host)
    }
    fn delegate(&self, call: Call) -> Reply {
        self.fleet.delegate(call)
    }
    fn delegated_facts(&self, host: &str, facts: Vars, set_fact: bool) {
        self.fleet.delegated_facts(host, facts, set_fact)
    }
}
