//! The controller ↔ agent wire protocol: what crosses the SSH channel of a remote host.
//!
//! Both directions are JSON lines (one message per line), with one exception: a
//! [`ToAgent::Bundle`] header is followed by exactly `len` raw bytes (the compressed bundle).
//!
//! A session, as the controller drives it:
//!
//! ```text
//! controller                                   agent (`tend agent --cache DIR`)
//!   [lock {owner, wait_ms}]            ──►      takes the host's lock for the session
//!                                      ◄──      locked {path, shared}  or  not_locked {…}
//!   [bundle {hash, len} + len bytes]   ──►      unpacks it into DIR/bundle-HASH (atomic)
//!   run {program}                      ──►      runs the play
//!                                      ◄──      event … (every Event of the run)
//!                                      ◄──      run_once_ask {key}       (a run_once task)
//!   run_once_answer {key, result}      ──►      null result: this host leads
//!                                      ◄──      run_once_publish {key, result}
//!                                      ◄──      rendezvous_done          (leads nothing more)
//!                                      ◄──      step {n, failed, fatal}  (lockstep plays)
//!   step_answer {n, stop}              ──►
//!                                      ◄──      hostvars_ask {host}      (`hostvars[host]`)
//!   hostvars_answer {host, vars}       ──►      what the controller knows of it, or null
//!                                      ◄──      delegate_ask {call}      (`delegate_to`)
//!   delegate_answer {reply}            ──►      the module's output on the delegate
//!                                      ◄──      delegated_facts {host, facts}
//!                                      ◄──      throttle_acquire {key, limit} (a throttled task)
//!   throttle_granted {key}             ──►      fewer than `limit` hosts run it now
//!                                      ◄──      throttle_release {key}
//!                                      ◄──      play_done {stats, state}
//!   [call {call, bundle}               ──►      a delegated module call to run on this host
//!                                      ◄──      call_done {reply}]
//!   [run {program} …]  or  EOF         ──►      EOF: the agent exits 0
//! ```
//!
//! Any message the agent cannot act on ends the session with an `error` message and exit status 3.
//! [`crate::PROTOCOL_VERSION`] is in every `run` (inside the program) and in the agent's `hello`;
//! the agent refuses a program of another version.

use serde::{Deserialize, Serialize};

use crate::{Event, HostState, HostStats, Program, Value};

/// Controller → agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToAgent {
    /// The playbook tree follows as `len` raw bytes; the agent caches it by `hash`.
    Bundle { hash: String, len: u64 },
    /// Run one play. `bundle` names the bundle (already cached or just sent) whose files the
    /// agent reads as the controller's.
    Run {
        program: Box<Program>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bundle: Option<String>,
    },
    /// The answer to [`FromAgent::RunOnceAsk`]: another host's result, or `None`: lead it.
    RunOnceAnswer { key: String, result: Option<Value> },
    /// The answer to [`FromAgent::Step`], once every host of the batch finished the step:
    /// whether the play stops there for every host.
    StepAnswer { n: usize, stop: bool },
    /// The answer to [`FromAgent::ThrottleAcquire`]: the host may run the task now.
    ThrottleGranted { key: String },
    /// Take the host's lock (an exclusive `flock`) and hold it until the session ends, waiting
    /// up to `wait_ms` for another holder. Sent once, before the first `run`, by runs that may
    /// change the host. The agent answers [`FromAgent::Locked`] or [`FromAgent::NotLocked`].
    Lock { owner: LockOwner, wait_ms: u64 },
    /// The answer to [`FromAgent::HostvarsAsk`]: `hostvars[host]` as the controller knows it
    /// (inventory variables, facts, `set_fact` and registered values), `None` for a host that
    /// is not in the inventory.
    HostvarsAnswer { host: String, vars: Option<Value> },
    /// The answer to [`FromAgent::DelegateAsk`] (a `tend_agent::delegate::Reply`).
    DelegateAnswer { reply: Value },
    /// Run a module call another host delegated to this one (a `tend_agent::delegate::Call`);
    /// `bundle` names the playbook bundle its controller files come from. Answered with
    /// [`FromAgent::CallDone`]. Sessions that serve calls run no program.
    Call {
        call: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bundle: Option<String>,
    },
}

/// Who holds a host's lock: written into the lock file by its holder, so that a second run can
/// name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    pub run_id: String,
    /// The user tend runs as on the controller.
    pub user: String,
    /// The controller's host name.
    pub controller: String,
    /// When the run started (UTC, RFC 3339).
    pub since: String,
    /// The process holding the lock on the host (set by the holder).
    #[serde(default)]
    pub pid: u32,
}

/// Agent → controller.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromAgent {
    /// First line of every session.
    Hello {
        version: u32,
        /// The agent's build (`CARGO_PKG_VERSION`).
        agent: String,
        /// Login user and uid the agent runs as.
        user: String,
        uid: u32,
    },
    Event(Box<Event>),
    RunOnceAsk {
        key: String,
    },
    RunOncePublish {
        key: String,
        result: Value,
    },
    /// The host will lead no more `run_once` tasks in this play.
    RendezvousDone,
    /// A lockstep play: the host finished step `n` (`failed`: its play failed there).
    Step {
        n: usize,
        failed: bool,
        /// The failed task had `any_errors_fatal` (on itself or a block around it).
        #[serde(default)]
        fatal: bool,
    },
    /// A task with `throttle: limit` is about to run: the agent waits for
    /// [`ToAgent::ThrottleGranted`] (at most `limit` hosts of the play hold `key` at once).
    ThrottleAcquire {
        key: String,
        limit: usize,
    },
    /// The host finished the throttled task `key`.
    ThrottleRelease {
        key: String,
    },
    PlayDone {
        stats: HostStats,
        state: Box<HostState>,
    },
    /// The host's lock is held for this session; `shared` is false when it lives in the
    /// agent's cache directory (the system lock directory was not writable), where it only
    /// excludes runs by the same login user.
    Locked {
        path: String,
        shared: bool,
    },
    /// The lock could not be taken: another run holds it (`holder`, when it said who it is),
    /// or `error` says why it could not be used. The session goes on; the controller ends it.
    NotLocked {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<LockOwner>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A template read `hostvars[host]` of another host.
    HostvarsAsk {
        host: String,
    },
    /// A task is delegated to another host (a `tend_agent::delegate::Call`).
    DelegateAsk {
        call: Value,
    },
    /// `delegate_facts`: facts that belong to `host` (kept by the controller).
    DelegatedFacts {
        host: String,
        facts: crate::Vars,
        /// `set_fact` values rather than facts a module returned.
        #[serde(default)]
        set_fact: bool,
    },
    /// The answer to [`ToAgent::Call`] (a `tend_agent::delegate::Reply`).
    CallDone {
        reply: Value,
    },
    /// The agent cannot go on (bad message, bundle failure …); the session ends.
    Error {
        msg: String,
    },
}

/// The first line the bootstrap script prints, before the agent starts:
/// `tend-boot <os> <arch> agent=<0|1> bundle=<0|1>`.
pub const BOOT_MARKER: &str = "tend-boot";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json_lines() {
        let m = ToAgent::RunOnceAnswer {
            key: "k".into(),
            result: None,
        };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(s, r#"{"t":"run_once_answer","key":"k","result":null}"#);
        let back: FromAgent =
            serde_json::from_str(r#"{"t":"play_done","stats":{"ok":1,"changed":0,"unreachable":0,"failed":0,"skipped":0,"rescued":0,"ignored":0},"state":{}}"#)
                .unwrap();
        assert!(matches!(back, FromAgent::PlayDone { stats, .. } if stats.ok == 1));
    }

    #[test]
    fn hostvars_and_delegation_messages_are_tagged_json_lines() {
        let m = ToAgent::HostvarsAnswer {
            host: "db1".into(),
            vars: None,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"t":"hostvars_answer","host":"db1","vars":null}"#
        );
        let back: FromAgent = serde_json::from_str(
            r#"{"t":"delegated_facts","host":"db1","facts":{"role":"primary"}}"#,
        )
        .unwrap();
        assert!(
            matches!(back, FromAgent::DelegatedFacts { host, set_fact: false, .. } if host == "db1")
        );
        let call: ToAgent = serde_json::from_str(r#"{"t":"call","call":{}}"#).unwrap();
        assert!(matches!(call, ToAgent::Call { bundle: None, .. }));
    }
}
