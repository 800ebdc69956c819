//! `tend-agentd`: the agent alone, for release builds of tend to embed and push to hosts
//! (build-release.sh). It speaks exactly as `tend agent` and `tend agent-worker` do, with the
//! same exit statuses; the become worker is this same binary (`EXE agent-worker`, started by
//! the agent from its own path).
//!
//! No argument parser: the boot script is its only caller, with a fixed command line.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Agent { cache: Option<PathBuf> },
    Worker,
    Version,
}

/// Exit status for a command line this program does not understand (as clap's usage errors).
const EXIT_USAGE: u8 = 2;

const USAGE: &str =
    "usage: tend-agentd agent [--cache DIR] | tend-agentd agent-worker | tend-agentd --version\n\
(started by tend on each SSH host; not for people)";

fn parse(args: &[OsString]) -> Result<Mode, String> {
    let mut it = args.iter();
    let Some(cmd) = it.next() else {
        return Err("missing command".into());
    };
    let rest: Vec<&OsString> = it.collect();
    match cmd.to_str() {
        Some("agent") => {
            let mut cache = None;
            let mut i = 0;
            while i < rest.len() {
                let a = rest[i].to_str();
                match a {
                    Some("--cache") => {
                        let Some(dir) = rest.get(i + 1) else {
                            return Err("--cache needs a directory".into());
                        };
                        cache = Some(PathBuf::from(dir));
                        i += 2;
                    }
                    Some(s) if s.starts_with("--cache=") => {
                        cache = Some(PathBuf::from(&s["--cache=".len()..]));
                        i += 1;
                    }
                    _ => {
                        return Err(format!(
                            "unexpected argument {:?} for agent",
                            rest[i].to_string_lossy()
                        ))
                    }
                }
            }
            Ok(Mode::Agent { cache })
        }
        Some("agent-worker") if rest.is_empty() => Ok(Mode::Worker),
        Some("agent-worker") => Err("agent-worker takes no arguments".into()),
        Some("--version" | "-V") if rest.is_empty() => Ok(Mode::Version),
        _ => Err(format!("unknown command {:?}", cmd.to_string_lossy())),
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match parse(&args) {
        Ok(Mode::Agent { cache }) => {
            let cache = cache.unwrap_or_else(tend_agent::serve::default_cache_dir);
            let code = tend_agent::serve::serve(std::io::stdin(), std::io::stdout(), &cache);
            ExitCode::from(code as u8)
        }
        // stdout belongs to the protocol; problems go to stderr, which the agent reads.
        Ok(Mode::Worker) => match tend_agent::worker_main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "tend agent-worker: {e}");
                ExitCode::from(1)
            }
        },
        Ok(Mode::Version) => {
            let _ = writeln!(
                std::io::stdout(),
                "tend-agentd {} (protocol {})",
                env!("CARGO_PKG_VERSION"),
                tend_proto::PROTOCOL_VERSION
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "tend-agentd: {e}\n{USAGE}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Mode, String> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn the_boot_scripts_command_lines_are_understood() {
        assert_eq!(
            p(&["agent", "--cache", "/home/u/.cache/tend"]),
            Ok(Mode::Agent {
                cache: Some("/home/u/.cache/tend".into())
            })
        );
        assert_eq!(
            p(&["agent", "--cache=/c"]),
            Ok(Mode::Agent {
                cache: Some("/c".into())
            })
        );
        assert_eq!(p(&["agent"]), Ok(Mode::Agent { cache: None }));
        assert_eq!(p(&["agent-worker"]), Ok(Mode::Worker));
        assert_eq!(p(&["--version"]), Ok(Mode::Version));
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(p(&[]).is_err());
        assert!(p(&["apply", "site.yml"]).is_err());
        assert!(p(&["agent", "--cache"]).is_err());
        assert!(p(&["agent", "--verbose"]).is_err());
        assert!(p(&["agent-worker", "x"]).is_err());
    }
}
