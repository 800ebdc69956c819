//! `--dry-run-orchestration`: the execution order of a run (stages of plays, `needs`, batches
//! and their hosts), computed from the inputs alone and printed; no host is contacted.

use std::process::ExitCode;

use serde_json::{json, Value};
use tend_engine::graph::{Orchestration, PlayOrder};

use crate::cli::{ApplyArgs, OutputFormat};

/// Prints the order `args` would run in: exit 0, or 5 when the inputs are refused.
pub fn dry_run(args: &ApplyArgs) -> ExitCode {
    let prep = match crate::settings::apply_settings(args).and_then(tend_engine::prepare) {
        Ok(p) => p,
        Err(e) => {
            crate::report_error(&e);
            return ExitCode::from(crate::EXIT_BAD_INPUT);
        }
    };
    crate::print_warnings(&prep);
    let order = tend_engine::graph::orchestration(&prep);
    let playbook = args.playbook.display().to_string();
    match args.output {
        OutputFormat::Json => {
            let mut text =
                serde_json::to_string_pretty(&to_json(&playbook, &order)).unwrap_or_default();
            text.push('\n');
            crate::out(&text);
        }
        OutputFormat::Human => crate::out(&human(&playbook, &order)),
    }
    ExitCode::SUCCESS
}

fn play_json(p: &PlayOrder) -> Value {
    json!({
        "number": p.number,
        "name": p.name,
        "location": p.loc,
        "needs": p.needs,
        "after": p.after,
        "lockstep": p.lockstep,
        "serial": p.serial,
        "order": p.order,
        "max_fail_percentage": p.max_fail_percentage,
        "any_errors_fatal": p.any_errors_fatal,
        "batches": p.batches,
        "health_gate": p.health_gate,
    })
}

/// The JSON document: `{"playbook", "stages": [{"stage", "parallel", "plays": [...]}]}`.
pub fn to_json(playbook: &str, o: &Orchestration) -> Value {
    let stages: Vec<Value> = o
        .stages
        .iter()
        .enumerate()
        .map(|(i, plays)| {
            json!({
                "stage": i + 1,
                "parallel": plays.len() > 1,
                "plays": plays.iter().map(play_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "playbook": playbook, "stages": stages })
}

/// The order as people read it: one block per stage, one line per play and per batch.
pub fn human(playbook: &str, o: &Orchestration) -> String {
    let plays: usize = o.stages.iter().map(Vec::len).sum();
    let mut out = format!(
        "ORCHESTRATION {playbook}: {plays} play{} in {} stage{}\n",
        plural(plays),
        o.stages.len(),
        plural(o.stages.len())
    );
    for (i, stage) in o.stages.iter().enumerate() {
        let together = if stage.len() > 1 {
            format!(" ({} plays in parallel)", stage.len())
        } else {
            String::new()
        };
        out.push_str(&format!("\nSTAGE {}{together}\n", i + 1));
        for p in stage {
            let waits = match (&p.needs, &p.after) {
                (Some(n), _) if n.is_empty() => "needs nothing".to_string(),
                (Some(n), _) => format!("needs {}", n.join(", ")),
                (None, Some(a)) => format!("after {a}"),
                (None, None) => "first".to_string(),
            };
            let mut traits = vec![waits];
            if !p.serial.is_empty() {
                traits.push(format!("serial: {}", p.serial.join(", ")));
            }
            if p.order != "inventory" {
                traits.push(format!("order: {}", p.order));
            }
            if p.any_errors_fatal {
                traits.push("any_errors_fatal".into());
            }
            if let Some(m) = p.max_fail_percentage {
                traits.push(format!("max_fail_percentage: {m}"));
            }
            if p.lockstep {
                traits.push("lockstep".into());
            }
            if p.health_gate {
                traits.push("health gate after each batch".into());
            }
            out.push_str(&format!(
                "  play {} [{}] ({}): {}\n",
                p.number,
                p.name,
                p.loc,
                traits.join(" · ")
            ));
            if p.batches.is_empty() {
                out.push_str("    no hosts matched\n");
            }
            for (b, hosts) in p.batches.iter().enumerate() {
                out.push_str(&format!(
                    "    batch {}/{}: {}\n",
                    b + 1,
                    p.batches.len(),
                    hosts.join(", ")
                ));
            }
        }
    }
    out.push_str(
        "\nA play starts as soon as the plays it needs are done; plays that share a host run one after the other.\n",
    );
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
