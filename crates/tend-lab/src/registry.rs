//! Which labs exist on this machine: one state dir per lab under /run/tend-lab, each with a
//! `lab.json` record written before anything else of the lab is made, so a crash at any point
//! leaves a record the next `Lab::start` (or `tend-lab down --all`) can clean up from.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, LabError, Result};
use crate::lock::FileLock;
use crate::{net, LabHost};

/// Where labs keep their state dirs.
pub const STATE_ROOT: &str = "/run/tend-lab";
const RECORD: &str = "lab.json";

/// Who started a lab: the lab lives as long as this process (unless it was started to keep
/// running, then it has no owner and only `down` stops it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat, so a reused pid is not taken for the owner.
    pub start_time: u64,
}

impl Owner {
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start_time: start_time(pid).unwrap_or(0),
        }
    }

    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Everything needed to drive or tear down a lab, from any process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub prefix: String,
    pub index: u8,
    pub hosts: Vec<LabHost>,
    pub rootfs: PathBuf,
    pub cgroup: PathBuf,
    pub owner: Option<Owner>,
    /// /proc/sys/kernel/random/boot_id when the lab started: after a reboot nothing but the
    /// state dir is left.
    pub boot_id: String,
    /// Hosts run systemd (under systemd-nspawn) rather than the lab's own init.
    #[serde(default)]
    pub systemd: bool,
    /// The local package repository bound into every host, if any.
    #[serde(default)]
    pub repo: Option<PathBuf>,
}

impl Record {
    pub fn state_dir(&self) -> PathBuf {
        state_dir(&self.prefix)
    }

    pub fn host_names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// Its owner died (or the machine rebooted) without stopping it.
    pub fn stale(&self) -> bool {
        self.boot_id != boot_id() || self.owner.is_some_and(|o| !o.alive())
    }

    pub fn save(&self) -> Result<()> {
        let path = self.state_dir().join(RECORD);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("a record always serializes");
        fs::write(&tmp, text).at(&tmp)?;
        fs::rename(&tmp, &path).at(&path)
    }

    pub fn load(prefix: &str) -> Result<Record> {
        let dir = state_dir(prefix);
        if !dir.exists() {
            return Err(LabError::NoSuchLab(prefix.to_string()));
        }
        load_record(&dir.join(RECORD))
    }
}

fn load_record(path: &Path) -> Result<Record> {
    let text = fs::read_to_string(path).at(path)?;
    serde_json::from_str(&text).map_err(|e| LabError::BadRecord {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub fn state_dir(prefix: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(prefix)
}

pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The registry lock: held while labs are allocated, and while a lab's shared leftovers
/// (its slot, the parent cgroup) are released.
pub fn lock() -> Result<FileLock> {
    fs::create_dir_all(STATE_ROOT).at(STATE_ROOT)?;
    FileLock::exclusive(&Path::new(STATE_ROOT).join(".lock"))
}

/// A state dir found under [`STATE_ROOT`]: its record, or why it could not be read.
pub struct Entry {
    pub prefix: String,
    pub dir: PathBuf,
    pub record: Result<Record>,
}

/// Every lab state dir on this machine, by prefix.
pub fn entries() -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(dirs) = fs::read_dir(STATE_ROOT) else {
        return out;
    };
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !d.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = d.path();
        let record = load_record(&dir.join(RECORD));
        out.push(Entry {
            prefix: name,
            dir,
            record,
        });
    }
    out.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    out
}

/// Check a user-chosen prefix: it becomes part of link names (15 characters at most).
pub fn check_prefix(prefix: &str) -> Result<()> {
    let bad = |reason: &str| LabError::BadPrefix {
        prefix: prefix.to_string(),
        reason: reason.to_string(),
    };
    if prefix.is_empty() || prefix.len() > 8 {
        return Err(bad("must be 1 to 8 characters long"));
    }
    if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(bad("must start with a lowercase letter"));
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(bad("may hold only lowercase letters and digits"));
    }
    Ok(())
}

/// The lowest slot free of labs and of any address already on this machine, and the prefix
/// (`tl<slot>` unless one was asked for). Callers hold [`lock`] and have removed stale labs.
pub fn allocate(
    asked: Option<&str>,
    taken: &[Record],
    addresses: &[std::net::Ipv4Addr],
) -> Result<(u8, String)> {
    let used: BTreeSet<u8> = taken.iter().map(|r| r.index).collect();
    let prefixes: BTreeSet<&str> = taken.iter().map(|r| r.prefix.as_str()).collect();
    let index = (0..net::MAX_LABS)
        .map(|i| i as u8)
        .find(|i| !used.contains(i) && !addresses.iter().any(|a| net::in_subnet(*i, *a)))
        .ok_or(LabError::NoFreeSlot(net::MAX_LABS))?;
    let prefix = match asked {
        Some(p) => {
            check_prefix(p)?;
            if prefixes.contains(p) || state_dir(p).exists() {
                return Err(LabError::BadPrefix {
                    prefix: p.to_string(),
                    reason: "a lab with this prefix is running".to_string(),
                });
            }
            p.to_string()
        }
        None => {
            // `tl<slot>`, unless someone chose exactly that name by hand.
            let mut p = format!("tl{index}");
            let mut n = 0;
            while prefixes.contains(p.as_str()) || state_dir(&p).exists() {
                n += 1;
                p = format!("tl{index}x{n}");
            }
            p
        }
    };
    Ok((index, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn record(prefix: &str, index: u8) -> Record {
        Record {
            prefix: prefix.into(),
            index,
            hosts: vec![],
            rootfs: PathBuf::new(),
            cgroup: PathBuf::new(),
            owner: None,
            boot_id: boot_id(),
            systemd: false,
            repo: None,
        }
    }

    #[test]
    fn records_of_older_labs_read_as_raw_without_a_repository() {
        let text = r#"{"prefix":"tl1","index":1,"hosts":[],"rootfs":"/r","cgroup":"/c",
                       "owner":null,"boot_id":"x"}"#;
        let r: Record = serde_json::from_str(text).unwrap();
        assert!(!r.systemd);
        assert_eq!(r.repo, None);
    }

    #[test]
    fn prefixes_must_fit_in_link_names() {
        check_prefix("tl0").unwrap();
        check_prefix("bench50").unwrap();
        assert!(check_prefix("").is_err());
        assert!(check_prefix("toolongname").is_err());
        assert!(check_prefix("0ab").is_err());
        assert!(check_prefix("a-b").is_err());
        assert!(check_prefix("AB").is_err());
    }

    #[test]
    fn allocation_skips_used_slots_and_addresses_in_use() {
        let taken = [record("tl0", 0), record("x", 2)];
        let addrs = [Ipv4Addr::new(10, 250, 1, 5)];
        let (i, p) = allocate(None, &taken, &addrs).unwrap();
        assert_eq!(i, 3);
        assert!(p.starts_with("tl3"), "{p}");
        let err = allocate(Some("x"), &taken, &[]).unwrap_err();
        assert!(err.to_string().contains("is running"), "{err}");
    }

    #[test]
    fn an_owner_is_alive_while_its_process_runs() {
        let me = Owner::me();
        assert!(me.start_time > 0);
        assert!(me.alive());
        let reused = Owner {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert!(
            !reused.alive(),
            "a pid with another start time is another process"
        );
        let mut r = record("tl9", 9);
        r.owner = Some(reused);
        assert!(r.stale());
        r.owner = None;
        assert!(!r.stale());
        r.boot_id = "another-boot".into();
        assert!(r.stale());
    }
}
