//! Consumers of the event stream: the human printer (ansible-playbook's look) and JSON lines.
//! Nothing else in tend prints run output.

use std::io::{self, Write};

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
}

impl Printer {
    pub fn new(format: OutputFormat, verbosity: u8) -> Self {
        Printer {
            out: Box::new(io::BufWriter::new(io::stdout())),
            format,
            verbosity,
            last_header: None,
            closed: false,
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
            OutputFormat::Human => self.human(e),
        }
    }

    fn banner(&mut self, msg: &str) {
        let stars = WIDTH.saturating_sub(msg.len() + 1).max(3);
        let line = format!("\n{msg} {}\n", "*".repeat(stars));
        self.write(&line);
    }

    fn human(&mut self, e: &Event) {
        match e {
            Event::PlayStart { name, .. } => {
                self.last_header = None;
                self.banner(&format!("PLAY [{name}]"));
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
                ..
            } => {
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
        for d in &r.diffs {
            let text = render_diff(d);
            self.write(&text);
        }
        let host = &r.host;
        if let Some(inc) = r.result.get("include").and_then(Value::as_str) {
            self.write(&format!("included: {inc} for {host}\n"));
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
        && (keys[0] == "msg" || !matches!(keys[0], "path" | "stat" | "ping" | "include"))
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

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// A unified diff of one Ansible-shaped diff record.
fn render_diff(d: &Value) -> String {
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
