//! `wait_for`: wait for a path (to appear, to contain a pattern, to go away) or a TCP port (to
//! accept connections, to answer with a pattern, to close), or just wait.

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use regex::bytes::Regex;
use tend_proto::{Value, Vars};

use crate::lineinfile::py_regex;
use crate::{fsutil, Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct WaitFor;

pub const PARAMS: &[&str] = &[
    "host",
    "timeout",
    "connect_timeout",
    "delay",
    "port",
    "active_connection_states",
    "path",
    "search_regex",
    "state",
    "exclude_hosts",
    "sleep",
    "msg",
];

fn connect(host: &str, port: u16, timeout: Duration) -> Option<TcpStream> {
    let addrs = (host, port).to_socket_addrs().ok()?;
    addrs
        .into_iter()
        .find_map(|a| TcpStream::connect_timeout(&a, timeout).ok())
}

/// The groups of a match, as Python's `groups()` and `groupdict()`.
fn groups(re: &Regex, hay: &[u8]) -> Option<(Vec<Value>, Vars)> {
    let caps = re.captures(hay)?;
    let list = caps
        .iter()
        .skip(1)
        .map(|g| {
            g.map_or(Value::Null, |m| {
                String::from_utf8_lossy(m.as_bytes()).into_owned().into()
            })
        })
        .collect();
    let mut dict = Vars::new();
    for name in re.capture_names().flatten() {
        let v = caps.name(name).map_or(Value::Null, |m| {
            String::from_utf8_lossy(m.as_bytes()).into_owned().into()
        });
        dict.insert(name.into(), v);
    }
    Some((list, dict))
}

impl Action for WaitFor {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn supports_check_mode(&self) -> bool {
        false
    }

    fn run(&self, args: &Args, _ctx: &ModuleCtx) -> ModuleResult {
        let host = args.str("host")?.unwrap_or_else(|| "127.0.0.1".into());
        let secs = |k: &str, d: i64| -> Result<Duration, ModuleError> {
            Ok(Duration::from_secs(args.int(k)?.unwrap_or(d).max(0) as u64))
        };
        let timeout = secs("timeout", 300)?;
        let connect_timeout = secs("connect_timeout", 5)?;
        let delay = secs("delay", 0)?;
        let sleep = secs("sleep", 1)?;
        let port = match args.int("port")? {
            None => None,
            Some(p) if (0..=65535).contains(&p) => Some(p as u16),
            Some(p) => return Err(ModuleError::new(format!("invalid port {p}"))),
        };
        let path = args.str("path")?.map(|p| fsutil::path_arg(&p));
        let state = args
            .choice(
                "state",
                &["absent", "drained", "present", "started", "stopped"],
            )?
            .unwrap_or_else(|| "started".into());
        let search = args.str("search_regex")?;
        let re = search
            .as_deref()
            .map(|s| {
                Regex::new(&py_regex(s, true))
                    .map_err(|e| ModuleError::new(format!("Invalid regular expression: {e}")))
            })
            .transpose()?;
        let msg = args.str("msg")?;
        let fail = |text: String, elapsed: u64| {
            let mut e = ModuleError::new(msg.clone().unwrap_or(text));
            e.fields.insert("elapsed".into(), elapsed.into());
            e
        };
        if port.is_some() && path.is_some() {
            return Err(fail(
                "port and path parameter can not both be passed to wait_for".into(),
                0,
            ));
        }
        if path.is_some() && state == "stopped" {
            return Err(fail(
                "state=stopped should only be used for checking a port in the wait_for module"
                    .into(),
                0,
            ));
        }
        if state == "drained" {
            return Err(fail(
                "tend does not support state=drained of wait_for yet".into(),
                0,
            ));
        }

        let start = Instant::now();
        std::thread::sleep(delay);
        let end = start + timeout;
        let elapsed = || start.elapsed().as_secs();
        let pause = || std::thread::sleep(sleep.min(end.saturating_duration_since(Instant::now())));
        let mut match_groups = Value::Array(Vec::new());
        let mut match_groupdict = Value::Object(Vars::new());
        let disp = |p: &Path| p.display().to_string();

        match (&path, port) {
            (None, None) => std::thread::sleep(timeout),
            _ if state == "absent" || state == "stopped" => loop {
                let gone = match (&path, port) {
                    (Some(p), _) => !fsutil::lstat(p)?.exists() && std::fs::metadata(p).is_err(),
                    (_, Some(port)) => connect(&host, port, connect_timeout).is_none(),
                    _ => true,
                };
                if gone {
                    break;
                }
                if Instant::now() >= end {
                    return Err(fail(
                        match (&path, port) {
                            (Some(p), _) => {
                                format!("Timeout when waiting for {} to be absent.", disp(p))
                            }
                            (_, Some(port)) => {
                                format!("Timeout when waiting for {host}:{port} to stop.")
                            }
                            _ => String::new(),
                        },
                        elapsed(),
                    ));
                }
                pause();
            },
            _ => loop {
                let done = match (&path, port) {
                    (Some(p), _) => match std::fs::metadata(p) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(fail(format!("Failed to stat {}, {e}", disp(p)), elapsed()))
                        }
                        Err(_) => false,
                        Ok(_) => match &re {
                            None => true,
                            Some(re) => {
                                match fsutil::read_file(p).ok().and_then(|data| groups(re, &data)) {
                                    Some((l, d)) => {
                                        match_groups = Value::Array(l);
                                        match_groupdict = Value::Object(d);
                                        true
                                    }
                                    None => false,
                                }
                            }
                        },
                    },
                    (_, Some(port)) => match connect(&host, port, connect_timeout) {
                        None => false,
                        Some(mut s) => match &re {
                            None => true,
                            Some(re) => {
                                let mut data = Vec::new();
                                let mut buf = [0u8; 4096];
                                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                                let mut found = false;
                                while Instant::now() < end {
                                    match s.read(&mut buf) {
                                        Ok(0) => break,
                                        Ok(n) => {
                                            data.extend_from_slice(&buf[..n]);
                                            if let Some((l, d)) = groups(re, &data) {
                                                match_groups = Value::Array(l);
                                                match_groupdict = Value::Object(d);
                                                found = true;
                                                break;
                                            }
                                        }
                                        Err(e)
                                            if matches!(
                                                e.kind(),
                                                std::io::ErrorKind::WouldBlock
                                                    | std::io::ErrorKind::TimedOut
                                            ) => {}
                                        Err(_) => break,
                                    }
                                }
                                found
                            }
                        },
                    },
                    _ => true,
                };
                if done {
                    break;
                }
                if Instant::now() >= end {
                    let text = match (&path, port, &search) {
                        (Some(p), _, Some(s)) => {
                            format!("Timeout when waiting for search string {s} in {}", disp(p))
                        }
                        (Some(p), _, None) => format!("Timeout when waiting for file {}", disp(p)),
                        (_, Some(port), Some(s)) => {
                            format!("Timeout when waiting for search string {s} in {host}:{port}")
                        }
                        (_, Some(port), None) => format!("Timeout when waiting for {host}:{port}"),
                        _ => String::new(),
                    };
                    return Err(fail(text, elapsed()));
                }
                pause();
            },
        }
        let mut out = ModuleOutput::ok()
            .field("state", state)
            .field("port", port.map_or(Value::Null, Value::from))
            .field("search_regex", search.map_or(Value::Null, Value::from))
            .field("match_groups", match_groups)
            .field("match_groupdict", match_groupdict)
            .field(
                "path",
                path.as_deref().map_or(Value::Null, |p| disp(p).into()),
            )
            .field("elapsed", elapsed());
        out.changed = false;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;
    use std::fs;

    #[test]
    fn waits_for_paths_and_ports() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "ready on port 8080\n").unwrap();
        let out = run(
            "wait_for",
            json!({"path": f, "search_regex": "port (?P<port>\\d+)", "timeout": 2}),
        );
        assert_eq!(out.fields["match_groups"], json!(["8080"]));
        assert_eq!(out.fields["match_groupdict"], json!({"port": "8080"}));
        assert_eq!(out.fields["elapsed"], json!(0));
        let e = run_err(
            "wait_for",
            json!({"path": t.path().join("nope"), "timeout": 0}),
        );
        assert_eq!(
            e,
            format!(
                "Timeout when waiting for file {}",
                t.path().join("nope").display()
            )
        );
        run(
            "wait_for",
            json!({"path": t.path().join("nope"), "state": "absent", "timeout": 1}),
        );
        let e = run_err(
            "wait_for",
            json!({"path": f, "state": "absent", "timeout": 0, "msg": "still there"}),
        );
        assert_eq!(e, "still there");

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let out = run("wait_for", json!({"port": port, "timeout": 2}));
        assert_eq!(out.fields["port"], json!(port));
        drop(l);
        run(
            "wait_for",
            json!({"port": port, "state": "stopped", "timeout": 2}),
        );
    }
}
