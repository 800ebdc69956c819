//! Starting a worker through `sudo`/`su`, answering the password prompt, and talking to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use tend_proto::Secret;

use super::{ready_line, Request, Response};
use crate::privilege::{Escalation, Method};

/// How long `sudo`/`su` may take to start the worker, password prompt included.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of the worker's stderr is kept for error messages.
const STDERR_TAIL: usize = 8 * 1024;

/// What the reader threads see.
enum Msg {
    Out(String),
    OutEnd,
    Err(Vec<u8>),
    ErrEnd,
}

/// A running worker, ready for requests.
pub(crate) struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Msg>,
    stderr: Vec<u8>,
    /// "sudo to nobody", for messages.
    label: String,
}

impl Worker {
    /// Starts a worker as `esc.user`, answering one password prompt with `password`. Fails with
    /// ansible-core's words for the usual problems ("Incorrect sudo password", "Missing sudo
    /// password") or with what `sudo`/`su` said.
    pub fn start(esc: &Escalation, password: Option<&Secret>) -> Result<Worker, String> {
        let exe = agent_exe()?;
        let marker = format!(
            "[tend {} via {}] password:",
            random_hex(),
            esc.method.name()
        );
        let mut cmd = command(esc, &exe, &marker)?;
        let label = format!("{} to `{}`", esc.method.name(), esc.user);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot run `{}` to become `{}`: {e} (is it installed and on PATH?)",
                esc.exe, esc.user
            )
        })?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            read_lines(out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            read_chunks(err, tx);
        }
        let stdin = child.stdin.take();
        let mut w = Worker {
            child,
            stdin,
            rx,
            stderr: Vec::new(),
            label,
        };
        match w.handshake(esc, password, &marker) {
            Ok(()) => {
                w.stderr.clear();
                Ok(w)
            }
            Err(e) => {
                w.stop();
                Err(e)
            }
        }
    }

    fn handshake(
        &mut self,
        esc: &Escalation,
        password: Option<&Secret>,
        marker: &str,
    ) -> Result<(), String> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let method = esc.method.name();
        let mut answered = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = match self.rx.recv_timeout(left) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "Timeout ({}s) waiting for privilege escalation prompt ({}){}",
                        HANDSHAKE_TIMEOUT.as_secs(),
                        self.label,
                        said(&self.stderr, marker)
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => Msg::OutEnd,
            };
            match msg {
                Msg::Out(line) => {
                    let line = line.trim_end();
                    if line == ready_line() {
                        return Ok(());
                    }
                    if line.starts_with("tend-worker-ready") {
                        return Err(format!(
                            "the agent binary changed during the run: its worker speaks `{line}`, \
                             this agent `{}`",
                            ready_line()
                        ));
                    }
                    // Anything else on stdout before the worker runs is the escalation tool's.
                    self.keep_stderr(line.as_bytes());
                    self.keep_stderr(b"\n");
                }
                Msg::Err(chunk) => {
                    self.keep_stderr(&chunk);
                    let prompts = count_prompts(esc.method, &self.stderr, marker);
                    if prompts > answered {
                        if answered > 0 {
                            return Err(format!("Incorrect {method} password"));
                        }
                        let Some(pw) = password else {
                            return Err(missing(method, ""));
                        };
                        answered = prompts;
                        let sent = self.stdin.as_mut().map(|s| {
                            s.write_all(pw.expose().as_bytes())
                                .and_then(|()| s.write_all(b"\n"))
                                .and_then(|()| s.flush())
                        });
                        if let Some(Err(e)) = sent {
                            return Err(format!("cannot answer the {method} password prompt: {e}"));
                        }
                    }
                }
                Msg::ErrEnd => {}
                Msg::OutEnd => return Err(self.ended(esc, answered > 0, password, marker)),
            }
        }
    }

    /// Why `sudo`/`su` ended before the worker ran.
    fn ended(
        &mut self,
        esc: &Escalation,
        answered: bool,
        password: Option<&Secret>,
        marker: &str,
    ) -> String {
        self.drain_stderr(Duration::from_secs(2));
        let method = esc.method.name();
        let text = String::from_utf8_lossy(&self.stderr).to_string();
        let plain = text.replace(marker, "");
        let lower = plain.to_ascii_lowercase();
        if lower.contains("incorrect password attempt")
            || (answered && lower.contains("authentication failure"))
            || (answered && lower.contains("sorry, try again"))
        {
            return format!("Incorrect {method} password");
        }
        if lower.contains("a password is required")
            || lower.contains("no password was provided")
            || (password.is_none() && lower.contains("authentication failure"))
        {
            return missing(method, plain.trim());
        }
        let mut msg = format!(
            "privilege escalation failed ({}){}",
            self.label,
            said(&self.stderr, marker)
        );
        if lower.contains("unable to execute") || lower.contains("permission denied") {
            msg.push_str(&format!(
                "; the become user must be able to run the agent binary {}",
                agent_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ));
        }
        msg
    }

    /// Sends one request and waits for its answer.
    pub fn call(&mut self, req: &Request) -> Result<Response, String> {
        let line = serde_json::to_string(req)
            .map_err(|e| format!("cannot encode the request for the worker: {e}"))?;
        let sent = match self.stdin.as_mut() {
            Some(s) => s
                .write_all(line.as_bytes())
                .and_then(|()| s.write_all(b"\n"))
                .and_then(|()| s.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        if sent.is_err() {
            return Err(self.died());
        }
        loop {
            match self.rx.recv() {
                Ok(Msg::Out(line)) => {
                    return serde_json::from_str(&line)
                        .map_err(|e| format!("the worker ({}) sent a bad reply: {e}", self.label))
                }
                Ok(Msg::Err(chunk)) => self.keep_stderr(&chunk),
                Ok(Msg::ErrEnd) => {}
                Ok(Msg::OutEnd) | Err(_) => return Err(self.died()),
            }
        }
    }

    fn died(&mut self) -> String {
        self.drain_stderr(Duration::from_millis(500));
        let status = self
            .child
            .try_wait()
            .ok()
            .flatten()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        format!(
            "the privileged worker ({}) ended unexpectedly{status}{}",
            self.label,
            said(&self.stderr, "")
        )
    }

    fn keep_stderr(&mut self, chunk: &[u8]) {
        self.stderr.extend_from_slice(chunk);
        if self.stderr.len() > STDERR_TAIL {
            let cut = self.stderr.len() - STDERR_TAIL;
            self.stderr.drain(..cut);
        }
    }

    fn drain_stderr(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Msg::Err(chunk)) => self.keep_stderr(&chunk),
                Ok(Msg::Out(line)) => {
                    self.keep_stderr(line.as_bytes());
                    self.keep_stderr(b"\n");
                }
                Ok(Msg::OutEnd) => {}
                Ok(Msg::ErrEnd) | Err(_) => return,
            }
        }
    }

    /// Ends the worker: end of input first (it exits by itself), then a kill.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `sudo [flags] -p PROMPT -u USER -- EXE agent-worker`, or
/// `su [flags] USER -c 'EXE agent-worker'`.
fn command(esc: &Escalation, exe: &std::path::Path, marker: &str) -> Result<Command, String> {
    let flags = shlex::split(&esc.flags).ok_or_else(|| {
        format!(
            "become_flags `{}` is not a valid shell word list (unbalanced quotes?)",
            esc.flags
        )
    })?;
    let mut cmd = Command::new(&esc.exe);
    match esc.method {
        Method::Sudo => {
            // The password goes to sudo's stdin (-S), and only when sudo shows our prompt, so
            // -n (never prompt) goes, as ansible-core's sudo plugin does.
            let mut flags: Vec<String> = flags
                .into_iter()
                .filter(|f| f != "-n" && f != "--non-interactive")
                .filter_map(|f| {
                    if f.starts_with('-') && !f.starts_with("--") && f.len() > 2 {
                        let kept: String = f[1..].chars().filter(|c| *c != 'n').collect();
                        (!kept.is_empty()).then(|| format!("-{kept}"))
                    } else {
                        Some(f)
                    }
                })
                .collect();
            let has_stdin = flags.iter().any(|f| {
                f == "--stdin" || (f.starts_with('-') && !f.starts_with("--") && f.contains('S'))
            });
            if !has_stdin {
                flags.push("-S".into());
            }
            let user = if !esc.user.is_empty() && esc.user.bytes().all(|b| b.is_ascii_digit()) {
                format!("#{}", esc.user)
            } else {
                esc.user.clone()
            };
            cmd.args(flags)
                .arg("-p")
                .arg(marker)
                .arg("-u")
                .arg(user)
                .arg("--")
                .arg(exe)
                .arg("agent-worker");
        }
        Method::Su => {
            let exe = exe
                .to_str()
                .ok_or_else(|| format!("the agent's path {} is not UTF-8", exe.display()))?;
            let line = shlex::try_join([exe, "agent-worker"])
                .map_err(|e| format!("cannot quote the agent's path {exe}: {e}"))?;
            cmd.args(flags).arg(&esc.user).arg("-c").arg(line);
        }
    }
    Ok(cmd)
}

/// How many password prompts `sudo`/`su` has shown.
fn count_prompts(method: Method, stderr: &[u8], marker: &str) -> usize {
    let text = String::from_utf8_lossy(stderr);
    match method {
        Method::Sudo => text.matches(marker).count(),
        // su's prompt is PAM's: "Password: " (English; other locales are not recognised).
        Method::Su => text.matches("assword:").count(),
    }
}

fn missing(method: &str, said: &str) -> String {
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(" ({said})")
    };
    format!(
        "Missing {method} password{said}; give it with -K/--ask-become-pass or the \
         ansible_become_password variable"
    )
}

/// ": <what the tool said>", prompts removed, or nothing.
fn said(stderr: &[u8], marker: &str) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = if marker.is_empty() {
        text.to_string()
    } else {
        text.replace(marker, "")
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(10)..];
    format!(": {}", tail.join(" / "))
}

/// The binary the worker is started from: this very program.
fn agent_exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find the agent's own binary: {e}"))
}

fn random_hex() -> String {
    let mut buf = [0u8; 12];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !ok {
        // Only the prompt's uniqueness depends on this; a clock and pid still make it unlikely
        // to appear by chance.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let x = t ^ u128::from(std::process::id()) << 64;
        buf.copy_from_slice(&x.to_le_bytes()[..12]);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_lines(out: impl Read + Send + 'static, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send(Msg::Out(line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Msg::OutEnd);
    });
}

fn read_chunks(err: impl Read + Send + 'static, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        let mut err = err;
        let mut buf = [0u8; 4096];
        loop {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Msg::Err(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Msg::ErrEnd);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(method: Method, flags: &str) -> Escalation {
        Escalation {
            method,
            user: "nobody".into(),
            flags: flags.into(),
            exe: method.name().into(),
        }
    }

    fn argv(e: &Escalation) -> Vec<String> {
        let c = command(e, std::path::Path::new("/opt/my tend/tend"), "PROMPT").unwrap();
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn sudo_prompts_on_stdin_with_our_marker_and_never_gets_n() {
        assert_eq!(
            argv(&esc(Method::Sudo, "-H -S -n")),
            [
                "sudo",
                "-H",
                "-S",
                "-p",
                "PROMPT",
                "-u",
                "nobody",
                "--",
                "/opt/my tend/tend",
                "agent-worker"
            ]
        );
        // Clustered flags lose their n; -S is added when missing.
        assert_eq!(
            argv(&esc(Method::Sudo, "-Hn -E")),
            [
                "sudo",
                "-H",
                "-E",
                "-S",
                "-p",
                "PROMPT",
                "-u",
                "nobody",
                "--",
                "/opt/my tend/tend",
                "agent-worker"
            ]
        );
    }

    #[test]
    fn su_gets_one_quoted_command_line() {
        assert_eq!(
            argv(&esc(Method::Su, "-s /bin/sh")),
            [
                "su",
                "-s",
                "/bin/sh",
                "nobody",
                "-c",
                "'/opt/my tend/tend' agent-worker"
            ]
        );
        assert!(command(
            &esc(Method::Su, "-s 'unbalanced"),
            std::path::Path::new("/x"),
            "P"
        )
        .is_err());
    }

    #[test]
    fn prompts_are_counted_and_never_shown() {
        let m = "[tend abc via sudo] password:";
        let err = format!("{m}Sorry, try again.\n{m}");
        assert_eq!(count_prompts(Method::Sudo, err.as_bytes(), m), 2);
        assert_eq!(said(err.as_bytes(), m), ": Sorry, try again.");
        assert_eq!(count_prompts(Method::Su, b"Password: ", m), 1);
    }
}
