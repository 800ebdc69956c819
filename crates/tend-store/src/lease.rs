//! Run leases: a row per host naming the run that holds it, until it is released or expires.
//! Taken for all of a run's hosts at once in one write transaction, so two runs never hold
//! overlapping sets: the second is told who holds the first host it wanted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chain::kind;
use crate::sql::{Lock, Val};
use crate::{time, Result, Store, StoreError};

/// Who holds a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseHolder {
    pub host: String,
    pub run_id: String,
    pub user: String,
    pub since: String,
}

/// One lease row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub host: String,
    pub run_id: String,
    pub user: String,
    pub since: String,
    pub expires: String,
}

/// How often a waiting run asks again.
const POLL: Duration = Duration::from_millis(250);

impl Store {
    /// Takes every host for `run_id` until `ttl` from now, or none: `Err(Leased)` names the
    /// holder of the first host another live run holds. Expired leases are taken over; a host
    /// this run already holds is renewed.
    pub fn acquire_lease(
        &mut self,
        hosts: &[String],
        run_id: &str,
        user: &str,
        ttl: Duration,
    ) -> Result<()> {
        let now_ms = time::now_millis();
        let now = time::format(now_ms);
        let expires = time::format(now_ms + ttl.as_millis() as i64);
        let out = self.backend.write(Lock::Leases, |sql| {
            sql.exec(
                "DELETE FROM leases WHERE expires <= $1",
                &[Val::from(now.as_str())],
            )
            .map_err(Err)?;
            let wanted: HashSet<&str> = hosts.iter().map(String::as_str).collect();
            let held = sql
                .query(
                    "SELECT host, run_id, user_name, since FROM leases ORDER BY since, host",
                    &[],
                )
                .map_err(Err)?;
            for row in held {
                let mut it = row.into_iter().map(Val::text);
                let (host, run, user, since) = (
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                );
                if run != run_id && wanted.contains(host.as_str()) {
                    return Err(Ok(LeaseHolder {
                        host,
                        run_id: run,
                        user,
                        since,
                    }));
                }
            }
            for h in hosts {
                sql.exec(
                    "INSERT INTO leases (host, run_id, user_name, since, expires)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (host) DO UPDATE SET expires = excluded.expires",
                    &[
                        Val::from(h.as_str()),
                        Val::from(run_id),
                        Val::from(user),
                        Val::from(now.as_str()),
                        Val::from(expires.as_str()),
                    ],
                )
                .map_err(Err)?;
            }
            Ok(())
        });
        match out {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Ok(holder))) => Err(StoreError::Leased(holder)),
            Ok(Err(Err(e))) | Err(e) => Err(self.backend_err(e)),
        }
    }

    /// [`Store::acquire_lease`], asking again every 250 ms until `wait` has passed.
    pub fn acquire_lease_wait(
        &mut self,
        hosts: &[String],
        run_id: &str,
        user: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            match self.acquire_lease(hosts, run_id, user, ttl) {
                Err(StoreError::Leased(h)) if Instant::now() < deadline => {
                    let _ = h;
                    std::thread::sleep(POLL.min(deadline - Instant::now()));
                }
                other => return other,
            }
        }
    }

    /// Extends every lease `run_id` still holds to `ttl` from now (a live run renews its leases
    /// well before they expire, so that a run that died frees its hosts within one `ttl`).
    /// Returns how many leases were renewed: fewer than the run took means some expired and
    /// were taken by another run.
    pub fn renew_leases(&mut self, run_id: &str, ttl: Duration) -> Result<u64> {
        let expires = time::format(time::now_millis() + ttl.as_millis() as i64);
        let out = self.backend.write(Lock::Leases, |sql| {
            sql.exec(
                "UPDATE leases SET expires = $1 WHERE run_id = $2",
                &[Val::from(expires.as_str()), Val::from(run_id)],
            )
        });
        match out {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) | Err(e) => Err(self.backend_err(e)),
        }
    }

    /// Releases every lease of `run_id` (the run ended).
    pub fn release_leases(&mut self, run_id: &str) -> Result<()> {
        let out = self.backend.write(Lock::Leases, |sql| {
            sql.exec("DELETE FROM leases WHERE run_id = $1", &[Val::from(run_id)])
        });
        match out {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) | Err(e) => Err(self.backend_err(e)),
        }
    }

    /// Releases `host`'s lease by hand (its run died), only if `run_id` is the run holding it;
    /// a wrong run id is refused naming the holder. The unlock is recorded in the chain.
    pub fn unlock(&mut self, host: &str, run_id: &str, user: &str) -> Result<Lease> {
        let out = self.backend.write(Lock::Leases, |sql| {
            let rows = sql
                .query(
                    "SELECT run_id, user_name, since, expires FROM leases WHERE host = $1",
                    &[Val::from(host)],
                )
                .map_err(Err)?;
            let Some(row) = rows.into_iter().next() else {
                return Err(Ok(None));
            };
            let mut it = row.into_iter().map(Val::text);
            let lease = Lease {
                host: host.to_string(),
                run_id: it.next().unwrap_or_default(),
                user: it.next().unwrap_or_default(),
                since: it.next().unwrap_or_default(),
                expires: it.next().unwrap_or_default(),
            };
            if lease.run_id != run_id {
                return Err(Ok(Some(lease)));
            }
            sql.exec(
                "DELETE FROM leases WHERE host = $1 AND run_id = $2",
                &[Val::from(host), Val::from(run_id)],
            )
            .map_err(Err)?;
            Ok(lease)
        });
        let lease = match out {
            Ok(Ok(l)) => l,
            Ok(Err(Ok(None))) => {
                return Err(StoreError::NotLeased {
                    host: host.to_string(),
                })
            }
            Ok(Err(Ok(Some(l)))) => {
                return Err(StoreError::Leased(LeaseHolder {
                    host: l.host,
                    run_id: l.run_id,
                    user: l.user,
                    since: l.since,
                }))
            }
            Ok(Err(Err(e))) | Err(e) => return Err(self.backend_err(e)),
        };
        self.append(
            run_id,
            kind::UNLOCK,
            host,
            &serde_json::json!({ "host": host, "by": user, "lease": lease }),
        )?;
        Ok(lease)
    }

    /// Every lease row, expired ones included.
    pub fn leases(&mut self) -> Result<Vec<Lease>> {
        let rows = self.backend.read().query(
            "SELECT host, run_id, user_name, since, expires FROM leases ORDER BY host",
            &[],
        );
        let rows = rows.map_err(|e| self.backend_err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let mut it = r.into_iter().map(Val::text);
                Lease {
                    host: it.next().unwrap_or_default(),
                    run_id: it.next().unwrap_or_default(),
                    user: it.next().unwrap_or_default(),
                    since: it.next().unwrap_or_default(),
                    expires: it.next().unwrap_or_default(),
                }
            })
            .collect())
    }
}
