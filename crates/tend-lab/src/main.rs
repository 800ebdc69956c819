//! tend-lab: start and stop test hosts on this machine (as root).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use tend_lab::{rootfs, Lab, LabError};

#[derive(Parser)]
#[command(
    name = "tend-lab",
    version,
    about = "Real test hosts on this machine: netns + overlay + sshd, no packet leaves the machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (debootstrap, minutes) or unpack (seconds) the hosts' root filesystem.
    Rootfs,
    /// Build (download, a minute) the hosts' package repository if needed; print its dir.
    Repo,
    /// Start N hosts that keep running after this command exits.
    Up(UpArgs),
    /// Stop a lab (or all) and remove everything it made.
    Down(DownArgs),
    /// List the labs on this machine.
    Status {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a host (not over ssh).
    Exec {
        /// The lab's prefix.
        #[arg(long, short)]
        prefix: String,
        /// The host's name (h01, ...).
        host: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

#[derive(Args)]
struct UpArgs {
    /// How many hosts.
    #[arg(short = 'n', long = "hosts", default_value_t = 3)]
    hosts: usize,
    /// Name the lab (1-8 of a-z, 0-9) instead of tl<slot>.
    #[arg(long)]
    prefix: Option<String>,
    /// Seconds to wait for every host's sshd (default: 30 + 0.5 per host, 1.5 with --systemd).
    #[arg(long)]
    timeout: Option<u64>,
    /// Boot systemd as each host's PID 1 (systemd-nspawn): for tests of services.
    #[arg(long)]
    systemd: bool,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct DownArgs {
    /// The lab to stop.
    #[arg(long)]
    prefix: Option<String>,
    /// Stop every lab on this machine.
    #[arg(long)]
    all: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Rootfs => cmd_rootfs(),
        Cmd::Repo => cmd_repo(),
        Cmd::Up(args) => cmd_up(args),
        Cmd::Down(args) => cmd_down(args),
        Cmd::Status { json } => cmd_status(json),
        Cmd::Exec { prefix, host, argv } => return cmd_exec(&prefix, &host, &argv),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn progress(msg: &str) {
    eprintln!("tend-lab: {msg}");
}

fn cmd_rootfs() -> Result<(), LabError> {
    if !rustix::process::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    let started = Instant::now();
    let (fs, how) = rootfs::ensure(&progress)?;
    let what = match how {
        rootfs::Prepared::Ready => "ready",
        rootfs::Prepared::Unpacked => "unpacked",
        rootfs::Prepared::Built => "built",
    };
    eprintln!(
        "tend-lab: rootfs {} {what} in {:.1} s",
        fs.version,
        started.elapsed().as_secs_f64()
    );
    println!("{}", fs.dir.display());
    Ok(())
}

fn cmd_repo() -> Result<(), LabError> {
    if !rustix::process::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    let started = Instant::now();
    let (repo, how) = tend_lab::repo::ensure(&progress)?;
    let what = match how {
        rootfs::Prepared::Built => "built",
        _ => "ready",
    };
    let count = tend_lab::repo::versions(&repo.dir)?.len();
    eprintln!(
        "tend-lab: package repository {} {what} in {:.1} s ({count} packages)",
        repo.key,
        started.elapsed().as_secs_f64()
    );
    println!("{}", repo.dir.display());
    Ok(())
}

fn cmd_up(args: UpArgs) -> Result<(), LabError> {
    // The rootfs first, so the time below is the hosts' own.
    if !rustix::process::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    rootfs::ensure(&progress)?;
    tend_lab::repo::ensure(&progress)?;
    let mut b = Lab::builder()
        .hosts(args.hosts)
        .keep_running(true)
        .systemd(args.systemd)
        .progress(progress);
    if let Some(p) = args.prefix {
        b = b.prefix(p);
    }
    if let Some(t) = args.timeout {
        b = b.boot_timeout(std::time::Duration::from_secs(t));
    }
    let started = Instant::now();
    let lab = b.start()?;
    let took = started.elapsed();
    eprintln!(
        "tend-lab: {} hosts up in {:.2} s ({}, {:.1} MiB resident); stop with `tend-lab down --prefix {}`",
        lab.hosts().len(),
        took.as_secs_f64(),
        lab.subnet(),
        lab.rss_bytes() as f64 / 1048576.0,
        lab.prefix()
    );
    println!("prefix: {}", lab.prefix());
    println!("state_dir: {}", lab.state_dir().display());
    println!("inventory: {}", lab.inventory_path().display());
    println!("ssh_config: {}", lab.ssh_config_path().display());
    Ok(())
}

fn cmd_down(args: DownArgs) -> Result<(), LabError> {
    if args.all {
        for p in tend_lab::down_all()? {
            eprintln!("tend-lab: stopped {p}");
        }
        return Ok(());
    }
    let prefix = args.prefix.unwrap_or_default();
    tend_lab::down(&prefix)?;
    eprintln!("tend-lab: stopped {prefix}");
    Ok(())
}

fn cmd_status(json: bool) -> Result<(), LabError> {
    let labs = tend_lab::list();
    if json {
        for l in &labs {
            println!("{}", serde_json::to_string(l).expect("status serializes"));
        }
        return Ok(());
    }
    if labs.is_empty() {
        eprintln!("tend-lab: no labs on this machine");
        return Ok(());
    }
    println!(
        "{:<9} {:>5} {:<17} {:>6} {:>9} {:>8}  state",
        "prefix", "hosts", "subnet", "procs", "rss MiB", "owner"
    );
    for l in labs {
        let state = match (&l.problem, l.stale) {
            (Some(p), _) => format!("broken: {p}"),
            (None, true) => "stale (owner gone)".to_string(),
            (None, false) => "running".to_string(),
        };
        println!(
            "{:<9} {:>5} {:<17} {:>6} {:>9.1} {:>8}  {state}",
            l.prefix,
            l.hosts,
            l.subnet.unwrap_or_default(),
            l.processes,
            l.rss_bytes as f64 / 1048576.0,
            l.owner.map_or("-".to_string(), |p| p.to_string()),
        );
    }
    Ok(())
}

fn cmd_exec(prefix: &str, host: &str, argv: &[String]) -> ExitCode {
    let run = || -> Result<std::process::Output, LabError> {
        let lab = Lab::attach(prefix)?;
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        lab.exec(host, &argv)
    };
    match run() {
        Ok(out) => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            ExitCode::from(out.status.code().unwrap_or(1).clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
