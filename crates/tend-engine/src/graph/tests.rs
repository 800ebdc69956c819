use super::*;

fn plays(yaml: &str) -> (tempfile::TempDir, Vec<Play>) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("site.yml");
    std::fs::write(&p, yaml).unwrap();
    let pb = tend_lang::playbook::load(&p).unwrap();
    (d, pb.plays)
}

/// `- name: N\n  hosts: H\n  needs: ...` for each (name, hosts, needs).
fn book(spec: &[(&str, &str, Option<&str>)]) -> String {
    let mut s = String::new();
    for (name, hosts, needs) in spec {
        s.push_str(&format!("- name: {name}\n  hosts: {hosts}\n"));
        if let Some(n) = needs {
            s.push_str(&format!("  needs: {n}\n"));
        }
    }
    s
}

fn errors(yaml: &str) -> Vec<String> {
    let (_d, p) = plays(yaml);
    PlayGraph::build(&p)
        .unwrap_err()
        .iter()
        .map(|d| format!("{}: {}", d.loc, d.msg))
        .collect()
}

fn hosts(list: &[&[&str]]) -> Vec<Vec<String>> {
    list.iter()
        .map(|h| h.iter().map(|s| s.to_string()).collect())
        .collect()
}

#[test]
fn without_needs_every_play_comes_after_the_one_before_it() {
    let (_d, p) = plays(&book(&[
        ("a", "x", None),
        ("b", "y", None),
        ("c", "z", None),
    ]));
    let g = PlayGraph::build(&p).unwrap();
    assert_eq!(g.deps[0], vec![]);
    assert_eq!(
        g.deps[2],
        vec![Dep {
            play: 1,
            explicit: false
        }]
    );
    // Different hosts, still one play per stage: the file order is the order.
    assert_eq!(
        g.stages(&hosts(&[&["x"], &["y"], &["z"]])),
        vec![vec![0], vec![1], vec![2]]
    );
    assert_eq!(g.ancestors(2), vec![0, 1]);
}

#[test]
fn independent_plays_share_a_stage_and_dependents_follow() {
    let (_d, p) = plays(&book(&[
        ("db", "db1", Some("[]")),
        ("cache", "c1", Some("[]")),
        ("app", "a1", Some("[db, cache]")),
        ("lb", "l1", None),
    ]));
    let g = PlayGraph::build(&p).unwrap();
    let h = hosts(&[&["db1"], &["c1"], &["a1"], &["l1"]]);
    assert_eq!(g.stages(&h), vec![vec![0, 1], vec![2], vec![3]]);
    assert_eq!(g.ancestors(3), vec![0, 1, 2]);
}

#[test]
fn plays_that_share_a_host_are_not_in_one_stage() {
    let (_d, p) = plays(&book(&[
        ("a", "x", Some("[]")),
        ("b", "x", Some("[]")),
        ("c", "y", Some("[]")),
    ]));
    let g = PlayGraph::build(&p).unwrap();
    let h = hosts(&[&["x", "y"], &["x"], &["z"]]);
    assert_eq!(g.stages(&h), vec![vec![0, 2], vec![1]]);
}

#[test]
fn unknown_names_are_refused_at_the_name() {
    let e = errors(&book(&[
        ("db", "x", Some("[]")),
        ("app", "x", Some("[db, dbx]")),
    ]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("site.yml:6:15: play `app` needs `dbx`, but no play has that name"),
        "{e:?}"
    );
}

#[test]
fn a_name_two_plays_have_is_refused_when_needs_uses_it() {
    let e = errors(&book(&[
        ("db", "x", None),
        ("db", "y", None),
        ("app", "z", Some("db")),
    ]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("needs `db`, but 2 plays have that name"),
        "{e:?}"
    );
    assert!(
        e[0].contains("site.yml:1:3") && e[0].contains("site.yml:3:3"),
        "{e:?}"
    );
    // Unused duplicate names are Ansible's business, not refused.
    let (_d, p) = plays(&book(&[("db", "x", None), ("db", "y", None)]));
    assert!(PlayGraph::build(&p).is_ok());
}

#[test]
fn a_cycle_names_every_play_in_it_and_only_those() {
    let e = errors(&book(&[
        ("ok", "x", Some("[]")),
        ("a", "x", Some("[c]")),
        ("b", "x", Some("[a]")),
        ("c", "x", Some("[b, ok]")),
        ("d", "x", Some("[c]")),
    ]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains(":6:3: these plays need each other in a cycle"),
        "{e:?}"
    );
    assert!(e[0].contains("`a`, `b`, `c` ("), "{e:?}");
    assert!(!e[0].contains("`ok`,") && !e[0].contains("`d`"), "{e:?}");
}

#[test]
fn cycles_through_an_implicit_edge_and_self_needs_are_found_each() {
    // b needs c; c has no needs, so it comes after b: a cycle of two. e needs itself.
    let e = errors(&book(&[
        ("a", "x", None),
        ("b", "x", Some("c")),
        ("c", "x", None),
        ("e", "x", Some("e")),
    ]));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("`b`, `c` (`b` needs `c`; `c` comes after `b`"),
        "{e:?}"
    );
    assert!(
        e[1].contains("cycle") && e[1].contains("`e` (`e` needs `e`)"),
        "{e:?}"
    );
}

fn ran(failed: &[(&str, HostFailure)], stopped: bool) -> Option<PlayEnd> {
    Some(PlayEnd::Ran {
        failed: failed.iter().map(|(h, w)| (h.to_string(), *w)).collect(),
        stopped,
    })
}

#[test]
fn a_play_whose_need_failed_is_skipped_and_says_where() {
    let (_d, p) = plays(&book(&[
        ("db", "x", Some("[]")),
        ("app", "x", Some("[db]")),
        ("lb", "x", None),
        ("web", "x", Some("[app]")),
    ]));
    let g = PlayGraph::build(&p).unwrap();
    let mut ends = vec![
        ran(
            &[
                ("db1", HostFailure::Failed),
                ("db2", HostFailure::Unreachable),
            ],
            false,
        ),
        None,
        None,
        None,
    ];
    let d = decide(&p, &g.deps[1], &ends);
    assert_eq!(
        d,
        Decision::Skip("needs `db`, which failed on db1 (failed), db2 (unreachable)".into())
    );
    ends[1] = Some(PlayEnd::Skipped("x".into()));
    // Its dependents, explicit or implicit, are skipped too.
    assert_eq!(
        decide(&p, &g.deps[2], &ends),
        Decision::Skip("comes after `app`, which was skipped".into())
    );
    assert_eq!(
        decide(&p, &g.deps[3], &ends),
        Decision::Skip("needs `app`, which was skipped".into())
    );
}

#[test]
fn implicit_order_keeps_ansible_meaning() {
    let (_d, p) = plays(&book(&[
        ("a", "x", None),
        ("b", "x", None),
        ("c", "x", Some("[a]")),
    ]));
    let g = PlayGraph::build(&p).unwrap();
    // Failed hosts leave, the play still runs.
    let ends = vec![ran(&[("h1", HostFailure::Failed)], false), None, None];
    assert_eq!(decide(&p, &g.deps[1], &ends), Decision::Run);
    // A stopped rollout ends what follows implicitly; an explicit dependent is skipped.
    let ends = vec![ran(&[("h1", HostFailure::Failed)], true), None, None];
    assert_eq!(decide(&p, &g.deps[1], &ends), Decision::End);
    assert!(matches!(decide(&p, &g.deps[2], &ends), Decision::Skip(_)));
    let ends = vec![ran(&[], false), Some(PlayEnd::Ended), None];
    assert_eq!(decide(&p, &g.deps[1], &ends), Decision::Run);
    assert_eq!(
        decide(
            &p,
            &[Dep {
                play: 1,
                explicit: false
            }],
            &ends
        ),
        Decision::End
    );
}

#[test]
fn many_failed_hosts_are_counted_not_listed() {
    let (_d, p) = plays(&book(&[("db", "x", Some("[]")), ("app", "x", Some("db"))]));
    let g = PlayGraph::build(&p).unwrap();
    let failed: Vec<(String, HostFailure)> = (1..=8)
        .map(|i| (format!("h{i}"), HostFailure::Failed))
        .collect();
    let ends = vec![
        Some(PlayEnd::Ran {
            failed,
            stopped: false,
        }),
        None,
    ];
    let Decision::Skip(why) = decide(&p, &g.deps[1], &ends) else {
        panic!()
    };
    assert!(why.ends_with("h5 (failed), and 3 more"), "{why}");
}

/// The scheduler on fake plays: each play records when it started and ended; a play must not
/// start before what it waits for ended, and plays sharing a host never overlap.
#[test]
fn the_scheduler_runs_independent_plays_at_once_and_skips_dependents_of_failures() {
    let (_d, p) = plays(&book(&[
        ("a", "x", Some("[]")),
        ("b", "y", Some("[]")),
        ("c", "z", Some("[a, b]")),
        ("d", "x", Some("[c]")),
        ("e", "x", None),
    ]));
    let g = PlayGraph::build(&p).unwrap();
    let h = hosts(&[&["h1"], &["h2"], &["h3"], &["h1"], &["h1"]]);
    // a and b wait for each other: only possible if they run at once.
    let barrier = std::sync::Barrier::new(2);
    let log = Mutex::new(Vec::new());
    let one =
        |i: usize, _ex: &HashSet<String>, _st: HashMap<String, HostState>, tx: &Sender<Event>| {
            let _ = tx.send(Event::PlayStart {
                name: p[i].name.clone(),
                hosts: h[i].clone(),
                batch: None,
            });
            if i < 2 {
                barrier.wait();
            }
            log.lock().unwrap().push(i);
            let mut run = PlayRun::default();
            run.stats.insert(h[i][0].clone(), Default::default());
            if i == 2 {
                run.failed.push(("h3".into(), HostFailure::Failed));
            }
            run
        };
    let (tx, rx) = mpsc::channel();
    let summary = run(&g, &p, &h, &tx, &one);
    drop(tx);
    let mut order: Vec<usize> = log.into_inner().unwrap();
    order[..2].sort_unstable();
    assert_eq!(order, vec![0, 1, 2]);
    assert_eq!(
        summary.skipped,
        vec![
            (
                "d".to_string(),
                "needs `c`, which failed on h3 (failed)".to_string()
            ),
            (
                "e".to_string(),
                "comes after `d`, which was skipped".to_string()
            )
        ]
    );
    assert_eq!(summary.exit_code(), 2);
    // Events come play by play, never mixed.
    let events: Vec<String> = rx
        .iter()
        .map(|e| match e {
            Event::PlayStart { name, .. } => format!("start {name}"),
            Event::PlaySkipped { name, .. } => format!("skip {name}"),
            _ => String::new(),
        })
        .collect();
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(&events[2..], &["start c", "skip d", "skip e"]);
}

#[test]
fn the_mux_holds_a_later_play_until_the_earlier_one_ends() {
    let (tx, rx) = mpsc::channel();
    let mux = Mux::new(tx);
    let w = |n: &str| Event::Warning {
        host: None,
        msg: n.into(),
    };
    mux.open(0);
    mux.open(1);
    mux.open(2);
    mux.event(1, w("b1"));
    mux.event(0, w("a1"));
    mux.event(2, w("c1"));
    mux.close(1);
    mux.event(0, w("a2"));
    mux.close(0);
    mux.event(2, w("c2"));
    mux.close(2);
    drop(mux);
    let got: Vec<String> = rx
        .iter()
        .map(|e| match e {
            Event::Warning { msg, .. } => msg,
            _ => String::new(),
        })
        .collect();
    assert_eq!(got, vec!["a1", "a2", "b1", "c1", "c2"]);
}

#[test]
fn imported_plays_take_part_by_name() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("db.yml"),
        "- name: db\n  hosts: x\n  needs: []\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("site.yml"),
        "- name: web\n  hosts: y\n  needs: []\n- import_playbook: db.yml\n- name: app\n  hosts: z\n  needs: [db, web]\n",
    )
    .unwrap();
    let p = tend_lang::playbook::load(&d.path().join("site.yml"))
        .unwrap()
        .plays;
    let g = PlayGraph::build(&p).unwrap();
    let names: Vec<&str> = g.deps[2].iter().map(|d| p[d.play].name.as_str()).collect();
    assert_eq!(names, vec!["db", "web"]);
    assert_eq!(
        g.stages(&hosts(&[&["y"], &["x"], &["z"]])),
        vec![vec![0, 1], vec![2]]
    );
}

/// Regression: a play whose thread panicked left the scheduler waiting for it forever; now the
/// panic reaches the caller (the binary reports the run as crashed).
#[test]
fn a_panicking_play_does_not_hang_the_run() {
    let (_d, p) = plays(&book(&[("a", "x", Some("[]")), ("b", "y", Some("[a]"))]));
    let g = PlayGraph::build(&p).unwrap();
    let h = hosts(&[&["x"], &["y"]]);
    let one = |i: usize,
               _ex: &HashSet<String>,
               _st: HashMap<String, HostState>,
               _tx: &Sender<Event>|
     -> PlayRun {
        if i == 0 {
            panic!("play thread fails");
        }
        PlayRun::default()
    };
    let (tx, _rx) = mpsc::channel();
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&g, &p, &h, &tx, &one)));
    assert!(got.is_err());
}

mod property {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A random playbook: per play, `None` (implicit) or explicit needs among earlier plays
    /// (so no cycle), its hosts among h0..h3, and whether it fails (and stops) when it runs.
    fn playbook() -> impl Strategy<Value = Vec<(Option<Vec<usize>>, Vec<usize>, u8)>> {
        (1usize..8).prop_flat_map(|n| {
            (0..n)
                .map(|i| {
                    let needs = prop_oneof![
                        Just(None),
                        proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i)
                            .prop_map(Some),
                    ];
                    let hosts = proptest::sample::subsequence(vec![0usize, 1, 2, 3], 1..=2);
                    (needs, hosts, 0u8..4)
                })
                .collect::<Vec<_>>()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the graph: a play starts only after every play it waits for ended, plays
        /// sharing a host never overlap, a play runs exactly when `decide` says so, and the
        /// hosts it excludes are those that failed in the plays it waits for.
        #[test]
        fn the_scheduler_keeps_the_graph_rules(spec in playbook()) {
            let mut yaml = String::new();
            for (i, (needs, hosts, _)) in spec.iter().enumerate() {
                let hosts: Vec<String> = hosts.iter().map(|h| format!("h{h}")).collect();
                yaml.push_str(&format!("- name: p{i}\n  hosts: {}\n", hosts.join(":")));
                if let Some(n) = needs {
                    let n: Vec<String> = n.iter().map(|j| format!("p{j}")).collect();
                    yaml.push_str(&format!("  needs: [{}]\n", n.join(", ")));
                }
            }
            let (_d, p) = plays(&yaml);
            let g = PlayGraph::build(&p).unwrap();
            let play_hosts: Vec<Vec<String>> = spec
                .iter()
                .map(|(_, h, _)| h.iter().map(|h| format!("h{h}")).collect())
                .collect();
            let clock = AtomicUsize::new(0);
            let spans = Mutex::new(vec![None::<(usize, usize)>; spec.len()]);
            let seen = Mutex::new(vec![HashSet::<String>::new(); spec.len()]);
            let one = |i: usize,
                       ex: &HashSet<String>,
                       _st: HashMap<String, HostState>,
                       _tx: &Sender<Event>| {
                let start = clock.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap()[i] = ex.clone();
                std::thread::yield_now();
                let mut run = PlayRun::default();
                let fail = spec[i].2;
                if fail >= 2 {
                    // 2: the play's first host fails; 3: and its rollout stops.
                    let h = play_hosts[i][0].clone();
                    if !ex.contains(&h) {
                        run.failed.push((h, HostFailure::Failed));
                    }
                    if fail == 3 {
                        run.stopped = Some((batches::Stop::AnyErrorsFatal, "stop".into()));
                    }
                }
                let end = clock.fetch_add(1, Ordering::SeqCst);
                spans.lock().unwrap()[i] = Some((start, end));
                run
            };
            let (tx, _rx) = mpsc::channel();
            let summary = run(&g, &p, &play_hosts, &tx, &one);
            let spans = spans.into_inner().unwrap();
            let seen = seen.into_inner().unwrap();

            // Replay the decisions in file order (dependencies come first).
            let mut ends: Vec<Option<PlayEnd>> = vec![None; spec.len()];
            let mut failed_in: Vec<HashSet<String>> = vec![HashSet::new(); spec.len()];
            for i in 0..spec.len() {
                let d = decide(&p, &g.deps[i], &ends);
                prop_assert_eq!(spans[i].is_some(), d == Decision::Run, "play {}: {:?}", i, d);
                ends[i] = Some(match d {
                    Decision::Run => {
                        let excluded: HashSet<String> = g
                            .ancestors(i)
                            .into_iter()
                            .flat_map(|a| failed_in[a].iter().cloned())
                            .collect();
                        prop_assert_eq!(&seen[i], &excluded);
                        let fail = spec[i].2;
                        let h = play_hosts[i][0].clone();
                        let failed = if fail >= 2 && !excluded.contains(&h) {
                            vec![(h, HostFailure::Failed)]
                        } else {
                            vec![]
                        };
                        failed_in[i] = failed.iter().map(|(h, _)| h.clone()).collect();
                        PlayEnd::Ran { failed, stopped: fail == 3 }
                    }
                    Decision::Skip(why) => PlayEnd::Skipped(why),
                    Decision::End => PlayEnd::Ended,
                });
                if let Some((s, _)) = spans[i] {
                    for dep in &g.deps[i] {
                        if let Some((_, e)) = spans[dep.play] {
                            prop_assert!(e < s, "play {} started before {} ended", i, dep.play);
                        }
                    }
                }
            }
            for i in 0..spec.len() {
                for j in i + 1..spec.len() {
                    let share = play_hosts[i].iter().any(|h| play_hosts[j].contains(h));
                    if let (true, Some((s1, e1)), Some((s2, e2))) = (share, spans[i], spans[j]) {
                        prop_assert!(e1 < s2 || e2 < s1, "plays {} and {} overlap", i, j);
                    }
                }
            }
            let skipped = ends.iter().filter(|e| matches!(e, Some(PlayEnd::Skipped(_)))).count();
            prop_assert_eq!(summary.skipped.len(), skipped);
        }
    }
}
