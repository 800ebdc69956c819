//! Where hosts of one play meet: `run_once` tasks run on one host and their result is shared;
//! `throttle` bounds how many hosts run a task at once.
//!
//! Hosts run independently; a `run_once` task is a meeting point. The first host in play order
//! that is still running leads: it runs the task and publishes the result. The others wait for
//! that result (or for the leader to finish the play without reaching the task, in which case
//! the next host in order leads). The first running host never waits, so nobody deadlocks.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};

use tend_proto::{Value, Vars};

use crate::delegate::{Call, Reply};

/// What a host does at a `run_once` task.
pub enum RunOnce {
    /// Run it, then [`Rendezvous::publish`] the result.
    Lead,
    /// Another host ran it; this is its result.
    Follow(Value),
}

/// A meeting point for the hosts of one play.
///
/// Every method is required: a wrapper (the engine's `Peers`) that forgot to pass one on would
/// otherwise answer for it silently with a default.
pub trait Rendezvous: Send + Sync {
    fn run_once(&self, key: &str, host: &str) -> RunOnce;
    fn publish(&self, key: &str, result: Value);
    /// The host finished the play (or stopped): it will lead nothing more.
    fn host_done(&self, host: &str);
    /// Lockstep plays (`any_errors_fatal`, `max_fail_percentage`): the host finished step `n`
    /// of the play (fact gathering, then each top-level task), `failed` if its play failed
    /// there. Waits until every running host of the batch has finished that step; true when
    /// the play stops there for every host.
    /// `fatal`: the failed task had `any_errors_fatal`.
    fn step(&self, host: &str, n: usize, failed: bool, fatal: bool) -> bool;
    /// The host became unreachable (for the lockstep rules; [`Rendezvous::host_done`] follows).
    fn host_unreachable(&self, host: &str);
    /// `hostvars[host]` of another host, as the controller knows it (see
    /// [`tend_lang::template::OtherHosts`]); `None`: not an inventory host.
    fn hostvars(&self, host: &str) -> Option<Value>;
    /// Runs a delegated module call on another host (`delegate_to`).
    fn delegate(&self, call: Call) -> Reply;
    /// `delegate_facts`: facts that belong to `host`. `set_fact`: they are `set_fact` values
    /// rather than gathered facts.
    fn delegated_facts(&self, host: &str, facts: Vars, set_fact: bool);
    /// `throttle: limit` on a task: waits until fewer than `limit` hosts of the play run the
    /// task `key`, then counts this host in until [`Rendezvous::throttle_release`] (or
    /// [`Rendezvous::host_done`]).
    fn throttle_acquire(&self, key: &str, host: &str, limit: usize);
    fn throttle_release(&self, key: &str, host: &str);
}

/// A question for the controller: another host's `hostvars`, and where to put the answer.
pub(crate) type HostvarsQuestion = (String, std::sync::mpsc::SyncSender<Option<Value>>);

/// Asks a [`Rendezvous`] for other hosts' `hostvars` from inside a template (which may not
/// borrow it): the questions go to a thread that holds the rendezvous.
pub(crate) struct Asker(Mutex<Option<std::sync::mpsc::Sender<HostvarsQuestion>>>);

impl Asker {
    pub fn new() -> (Asker, std::sync::mpsc::Receiver<HostvarsQuestion>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (Asker(Mutex::new(Some(tx))), rx)
    }

    /// No more questions: the thread answering them ends.
    pub fn close(&self) {
        if let Ok(mut tx) = self.0.lock() {
            tx.take();
        }
    }
}

impl tend_lang::template::OtherHosts for Asker {
    fn hostvars(&self, host: &str) -> Option<Value> {
        let tx = self.0.lock().ok()?.clone()?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        tx.send((host.to_string(), reply)).ok()?;
        answer.recv().ok()?
    }
}

/// When a lockstep play stops: ansible-core's linear strategy checks after each task.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepRule {
    /// Hosts in the batch, those that failed in an earlier play included.
    pub batch_size: usize,
    /// A failed or unreachable host stops every host.
    pub any_errors_fatal: bool,
    /// More than this share of the batch failed (unreachable hosts do not count) stops
    /// every host.
    pub max_fail_percentage: Option<f64>,
}

impl StepRule {
    fn stops(&self, failed: usize, unreachable: usize, fatal: bool) -> bool {
        if fatal || self.any_errors_fatal && failed + unreachable > 0 {
            return true;
        }
        self.max_fail_percentage.is_some_and(|max| {
            failed > 0 && (failed as f64 / self.batch_size.max(1) as f64) > max / 100.0
        })
    }
}

/// The in-process rendezvous used when the controller runs hosts itself.
pub struct LocalRendezvous {
    order: Vec<String>,
    rule: Option<StepRule>,
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    done: HashSet<String>,
    results: HashMap<String, Value>,
    /// Lockstep: per host, how many steps it finished.
    reached: HashMap<String, usize>,
    /// Hosts waiting for a step's other hosts: they lead no `run_once` of that step.
    parked: HashSet<String>,
    failed: HashSet<String>,
    unreachable: HashSet<String>,
    /// Per step, once every host finished it: whether the play stops there.
    decided: HashMap<usize, bool>,
    /// A task with `any_errors_fatal` failed.
    fatal: bool,
    /// Throttled tasks: the hosts running each one now.
    throttled: HashMap<String, HashSet<String>>,
}

impl LocalRendezvous {
    pub fn new(order: Vec<String>) -> Self {
        LocalRendezvous {
            order,
            rule: None,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        }
    }

    /// Whether a task with `any_errors_fatal` failed (it stopped every host).
    pub fn fatal_failed(&self) -> bool {
        self.state.lock().map(|s| s.fatal).unwrap_or(false)
    }

    /// A rendezvous whose hosts also meet after every step (see [`Rendezvous::step`]). Every
    /// host of `order` must be running at once, or the first step waits forever.
    pub fn lockstep(order: Vec<String>, rule: StepRule) -> Self {
        LocalRendezvous {
            rule: Some(rule),
            ..LocalRendezvous::new(order)
        }
    }
}

impl Rendezvous for LocalRendezvous {
    /// The batch alone knows no other host: the engine's rendezvous (`Peers`) answers.
    fn hostvars(&self, _host: &str) -> Option<Value> {
        None
    }
    fn delegate(&self, call: Call) -> Reply {
        Reply::error(format!(
            "this task is delegated to `{}`, which needs the controller to reach it",
            call.delegate
        ))
    }
    fn delegated_facts(&self, _host: &str, _facts: Vars, _set_fact: bool) {}
    fn run_once(&self, key: &str, host: &str) -> RunOnce {
        let Ok(mut st) = self.state.lock() else {
            return RunOnce::Lead;
        };
        loop {
            if let Some(r) = st.results.get(key) {
                return RunOnce::Follow(r.clone());
            }
            let leader = self
                .order
                .iter()
                .find(|h| !st.done.contains(*h) && !st.parked.contains(*h));
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
            // A host that stopped (or lost its connection) inside a throttled task frees it.
            for holders in st.throttled.values_mut() {
                holders.remove(host);
            }
        }
        self.cv.notify_all();
    }

    fn throttle_acquire(&self, key: &str, host: &str, limit: usize) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        loop {
            let holders = st.throttled.entry(key.to_string()).or_default();
            if holders.len() < limit.max(1) || holders.contains(host) {
                holders.insert(host.to_string());
                return;
            }
            st = match self.cv.wait(st) {
                Ok(s) => s,
                Err(_) => return,
            };
        }
    }

    fn throttle_release(&self, key: &str, host: &str) {
        if let Ok(mut st) = self.state.lock() {
            if let Some(h) = st.throttled.get_mut(key) {
                h.remove(host);
            }
        }
        self.cv.notify_all();
    }

    fn step(&self, host: &str, n: usize, failed: bool, fatal: bool) -> bool {
        let Some(rule) = self.rule else {
            return false;
        };
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        st.reached.insert(host.to_string(), n + 1);
        if failed {
            st.failed.insert(host.to_string());
            st.fatal |= fatal;
            drop(st);
            self.cv.notify_all();
            return true;
        }
        st.parked.insert(host.to_string());
        self.cv.notify_all();
        loop {
            if let Some(d) = st.decided.get(&n).copied() {
                st.parked.remove(host);
                return d;
            }
            let all_there = self
                .order
                .iter()
                .all(|h| st.done.contains(h) || st.reached.get(h).is_some_and(|r| *r > n));
            if all_there {
                let d = rule.stops(st.failed.len(), st.unreachable.len(), st.fatal);
                st.decided.insert(n, d);
                st.parked.remove(host);
                drop(st);
                self.cv.notify_all();
                return d;
            }
            st = match self.cv.wait(st) {
                Ok(s) => s,
                Err(_) => return false,
            };
        }
    }

    fn host_unreachable(&self, host: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.unreachable.insert(host.to_string());
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
    fn lockstep_stops_everyone_after_the_step_where_a_host_failed() {
        let rule = StepRule {
            batch_size: 3,
            any_errors_fatal: true,
            max_fail_percentage: None,
        };
        let rv = Arc::new(LocalRendezvous::lockstep(
            vec!["a".into(), "b".into(), "c".into()],
            rule,
        ));
        let walk = |rv: Arc<LocalRendezvous>, host: &'static str, fail_at: Option<usize>| {
            std::thread::spawn(move || {
                let mut steps = 0;
                for n in 0..5 {
                    let failed = fail_at == Some(n);
                    steps = n + 1;
                    if rv.step(host, n, failed, false) {
                        break;
                    }
                }
                rv.host_done(host);
                steps
            })
        };
        let a = walk(rv.clone(), "a", None);
        let b = walk(rv.clone(), "b", Some(2));
        let c = walk(rv.clone(), "c", None);
        // Everyone finished step 2 (the failing one) and nobody started step 3.
        assert_eq!(a.join().unwrap(), 3);
        assert_eq!(b.join().unwrap(), 3);
        assert_eq!(c.join().unwrap(), 3);
    }

    #[test]
    fn lockstep_threshold_hit_exactly_goes_on() {
        let rule = StepRule {
            batch_size: 2,
            any_errors_fatal: false,
            max_fail_percentage: Some(50.0),
        };
        let rv = Arc::new(LocalRendezvous::lockstep(
            vec!["a".into(), "b".into()],
            rule,
        ));
        let r2 = rv.clone();
        let b = std::thread::spawn(move || {
            let stopped = r2.step("b", 0, true, false);
            r2.host_done("b");
            stopped
        });
        assert!(!rv.step("a", 0, false, false));
        assert!(!rv.step("a", 1, false, false));
        assert!(b.join().unwrap());
    }

    #[test]
    fn throttle_lets_at_most_limit_hosts_in_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hosts: Vec<String> = (0..6).map(|i| format!("h{i}")).collect();
        let rv = Arc::new(LocalRendezvous::new(hosts.clone()));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = hosts
            .into_iter()
            .map(|h| {
                let (rv, inside, most) = (rv.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    rv.throttle_acquire("t", &h, 2);
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    rv.throttle_release("t", &h);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_host_that_stops_inside_a_throttled_task_frees_its_place() {
        let rv = Arc::new(LocalRendezvous::new(vec!["a".into(), "b".into()]));
        rv.throttle_acquire("t", "a", 1);
        let r2 = rv.clone();
        let b = std::thread::spawn(move || {
            r2.throttle_acquire("t", "b", 1);
            true
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!b.is_finished());
        rv.host_done("a");
        assert!(b.join().unwrap());
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
