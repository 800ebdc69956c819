//! The privileged worker: a second process of the agent's own binary, started through `sudo`
//! or `su` as the become user, that runs modules for the agent.
//!
//! The agent runs as the login user. A task whose become user differs from the agent's own
//! user sends its module call to a worker running as that user; one worker per (method, user,
//! flags, executable) serves the rest of the host's run ([`spawn::Worker`]).
//!
//! # Protocol (version [`WORKER_PROTOCOL`])
//!
//! The worker is `EXE agent-worker`. Once it runs, it writes one line to stdout,
//! `tend-worker-ready <version>`; only then does the protocol start, so anything `sudo`/`su` say
//! before (a password prompt, an error) is never mistaken for a reply. Then the agent writes
//! one [`Request`] per line (JSON) to the worker's stdin and reads one [`Response`] per line
//! from its stdout, in turn. The worker ends at end of input. It never writes to stdout
//! otherwise, and it never sees the become password (that goes to `sudo`, before the worker
//! starts).

pub(crate) mod spawn;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tend_lang::{Layer, Scope, Templar};
use tend_proto::{Value, Vars};
use tend_resources::journal::{self, JournalCtx};
use tend_resources::{Args, Change, ModuleCtx, ModuleOutput, PlanMode};

/// Version of the agent ↔ worker protocol. Both ends are the same binary, so a mismatch means
/// a binary was replaced during a run; the agent refuses it.
pub const WORKER_PROTOCOL: u32 = 1;

/// The first line the worker writes.
pub(crate) fn ready_line() -> String {
    format!("tend-worker-ready {WORKER_PROTOCOL}")
}

/// One call from the agent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Request {
    /// Run a module of the resource registry.
    Module(Box<ModuleRequest>),
    /// Gather facts (as the become user: `ansible_user_id` is theirs).
    Facts { subset: Vec<String> },
    /// A rollback: what this user's journal of run `run_id` still has to restore on `host`.
    Pending {
        run_id: String,
        host: String,
        plays: Option<Vec<usize>>,
    },
    /// A rollback restored entry `seq` of this user's journal of run `run_id`.
    Restored { run_id: String, seq: u64 },
}

/// What a module needs: its rendered arguments and the task's context.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ModuleRequest {
    pub name: String,
    pub args: Vars,
    pub check: bool,
    pub diff: bool,
    pub environment: Vec<(String, String)>,
    pub search_dirs: Vec<PathBuf>,
    /// The agent's working directory (relative paths mean the same in both processes).
    pub cwd: Option<PathBuf>,
    /// The task's variables, lowest precedence first, for modules that render templates;
    /// empty for the others.
    #[serde(default)]
    pub scope: Vec<WireLayer>,
    /// Plans: report the change, or guard it with the planned digest.
    #[serde(default)]
    pub plan: WirePlan,
    /// A run that journals: the task the change belongs to (the worker journals as its user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalCtx>,
}

/// [`PlanMode`] on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WirePlan {
    #[default]
    Off,
    Report,
    Expect(Option<String>),
}

impl WirePlan {
    pub fn of(p: PlanMode<'_>) -> WirePlan {
        match p {
            PlanMode::Off => WirePlan::Off,
            PlanMode::Report => WirePlan::Report,
            PlanMode::Expect(d) => WirePlan::Expect(d.map(str::to_string)),
        }
    }

    fn mode(&self) -> PlanMode<'_> {
        match self {
            WirePlan::Off => PlanMode::Off,
            WirePlan::Report => PlanMode::Report,
            WirePlan::Expect(d) => PlanMode::Expect(d.as_deref()),
        }
    }
}

/// One layer of a [`Scope`]: its values and whether they are templates rendered on read.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireLayer {
    pub vars: Value,
    pub templated: bool,
}

/// Variables the worker is never sent: the become password has no business in a module.
const WITHHELD: &[&str] = &[
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_sudo_pass",
    "ansible_su_pass",
];

impl WireLayer {
    /// The layers of `scope`, as data.
    pub fn export(scope: &Scope) -> Result<Vec<WireLayer>, String> {
        scope
            .layers()
            .iter()
            .map(|l| {
                let mut vars = tend_lang::template::to_json(&l.vars).map_err(|e| e.0)?;
                if let Value::Object(m) = &mut vars {
                    for k in WITHHELD {
                        m.remove(*k);
                    }
                }
                Ok(WireLayer {
                    vars,
                    templated: l.templated,
                })
            })
            .collect()
    }
}

/// The worker's answer to one [`Request`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Response {
    Output(WireOutput),
    Facts(Vars),
    /// Journal entries ([`Request::Pending`]).
    Journal(Vec<tend_resources::journal::Entry>),
    /// The module (or the request) failed with this message.
    Error(String),
}

/// [`ModuleOutput`] on the wire.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct WireOutput {
    pub changed: bool,
    pub failed: bool,
    pub skipped: bool,
    pub msg: Option<String>,
    pub fields: Vars,
    pub diffs: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Box<Change>>,
    #[serde(default)]
    pub changed_since_plan: bool,
    #[serde(default)]
    pub journaled: bool,
}

impl From<ModuleOutput> for WireOutput {
    fn from(o: ModuleOutput) -> Self {
        WireOutput {
            changed: o.changed,
            failed: o.failed,
            skipped: o.skipped,
            msg: o.msg,
            fields: o.fields,
            diffs: o.diffs,
            change: o.change.map(Box::new),
            changed_since_plan: o.changed_since_plan,
            journaled: o.journaled,
        }
    }
}

impl From<WireOutput> for ModuleOutput {
    fn from(o: WireOutput) -> Self {
        ModuleOutput {
            changed: o.changed,
            failed: o.failed,
            skipped: o.skipped,
            msg: o.msg,
            fields: o.fields,
            diffs: o.diffs,
            change: o.change.map(|c| *c),
            changed_since_plan: o.changed_since_plan,
            journaled: o.journaled,
        }
    }
}

/// The worker's main loop: announce readiness, then answer requests until end of input.
pub fn serve(input: &mut dyn BufRead, output: &mut dyn Write) -> std::io::Result<()> {
    writeln!(output, "{}", ready_line())?;
    output.flush()?;
    let templar = Templar::new();
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(req) => answer(req, &templar),
            Err(e) => Response::Error(format!("tend worker: bad request: {e}")),
        };
        let text = serde_json::to_string(&response).unwrap_or_else(|e| {
            serde_json::to_string(&Response::Error(format!(
                "tend worker: cannot encode the reply: {e}"
            )))
            .unwrap_or_default()
        });
        writeln!(output, "{text}")?;
        output.flush()?;
    }
}

pub(crate) fn answer(req: Request, templar: &Templar) -> Response {
    match req {
        Request::Facts { subset } => Response::Facts(tend_resources::facts::gather(&subset)),
        Request::Pending {
            run_id,
            host,
            plays,
        } => match journal::pending(&journal::base_dir(), &run_id, &host, plays.as_deref()) {
            Ok(entries) => Response::Journal(entries),
            Err(e) => Response::Error(e.msg),
        },
        Request::Restored { run_id, seq } => {
            match journal::mark_restored(&journal::base_dir(), &run_id, seq) {
                Ok(()) => Response::Output(WireOutput::default()),
                Err(e) => Response::Error(e.msg),
            }
        }
        Request::Module(m) => {
            let m = *m;
            let Some(entry) = tend_resources::lookup(&m.name) else {
                return Response::Error(format!("module `{}` is not supported by tend", m.name));
            };
            if let Some(dir) = &m.cwd {
                if std::env::current_dir().ok().as_ref() != Some(dir) {
                    // A directory the become user cannot enter: relative paths then fail in the
                    // module with their own message.
                    let _ = std::env::set_current_dir(dir);
                }
            }
            let layers: Vec<Layer> = m
                .scope
                .iter()
                .map(|l| Layer::from_json(&l.vars, l.templated))
                .collect();
            let scope = Scope::new(templar, layers);
            let ctx = ModuleCtx {
                check: m.check,
                diff: m.diff,
                templar,
                scope: &scope,
                search_dirs: &m.search_dirs,
                environment: &m.environment,
                plan: m.plan.mode(),
                journal: m.journal.as_ref(),
            };
            let out = (entry.run)(&Args::new(m.args), &ctx).unwrap_or_else(ModuleOutput::from);
            Response::Output(out.into())
        }
    }
}

/// `tend agent-worker`: serves requests on stdin/stdout until end of input.
pub fn worker_main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    serve(&mut stdin.lock(), &mut stdout.lock())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(requests: &[Request]) -> Vec<String> {
        let mut input = String::new();
        for r in requests {
            input.push_str(&serde_json::to_string(r).unwrap());
            input.push('\n');
        }
        let mut out = Vec::new();
        serve(&mut input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_worker_announces_itself_then_answers_each_request_in_turn() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.j2"), "hello {{ who }}\n").unwrap();
        let dest = dir.path().join("out.txt");
        let templar = Templar::new();
        let mut vars = Vars::new();
        vars.insert("who".into(), "{{ name }}".into());
        vars.insert("name".into(), "world".into());
        vars.insert("ansible_become_password".into(), "s3cret".into());
        let scope = Scope::new(&templar, vec![Layer::from_map(&vars, true)]);
        let exported = WireLayer::export(&scope).unwrap();
        assert!(!serde_json::to_string(&exported).unwrap().contains("s3cret"));
        let mut args = Vars::new();
        args.insert("src".into(), "t.j2".into());
        args.insert("dest".into(), dest.to_string_lossy().into());
        let lines = roundtrip(&[
            Request::Module(Box::new(ModuleRequest {
                name: "template".into(),
                args,
                check: false,
                diff: false,
                environment: Vec::new(),
                search_dirs: vec![dir.path().to_path_buf()],
                cwd: None,
                scope: exported,
                plan: WirePlan::Off,
                journal: None,
            })),
            Request::Module(Box::new(ModuleRequest {
                name: "no_such_module".into(),
                args: Vars::new(),
                check: false,
                diff: false,
                environment: Vec::new(),
                search_dirs: Vec::new(),
                cwd: None,
                scope: Vec::new(),
                plan: WirePlan::Off,
                journal: None,
            })),
        ]);
        assert_eq!(lines[0], ready_line());
        let first: Response = serde_json::from_str(&lines[1]).unwrap();
        assert!(
            matches!(&first, Response::Output(o) if o.changed && !o.failed),
            "{first:?}"
        );
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "hello world\n");
        let second: Response = serde_json::from_str(&lines[2]).unwrap();
        assert!(matches!(second, Response::Error(m) if m.contains("no_such_module")));
        assert_eq!(lines.len(), 3);
    }
}
