//! Where hosts of one play meet: `run_once` tasks run on one host and their result is shared.
//!
//! Hosts run independently; a `run_once` task is a meeting point. The first host in play order
//! that is still running leads: it runs the task and publishes the result. The others wait for
//! that result (or for the leader to finish the play without reaching the task, in which case
//! the next host in order leads). The first running host never waits, so nobody deadlocks.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};

use tend_proto::Value;

/// What a host does at a `run_once` task.
pub enum RunOnce {
    /// Run it, then [`Rendezvous::publish`] the result.
    Lead,
    /// Another host ran it; this is its result.
    Follow(Value),
}

/// A meeting point for the hosts of one play.
pub trait Rendezvous: Send + Sync {
    fn run_once(&self, key: &str, host: &str) -> RunOnce;
    fn publish(&self, key: &str, result: Value);
    /// The host finished the play (or stopped): it will lead nothing more.
    fn host_done(&self, host: &str);
}

/// The in-process rendezvous used when the controller runs hosts itself.
pub struct LocalRendezvous {
    order: Vec<String>,
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    done: HashSet<String>,
    results: HashMap<String, Value>,
}

impl LocalRendezvous {
    pub fn new(order: Vec<String>) -> Self {
        LocalRendezvous {
            order,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        }
    }
}

impl Rendezvous for LocalRendezvous {
    fn run_once(&self, key: &str, host: &str) -> RunOnce {
        let Ok(mut st) = self.state.lock() else {
            return RunOnce::Lead;
        };
        loop {
            if let Some(r) = st.results.get(key) {
                return RunOnce::Follow(r.clone());
            }
            let leader = self.order.iter().find(|h| !st.done.contains(*h));
            if leader.is_none_or(|l| l == host) {
                return RunOnce::Lead;
            }
            st = match self.cv.wait(st) {
                Ok(s) => s,
                Err(_) => return RunOnce::Lead,
            };
        }
    }

    fn publish(&self, key: &str, result: Value) {
        if let Ok(mut st) = self.state.lock() {
            st.results.insert(key.to_string(), result);
        }
        self.cv.notify_all();
    }

    fn host_done(&self, host: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.done.insert(host.to_string());
        }
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn first_host_leads_others_follow() {
        let rv = Arc::new(LocalRendezvous::new(vec![
            "a".into(),
            "b".into(),
            "c".into(),
        ]));
        let r2 = rv.clone();
        let follower = std::thread::spawn(move || match r2.run_once("t1", "b") {
            RunOnce::Follow(v) => v,
            RunOnce::Lead => Value::Null,
        });
        assert!(matches!(rv.run_once("t1", "a"), RunOnce::Lead));
        rv.publish("t1", Value::from("x"));
        assert_eq!(follower.join().unwrap(), Value::from("x"));
    }

    #[test]
    fn leader_that_finishes_without_the_task_hands_over() {
        let rv = Arc::new(LocalRendezvous::new(vec!["a".into(), "b".into()]));
        let r2 = rv.clone();
        let b = std::thread::spawn(move || matches!(r2.run_once("t", "b"), RunOnce::Lead));
        std::thread::sleep(std::time::Duration::from_millis(20));
        rv.host_done("a");
        assert!(b.join().unwrap());
    }
}
