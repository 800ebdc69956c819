//! Rolling batches: how a play's hosts are ordered and split (`order`, `serial`) and when a
//! batch's failures stop the rollout (`max_fail_percentage`, `any_errors_fatal`, a batch where
//! every host failed). Pure functions, with ansible-core 2.19's meaning; the rules are written
//! down in docs/architecture.md ("Batches") and checked against a model by a property test.

use tend_lang::playbook::{BatchSize, HostOrder, Rollout};

/// The play's hosts in the order `order` asks for. `shuffle` is seeded from the play's name
/// and its hosts, so the same play on the same hosts shuffles the same way every run (ansible-core
/// shuffles differently each run; a repeatable order lets a plan and its apply agree).
pub fn order_hosts(hosts: &[String], order: HostOrder, play_name: &str) -> Vec<String> {
    let mut out = hosts.to_vec();
    match order {
        HostOrder::Inventory => {}
        HostOrder::ReverseInventory => out.reverse(),
        HostOrder::Sorted => out.sort(),
        HostOrder::ReverseSorted => {
            out.sort();
            out.reverse();
        }
        HostOrder::Shuffle => {
            let mut rng = SplitMix(shuffle_seed(play_name, hosts));
            // Fisher–Yates.
            for i in (1..out.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                out.swap(i, j);
            }
        }
    }
    out
}

/// FNV-1a over the play name and the host names (each followed by a NUL).
fn shuffle_seed(play_name: &str, hosts: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in std::iter::once(play_name).chain(hosts.iter().map(String::as_str)) {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// How many hosts one `serial` entry takes from a play of `total` hosts (ansible-core's
/// `pct_to_int`): a percentage of all the play's hosts rounded down, at least 1; a count as is
/// (0 or less: every remaining host).
pub fn batch_len(size: BatchSize, total: usize) -> i64 {
    match size {
        BatchSize::Count(n) => n,
        BatchSize::Percent(p) => {
            let n = ((p as f64 / 100.0) * total as f64) as i64;
            if n == 0 {
                1
            } else {
                n
            }
        }
    }
}

/// Splits ordered hosts into batches: each `serial` entry in turn, the last one repeating until
/// every host has a batch. No `serial`: one batch of every host. No hosts: no batch.
pub fn split(hosts: &[String], serial: &[BatchSize]) -> Vec<Vec<String>> {
    let total = hosts.len();
    let mut batches = Vec::new();
    let mut rest = hosts;
    let mut entry = 0usize;
    while !rest.is_empty() {
        let n = serial.get(entry).map_or(-1, |s| batch_len(*s, total));
        let take = if n <= 0 {
            rest.len()
        } else {
            (n as usize).min(rest.len())
        };
        batches.push(rest[..take].to_vec());
        rest = &rest[take..];
        entry = (entry + 1).min(serial.len().saturating_sub(1));
    }
    batches
}

/// What happened to one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Hosts in the batch, those that failed in an earlier play included.
    pub hosts: usize,
    /// Hosts of the batch that had failed (or were unreachable) before it and did not run.
    pub earlier: usize,
    /// Hosts whose play failed in this batch (a task failed, not ignored and not rescued).
    pub failed: usize,
    /// Hosts that became unreachable in this batch.
    pub unreachable: usize,
}

/// Why a rollout stops after a batch; every later batch and play is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `any_errors_fatal` and a host of the batch failed or was unreachable.
    AnyErrorsFatal,
    /// More than `max_fail_percentage` of the batch's hosts failed.
    MaxFailPercentage,
    /// Every host of the batch failed or was unreachable.
    AllFailed,
    /// The play's `health:` gate failed on a host of the batch (see `health.rs`).
    HealthGate,
}

/// What the batch's failures do to the rollout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Every host of the batch that is still running counts as failed from here on (it leaves
    /// later plays, though its recap shows no failure): `any_errors_fatal` or the threshold hit.
    pub fail_rest: bool,
    /// The run ends after this batch: no later batch, no later play.
    pub stop: Option<Stop>,
}

impl Stop {
    pub fn describe(self, play: &str, outcome: BatchOutcome, rollout: &Rollout) -> String {
        let bad = outcome.failed + outcome.unreachable;
        match self {
            Stop::AnyErrorsFatal => format!(
                "play `{play}` stopped: any_errors_fatal, and {bad} of {} hosts in the batch failed; no more hosts left",
                outcome.hosts
            ),
            Stop::MaxFailPercentage => format!(
                "play `{play}` stopped: {} of {} hosts in the batch failed, more than max_fail_percentage {}%; no more hosts left",
                outcome.failed,
                outcome.hosts,
                rollout.max_fail_percentage.unwrap_or_default()
            ),
            Stop::AllFailed => format!(
                "play `{play}` stopped: every host of the batch failed; no more hosts left"
            ),
            Stop::HealthGate => format!("health gate of play \"{play}\" failed"),
        }
    }
}

/// What a batch's failures do, as ansible-core 2.19 decides it (the linear strategy's
/// any_errors_fatal and max_fail_percentage checks, then the playbook executor's "entire batch
/// failed" check):
/// - `any_errors_fatal` and a host failed or was unreachable: every other running host of the
///   batch is failed too;
/// - `max_fail_percentage`: failed hosts (not unreachable ones; those failed by
///   `any_errors_fatal` included) over every host of the batch (those that failed in earlier
///   plays included) strictly greater than the percentage ends the run;
/// - the batch's new failures and unreachable hosts are the whole batch: the run ends. A batch
///   that holds a host that failed in an earlier play never ends the run this way.
pub fn verdict(rollout: &Rollout, o: BatchOutcome) -> Verdict {
    let mut v = Verdict::default();
    if o.hosts == 0 {
        return v;
    }
    let running = o.hosts - o.earlier;
    let mut failed = o.failed;
    let mut bad = o.failed + o.unreachable;
    if rollout.any_errors_fatal && bad > 0 {
        v.fail_rest = true;
        failed = running - o.unreachable;
        bad = running;
    }
    if let Some(max) = rollout.max_fail_percentage {
        if failed > 0 && (failed as f64 / o.hosts as f64) > max / 100.0 {
            v.fail_rest = true;
            v.stop = Some(Stop::MaxFailPercentage);
            return v;
        }
    }
    if bad == o.hosts {
        v.stop = Some(
            if rollout.any_errors_fatal && o.failed + o.unreachable < bad {
                Stop::AnyErrorsFatal
            } else {
                Stop::AllFailed
            },
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("h{i:03}")).collect()
    }

    #[test]
    fn serial_list_repeats_its_last_entry() {
        let b = split(
            &names(10),
            &[
                BatchSize::Count(1),
                BatchSize::Percent(25),
                BatchSize::Percent(100),
            ],
        );
        let sizes: Vec<usize> = b.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 2, 7]);
        let b = split(&names(5), &[BatchSize::Count(2)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
    }

    #[test]
    fn percentages_round_down_but_take_at_least_one_host() {
        assert_eq!(batch_len(BatchSize::Percent(30), 5), 1);
        assert_eq!(batch_len(BatchSize::Percent(10), 3), 1);
        assert_eq!(batch_len(BatchSize::Percent(50), 5), 2);
        assert_eq!(batch_len(BatchSize::Percent(0), 5), 1);
        // As in ansible-core (floating point): 29% of 100 hosts is 28.
        assert_eq!(batch_len(BatchSize::Percent(29), 100), 28);
    }

    #[test]
    fn threshold_hit_exactly_does_not_stop() {
        let r = Rollout {
            max_fail_percentage: Some(50.0),
            ..Default::default()
        };
        let o = |failed, unreachable| BatchOutcome {
            hosts: 4,
            earlier: 0,
            failed,
            unreachable,
        };
        assert_eq!(verdict(&r, o(2, 0)).stop, None);
        assert_eq!(verdict(&r, o(3, 0)).stop, Some(Stop::MaxFailPercentage));
        // Unreachable hosts are not failures for the threshold...
        assert_eq!(verdict(&r, o(2, 1)).stop, None);
        // ...but a batch where nobody is left stops everything.
        assert_eq!(verdict(&r, o(2, 2)).stop, Some(Stop::AllFailed));
    }

    #[test]
    fn a_host_that_failed_earlier_keeps_the_batch_going() {
        // ansible-core counts only the batch's new failures against the whole batch.
        let r = Rollout {
            any_errors_fatal: true,
            ..Default::default()
        };
        let o = BatchOutcome {
            hosts: 3,
            earlier: 1,
            failed: 1,
            unreachable: 0,
        };
        assert_eq!(
            verdict(&r, o),
            Verdict {
                fail_rest: true,
                stop: None
            }
        );
        let o = BatchOutcome { earlier: 0, ..o };
        assert_eq!(verdict(&r, o).stop, Some(Stop::AnyErrorsFatal));
    }

    #[test]
    fn shuffle_is_a_repeatable_permutation() {
        let hosts = names(20);
        let a = order_hosts(&hosts, HostOrder::Shuffle, "p");
        assert_eq!(a, order_hosts(&hosts, HostOrder::Shuffle, "p"));
        assert_ne!(a, hosts);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, hosts);
    }

    /// The rules as the documentation states them, written the obvious way.
    fn model_sizes(total: usize, serial: &[BatchSize]) -> Vec<usize> {
        if serial.is_empty() {
            return if total == 0 { vec![] } else { vec![total] };
        }
        let mut sizes = Vec::new();
        let mut left = total;
        let mut i = 0;
        while left > 0 {
            let want: i64 = match serial[i.min(serial.len() - 1)] {
                BatchSize::Count(n) => n,
                // ansible-core computes `int(p / 100.0 * total)` in floating point.
                BatchSize::Percent(p) => {
                    std::cmp::max(1, (p as f64 / 100.0 * total as f64).floor() as i64)
                }
            };
            let take = if want <= 0 {
                left
            } else {
                left.min(want as usize)
            };
            sizes.push(take);
            left -= take;
            i += 1;
        }
        sizes
    }

    /// (fail the rest, stop the run)
    fn model(r: &Rollout, o: BatchOutcome) -> (bool, bool) {
        let running = o.hosts - o.earlier;
        let fatal = r.any_errors_fatal && o.failed + o.unreachable > 0;
        // After any_errors_fatal every running host that was not unreachable has failed.
        let failed = if fatal {
            running - o.unreachable
        } else {
            o.failed
        };
        let over = r
            .max_fail_percentage
            .is_some_and(|m| (failed as f64) * 100.0 > m * o.hosts as f64 + 1e-9);
        let all_new = o.earlier == 0 && (fatal || o.failed + o.unreachable == o.hosts);
        (fatal || over, over || all_new)
    }

    fn batch_size() -> impl Strategy<Value = BatchSize> {
        prop_oneof![
            (-1i64..12).prop_map(BatchSize::Count),
            (0i64..=100).prop_map(BatchSize::Percent),
        ]
    }

    proptest! {
        #[test]
        fn batches_follow_the_model(total in 0usize..60, serial in prop::collection::vec(batch_size(), 0..4)) {
            let hosts = names(total);
            let b = split(&hosts, &serial);
            let sizes: Vec<usize> = b.iter().map(Vec::len).collect();
            prop_assert_eq!(sizes, model_sizes(total, &serial));
            // Every host exactly once, in order.
            prop_assert_eq!(b.concat(), hosts);
        }

        #[test]
        fn stop_follows_the_model(
            hosts in 1usize..40,
            earlier_share in 0usize..=40,
            failed_share in 0usize..=40,
            unreachable_share in 0usize..=40,
            max in prop::option::of(prop_oneof![(0u32..=100).prop_map(f64::from), (0u32..=1000).prop_map(|x| f64::from(x) / 10.0)]),
            fatal in any::<bool>(),
        ) {
            let earlier = earlier_share.min(hosts);
            let failed = failed_share.min(hosts - earlier);
            let unreachable = unreachable_share.min(hosts - earlier - failed);
            let r = Rollout { max_fail_percentage: max, any_errors_fatal: fatal, ..Default::default() };
            let o = BatchOutcome { hosts, earlier, failed, unreachable };
            let v = verdict(&r, o);
            prop_assert_eq!((v.fail_rest, v.stop.is_some()), model(&r, o), "{:?} {:?}", r, o);
        }

        #[test]
        fn exact_thresholds_never_stop(hosts in 1usize..50, failed in 1usize..50) {
            // failed/hosts as a percentage, hit exactly: never "more than".
            let failed = failed.min(hosts);
            if (failed * 100) % hosts == 0 && failed < hosts {
                let r = Rollout { max_fail_percentage: Some((failed * 100 / hosts) as f64), ..Default::default() };
                prop_assert_eq!(verdict(&r, BatchOutcome { hosts, earlier: 0, failed, unreachable: 0 }), Verdict::default());
            }
        }
    }
}
