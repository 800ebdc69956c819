//! Plays as a graph: tend's `needs:` between plays, checked before anything runs, and the
//! scheduler that runs plays whose dependencies are done in parallel.
//!
//! A play without `needs` comes after the play before it in the file (an *implicit* edge, with
//! ansible-core's meaning: hosts that failed earlier leave, the others go on; a rollout stop
//! ends what follows). `needs: [a, b]` replaces that edge with explicit ones; `needs: []` lets
//! the play start with the run. A play whose explicit dependency failed is skipped, and so is
//! everything that depends on it. Plays that share a host never run at the same time (one
//! agent session per host serves one play at a time, and the host's facts pass from one play
//! to the next in a definite order). docs/architecture.md, "Plays as a graph", has the rules.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, Sender};
use std::sync::Mutex;

use tend_lang::playbook::{BatchSize, HostOrder, Play};
use tend_lang::Diag;
use tend_proto::{Event, HostState};

use crate::{batches, HostFailure, PlayRun, Summary};

/// One edge: the play waits for `play` (an index into the playbook's plays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dep {
    pub play: usize,
    /// Written in `needs:` (false: the implicit "after the play before it").
    pub explicit: bool,
}

/// The plays of a playbook and what each waits for.
#[derive(Clone, Debug, Default)]
pub struct PlayGraph {
    /// Per play, in file order, its dependencies.
    pub deps: Vec<Vec<Dep>>,
}

impl PlayGraph {
    /// The graph of `plays`, or every problem with their `needs`: unknown names, names that
    /// more than one play has, cycles (each named with every play in it).
    pub fn build(plays: &[Play]) -> Result<PlayGraph, Vec<Diag>> {
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, p) in plays.iter().enumerate() {
            by_name.entry(p.name.as_str()).or_default().push(i);
        }
        let mut errors = Vec::new();
        let mut deps = Vec::with_capacity(plays.len());
        for (i, p) in plays.iter().enumerate() {
            let mut mine: Vec<Dep> = Vec::new();
            match &p.needs {
                None if i > 0 => mine.push(Dep {
                    play: i - 1,
                    explicit: false,
                }),
                None => {}
                Some(needs) => {
                    for (name, loc) in &needs.names {
                        match by_name.get(name.as_str()).map(Vec::as_slice) {
                            None | Some([]) => errors.push(
                                Diag::new(
                                    loc.clone(),
                                    format!(
                                        "play `{}` needs `{name}`, but no play has that name",
                                        p.name
                                    ),
                                )
                                .with_hint(format!(
                                    "`needs` names plays of this playbook: {}",
                                    name_list(plays)
                                )),
                            ),
                            Some([d]) => {
                                if !mine.iter().any(|x| x.play == *d) {
                                    mine.push(Dep {
                                        play: *d,
                                        explicit: true,
                                    });
                                }
                            }
                            Some(many) => {
                                let wheres: Vec<String> =
                                    many.iter().map(|j| plays[*j].loc.to_string()).collect();
                                errors.push(
                                    Diag::new(
                                        loc.clone(),
                                        format!(
                                            "play `{}` needs `{name}`, but {} plays have that name ({})",
                                            p.name,
                                            many.len(),
                                            wheres.join(", ")
                                        ),
                                    )
                                    .with_hint("give each play that `needs` names a name of its own"),
                                );
                            }
                        }
                    }
                }
            }
            deps.push(mine);
        }
        let graph = PlayGraph { deps };
        for cycle in graph.cycles() {
            errors.push(cycle_error(plays, &graph, &cycle));
        }
        if errors.is_empty() {
            Ok(graph)
        } else {
            Err(errors)
        }
    }

    /// Every cycle, as the plays of one strongly connected component (in file order), Tarjan's
    /// algorithm; a play that needs itself is a cycle of one.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let n = self.deps.len();
        let mut t = Tarjan {
            graph: self,
            index: vec![usize::MAX; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            next: 0,
            out: Vec::new(),
        };
        for v in 0..n {
            if t.index[v] == usize::MAX {
                t.visit(v);
            }
        }
        let mut out: Vec<Vec<usize>> = t
            .out
            .into_iter()
            .filter(|c| c.len() > 1 || self.deps[c[0]].iter().any(|d| d.play == c[0]))
            .map(|mut c| {
                c.sort_unstable();
                c
            })
            .collect();
        out.sort();
        out
    }

    /// Every play `idx` waits for, directly or not.
    pub fn ancestors(&self, idx: usize) -> Vec<usize> {
        let mut seen = vec![false; self.deps.len()];
        let mut todo: Vec<usize> = self.deps[idx].iter().map(|d| d.play).collect();
        let mut out = Vec::new();
        while let Some(p) = todo.pop() {
            if std::mem::replace(&mut seen[p], true) {
                continue;
            }
            out.push(p);
            todo.extend(self.deps[p].iter().map(|d| d.play));
        }
        out.sort_unstable();
        out
    }

    /// The order a run takes if every play succeeds and takes as long as any other: stages of
    /// plays that start together. A play is in the first stage after every play it needs; a
    /// play that shares a host with an earlier play of its stage moves to the next one.
    pub fn stages(&self, play_hosts: &[Vec<String>]) -> Vec<Vec<usize>> {
        let n = self.deps.len();
        let mut done = vec![false; n];
        let mut stages = Vec::new();
        let sets: Vec<HashSet<&str>> = play_hosts
            .iter()
            .map(|h| h.iter().map(String::as_str).collect())
            .collect();
        while done.iter().any(|d| !d) {
            let mut stage: Vec<usize> = Vec::new();
            for i in 0..n {
                if done[i] || !self.deps[i].iter().all(|d| done[d.play]) {
                    continue;
                }
                if stage.iter().any(|&j| shares_host(&sets[i], &sets[j])) {
                    continue;
                }
                stage.push(i);
            }
            if stage.is_empty() {
                break; // a cycle: `build` refuses those
            }
            for &i in &stage {
                done[i] = true;
            }
            stages.push(stage);
        }
        stages
    }
}

fn shares_host(a: &HashSet<&str>, b: &HashSet<&str>) -> bool {
    let (small, big) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small.iter().any(|h| big.contains(h))
}

struct Tarjan<'a> {
    graph: &'a PlayGraph,
    index: Vec<usize>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    out: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = self.next;
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for d in &self.graph.deps[v] {
            let w = d.play;
            if self.index[w] == usize::MAX {
                self.visit(w);
                self.low[v] = self.low[v].min(self.low[w]);
            } else if self.on_stack[w] {
                self.low[v] = self.low[v].min(self.index[w]);
            }
        }
        if self.low[v] == self.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            self.out.push(comp);
        }
    }
}

fn name_list(plays: &[Play]) -> String {
    let mut names: Vec<String> = plays.iter().map(|p| format!("`{}`", p.name)).collect();
    if names.len() > 12 {
        let more = names.len() - 12;
        names.truncate(12);
        names.push(format!("and {more} more"));
    }
    names.join(", ")
}

/// A cycle's error, at the first `needs:` in it (every cycle has one: implicit edges only
/// point back in the file).
fn cycle_error(plays: &[Play], graph: &PlayGraph, cycle: &[usize]) -> Diag {
    let members: Vec<String> = cycle
        .iter()
        .map(|&i| format!("`{}`", plays[i].name))
        .collect();
    let mut edges = Vec::new();
    for &i in cycle {
        for d in graph.deps[i].iter().filter(|d| cycle.contains(&d.play)) {
            edges.push(if d.explicit {
                format!("`{}` needs `{}`", plays[i].name, plays[d.play].name)
            } else {
                format!(
                    "`{}` comes after `{}` (no `needs`: the play before it)",
                    plays[i].name, plays[d.play].name
                )
            });
        }
    }
    let loc = cycle
        .iter()
        .find_map(|&i| plays[i].needs.as_ref().map(|n| n.loc.clone()))
        .unwrap_or_else(|| plays[cycle[0]].loc.clone());
    Diag::new(
        loc,
        format!(
            "these plays need each other in a cycle, so none of them could start: {} ({})",
            members.join(", "),
            edges.join("; ")
        ),
    )
    .with_hint(
        "remove one of these `needs`, or give a play without `needs` an explicit `needs: [...]`",
    )
}

/// How a play ended, as the plays after it see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayEnd {
    /// It ran: the hosts that failed in it, and whether its failures stopped the rollout.
    Ran {
        failed: Vec<(String, HostFailure)>,
        stopped: bool,
    },
    /// It was skipped, for this reason.
    Skipped(String),
    /// It did not run: a rollout stop before it ended the run (ansible-core's ordering).
    Ended,
}

/// What to do with a play whose dependencies have all ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Run,
    Skip(String),
    End,
}

/// The rule of the graph: a play after a stopped rollout (implicitly) ends with it, as in
/// ansible-core; a play whose explicit dependency failed, was skipped or did not run is
/// skipped, and says why; a play after a skipped play (implicitly) is skipped too. Otherwise it
/// runs (on the hosts that have not failed in a play it waits for).
pub fn decide(plays: &[Play], deps: &[Dep], ends: &[Option<PlayEnd>]) -> Decision {
    let name = |i: usize| plays[i].name.as_str();
    for d in deps.iter().filter(|d| !d.explicit) {
        match &ends[d.play] {
            Some(PlayEnd::Ended) | Some(PlayEnd::Ran { stopped: true, .. }) => {
                return Decision::End
            }
            _ => {}
        }
    }
    let mut why = Vec::new();
    for d in deps.iter().filter(|d| d.explicit) {
        match &ends[d.play] {
            Some(PlayEnd::Ran { failed, stopped }) if !failed.is_empty() || *stopped => {
                let mut hosts: Vec<String> = failed
                    .iter()
                    .take(5)
                    .map(|(h, w)| format!("{h} ({})", w.word()))
                    .collect();
                if failed.len() > 5 {
                    hosts.push(format!("and {} more", failed.len() - 5));
                }
                why.push(if hosts.is_empty() {
                    format!("needs `{}`, whose rollout stopped", name(d.play))
                } else {
                    format!(
                        "needs `{}`, which failed on {}",
                        name(d.play),
                        hosts.join(", ")
                    )
                });
            }
            Some(PlayEnd::Skipped(_)) => {
                why.push(format!("needs `{}`, which was skipped", name(d.play)))
            }
            Some(PlayEnd::Ended) => why.push(format!(
                "needs `{}`, which did not run (the run ended before it)",
                name(d.play)
            )),
            _ => {}
        }
    }
    if !why.is_empty() {
        return Decision::Skip(why.join("; "));
    }
    for d in deps.iter().filter(|d| !d.explicit) {
        if let Some(PlayEnd::Skipped(_)) = &ends[d.play] {
            return Decision::Skip(format!("comes after `{}`, which was skipped", name(d.play)));
        }
    }
    Decision::Run
}

/// One play of the run, as the scheduler runs it: `(play, hosts excluded, their states, events)`.
pub(crate) type RunPlay<'a> = dyn Fn(usize, &HashSet<String>, HashMap<String, HostState>, &Sender<Event>) -> PlayRun
    + Sync
    + 'a;

/// Runs the plays of `graph`: each starts as soon as what it waits for has ended and no play
/// sharing a host with it is running (ready plays start in file order), on a thread of its
/// own. Events of plays that run at once are passed on play by play (see [`Mux`]).
pub(crate) fn run(
    graph: &PlayGraph,
    plays: &[Play],
    play_hosts: &[Vec<String>],
    tx: &Sender<Event>,
    run_play: &RunPlay,
) -> Summary {
    let n = plays.len();
    let mut summary = Summary::default();
    let mut ends: Vec<Option<PlayEnd>> = vec![None; n];
    let mut started = vec![false; n];
    let mut running: Vec<usize> = Vec::new();
    let mut failed_in: Vec<HashSet<String>> = vec![HashSet::new(); n];
    let mut states: HashMap<String, HostState> = HashMap::new();
    let sets: Vec<HashSet<&str>> = play_hosts
        .iter()
        .map(|h| h.iter().map(String::as_str).collect())
        .collect();
    let mux = Mux::new(tx.clone());
    let (done_tx, done_rx) = mpsc::channel::<(usize, Option<PlayRun>)>();
    std::thread::scope(|s| loop {
        let mut progressed = true;
        while progressed {
            progressed = false;
            for i in 0..n {
                if started[i] || !graph.deps[i].iter().all(|d| ends[d.play].is_some()) {
                    continue;
                }
                match decide(plays, &graph.deps[i], &ends) {
                    Decision::End => {
                        started[i] = true;
                        ends[i] = Some(PlayEnd::Ended);
                        progressed = true;
                    }
                    Decision::Skip(why) => {
                        started[i] = true;
                        mux.open(i);
                        mux.event(
                            i,
                            Event::PlaySkipped {
                                name: plays[i].name.clone(),
                                reason: why.clone(),
                            },
                        );
                        mux.close(i);
                        summary.skipped.push((plays[i].name.clone(), why.clone()));
                        ends[i] = Some(PlayEnd::Skipped(why));
                        progressed = true;
                    }
                    Decision::Run => {
                        if running.iter().any(|&r| shares_host(&sets[i], &sets[r])) {
                            continue;
                        }
                        started[i] = true;
                        running.push(i);
                        let excluded: HashSet<String> = graph
                            .ancestors(i)
                            .into_iter()
                            .flat_map(|a| failed_in[a].iter().cloned())
                            .collect();
                        let snapshot: HashMap<String, HostState> = play_hosts[i]
                            .iter()
                            .filter_map(|h| states.get(h).map(|st| (h.clone(), st.clone())))
                            .collect();
                        mux.open(i);
                        let done_tx = done_tx.clone();
                        let mux = &mux;
                        s.spawn(move || {
                            let (etx, erx) = mpsc::channel::<Event>();
                            std::thread::scope(|inner| {
                                inner.spawn(move || {
                                    for e in erx {
                                        mux.event(i, e);
                                    }
                                    mux.close(i);
                                });
                                let done = Done {
                                    tx: done_tx,
                                    play: i,
                                    sent: false,
                                };
                                let ran = run_play(i, &excluded, snapshot, &etx);
                                drop(etx);
                                done.finish(ran);
                            });
                        });
                    }
                }
            }
        }
        if running.is_empty() {
            break;
        }
        // `None`: the play's thread panicked; the scope passes the panic on once the plays
        // still running have ended.
        let Ok((i, Some(ran))) = done_rx.recv() else {
            break;
        };
        running.retain(|&r| r != i);
        for (host, stats) in ran.stats {
            summary.stats.entry(host).or_default().add(&stats);
        }
        failed_in[i] = ran.failed.iter().map(|(h, _)| h.clone()).collect();
        states.extend(ran.states);
        let stopped = ran.stopped.is_some();
        if summary.stopped.is_none() {
            summary.stopped = ran.stopped;
        }
        ends[i] = Some(PlayEnd::Ran {
            failed: ran.failed,
            stopped,
        });
    });
    summary
}

/// Tells the scheduler that a play ended, also when its thread panicked (`None`): without
/// it, the scheduler would wait for that play forever.
struct Done {
    tx: Sender<(usize, Option<PlayRun>)>,
    play: usize,
    sent: bool,
}

impl Done {
    fn finish(mut self, ran: PlayRun) {
        self.sent = true;
        let _ = self.tx.send((self.play, Some(ran)));
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.tx.send((self.play, None));
        }
    }
}

/// Passes the events of plays that run at once on without mixing them: the play that started
/// first streams live; the others' events are held, and passed on in one piece, in the order
/// the plays started, when the plays before them have ended. A playbook run play after play
/// streams exactly as before.
struct Mux {
    out: Sender<Event>,
    state: Mutex<MuxState>,
}

#[derive(Default)]
struct MuxState {
    front: Option<usize>,
    /// Opened plays behind the front one, in the order they opened.
    queue: std::collections::VecDeque<usize>,
    held: HashMap<usize, Vec<Event>>,
    closed: HashSet<usize>,
}

impl Mux {
    fn new(out: Sender<Event>) -> Self {
        Mux {
            out,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MuxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self, play: usize) {
        let mut st = self.lock();
        if st.front.is_none() {
            st.front = Some(play);
        } else {
            st.queue.push_back(play);
        }
    }

    fn event(&self, play: usize, e: Event) {
        let mut st = self.lock();
        if st.front == Some(play) {
            let _ = self.out.send(e);
        } else {
            st.held.entry(play).or_default().push(e);
        }
    }

    fn close(&self, play: usize) {
        let mut st = self.lock();
        st.closed.insert(play);
        if st.front != Some(play) {
            return;
        }
        st.front = None;
        while let Some(next) = st.queue.pop_front() {
            for e in st.held.remove(&next).unwrap_or_default() {
                let _ = self.out.send(e);
            }
            if !st.closed.contains(&next) {
                st.front = Some(next);
                break;
            }
        }
    }
}

/// The execution order of a run, for `--dry-run-orchestration`: nothing is contacted.
#[derive(Clone, Debug)]
pub struct Orchestration {
    pub stages: Vec<Vec<PlayOrder>>,
}

/// One play in the order: what it waits for and its batches.
#[derive(Clone, Debug)]
pub struct PlayOrder {
    /// 1-based, in file order.
    pub number: usize,
    pub name: String,
    pub loc: String,
    /// Explicit `needs`, by name.
    pub needs: Option<Vec<String>>,
    /// The play it comes after when it has no `needs`.
    pub after: Option<String>,
    /// Its hosts meet after each task (`any_errors_fatal`, `max_fail_percentage`).
    pub lockstep: bool,
    pub serial: Vec<String>,
    pub order: &'static str,
    pub max_fail_percentage: Option<f64>,
    pub any_errors_fatal: bool,
    /// Its hosts, batch by batch.
    pub batches: Vec<Vec<String>>,
    /// It has a `health:` gate, run on each batch after it converged.
    pub health_gate: bool,
}

/// The execution order of a prepared run.
pub fn orchestration(prep: &crate::Prepared) -> Orchestration {
    let plays = &prep.playbook.plays;
    let graph = &prep.graph;
    let stages = graph
        .stages(&prep.play_hosts)
        .into_iter()
        .map(|stage| {
            stage
                .into_iter()
                .map(|i| {
                    let p = &plays[i];
                    let ordered =
                        batches::order_hosts(&prep.play_hosts[i], p.rollout.order, &p.name);
                    PlayOrder {
                        number: i + 1,
                        name: p.name.clone(),
                        loc: p.loc.to_string(),
                        needs: p
                            .needs
                            .as_ref()
                            .map(|n| n.names.iter().map(|(s, _)| s.clone()).collect()),
                        after: graph.deps[i]
                            .iter()
                            .find(|d| !d.explicit)
                            .map(|d| plays[d.play].name.clone()),
                        lockstep: crate::compile::lockstep(p),
                        serial: p
                            .rollout
                            .serial
                            .iter()
                            .map(|s| match s {
                                BatchSize::Count(n) => n.to_string(),
                                BatchSize::Percent(n) => format!("{n}%"),
                            })
                            .collect(),
                        order: order_name(p.rollout.order),
                        max_fail_percentage: p.rollout.max_fail_percentage,
                        any_errors_fatal: p.rollout.any_errors_fatal,
                        batches: batches::split(&ordered, &p.rollout.serial),
                        health_gate: !p.health.is_empty(),
                    }
                })
                .collect()
        })
        .collect();
    Orchestration { stages }
}

fn order_name(o: HostOrder) -> &'static str {
    match o {
        HostOrder::Inventory => "inventory",
        HostOrder::ReverseInventory => "reverse_inventory",
        HostOrder::Sorted => "sorted",
        HostOrder::ReverseSorted => "reverse_sorted",
        HostOrder::Shuffle => "shuffle",
    }
}

#[cfg(test)]
mod tests;
