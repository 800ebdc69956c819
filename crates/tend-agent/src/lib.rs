//! The agent: runs one host's [`Program`] and reports what happens as [`Event`]s.
//!
//! The same code runs in-process for local hosts and, later, as `tend agent` on remote hosts.
//! It renders templates, evaluates `when`, expands loops, registers results, runs handlers and
//! handles block/rescue/always itself, so a host needs no round trip per task.

mod builtin;
pub mod bundle;
pub mod delegate;
pub mod hostlock;
mod loops;
mod privilege;
pub mod prune;
mod run;
pub mod serve;
mod sync;
mod vars;
mod worker;

use tend_proto::{Event, HostState, HostStats, Program};

pub use builtin::BUILTIN_MODULES;
pub use run::HostRun;
pub use sync::{LocalRendezvous, Rendezvous, RunOnce, StepRule};
pub use worker::{worker_main, WORKER_PROTOCOL};

/// Every module name this agent runs: the built-in ones and the resource registry's.
pub fn supported_modules() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = BUILTIN_MODULES
        .iter()
        .copied()
        .chain(tend_resources::module_names())
        .collect();
    names.sort_unstable();
    names
}

/// Runs a program to the end and returns the host's counters and the state later plays see.
/// With a rendezvous, templates read other hosts' `hostvars` from it, each host once per
/// program: a helper thread asks it while the host's run waits for the answer.
pub fn run(
    program: &Program,
    sink: &mut dyn FnMut(Event),
    rendezvous: Option<&dyn Rendezvous>,
) -> (HostStats, HostState) {
    let Some(rv) = rendezvous else {
        return HostRun::new(program, sink, None).run();
    };
    std::thread::scope(|s| {
        let (asker, questions) = sync::Asker::new();
        let asker = std::sync::Arc::new(asker);
        s.spawn(move || {
            for (host, reply) in questions {
                let _ = reply.send(rv.hostvars(&host));
            }
        });
        let mut run = HostRun::new(program, sink, Some(rv));
        run.set_other_hosts(asker.clone());
        let out = run.run();
        asker.close();
        out
    })
}
