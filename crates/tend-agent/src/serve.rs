//! `tend agent`: the remote end of the wire protocol ([`tend_proto::wire`]).
//!
//! Reads messages on stdin, runs each play's Program with the same [`crate::run`] that local
//! hosts use, and streams every event back on stdout as it happens. `run_once` questions go to
//! the controller over the same pipes, so hosts meet exactly as they do in one process.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tend_proto::wire::{FromAgent, ToAgent};
use tend_proto::{Value, PROTOCOL_VERSION};

use crate::{Rendezvous, RunOnce};

/// Where bundles live under the agent's cache directory (the boot script checks it too).
pub const BUNDLES_DIR: &str = "bundles";

/// Exit status when the session ends on a protocol error.
pub const EXIT_PROTOCOL: i32 = 3;

/// Serves one session. `cache_dir` is where bundles are unpacked (next to the cached binary).
/// Returns the process exit status.
pub fn serve(
    input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
    cache_dir: &Path,
) -> i32 {
    let wire = Wire {
        input: Mutex::new(Box::new(BufReader::with_capacity(64 * 1024, input))),
        output: Mutex::new(Box::new(std::io::BufWriter::new(output))),
    };
    wire.send(&FromAgent::Hello {
        version: PROTOCOL_VERSION,
        agent: env!("CARGO_PKG_VERSION").to_string(),
        user: tend_resources::fsutil::user_name(crate::privilege::own_uid()),
        uid: crate::privilege::own_uid(),
    });
    let mut installed: Option<String> = None;
    // The host's lock, once the controller asked for it: held until the session ends.
    let mut held: Option<crate::hostlock::HostLock> = None;
    let bundles = crate::bundle::BundleCache::new(cache_dir.join(BUNDLES_DIR));
    // Module calls other hosts delegate to this one (a session that serves them).
    let served = crate::delegate::Served::new();
    // Mark this agent as used and drop what no run has used for a while (cheap: two small
    // directory listings).
    let running = std::env::current_exe().ok();
    let cache = cache_dir
        .canonicalize()
        .unwrap_or_else(|_| cache_dir.to_path_buf());
    if let Some(exe) = running.as_deref().filter(|e| e.starts_with(&cache)) {
        crate::prune::touch(exe);
    }
    crate::prune::prune(cache_dir, &cache_dir.join(BUNDLES_DIR), running.as_deref());
    loop {
        let msg = match wire.recv() {
            Ok(Some(m)) => m,
            Ok(None) => return 0,
            Err(e) => return wire.fail(&e),
        };
        match msg {
            ToAgent::Bundle { hash, len } => {
                let mut bytes = Vec::with_capacity(len.min(1 << 30) as usize);
                let read = match wire.input.lock() {
                    Ok(mut r) => (&mut *r).take(len).read_to_end(&mut bytes),
                    Err(_) => return wire.fail("input lock poisoned"),
                };
                if read.ok().map(|n| n as u64) != Some(len) {
                    return wire.fail(&format!("bundle {hash}: the stream ended early"));
                }
                if let Err(e) = bundles.put(&hash, &bytes) {
                    return wire.fail(&format!("cannot unpack bundle {hash}: {e}"));
                }
            }
            ToAgent::Run { program, bundle } => {
                if program.version != PROTOCOL_VERSION {
                    return wire.fail(&format!(
                        "program version {} but this agent speaks {PROTOCOL_VERSION}",
                        program.version
                    ));
                }
                if let Err(e) = install(&bundles, &mut installed, bundle) {
                    return wire.fail(&e);
                }
                // Vault-encrypted controller files this play may read (no password here).
                tend_lang::vault::install_known(&program.vault);
                let mut sink = |e: tend_proto::Event| wire.send(&FromAgent::Event(Box::new(e)));
                let (stats, state) = crate::run(&program, &mut sink, Some(&wire));
                wire.send(&FromAgent::PlayDone {
                    stats,
                    state: Box::new(state),
                });
            }
            ToAgent::Lock { owner, wait_ms } => {
                let reply = match &held {
                    Some(l) => FromAgent::Locked {
                        path: l.path().display().to_string(),
                        shared: l.shared(),
                    },
                    None => {
                        let (dir, shared) = crate::hostlock::lock_dir(cache_dir);
                        let wait = std::time::Duration::from_millis(wait_ms);
                        match crate::hostlock::acquire(&dir, shared, &owner, wait) {
                            Ok(l) => {
                                let reply = FromAgent::Locked {
                                    path: l.path().display().to_string(),
                                    shared: l.shared(),
                                };
                                held = Some(l);
                                reply
                            }
                            Err(crate::hostlock::LockError::Busy { holder, .. }) => {
                                FromAgent::NotLocked {
                                    holder,
                                    error: None,
                                }
                            }
                            Err(e) => FromAgent::NotLocked {
                                holder: None,
                                error: Some(e.to_string()),
                            },
                        }
                    }
                };
                wire.send(&reply);
            }
            ToAgent::Call { call, bundle } => {
                if let Err(e) = install(&bundles, &mut installed, bundle) {
                    return wire.fail(&e);
                }
                let reply = match crate::delegate::Call::from_value(call) {
                    Ok(c) => served.call(c),
                    Err(e) => crate::delegate::Reply::error(e),
                };
                wire.send(&FromAgent::CallDone {
                    reply: reply.to_value(),
                });
            }
            ToAgent::HostvarsAnswer { host, .. } => {
                return wire.fail(&format!("unexpected hostvars answer for {host}"));
            }
            ToAgent::DelegateAnswer { .. } => {
                return wire.fail("unexpected delegate answer");
            }
            ToAgent::RunOnceAnswer { key, .. } => {
                return wire.fail(&format!("unexpected run_once answer for {key}"));
            }
            ToAgent::StepAnswer { n, .. } => {
                return wire.fail(&format!("unexpected step answer for step {n}"));
            }
            ToAgent::ThrottleGranted { key } => {
                return wire.fail(&format!("unexpected throttle answer for {key}"));
            }
        }
    }
}

/// Makes the bundle `hash` the controller's files of this session (once per bundle).
fn install(
    bundles: &crate::bundle::BundleCache,
    installed: &mut Option<String>,
    bundle: Option<String>,
) -> Result<(), String> {
    let Some(hash) = bundle else { return Ok(()) };
    if installed.as_deref() == Some(hash.as_str()) {
        return Ok(());
    }
    match bundles.get(&hash) {
        Ok(Some(b)) => {
            if let Ok(p) = bundles.path(&hash) {
                crate::prune::touch(&p);
            }
            b.install()
        }
        Ok(None) => return Err(format!("bundle {hash} was not sent")),
        Err(e) => return Err(format!("cannot use bundle {hash}: {e}")),
    }
    *installed = Some(hash);
    Ok(())
}

type Input = Box<dyn BufRead + Send>;
type Output = Box<dyn Write + Send>;

struct Wire {
    input: Mutex<Input>,
    output: Mutex<Output>,
}

impl Wire {
    /// Writes one message and flushes it: the controller shows progress as events arrive.
    /// A write error means the controller is gone; the agent then stops at the next read.
    fn send(&self, m: &FromAgent) {
        let Ok(mut line) = serde_json::to_vec(m) else {
            return;
        };
        line.push(b'\n');
        if let Ok(mut out) = self.output.lock() {
            let _ = out.write_all(&line).and_then(|_| out.flush());
        }
    }

    fn recv(&self) -> Result<Option<ToAgent>, String> {
        let mut line = String::new();
        let n = match self.input.lock() {
            Ok(mut r) => r.read_line(&mut line),
            Err(_) => return Err("input lock poisoned".into()),
        }
        .map_err(|e| format!("cannot read from the controller: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| format!("bad message from the controller: {e}"))
    }

    fn fail(&self, msg: &str) -> i32 {
        self.send(&FromAgent::Error {
            msg: msg.to_string(),
        });
        EXIT_PROTOCOL
    }
}

impl Rendezvous for Wire {
    /// The agent is the host: the controller sees it become unreachable, not the agent.
    fn host_unreachable(&self, _host: &str) {}
    fn run_once(&self, key: &str, _host: &str) -> RunOnce {
        self.send(&FromAgent::RunOnceAsk {
            key: key.to_string(),
        });
        match self.recv() {
            Ok(Some(ToAgent::RunOnceAnswer {
                key: k,
                result: Some(v),
            })) if k == key => RunOnce::Follow(v),
            // The controller is gone or confused: run it here, like a host alone in its play.
            _ => RunOnce::Lead,
        }
    }

    fn publish(&self, key: &str, result: Value) {
        self.send(&FromAgent::RunOncePublish {
            key: key.to_string(),
            result,
        });
    }

    fn host_done(&self, _host: &str) {
        self.send(&FromAgent::RendezvousDone);
    }

    fn hostvars(&self, host: &str) -> Option<Value> {
        self.send(&FromAgent::HostvarsAsk {
            host: host.to_string(),
        });
        match self.recv() {
            Ok(Some(ToAgent::HostvarsAnswer { host: h, vars })) if h == host => vars,
            _ => None,
        }
    }

    fn delegate(&self, call: crate::delegate::Call) -> crate::delegate::Reply {
        let to = call.delegate.clone();
        self.send(&FromAgent::DelegateAsk {
            call: call.to_value(),
        });
        match self.recv() {
            Ok(Some(ToAgent::DelegateAnswer { reply })) => {
                crate::delegate::Reply::from_value(reply)
            }
            _ => crate::delegate::Reply::error(format!(
                "the controller did not answer the call delegated to `{to}`"
            )),
        }
    }

    fn delegated_facts(&self, host: &str, facts: tend_proto::Vars, set_fact: bool) {
        self.send(&FromAgent::DelegatedFacts {
            host: host.to_string(),
            facts,
            set_fact,
        });
    }

    fn step(&self, _host: &str, n: usize, failed: bool, fatal: bool) -> bool {
        self.send(&FromAgent::Step { n, failed, fatal });
        match self.recv() {
            Ok(Some(ToAgent::StepAnswer { n: m, stop })) if m == n => stop,
            // The controller is gone or confused: stop rather than run on alone.
            _ => true,
        }
    }

    fn throttle_acquire(&self, key: &str, _host: &str, limit: usize) {
        self.send(&FromAgent::ThrottleAcquire {
            key: key.to_string(),
            limit,
        });
        // Any other answer: the controller is gone, and the next message fails the run.
        let _ = self.recv();
    }

    fn throttle_release(&self, key: &str, _host: &str) {
        self.send(&FromAgent::ThrottleRelease {
            key: key.to_string(),
        });
    }
}

/// The directory where `tend agent` keeps its cache when none is given.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("tend");
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join(".cache/tend")
}
