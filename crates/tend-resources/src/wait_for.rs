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
        if path.is_some() && state == "drained" {
            return Err(fail(
                "state=drained should only be used for checking a port in the wait_for module"
                    .into(),
                0,
            ));
        }
        let exclude = args.list("exclude_hosts")?;
        if exclude.is_some() && state != "drained" {
            return Err(fail(
                "exclude_hosts should only be with state=drained".into(),
                0,
            ));
        }
        let states = match args.list("active_connection_states")? {
            None => DEFAULT_ACTIVE.iter().map(|s| s.to_string()).collect(),
            Some(l) => l,
        };
        let mut state_ids = Vec::with_capacity(states.len());
        for st in &states {
            match state_id(st) {
                Some(id) => state_ids.push(id),
                None => {
                    return Err(fail(
                        format!("unknown active_connection_state ({st}) defined"),
                        0,
                    ))
                }
            }
        }
        let drained = if state == "drained" {
            let Some(port) = port else {
                // ansible-core fails with a Python error here; say what is missing.
                return Err(fail("state=drained needs a port to watch".into(), 0));
            };
            let mut d = Drain::new(&host, port, exclude.as_deref().unwrap_or_default());
            d.states = state_ids;
            Some(d)
        } else {
            None
        };

        let start = Instant::now();
        std::thread::sleep(delay);
        let end = start + timeout;
        let elapsed = || start.elapsed().as_secs();
        let pause = || std::thread::sleep(sleep.min(end.saturating_duration_since(Instant::now())));
        let mut match_groups = Value::Array(Vec::new());
        let mut match_groupdict = Value::Object(Vars::new());
        let disp = |p: &Path| p.display().to_string();

        match (&path, port) {
            _ if drained.is_some() => {
                let drain = drained
                    .as_ref()
                    .ok_or_else(|| ModuleError::new("no port"))?;
                // ansible-core's loop: no check at all once the timeout has passed (a delay as
                // long as the timeout fails).
                let mut done = false;
                while Instant::now() < end {
                    if drain.active() == 0 {
                        done = true;
                        break;
                    }
                    std::thread::sleep(sleep);
                }
                if !done {
                    return Err(fail(
                        format!(
                            "Timeout when waiting for {host}:{} to drain",
                            port.unwrap_or_default()
                        ),
                        elapsed(),
                    ));
                }
            }
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

/// ansible-core's default `active_connection_states`.
const DEFAULT_ACTIVE: &[&str] = &[
    "ESTABLISHED",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "SYN_RECV",
    "SYN_SENT",
    "TIME_WAIT",
];

/// The state's code in `/proc/net/tcp` (the states ansible-core accepts).
fn state_id(name: &str) -> Option<&'static str> {
    Some(match name {
        "ESTABLISHED" => "01",
        "SYN_SENT" => "02",
        "SYN_RECV" => "03",
        "FIN_WAIT1" => "04",
        "FIN_WAIT2" => "05",
        "TIME_WAIT" => "06",
        _ => return None,
    })
}

/// An address as `/proc/net/tcp{,6}` writes it: each 32-bit word in host (little-endian)
/// order, upper-case hex.
fn proc_hex(ip: &std::net::IpAddr) -> (bool, String) {
    let words = |b: &[u8]| {
        b.chunks(4)
            .map(|w| format!("{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
            .collect::<String>()
    };
    match ip {
        std::net::IpAddr::V4(a) => (false, words(&a.octets())),
        std::net::IpAddr::V6(a) => (true, words(&a.octets())),
    }
}

/// The addresses of `host` as ansible-core matches them: each resolved address, and for an
/// IPv4 one also its IPv4-mapped IPv6 form. `(ipv6, hex)`.
fn host_hex(host: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for a in (host, 80).to_socket_addrs().into_iter().flatten() {
        let ip = a.ip();
        out.push(proc_hex(&ip));
        if let std::net::IpAddr::V4(v4) = ip {
            out.push(proc_hex(&std::net::IpAddr::V6(v4.to_ipv6_mapped())));
        }
    }
    out
}

/// `state=drained`: the TCP connections to a local address and port, counted from
/// `/proc/net/tcp` and `/proc/net/tcp6` as ansible-core's Linux implementation does.
struct Drain {
    port: String,
    ips: Vec<(bool, String)>,
    exclude: Vec<(bool, String)>,
    states: Vec<&'static str>,
}

const MATCH_ALL_V4: &str = "00000000";
const MATCH_ALL_V6: &str = "00000000000000000000000000000000";
const MAPPED_PREFIX: &str = "0000000000000000FFFF0000";
const MAPPED_ALL: &str = "0000000000000000FFFF000000000000";

impl Drain {
    fn new(host: &str, port: u16, exclude: &[String]) -> Drain {
        Drain {
            port: format!("{port:04X}"),
            ips: host_hex(host),
            exclude: exclude.iter().flat_map(|h| host_hex(h)).collect(),
            states: Vec::new(),
        }
    }

    fn active(&self) -> usize {
        [("/proc/net/tcp", false), ("/proc/net/tcp6", true)]
            .iter()
            .filter_map(|(f, v6)| std::fs::read_to_string(f).ok().map(|t| (t, *v6)))
            .map(|(text, v6)| self.count(&text, v6))
            .sum()
    }

    /// Active connections in one `/proc/net/tcp*` table.
    fn count(&self, table: &str, v6: bool) -> usize {
        let has = |list: &[(bool, String)], ip: &str| list.iter().any(|(f, h)| *f == v6 && h == ip);
        let all = if v6 { MATCH_ALL_V6 } else { MATCH_ALL_V4 };
        table
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let (local, remote, st) = (f.get(1)?, f.get(2)?, f.get(3)?);
                if *local == "local_address" || !self.states.contains(st) {
                    return None;
                }
                let (lip, lport) = local.split_once(':')?;
                let (rip, _) = remote.split_once(':')?;
                if lport != self.port || has(&self.exclude, rip) {
                    return None;
                }
                (has(&self.ips, lip)
                    || has(&self.ips, all)
                    || lip.starts_with(MAPPED_PREFIX) && has(&self.ips, MAPPED_ALL))
                .then_some(())
            })
            .count()
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

    #[test]
    fn drained_counts_connections_on_the_address_and_port_as_proc_net_tcp_lists_them() {
        use super::Drain;
        // 127.0.0.1:8080 <- 127.0.0.1:40000 established; 10.0.0.5:8080 <- 10.0.0.9 established;
        // a listener (0A) and another port never count.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 0100007F:1F90 0100007F:9C40 01 00000000:00000000\n\
   1: 0500000A:1F90 0900000A:D431 01 00000000:00000000\n\
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000\n\
   3: 0100007F:0050 0100007F:9C41 01 00000000:00000000\n";
        let mut d = Drain::new("127.0.0.1", 8080, &[]);
        d.states = vec!["01", "06"];
        assert_eq!(d.count(table, false), 1);
        let mut any = Drain::new("0.0.0.0", 8080, &["10.0.0.9".to_string()]);
        any.states = vec!["01"];
        // 0.0.0.0 matches every local address; the excluded peer does not count.
        assert_eq!(any.count(table, false), 1);
        any.exclude.clear();
        assert_eq!(any.count(table, false), 2);
        any.states = vec!["06"];
        assert_eq!(any.count(table, false), 0);
    }

    #[test]
    fn drained_waits_for_a_port_nobody_uses_and_refuses_what_ansible_refuses() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let out = run(
            "wait_for",
            json!({"port": port, "state": "drained", "timeout": 2}),
        );
        assert_eq!(out.fields["state"], json!("drained"));
        assert!(!out.changed);
        // An open connection keeps the port busy until the timeout.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let e = run_err(
            "wait_for",
            json!({"port": port, "state": "drained", "timeout": 1}),
        );
        assert_eq!(
            e,
            format!("Timeout when waiting for 127.0.0.1:{port} to drain")
        );
        let e = run_err(
            "wait_for",
            json!({"port": port, "state": "started", "exclude_hosts": ["10.0.0.1"]}),
        );
        assert_eq!(e, "exclude_hosts should only be with state=drained");
        let e = run_err(
            "wait_for",
            json!({"port": port, "state": "drained", "active_connection_states": ["LISTEN"]}),
        );
        assert_eq!(e, "unknown active_connection_state (LISTEN) defined");
    }
}
