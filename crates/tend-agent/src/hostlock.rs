//! The host's lock: one exclusive `flock` on a system-wide file, held by the process that runs
//! a changing run on the host (the agent for SSH hosts, tend itself for local ones) until the
//! run ends. The kernel releases it when that process dies, whatever killed it.
//!
//! Where: `/run/lock/tend/host.lock` (`/run/lock/tend` is created sticky and world-writable,
//! as `/run/lock` itself, so that every login user's agent can take the same lock; the file
//! is made writable for all so that each holder can say who it is). When `/run/lock` is
//! missing or not writable, the lock lives in the agent's cache directory instead
//! (`~/.cache/tend/host.lock`): it then only excludes runs by the same login user.
//! `TEND_LOCK_DIR` names another directory (tests and containers that run independent tends
//! on one machine).
//!
//! Nothing an attacker plants is followed: the file is opened with `O_NOFOLLOW` and must be a
//! regular file with one link; the directory must be a real directory owned by root or by
//! this user, sticky if others may write to it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use tend_proto::wire::LockOwner;

/// The system-wide lock directory's parent; the lock is `LOCK_PARENT/tend/host.lock`.
pub const LOCK_PARENT: &str = "/run/lock";
/// The lock file's name.
pub const LOCK_FILE: &str = "host.lock";
/// Overrides the lock directory.
pub const LOCK_DIR_ENV: &str = "TEND_LOCK_DIR";

/// How often a waiting run tries again.
const POLL: Duration = Duration::from_millis(250);
/// At most this much of the lock file is read (it holds one small JSON object).
const MAX_INFO: u64 = 4096;

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct HostLock {
    file: File,
    path: PathBuf,
    shared: bool,
    /// False when another process of the same run holds the flock (two inventory names for
    /// one machine): this one shares it and must not touch the file.
    holder: bool,
}

impl HostLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False when the lock lives in a per-user directory (see the module docs).
    pub fn shared(&self) -> bool {
        self.shared
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        // Say nobody holds it any more; closing the file releases the flock.
        if self.holder {
            let _ = rustix::fs::ftruncate(self.file.as_fd(), 0);
        }
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it (`holder` when it wrote who it is).
    #[error("locked by {}", describe(.holder.as_ref()))]
    Busy {
        holder: Option<LockOwner>,
        waited: Duration,
    },
    /// The lock cannot be used at all.
    #[error("{0}")]
    Unusable(String),
}

impl LockError {
    /// What to report for `host`.
    pub fn message(&self, host: &str) -> String {
        match self {
            LockError::Busy { holder, waited } => busy_message(host, holder.as_ref(), *waited),
            LockError::Unusable(why) => unusable_message(host, why),
        }
    }
}

/// Where the lock lives: `TEND_LOCK_DIR`, else `/run/lock/tend` when `/run/lock` is writable,
/// else `cache_dir`. The flag says whether the place is shared by all users.
pub fn lock_dir(cache_dir: &Path) -> (PathBuf, bool) {
    if let Some(d) = std::env::var_os(LOCK_DIR_ENV).filter(|d| !d.is_empty()) {
        return (PathBuf::from(d), true);
    }
    let parent = Path::new(LOCK_PARENT);
    let usable = rustix::fs::access(parent, rustix::fs::Access::WRITE_OK).is_ok()
        && std::fs::symlink_metadata(parent).is_ok_and(|m| m.is_dir());
    if usable {
        (parent.join("tend"), true)
    } else {
        (cache_dir.to_path_buf(), false)
    }
}

/// Takes the lock in `dir` for `owner` (its `pid` is set to this process), trying again every
/// 250 ms until `wait` has passed.
pub fn acquire(
    dir: &Path,
    shared: bool,
    owner: &LockOwner,
    wait: Duration,
) -> Result<HostLock, LockError> {
    prepare_dir(dir, shared)?;
    let path = dir.join(LOCK_FILE);
    let (mut file, writable) = open_lock_file(&path, shared)?;
    let start = Instant::now();
    loop {
        match rustix::fs::flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(Errno::WOULDBLOCK) | Err(Errno::INTR) => {
                let holder = read_owner(&mut file);
                // The same run on this machine under another inventory name: already ours.
                if holder.as_ref().is_some_and(|h| h.run_id == owner.run_id) {
                    return Ok(HostLock {
                        file,
                        path,
                        shared,
                        holder: false,
                    });
                }
                let waited = start.elapsed();
                let younger = holder.as_ref().is_some_and(|h| !may_wait_for(h, owner));
                if waited >= wait || younger {
                    return Err(LockError::Busy { holder, waited });
                }
                std::thread::sleep(POLL.min(wait - waited));
            }
            Err(e) => {
                return Err(LockError::Unusable(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
    }
    if writable {
        let me = LockOwner {
            pid: std::process::id(),
            ..owner.clone()
        };
        let mut text = serde_json::to_vec(&me).unwrap_or_default();
        text.push(b'\n');
        // Only information for the next run's message: a failure here does not matter.
        let _ = rustix::fs::ftruncate(file.as_fd(), 0)
            .map_err(std::io::Error::from)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(&text));
    }
    Ok(HostLock {
        file,
        path,
        shared,
        holder: true,
    })
}

/// Creates the directory if needed (sticky and writable by all when `shared`, else private)
/// and checks that nobody else controls it.
fn prepare_dir(dir: &Path, shared: bool) -> Result<(), LockError> {
    let unusable = |what: String| LockError::Unusable(format!("{}: {what}", dir.display()));
    let mode = if shared { 0o1777 } else { 0o700 };
    match rustix::fs::mkdir(dir, Mode::from_raw_mode(mode)) {
        // mkdir's mode passes through the umask: set it as meant.
        Ok(()) => rustix::fs::chmod(dir, Mode::from_raw_mode(mode))
            .map_err(|e| unusable(format!("cannot set its mode: {e}")))?,
        Err(Errno::EXIST) => {}
        Err(Errno::NOENT) if !shared => std::fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(|e| unusable(format!("cannot create it: {e}")))?,
        Err(e) => return Err(unusable(format!("cannot create it: {e}"))),
    }
    let st = rustix::fs::lstat(dir).map_err(|e| unusable(e.to_string()))?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    if kind != rustix::fs::FileType::Directory {
        return Err(unusable(
            "is not a directory (a symbolic link someone may have planted?); remove it".into(),
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != 0 && st.st_uid != me {
        return Err(unusable(format!(
            "belongs to uid {}, neither root nor this user (uid {me}); remove it",
            st.st_uid
        )));
    }
    if st.st_mode & 0o022 != 0 && st.st_mode & 0o1000 == 0 {
        return Err(unusable(
            "others may write to it but it is not sticky (mode 1777 expected); fix its mode or remove it"
                .into(),
        ));
    }
    Ok(())
}

/// Opens (creating if needed) the lock file without following a symbolic link. Returns the
/// file and whether this process may write to it (a file another user made read-only can
/// still be locked, but not written).
fn open_lock_file(path: &Path, shared: bool) -> Result<(File, bool), LockError> {
    let unusable = |what: String| LockError::Unusable(format!("{}: {what}", path.display()));
    let base = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    let mut tries = 0;
    let (fd, writable) = loop {
        tries += 1;
        match rustix::fs::open(path, base | OFlags::RDWR, Mode::empty()) {
            Ok(fd) => break (fd, true),
            Err(Errno::NOENT) if tries < 5 => {
                let perm = if shared { 0o666 } else { 0o600 };
                match rustix::fs::open(
                    path,
                    base | OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
                    Mode::from_raw_mode(perm),
                ) {
                    Ok(fd) => {
                        // The umask must not keep other users from saying who they are.
                        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(perm));
                        break (fd, true);
                    }
                    Err(Errno::EXIST) => continue,
                    Err(e) => return Err(unusable(format!("cannot create it: {e}"))),
                }
            }
            Err(Errno::ACCESS) | Err(Errno::PERM) => {
                match rustix::fs::open(path, base | OFlags::RDONLY, Mode::empty()) {
                    Ok(fd) => break (fd, false),
                    Err(e) => return Err(unusable(format!("cannot open it: {e}"))),
                }
            }
            Err(Errno::LOOP) => {
                return Err(unusable(
                    "is a symbolic link (someone may have planted it); tend does not follow it: remove it".into(),
                ))
            }
            Err(e) => return Err(unusable(format!("cannot open it: {e}"))),
        }
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| unusable(e.to_string()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(unusable("is not a regular file; remove it".into()));
    }
    if st.st_nlink != 1 {
        return Err(unusable(format!(
            "has {} hard links (someone may have linked it to another file); remove it",
            st.st_nlink
        )));
    }
    Ok((File::from(fd), writable))
}

/// What the holder wrote, if it is readable.
fn read_owner(file: &mut File) -> Option<LockOwner> {
    let mut text = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(MAX_INFO).read_to_end(&mut text).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Another user may write anything into a shared lock file: show only printable text, short.
fn clean(s: &str) -> String {
    let out: String = s.chars().filter(|c| !c.is_control()).take(100).collect();
    if out.is_empty() {
        "?".into()
    } else {
        out
    }
}

fn describe(holder: Option<&LockOwner>) -> String {
    match holder {
        Some(h) => {
            let pid = if h.pid > 0 {
                format!(", pid {} on the host", h.pid)
            } else {
                String::new()
            };
            format!(
                "run {} (user {} on controller {} since {}{pid})",
                clean(&h.run_id),
                clean(&h.user),
                clean(&h.controller),
                clean(&h.since)
            )
        }
        None => "another run (it has not said which)".into(),
    }
}

/// The message a run reports for `host` when its lock is held by another run.
pub fn busy_message(host: &str, holder: Option<&LockOwner>, waited: Duration) -> String {
    let after = if waited >= Duration::from_secs(1) {
        format!(" after waiting {}s", waited.as_secs())
    } else {
        String::new()
    };
    format!(
        "{host}: locked by {}{after}; wait with --lock-timeout SECONDS, or run again once that run has ended (its lock goes with its process)",
        describe(holder)
    )
}

/// Whether run `me` may wait for the lock `holder` holds: only when `holder` started first (by
/// start time, then run id — a total order every run sees alike, whatever the clocks say).
/// Waits then always go from a younger run to an older one, so two runs can never wait for
/// each other while each holds a host the other needs: the older one is refused that host at
/// once instead, finishes the rest, and so frees its hosts for the younger one.
pub fn may_wait_for(holder: &LockOwner, me: &LockOwner) -> bool {
    (&holder.since, &holder.run_id) < (&me.since, &me.run_id)
}

/// What to add to [`busy_message`] when `me` was willing to wait (`wait` > 0) and did not,
/// because the holder started after it.
pub fn not_waited_note(holder: Option<&LockOwner>, me: &LockOwner, wait: Duration) -> &'static str {
    if !wait.is_zero() && holder.is_some_and(|h| !may_wait_for(h, me)) {
        " (not waited for: that run started after this one, and a run waits only for runs \
         that started before it, so that two runs never wait for each other)"
    } else {
        ""
    }
}

/// The message for a lock that cannot be used at all.
pub fn unusable_message(host: &str, why: &str) -> String {
    format!("{host}: cannot take the host's lock: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(run: &str) -> LockOwner {
        LockOwner {
            run_id: run.into(),
            user: "alice".into(),
            controller: "ctl".into(),
            since: "2025-01-02T03:04:05.000Z".into(),
            pid: 0,
        }
    }

    #[test]
    fn a_run_waits_only_for_an_older_run() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("locks");
        let at = |run: &str, since: &str| LockOwner {
            since: since.into(),
            ..owner(run)
        };
        let older = at("r1", "2025-01-02T03:04:05.000Z");
        let younger = at("r2", "2025-01-02T03:04:06.000Z");
        assert!(may_wait_for(&older, &younger));
        assert!(!may_wait_for(&younger, &older));
        // Same start: the run id decides, the same way for both.
        let twin = at("r0", "2025-01-02T03:04:06.000Z");
        assert!(may_wait_for(&twin, &younger) != may_wait_for(&younger, &twin));

        // The younger run holds it: the older one is refused at once, however long it may wait.
        let held = acquire(&dir, true, &younger, Duration::ZERO).unwrap();
        let t = Instant::now();
        match acquire(&dir, true, &older, Duration::from_secs(30)) {
            Err(LockError::Busy { holder, .. }) => {
                let h = holder.expect("the holder said who it is");
                assert_eq!(h.run_id, "r2");
                assert!(not_waited_note(Some(&h), &older, Duration::from_secs(30))
                    .contains("started after this one"));
            }
            other => panic!("expected Busy, got {:?}", other.map(|_| ())),
        }
        assert!(t.elapsed() < Duration::from_secs(5), "the older run waited");
        drop(held);

        // The older run holds it: the younger one waits, and gets it once released.
        let held = acquire(&dir, true, &older, Duration::ZERO).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(600));
            drop(held);
        });
        acquire(&dir, true, &younger, Duration::from_secs(30))
            .expect("the younger run waits for the older one");
        releaser.join().unwrap();
    }

    #[test]
    fn a_second_taker_is_told_who_holds_it_and_gets_it_once_released() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("tend");
        let first = acquire(&dir, true, &owner("r1"), Duration::ZERO).unwrap();
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
            0o1777
        );
        match acquire(&dir, true, &owner("r2"), Duration::ZERO) {
            Err(LockError::Busy { holder, .. }) => {
                let h = holder.expect("the holder said who it is");
                assert_eq!(h.run_id, "r1");
                assert_eq!(h.pid, std::process::id());
                let msg = busy_message("web01", Some(&h), Duration::ZERO);
                assert!(
                    msg.starts_with("web01: locked by run r1 (user alice on controller ctl since 2025-01-02T03:04:05.000Z, pid "),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Waiting: the holder goes away while the second one waits.
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            drop(first);
        });
        let start = Instant::now();
        let second = acquire(&dir, true, &owner("r2"), Duration::from_secs(10)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(300));
        t.join().unwrap();
        assert!(second.shared());
        // The same run under another name for this machine shares it, and leaves the holder's
        // record alone.
        let alias = acquire(&dir, true, &owner("r2"), Duration::ZERO).unwrap();
        drop(alias);
        let text = std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap();
        assert!(text.contains("\"run_id\":\"r2\""), "{text}");
        assert!(acquire(&dir, true, &owner("r3"), Duration::ZERO).is_err());
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join(LOCK_FILE)).unwrap();
        let err = acquire(d.path(), true, &owner("r1"), Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    }

    #[test]
    fn a_hard_linked_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        std::fs::hard_link(&target, d.path().join(LOCK_FILE)).unwrap();
        let err = acquire(d.path(), true, &owner("r1"), Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("hard links"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    }

    #[test]
    fn whatever_a_holder_wrote_is_shown_printable_and_short() {
        let mut h = owner(&"x".repeat(500));
        h.user = "eve\u{1b}[2J".into();
        let msg = busy_message("h", Some(&h), Duration::from_secs(3));
        assert!(!msg.contains('\u{1b}'));
        assert!(msg.len() < 400, "{msg}");
        assert!(msg.contains("after waiting 3s"), "{msg}");
    }
}
