//! tend: configuration management and orchestration.

mod cli;
mod compliance;
mod drift;
mod embedded;
mod history;
mod orchestration;
mod plan;
mod policy;
mod printer;
mod prompt;
mod recorder;
mod rollback;
mod settings;
mod vault;

use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;

use clap::Parser;
use tend_engine::EngineError;

use cli::{Cli, Command};
use printer::Printer;

/// Exit status for input tend refuses (bad YAML, unknown module, bad option): nothing ran.
const EXIT_BAD_INPUT: u8 = 5;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Apply(args) => match plan::plan_file(&args.playbook) {
            Some(file) => plan::apply_plan(*args, &file),
            None => apply(*args),
        },
        Command::Plan(args) => plan::plan(*args),
        Command::Show(args) => plan::show(args),
        Command::Rollback(args) => rollback::rollback(*args),
        Command::Drift(args) => drift::drift(*args),
        Command::Inventory(args) => inventory(args),
        Command::Ping(args) => ping(args),
        Command::History(args) => history::history(args),
        Command::Audit(args) => history::audit(args),
        Command::Metrics(args) => history::metrics_cmd(args),
        Command::Unlock(args) => history::unlock(args),
        Command::Vault(args) => vault::vault(args),
        Command::Policy(args) => policy::policy_cmd(args),
        Command::Compliance(args) => compliance::compliance(*args),
        Command::SshClose(args) => ssh_close(args),
        Command::Agent(args) => agent(args),
        Command::AgentWorker => agent_worker(),
    }
}

/// `tend agent-worker`: stdout belongs to the protocol; problems go to stderr, which the agent
/// reads for its messages.
fn agent_worker() -> ExitCode {
    match tend_agent::worker_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "tend agent-worker: {e}");
            ExitCode::from(1)
        }
    }
}

#[allow(clippy::print_stderr)]
fn report_error(e: &EngineError) {
    let EngineError::Input(diags) = e;
    let mut err = std::io::stderr().lock();
    for d in &diags.0 {
        let _ = writeln!(err, "error: {}", d.render());
    }
    if diags.0.len() > 1 {
        let _ = writeln!(err, "{} problems found; nothing was changed", diags.0.len());
    } else {
        let _ = writeln!(err, "nothing was changed");
    }
}

fn apply(args: cli::ApplyArgs) -> ExitCode {
    if args.dry_run_orchestration {
        return orchestration::dry_run(&args);
    }
    let mut settings = match settings::apply_settings(&args) {
        Ok(s) => s,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // The history keeps each changed task's diff, also without --diff.
    settings.options.collect_diffs = !args.no_history;
    let mut prep = match tend_engine::prepare(settings) {
        Ok(p) => p,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    print_warnings(&prep);
    if args.syntax_check || args.list_hosts || args.list_tasks {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{}", settings::listing(&prep, &args));
        return ExitCode::SUCCESS;
    }

    // With policies, the run is planned and judged first; nothing changes when they deny.
    let policy = match policy::load(&args, &args.playbook) {
        Ok(Some(mut p)) if !args.check => {
            match plan::plan_before_apply(&mut prep, &mut p, &args, tend_store::RunKind::Apply) {
                Ok(record) => Some(record),
                Err(code) => return code,
            }
        }
        Ok(_) => None,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: {e}\nnothing was changed\nhint: fix the policy (`tend policy test DIR` runs its tests)"
            );
            return ExitCode::from(1);
        }
    };
    // Every run has an id, recorded or not: it names the run in the hosts' locks.
    let run_id = tend_store::new_run_id();
    if !args.check {
        lock_hosts(&mut prep, &run_id, args.lock_timeout);
    }
    // The history is opened (and the run's hosts leased) before anything runs: a store that
    // cannot be written stops tend here. See recorder.rs for the policy during the run.
    let mut recorder = if args.no_history {
        None
    } else {
        match recorder::Recorder::start(&prep, &args, &run_id) {
            Ok(r) => r,
            Err(e) => {
                history::report(&e);
                let _ = writeln!(std::io::stderr(), "nothing was changed");
                return ExitCode::from(1);
            }
        }
    };
    let mut printer = Printer::new(args.output, args.verbose).diffs(args.diff);
    let summary = run_streaming(&prep, |e| {
        printer.event(e);
        if let Some(r) = recorder.as_mut() {
            r.event(e);
        }
    });
    let recorded = recorder.map(|r| r.finish_with_policy(summary.as_ref(), policy));
    let Some(summary) = summary else {
        return ExitCode::from(250);
    };
    let stats: Vec<_> = summary.stats.iter().map(|(h, s)| (h.clone(), *s)).collect();
    printer.recap(&stats);
    printer.skipped_plays(&summary.skipped);
    if let Some(path) = &args.recap_file {
        let hosts: serde_json::Map<String, serde_json::Value> = stats
            .iter()
            .map(|(h, s)| (h.clone(), serde_json::json!(s)))
            .collect();
        let body = serde_json::json!({ "hosts": hosts }).to_string();
        if let Err(e) = write_atomic(path, body.as_bytes()) {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot write recap file {}: {e}",
                path.display()
            );
            return ExitCode::from(1);
        }
    }
    match recorded {
        Some(Err((run, e))) => {
            recorder::report_incomplete(&run, &e);
            ExitCode::from(if summary.exit_code() == 0 {
                1
            } else {
                summary.exit_code() as u8
            })
        }
        _ => ExitCode::from(summary.exit_code() as u8),
    }
}

/// Makes a run that may change hosts lock each of them for the whole run (the host lock on the
/// target, named after `run_id`), waiting up to `timeout` seconds for another run's lock, and
/// journal on each host what its changes replace (for `tend rollback RUN_ID`).
fn lock_hosts(prep: &mut tend_engine::Prepared, run_id: &str, timeout: u64) {
    prep.settings.options.run_id = Some(run_id.to_string());
    prep.settings.lock = Some(tend_engine::LockRequest {
        owner: tend_proto::wire::LockOwner {
            run_id: run_id.to_string(),
            user: recorder::user(),
            controller: recorder::controller(),
            since: tend_store::time::now(),
            pid: 0,
        },
        wait: std::time::Duration::from_secs(timeout),
    });
}

/// The warnings of preparing a run (inventory, host patterns …), on stderr as Ansible words
/// them.
fn print_warnings(prep: &tend_engine::Prepared) {
    let mut err = std::io::stderr().lock();
    for w in &prep.warnings {
        let _ = writeln!(err, "[WARNING]: {w}");
    }
}

/// Writes `text` to stdout; a closed pipe is not an error.
fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// Writes a file next to its final name and renames it into place.
fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tend-tmp-{}",
        path.file_name().and_then(|f| f.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `tend ping`: the `ping` module on every matching host; one line (or block) per host, as
/// `ansible PATTERN -m ping` prints it. Exit status as ansible: 0, 2 failed, 4 unreachable.
fn ping(args: cli::PingArgs) -> ExitCode {
    if let Err(d) = settings::install_vault(&args.vault) {
        report_error(&d.into());
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let settings = tend_engine::Settings {
        inventories: args.inventory.clone(),
        limit: args.limit.clone(),
        forks: args.forks.max(1),
        connection: args.connection.clone(),
        remote: settings::remote_settings(&args.conn),
        ..Default::default()
    };
    let prep =
        match tend_engine::prepare_adhoc(settings, &args.pattern, "ping", serde_json::Map::new()) {
            Ok(p) => p,
            Err(e) => {
                report_error(&e);
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        };
    if prep.play_hosts.iter().all(|h| h.is_empty()) {
        let _ = writeln!(
            std::io::stderr(),
            "[WARNING]: no hosts matched `{}`",
            args.pattern
        );
        return ExitCode::SUCCESS;
    }
    let mut out = std::io::stdout().lock();
    let summary = run_streaming(&prep, |e| match e {
        tend_proto::Event::TaskResult(r) => {
            let _ = writeln!(out, "{}", printer::adhoc_line(r));
            let _ = out.flush();
        }
        tend_proto::Event::Warning { msg, .. } => {
            let _ = writeln!(std::io::stderr(), "[WARNING]: {msg}");
        }
        _ => {}
    });
    match summary {
        Some(s) => ExitCode::from(s.exit_code() as u8),
        None => ExitCode::from(250),
    }
}

/// `tend ssh-close`: one line per SSH host the pattern selects, saying whether a connection kept
/// by `--ssh-persist` was open and is now closed.
fn ssh_close(args: cli::SshCloseArgs) -> ExitCode {
    let settings = tend_engine::Settings {
        inventories: args.inventory.clone(),
        limit: args.limit.clone(),
        remote: settings::remote_settings(&args.conn),
        ..Default::default()
    };
    match tend_engine::close_persistent(settings, &args.pattern) {
        Ok(hosts) => {
            let mut out = std::io::stdout().lock();
            for (host, closed) in hosts {
                let what = if closed {
                    "closed"
                } else {
                    "no open connection"
                };
                let _ = writeln!(out, "{host} | {what}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_error(&e);
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// Runs the prepared hosts on a thread of their own and hands every event to `on_event` as it
/// arrives; `None` if the run itself panicked.
fn run_streaming(
    prep: &tend_engine::Prepared,
    mut on_event: impl FnMut(&tend_proto::Event),
) -> Option<tend_engine::Summary> {
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let tx = tx;
            tend_engine::run(prep, &tx)
        });
        // Vault secrets are masked here, once, before any consumer sees an event.
        let mut scrubber = tend_engine::EventScrubber::new();
        for e in rx {
            match scrubber.event(&e) {
                Some(masked) => on_event(&masked),
                None => on_event(&e),
            }
        }
        handle.join().ok()
    })
}

/// `tend agent`: serves one controller session on stdin/stdout.
fn agent(args: cli::AgentArgs) -> ExitCode {
    let cache = args
        .cache
        .unwrap_or_else(tend_agent::serve::default_cache_dir);
    let code = tend_agent::serve::serve(std::io::stdin(), std::io::stdout(), &cache);
    ExitCode::from(code as u8)
}

fn inventory(args: cli::InventoryArgs) -> ExitCode {
    match settings::inventory_output(&args) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_error(&e);
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
