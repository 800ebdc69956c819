//! Consumers of the event stream: the human printer (ansible-playbook's look) and JSON lines.
//! Nothing else in tend prints run output.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};

use serde_json::{json, Value};
use tend_proto::{Event, HostStats, ResultStatus, TaskResult};

use crate::cli::OutputFormat;

const WIDTH: usize = 80;

pub struct Printer {
    out: Box<dyn Write>,
    format: OutputFormat,
    verbosity: u8,
    last_header: Option<(String, bool)>,
    /// A closed pipe is not an error: stop writing, keep running.
    closed: bool,
    /// Hosts of a play run at their own pace: with more than one, each host's lines are kept
    /// and printed as one block when it finishes, so no two hosts' lines interleave.
    grouped: bool,
    held: HashMap<String, Vec<Event>>,
    /// The live status line (stderr is a terminal, human output).
    progress: Option<Progress>,
    /// `--diff`: print every task's diffs (otherwise only those of tasks whose own `diff:`
    /// keyword asked for them, which put a `diff` key into their result).
    diffs: bool,
}

/// `hosts done / changed / failed` of the current play, redrawn in place on a terminal.
#[derive(Default)]
struct Progress {
    play: String,
    total: usize,
    done: usize,
    changed: usize,
    failed: usize,
    unreachable: usize,
    shown: bool,
}

impl Progress {
    fn line(&self) -> String {
        format!(
            "[{}] {}/{} hosts done · {} changed · {} failed · {} unreachable",
            self.play, self.done, self.total, self.changed, self.failed, self.unreachable
        )
    }
}

impl Printer {
    pub fn new(format: OutputFormat, verbosity: u8) -> Self {
        Printer {
            out: Box::new(io::BufWriter::new(io::stdout())),
            format,
            verbosity,
            last_header: None,
            closed: false,
            grouped: false,
            held: HashMap::new(),
            progress: (format == OutputFormat::Human && io::stderr().is_terminal())
                .then(Progress::default),
            diffs: false,
        }
    }

    /// `--diff`: print diffs. Events carry diffs for the history also without it.
    pub fn diffs(mut self, on: bool) -> Self {
        self.diffs = on;
        self
    }

    /// Clears the status line before normal output is written under it.
    fn clear_progress(&mut self) {
        if let Some(p) = self.progress.as_mut().filter(|p| p.shown) {
            p.shown = false;
            let _ = write!(io::stderr(), "\r\x1b[2K");
        }
    }

    fn draw_progress(&mut self) {
        self.flush();
        if let Some(p) = self.progress.as_mut().filter(|p| p.total > 1) {
            p.shown = true;
            let _ = write!(io::stderr(), "\r\x1b[2K{}", p.line());
            let _ = io::stderr().flush();
        }
    }

    fn write(&mut self, s: &str) {
        if self.closed {
            return;
        }
        if let Err(e) = self.out.write_all(s.as_bytes()) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                self.closed = true;
            }
        }
    }

    pub fn flush(&mut self) {
        if !self.closed && self.out.flush().is_err() {
            self.closed = true;
        }
    }

    pub fn event(&mut self, e: &Event) {
        match self.format {
            OutputFormat::Json => {
                let line = serde_json::to_string(e).unwrap_or_default();
                self.write(&line);
                self.write("\n");
            }
            OutputFormat::Human => self.grouping(e),
        }
    }

    fn grouping(&mut self, e: &Event) {
        match e {
            Event::PlayStart { name, hosts, .. } | Event::HealthStart { name, hosts, .. } => {
                self.flush_held();
                self.grouped = hosts.len() > 1;
                if let Some(p) = self.progress.as_mut() {
                    *p = Progress {
                        play: name.clone(),
                        total: hosts.len(),
                        ..Default::default()
                    };
                }
                self.clear_progress();
                self.human(e);
            }
            Event::PlaySkipped { .. } => {
                self.flush_held();
                self.grouped = false;
                self.clear_progress();
                self.human(e);
            }
            Event::HostDone { host, stats } => {
                let lines = self.held.remove(host).unwrap_or_default();
                self.clear_progress();
                if !lines.is_empty() {
                    self.last_header = None;
                    for l in &lines {
                        self.human(l);
                    }
                }
                if let Some(p) = self.progress.as_mut() {
                    p.done += 1;
                    p.changed += usize::from(stats.changed > 0);
                    p.failed += usize::from(stats.failed > 0);
                    p.unreachable += usize::from(stats.unreachable > 0);
                }
                self.draw_progress();
            }
            Event::TaskStart { host, .. } | Event::ItemResult { host, .. } if self.grouped => {
                self.held.entry(host.clone()).or_default().push(e.clone());
            }
            Event::TaskResult(r) if self.grouped => {
                self.held.entry(r.host.clone()).or_default().push(e.clone());
            }
            _ => {
                self.clear_progress();
                self.human(e);
            }
        }
    }

    /// Whatever is held when a play ends without a host's HostDone (not expected) or before
    /// the recap.
    fn flush_held(&mut self) {
        let mut held: Vec<(String, Vec<Event>)> = self.held.drain().collect();
        held.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, lines) in held {
            self.last_header = None;
            for l in &lines {
                self.human(l);
            }
        }
    }

    fn banner(&mut self, msg: &str) {
        let line = banner(msg);
        self.write(&line);
    }

    fn human(&mut self, e: &Event) {
        match e {
            Event::PlayStart { name, hosts, batch } => {
                self.last_header = None;
                self.banner(&format!("PLAY [{name}]"));
                // A batch of hosts that all failed earlier prints nothing more (as ansible-core).
                if hosts.is_empty() && batch.is_none() {
                    self.write("skipping: no hosts matched\n");
                }
            }
            Event::HealthStart { name, batch, .. } => {
                self.last_header = None;
                match batch {
                    Some(b) if b.of > 1 => {
                        self.banner(&format!("HEALTH [{name}] batch {}/{}", b.number, b.of))
                    }
                    _ => self.banner(&format!("HEALTH [{name}]")),
                }
            }
            Event::PlaySkipped { name, reason } => {
                self.last_header = None;
                self.banner(&format!("PLAY [{name}]"));
                self.write(&format!("skipped: {reason}\n"));
            }
            Event::TaskStart { name, handler, .. } => {
                let key = (name.clone(), *handler);
                if self.last_header.as_ref() != Some(&key) {
                    let kind = if *handler { "RUNNING HANDLER" } else { "TASK" };
                    self.banner(&format!("{kind} [{name}]"));
                    self.last_header = Some(key);
                }
            }
            Event::ItemResult {
                host,
                status,
                label,
                result,
                delegated_to,
                ..
            } => {
                // ansible-core's `[host -> delegate]`.
                let host = match delegated_to {
                    Some(d) => format!("{host} -> {d}"),
                    None => host.clone(),
                };
                let line = match status {
                    ResultStatus::Ok => format!("ok: [{host}] => (item={label})"),
                    ResultStatus::Changed => format!("changed: [{host}] => (item={label})"),
                    ResultStatus::Skipped => format!("skipping: [{host}] => (item={label})"),
                    ResultStatus::Failed => {
                        format!("failed: [{host}] (item={label}) => {}", compact(result))
                    }
                    ResultStatus::Unreachable => format!("unreachable: [{host}] (item={label})"),
                };
                let line = if self.verbosity > 0
                    && matches!(status, ResultStatus::Ok | ResultStatus::Changed)
                {
                    format!("{line} => {}", compact(result))
                } else {
                    line
                };
                self.write(&line);
                self.write("\n");
            }
            Event::TaskResult(r) => self.task_result(r),
            Event::Warning { msg, .. } => {
                self.flush();
                let mut err = io::stderr().lock();
                let _ = writeln!(err, "[WARNING]: {msg}");
            }
            Event::HostDone { .. } => {}
        }
    }

    fn task_result(&mut self, r: &TaskResult) {
        if self.diffs || asked_for_diff(&r.result) {
            for d in &r.diffs {
                let text = render_diff(d);
                self.write(&text);
            }
        }
        let host = &match &r.delegated_to {
            Some(d) => format!("{} -> {d}", r.host),
            None => r.host.clone(),
        };
        if let Some(inc) = r.result.get("include").and_then(Value::as_str) {
            let line = match r.result.get("item").and_then(Value::as_str) {
                Some(item) => format!("included: {inc} for {host} => (item={item})\n"),
                None => format!("included: {inc} for {host}\n"),
            };
            self.write(&line);
            return;
        }
        let looped = r.result.get("results").is_some();
        let line = match r.status {
            ResultStatus::Failed => {
                if looped {
                    None
                } else {
                    Some(format!(
                        "fatal: [{host}]: FAILED! => {}",
                        compact(&clean(&r.result, false))
                    ))
                }
            }
            ResultStatus::Skipped => {
                let empty = r
                    .result
                    .get("results")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty);
                (!looped || empty).then(|| format!("skipping: [{host}]"))
            }
            ResultStatus::Ok | ResultStatus::Changed if looped => None,
            ResultStatus::Ok | ResultStatus::Changed => {
                let word = if r.status == ResultStatus::Changed {
                    "changed"
                } else {
                    "ok"
                };
                let is_debug = r.result.get("msg").is_some() && r.task.starts_with("debug")
                    || is_debug_result(&r.result);
                if is_debug || self.verbosity > 0 {
                    Some(format!(
                        "{word}: [{host}] => {}",
                        pretty(&clean(&r.result, is_debug))
                    ))
                } else {
                    Some(format!("{word}: [{host}]"))
                }
            }
            ResultStatus::Unreachable => Some(format!(
                "fatal: [{host}]: UNREACHABLE! => {}",
                compact(&r.result)
            )),
        };
        if let Some(l) = line {
            self.write(&l);
            self.write("\n");
        }
        if r.ignored {
            self.write("...ignoring\n");
        }
    }

    pub fn recap(&mut self, stats: &[(String, HostStats)]) {
        self.flush_held();
        self.clear_progress();
        match self.format {
            OutputFormat::Json => {
                let hosts: serde_json::Map<String, Value> =
                    stats.iter().map(|(h, s)| (h.clone(), json!(s))).collect();
                let line = json!({"event": "recap", "hosts": hosts}).to_string();
                self.write(&line);
                self.write("\n");
            }
            OutputFormat::Human => {
                self.banner("PLAY RECAP");
                for (h, s) in stats {
                    let fields = [
                        ("ok", s.ok),
                        ("changed", s.changed),
                        ("unreachable", s.unreachable),
                        ("failed", s.failed),
                        ("skipped", s.skipped),
                        ("rescued", s.rescued),
                        ("ignored", s.ignored),
                    ];
                    let cols: Vec<String> =
                        fields.iter().map(|(k, v)| format!("{k}={v:<4}")).collect();
                    let line = format!("{h:<26} : {}\n", cols.join(" "));
                    self.write(&line);
                }
                self.write("\n");
            }
        }
        self.flush();
    }

    /// After the recap: the plays that did not run because a play they need failed.
    pub fn skipped_plays(&mut self, skipped: &[(String, String)]) {
        if skipped.is_empty() {
            return;
        }
        match self.format {
            OutputFormat::Json => {
                let plays: Vec<Value> = skipped
                    .iter()
                    .map(|(name, reason)| json!({"name": name, "reason": reason}))
                    .collect();
                let line = json!({"event": "plays_skipped", "plays": plays}).to_string();
                self.write(&line);
                self.write("\n");
            }
            OutputFormat::Human => {
                self.banner("PLAYS SKIPPED");
                for (name, reason) in skipped {
                    self.write(&format!("{name:<26} : {reason}\n"));
                }
                self.write("\n");
            }
        }
        self.flush();
    }
}

/// `\nPLAY [name] *****…` to 80 columns, as ansible-playbook draws them.
pub fn banner(msg: &str) -> String {
    let stars = WIDTH.saturating_sub(msg.len() + 1).max(3);
    format!("\n{msg} {}\n", "*".repeat(stars))
}

/// debug results carry only `msg` or one variable besides the bookkeeping keys.
fn is_debug_result(r: &Value) -> bool {
    let Some(o) = r.as_object() else { return false };
    let keys: Vec<&str> = o
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "changed" | "failed"))
        .collect();
    keys.len() == 1
        && o.get("failed") == Some(&Value::Bool(false))
        && o.get("changed") == Some(&Value::Bool(false))
        && !keys.contains(&"ansible_facts")
        && (keys[0] == "msg"
            || !matches!(keys[0], "path" | "stat" | "ping" | "include" | "elapsed"))
}

/// Drops what ansible-core's default callback does not show.
fn clean(r: &Value, debug: bool) -> Value {
    let mut r = r.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("diff");
        if debug {
            o.remove("changed");
            o.remove("failed");
        }
    }
    r
}

/// JSON on one line the way Python's `json.dumps` writes it (`{"a": 1, "b": 2}`), which is
/// what ansible-core prints.
fn compact(v: &Value) -> String {
    struct PyCompact;
    impl serde_json::ser::Formatter for PyCompact {
        fn begin_array_value<W: ?Sized + io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> io::Result<()> {
            if first {
                Ok(())
            } else {
                w.write_all(b", ")
            }
        }
        fn begin_object_key<W: ?Sized + io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> io::Result<()> {
            if first {
                Ok(())
            } else {
                w.write_all(b", ")
            }
        }
        fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
            w.write_all(b": ")
        }
    }
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, PyCompact);
    if serde::Serialize::serialize(&sorted(v), &mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Keys sorted, as ansible-core's callbacks print them.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// One host's result of an ad-hoc command: `h1 | SUCCESS => {…}` (ansible's layout).
pub fn adhoc_line(r: &TaskResult) -> String {
    let word = match r.status {
        ResultStatus::Ok => "SUCCESS",
        ResultStatus::Changed => "CHANGED",
        ResultStatus::Failed => "FAILED!",
        ResultStatus::Skipped => "SKIPPED",
        ResultStatus::Unreachable => "UNREACHABLE!",
    };
    let mut shown = clean(&r.result, false);
    if let Some(o) = shown.as_object_mut() {
        if o.get("failed") == Some(&Value::Bool(false)) {
            o.remove("failed");
        }
    }
    format!("{} | {word} => {}", r.host, pretty(&shown))
}

fn pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(&sorted(v), &mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Whether a result (or one of its loop items) carries a `diff` key: the task ran with
/// `diff` on, by keyword or `--diff`.
fn asked_for_diff(result: &Value) -> bool {
    result.get("diff").is_some()
        || result
            .get("results")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|i| i.get("diff").is_some()))
}

/// A unified diff of one Ansible-shaped diff record.
pub fn render_diff(d: &Value) -> String {
    let as_text = |v: Option<&Value>| -> String {
        match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => format!("{}\n", pretty(other)),
        }
    };
    let before = as_text(d.get("before"));
    let after = as_text(d.get("after"));
    if before == after {
        return String::new();
    }
    let bh = d.get("before_header").and_then(Value::as_str);
    let ah = d.get("after_header").and_then(Value::as_str);
    let bh = bh
        .map(|h| format!("before: {h}"))
        .unwrap_or_else(|| "before".into());
    let ah = ah
        .map(|h| format!("after: {h}"))
        .unwrap_or_else(|| "after".into());
    let diff = similar::TextDiff::from_lines(&before, &after);
    let mut out = String::new();
    out.push_str(&format!("--- {bh}\n+++ {ah}\n"));
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&hunk.to_string());
    }
    out.push('\n');
    out
}
