//! OpenSSH sessions: one `ssh` process per host and play, multiplexed over one master
//! connection per host and run.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tend_proto::wire::{FromAgent, ToAgent};

use crate::boot::{self, sh_quote};
use crate::{AgentBinary, TransportError};

/// Run-wide SSH settings (from the command line).
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// `--accept-new-host-keys`: record unknown host keys on first contact (never changed ones).
    pub accept_new_host_keys: bool,
    /// `-T/--timeout`: seconds to establish a connection.
    pub connect_timeout: u64,
    /// Seconds from starting ssh to a running agent (connection, authentication, upload).
    pub boot_deadline: u64,
    /// The ssh client (`ssh` on PATH unless set).
    pub program: PathBuf,
    /// `--ssh-persist SECONDS`: keep every master connection open this long after its last
    /// session, in a stable private directory, so a later run reuses it (no new TCP connection,
    /// no key exchange). 0: masters live only as long as the run.
    pub persist: u64,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            accept_new_host_keys: false,
            connect_timeout: 10,
            boot_deadline: 120,
            program: PathBuf::from("ssh"),
            persist: 0,
        }
    }
}

/// How to reach one host, from its inventory variables (`ansible_host`, `ansible_port`, …).
#[derive(Clone, Debug, Default)]
pub struct SshTarget {
    /// The inventory name, for messages.
    pub name: String,
    /// What ssh connects to: `ansible_host`, else the inventory name.
    pub address: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub key_file: Option<String>,
    /// `ansible_ssh_common_args` and `ansible_ssh_extra_args`, already split into words.
    pub common_args: Vec<String>,
    pub extra_args: Vec<String>,
    /// Keep the master connection open after this session (the host has more plays); it is
    /// closed by [`close_masters`] at the end of the run.
    pub persist: bool,
}

/// A private directory (mode 0700) for ControlMaster sockets: the run's own, removed on drop,
/// or ([`ControlDir::persistent`]) the stable one that masters outliving the run live in.
pub struct ControlDir {
    path: PathBuf,
    keep: bool,
}

/// Room ssh needs in a socket path beyond the directory: `/`, `%C` (40 hex digits) and the
/// random suffix of the temporary name a new master binds first (`.` + 16 characters).
const SOCKET_NAME_ROOM: usize = 1 + 40 + 17;
/// `sun_path` holds 108 bytes on Linux, 104 on the BSDs and macOS (with the final NUL).
const SOCKET_PATH_MAX: usize = 103;

impl ControlDir {
    /// The stable directory for masters that outlive a run (`--ssh-persist`):
    /// `$XDG_RUNTIME_DIR/tend/ssh`, else `~/.cache/tend/ssh`. Both levels are made 0700; an
    /// existing one must be a real directory (not a symlink) owned by this user and writable by
    /// nobody else, or it is refused: whoever can write there can put a socket of their own in
    /// the place of a verified connection.
    pub fn persistent() -> Result<Self, String> {
        let base = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
            Some(p) if p.is_absolute() && p.is_dir() => p,
            _ => match std::env::var_os("HOME").map(PathBuf::from) {
                Some(h) if h.is_absolute() => h.join(".cache"),
                _ => {
                    return Err(
                        "neither XDG_RUNTIME_DIR nor HOME is set to an absolute path: \
                                tend has no private place for persistent SSH connections"
                            .into(),
                    )
                }
            },
        };
        Self::persistent_in(&base)
    }

    /// [`ControlDir::persistent`] under `base` (`base/tend/ssh`).
    pub fn persistent_in(base: &Path) -> Result<Self, String> {
        let path = base.join("tend").join("ssh");
        if path.as_os_str().len() + SOCKET_NAME_ROOM > SOCKET_PATH_MAX {
            return Err(format!(
                "{} is too long for SSH control sockets (at most {} characters): set \
                 XDG_RUNTIME_DIR to a shorter private directory",
                path.display(),
                SOCKET_PATH_MAX - SOCKET_NAME_ROOM
            ));
        }
        std::fs::create_dir_all(base)
            .map_err(|e| format!("cannot create {}: {e}", base.display()))?;
        private_dir(&base.join("tend"))?;
        private_dir(&path)?;
        Ok(ControlDir { path, keep: true })
    }

    pub fn new() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = base.join(format!("tend-ssh-{}-{nanos:08x}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ControlDir { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Masters in this directory outlive the run.
    pub fn is_persistent(&self) -> bool {
        self.keep
    }
}

impl Drop for ControlDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes `dir` (mode 0700) or checks the one that is there: a directory, not a symlink, owned
/// by this user, writable by nobody else; then tightens it to 0700 (as the agent cache on the
/// hosts).
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let m = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if !m.file_type().is_dir() {
        return Err(format!(
            "{} is not a directory; refusing to keep SSH connections there (remove it)",
            dir.display()
        ));
    }
    if m.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to this user (uid {me}); refusing to keep SSH \
             connections there",
            dir.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by other users (mode {:o}); refusing to keep SSH connections there: \
             check who changed it, then remove it",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    if m.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    }
    Ok(())
}

impl SshTarget {
    /// The ssh arguments up to (and including) the destination. tend's security options come
    /// first: ssh keeps the first value it sees for an option, so inventory arguments cannot
    /// weaken host key checking.
    fn args(&self, opts: &SshOptions, control: &ControlDir) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut o = |s: String| {
            a.push("-o".into());
            a.push(s.into());
        };
        o("BatchMode=yes".into());
        o(format!(
            "StrictHostKeyChecking={}",
            if opts.accept_new_host_keys {
                "accept-new"
            } else {
                "yes"
            }
        ));
        o(format!("ConnectTimeout={}", opts.connect_timeout));
        o("ServerAliveInterval=5".into());
        o("ServerAliveCountMax=3".into());
        o("ControlMaster=auto".into());
        o(format!("ControlPath={}/%C", control.path().display()));
        let persist = if control.is_persistent() && opts.persist > 0 {
            opts.persist.to_string()
        } else if self.persist {
            "300".into()
        } else {
            "no".into()
        };
        o(format!("ControlPersist={persist}"));
        if let Some(p) = self.port {
            o(format!("Port={p}"));
        }
        if let Some(u) = &self.user {
            o(format!("User={u}"));
        }
        if let Some(k) = &self.key_file {
            a.push("-i".into());
            a.push(k.into());
        }
        a.extend(self.common_args.iter().map(OsString::from));
        a.extend(self.extra_args.iter().map(OsString::from));
        a.push("-T".into());
        a.push("--".into());
        a.push(self.address.clone().into());
        a
    }
}

/// A running agent on a host.
pub struct Session {
    target: String,
    child: Arc<Mutex<Child>>,
    stdin: Option<std::io::BufWriter<ChildStdin>>,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<std::thread::JoinHandle<()>>,
    /// The bundle this session was started for is already cached on the host.
    pub has_bundle: bool,
    /// The user the agent runs as.
    pub user: String,
    /// Warnings to show (a host key recorded on first contact).
    pub warnings: Vec<String>,
}

/// Keep at most this much of ssh's stderr (the reason a connection failed is at its end).
const STDERR_CAP: usize = 64 * 1024;

impl Session {
    /// Connects, makes sure the agent (this binary) is on the host, and starts it.
    pub fn open(
        target: &SshTarget,
        opts: &SshOptions,
        control: &ControlDir,
        agent: &AgentBinary,
        bundle_hash: Option<&str>,
    ) -> Result<Session, TransportError> {
        let script = boot::script(agent.hash(), bundle_hash);
        let mut cmd = Command::new(&opts.program);
        cmd.args(target.args(opts, control))
            .arg(format!("/bin/sh -c {}", sh_quote(&script)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            TransportError::Unreachable(format!(
                "cannot start the ssh client `{}`: {e}",
                opts.program.display()
            ))
        })?;
        let stdin = child.stdin.take().map(std::io::BufWriter::new);
        let stdout = BufReader::with_capacity(64 * 1024, child.stdout.take().expect("piped"));
        let stderr_buf = Arc::new(Mutex::new(Vec::new()));
        let stderr_thread = child.stderr.take().map(|mut err| {
            let buf = stderr_buf.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = err.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut b) = buf.lock() {
                        b.extend_from_slice(&chunk[..n]);
                        if b.len() > STDERR_CAP {
                            let cut = b.len() - STDERR_CAP;
                            b.drain(..cut);
                        }
                    }
                }
            })
        });
        let mut s = Session {
            target: target.name.clone(),
            child: Arc::new(Mutex::new(child)),
            stdin,
            stdout,
            stderr: stderr_buf,
            stderr_thread,
            has_bundle: false,
            user: String::new(),
            warnings: Vec::new(),
        };
        // Nothing may wait forever: past the deadline the ssh process is killed, which ends
        // every read and write below.
        let (disarm, armed) = mpsc::channel::<()>();
        let child = s.child.clone();
        let deadline = Duration::from_secs(opts.boot_deadline.max(1));
        let watchdog = std::thread::spawn(move || {
            if armed.recv_timeout(deadline) == Err(mpsc::RecvTimeoutError::Timeout) {
                if let Ok(mut c) = child.lock() {
                    let _ = c.kill();
                }
                return true;
            }
            false
        });
        let booted = s.boot(agent);
        let _ = disarm.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        match booted {
            Ok(()) => {
                s.collect_warnings();
                Ok(s)
            }
            Err(e) if timed_out => Err(TransportError::Unreachable(format!(
                "no agent running after {}s (connection, authentication or upload hung); {}",
                deadline.as_secs(),
                e.message()
            ))),
            Err(e) => Err(e),
        }
    }

    fn boot(&mut self, agent: &AgentBinary) -> Result<(), TransportError> {
        let line = self.read_line()?;
        let Some(line) = line else {
            return Err(self.failure(None));
        };
        let Some(b) = boot::parse(&line) else {
            return Err(self.failure(Some(&format!(
                "unexpected output before the agent started: {}",
                line.trim()
            ))));
        };
        let (os, arch) = AgentBinary::platform();
        if !b.has_agent {
            if b.os != os || b.arch != arch {
                self.kill();
                return Err(TransportError::Unreachable(format!(
                    "host runs {} {}, but this tend binary is built for {os} {arch}; \
                     use a tend build for that platform as the controller, or exclude the host",
                    b.os, b.arch
                )));
            }
            let gz = agent.gzipped().map_err(TransportError::Unreachable)?;
            let size = format!("{}\n", gz.len());
            self.write(
                &[size.as_bytes(), gz],
                "the connection closed while the agent was sent",
            )?;
        }
        self.has_bundle = b.has_bundle;
        match self.read_line()? {
            Some(l) => match serde_json::from_str::<FromAgent>(&l) {
                Ok(FromAgent::Hello { version, user, .. })
                    if version == tend_proto::PROTOCOL_VERSION =>
                {
                    self.user = user;
                    Ok(())
                }
                Ok(FromAgent::Hello { version, .. }) => Err(TransportError::Unreachable(format!(
                    "the agent on the host speaks protocol {version}, not {}",
                    tend_proto::PROTOCOL_VERSION
                ))),
                _ => Err(self.failure(Some(&format!("the agent did not start: {}", l.trim())))),
            },
            None => Err(self.failure(Some("the agent did not start"))),
        }
    }

    fn read_line(&mut self) -> Result<Option<String>, TransportError> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(line)),
            Err(e) => Err(self.failure(Some(&format!("cannot read from ssh: {e}")))),
        }
    }

    /// Sends one message.
    pub fn send(&mut self, m: &ToAgent) -> Result<(), TransportError> {
        let mut line = serde_json::to_vec(m)
            .map_err(|e| TransportError::Unreachable(format!("cannot encode a message: {e}")))?;
        line.push(b'\n');
        self.write(&[&line], "the connection closed")
    }

    /// Writes `parts` to the agent's input and flushes; a closed pipe becomes ssh's reason.
    fn write(&mut self, parts: &[&[u8]], context: &str) -> Result<(), TransportError> {
        let ok = self.stdin.as_mut().map(|w| {
            parts
                .iter()
                .try_for_each(|p| w.write_all(p))
                .and_then(|_| w.flush())
        });
        if matches!(ok, Some(Ok(()))) {
            Ok(())
        } else {
            Err(self.failure(Some(context)))
        }
    }

    /// Sends the playbook bundle (header and raw bytes).
    pub fn send_bundle(&mut self, hash: &str, bytes: &[u8]) -> Result<(), TransportError> {
        let mut head = serde_json::to_vec(&ToAgent::Bundle {
            hash: hash.to_string(),
            len: bytes.len() as u64,
        })
        .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        head.push(b'\n');
        self.write(
            &[&head, bytes],
            "the connection closed while the bundle was sent",
        )?;
        self.has_bundle = true;
        Ok(())
    }

    /// The next message from the agent. The connection ending before the play is done is an
    /// error that says why (ssh's own words, made readable).
    pub fn recv(&mut self) -> Result<FromAgent, TransportError> {
        match self.read_line()? {
            Some(line) => serde_json::from_str(&line).map_err(|e| {
                TransportError::Unreachable(format!(
                    "unreadable message from the agent ({e}): {}",
                    shorten(line.trim())
                ))
            }),
            None => Err(self.failure(Some("the connection closed during the run"))),
        }
    }

    /// Ends the session: closes the agent's input (it exits) and reaps ssh.
    pub fn finish(mut self) {
        self.stdin.take();
        if let Ok(mut c) = self.child.lock() {
            let _ = c.wait();
        }
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
    }

    fn kill(&mut self) {
        self.stdin.take();
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Turns the end of a session into an error with ssh's reason.
    fn failure(&mut self, context: Option<&str>) -> TransportError {
        self.stdin.take();
        let status = self.child.lock().ok().and_then(|mut c| c.wait().ok());
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        let stderr = self
            .stderr
            .lock()
            .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
            .unwrap_or_default();
        TransportError::Unreachable(explain(
            &self.target,
            &stderr,
            status.and_then(|s| s.code()),
            context,
        ))
    }

    fn collect_warnings(&mut self) {
        let Ok(b) = self.stderr.lock() else { return };
        let text = String::from_utf8_lossy(&b);
        for l in text.lines() {
            if l.starts_with("Warning: Permanently added") {
                self.warnings.push(format!(
                    "{}: new host key accepted and recorded (--accept-new-host-keys): {}",
                    self.target,
                    l.trim_start_matches("Warning: ").trim()
                ));
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stdin.take();
        if let Ok(mut c) = self.child.lock() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

fn shorten(s: &str) -> String {
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

/// ssh's stderr and exit status, as a reason a user can act on.
pub(crate) fn explain(
    host: &str,
    stderr: &str,
    code: Option<i32>,
    context: Option<&str>,
) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        let offending = lines
            .iter()
            .find(|l| l.starts_with("Offending") || l.contains("known_hosts:"))
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        return format!(
            "the host key of {host} has CHANGED since it was recorded{offending}: someone may be \
             intercepting the connection, or the host was rebuilt. tend does not connect. Verify \
             the new key out of band, then remove the old one with `ssh-keygen -R <address>`."
        );
    }
    if stderr.contains("Host key verification failed") || stderr.contains("host key is known") {
        return format!(
            "the host key of {host} is not known and host keys are checked strictly: verify the \
             host's key and add it to known_hosts (e.g. `ssh-keyscan <address> >> ~/.ssh/known_hosts` \
             after checking its fingerprint), or run with --accept-new-host-keys to record keys \
             of hosts seen for the first time"
        );
    }
    if let Some(l) = lines.iter().find(|l| l.contains("Permission denied")) {
        return format!(
            "Failed to authenticate to the host via ssh: {l}. Check ansible_user, the key \
             (ansible_ssh_private_key_file or ssh-agent); tend never types passwords into ssh"
        );
    }
    let last = lines
        .iter()
        .rev()
        .find(|l| !l.starts_with("tend: ") || code != Some(boot::EXIT_FOREIGN_CACHE))
        .copied();
    match code {
        Some(boot::EXIT_FOREIGN_CACHE) => {
            return lines
                .iter()
                .find(|l| l.starts_with("tend: "))
                .map(|l| l.to_string())
                .unwrap_or_else(|| "the agent cache directory belongs to another user".into())
        }
        Some(boot::EXIT_CACHE) => {
            return format!(
                "cannot create the agent cache directory on the host: {}",
                last.unwrap_or("(no message)")
            )
        }
        Some(boot::EXIT_UPLOAD) | Some(boot::EXIT_NO_UPLOAD) => {
            return format!(
                "cannot store the agent on the host: {}",
                last.unwrap_or("the upload was cut")
            )
        }
        Some(126) | Some(127) => {
            return format!(
                "the tend agent cannot run on this host: {}",
                last.unwrap_or("exec failed")
            )
        }
        _ => {}
    }
    match (last, context) {
        (Some(l), _) if code == Some(255) => format!("Failed to connect to the host via ssh: {l}"),
        (Some(l), Some(c)) => format!("{c}: {l}"),
        (Some(l), None) => l.to_string(),
        (None, Some(c)) => match code {
            Some(n) => format!("{c} (ssh exited with status {n})"),
            None => format!("{c} (ssh was killed)"),
        },
        (None, None) => "the connection closed".into(),
    }
}

/// Closes the master connections kept open for later plays (`ssh -O exit`), in parallel.
/// Masters in a persistent directory (`--ssh-persist`) are left running: that is their point.
pub fn close_masters(targets: &[SshTarget], opts: &SshOptions, control: &ControlDir) {
    if control.is_persistent() {
        return;
    }
    let keep: Vec<&SshTarget> = targets.iter().filter(|t| t.persist).collect();
    exit_masters(&keep, opts, control);
}

/// Asks the master connection of each target to exit (`ssh -O exit`), in parallel; per
/// target, whether there was one. For `tend ssh-close`, and the end of a run.
pub fn exit_masters(targets: &[&SshTarget], opts: &SshOptions, control: &ControlDir) -> Vec<bool> {
    std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| {
                s.spawn(move || {
                    let mut args = t.args(opts, control);
                    // `-O exit` goes before the destination.
                    let dest = args.split_off(args.len() - 2);
                    Command::new(&opts.program)
                        .args(&args)
                        .arg("-O")
                        .arg("exit")
                        .args(dest)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_host_key_is_named() {
        let err = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                   @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
                   Offending ED25519 key in /tmp/known_hosts:3\n\
                   Host key verification failed.\n";
        let m = explain("web1", err, Some(255), None);
        assert!(m.contains("CHANGED"), "{m}");
        assert!(m.contains("/tmp/known_hosts:3"), "{m}");
    }

    #[test]
    fn unknown_host_key_points_at_the_opt_in() {
        let err = "No ED25519 host key is known for 10.0.0.1 and you have requested strict checking.\nHost key verification failed.\n";
        let m = explain("web1", err, Some(255), None);
        assert!(m.contains("--accept-new-host-keys"), "{m}");
    }

    #[test]
    fn refused_connection_keeps_ssh_words() {
        let m = explain(
            "web1",
            "ssh: connect to host 10.0.0.1 port 22: Connection refused\n",
            Some(255),
            None,
        );
        assert_eq!(
            m,
            "Failed to connect to the host via ssh: ssh: connect to host 10.0.0.1 port 22: Connection refused"
        );
    }

    #[test]
    fn persistent_control_dir_is_private_and_refused_when_others_can_write() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let d = ControlDir::persistent_in(base.path()).unwrap();
        assert!(d.is_persistent());
        assert_eq!(d.path(), base.path().join("tend/ssh"));
        assert_eq!(mode(&base.path().join("tend")), 0o700);
        assert_eq!(mode(d.path()), 0o700);
        // A directory of ours that is merely readable by others is tightened.
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(d);
        assert!(base.path().join("tend/ssh").is_dir(), "kept after the run");
        ControlDir::persistent_in(base.path()).unwrap();
        assert_eq!(mode(&base.path().join("tend/ssh")), 0o700);
        // Writable by others: someone could have put a socket of theirs there.
        std::fs::set_permissions(
            base.path().join("tend/ssh"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let e = ControlDir::persistent_in(base.path()).err().unwrap();
        assert!(e.contains("writable by other users"), "{e}");
        // A symlink in its place is not followed.
        let other = tempfile::tempdir().unwrap();
        std::fs::remove_dir(base.path().join("tend/ssh")).unwrap();
        std::os::unix::fs::symlink(other.path(), base.path().join("tend/ssh")).unwrap();
        let e = ControlDir::persistent_in(base.path()).err().unwrap();
        assert!(e.contains("not a directory"), "{e}");
        // Another user's directory (needs root to make one).
        if rustix::process::geteuid().is_root() {
            std::fs::remove_file(base.path().join("tend/ssh")).unwrap();
            std::fs::create_dir(base.path().join("tend/ssh")).unwrap();
            std::os::unix::fs::chown(base.path().join("tend/ssh"), Some(65534), None).unwrap();
            let e = ControlDir::persistent_in(base.path()).err().unwrap();
            assert!(e.contains("belongs to uid 65534"), "{e}");
        }
    }

    #[test]
    fn persist_sets_control_persist_only_in_the_persistent_directory() {
        let t = SshTarget {
            name: "h".into(),
            address: "10.0.0.1".into(),
            ..Default::default()
        };
        let opts = SshOptions {
            persist: 600,
            ..SshOptions::default()
        };
        let base = tempfile::tempdir().unwrap();
        let stable = ControlDir::persistent_in(base.path()).unwrap();
        let args = |c: &ControlDir| -> Vec<String> {
            t.args(&opts, c)
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        let a = args(&stable);
        assert!(a.contains(&"ControlPersist=600".to_string()), "{a:?}");
        assert!(a.contains(&format!("ControlPath={}/%C", stable.path().display())));
        assert!(
            a.contains(&"StrictHostKeyChecking=yes".to_string()),
            "{a:?}"
        );
        let run = ControlDir::new().unwrap();
        assert!(args(&run).contains(&"ControlPersist=no".to_string()));
    }

    #[test]
    fn security_options_come_before_inventory_arguments() {
        let t = SshTarget {
            name: "h".into(),
            address: "10.0.0.1".into(),
            common_args: vec!["-o".into(), "StrictHostKeyChecking=no".into()],
            ..Default::default()
        };
        let control = ControlDir::new().unwrap();
        let args: Vec<String> = t
            .args(&SshOptions::default(), &control)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let ours = args
            .iter()
            .position(|a| a == "StrictHostKeyChecking=yes")
            .unwrap();
        let theirs = args
            .iter()
            .position(|a| a == "StrictHostKeyChecking=no")
            .unwrap();
        assert!(ours < theirs);
        assert_eq!(args.last().unwrap(), "10.0.0.1");
    }
}
