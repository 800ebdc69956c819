//! The controller side of a run: load and check every input before anything runs, compile one
//! [`Program`] per host and play, run the hosts (bounded by `forks`), and pass every event on.

mod compile;
mod extra_vars;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use indexmap::IndexMap;
use tend_lang::inventory::{parse_limit, Inventory, VarsDirs};
use tend_lang::playbook::{self, Playbook};
use tend_lang::{Diag, Diags};
use tend_proto::{Event, HostState, HostStats, RunOptions, Secret, Vars};

pub use compile::compile;
pub use extra_vars::parse_extra_vars;

/// Everything a run needs, resolved from the command line once.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub playbook: PathBuf,
    pub inventories: Vec<String>,
    pub extra_vars: Vars,
    pub limit: Option<String>,
    pub options: RunOptions,
    pub forks: usize,
    /// `-c/--connection`: the connection for hosts that do not set `ansible_connection`.
    pub connection: Option<String>,
    /// `-K/--ask-become-pass`: the password typed on the controller.
    pub become_password: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad input: nothing ran.
    #[error("{0}")]
    Input(Diags),
}

impl From<Diag> for EngineError {
    fn from(d: Diag) -> Self {
        EngineError::Input(Diags(vec![d]))
    }
}

impl From<Diags> for EngineError {
    fn from(d: Diags) -> Self {
        EngineError::Input(d)
    }
}

/// Inputs loaded and checked: a run can start.
pub struct Prepared {
    pub settings: Settings,
    pub playbook: Playbook,
    pub inventory: Inventory,
    pub playbook_vars: VarsDirs,
    /// For each play, the hosts it targets (pattern ∩ limit), in inventory order.
    pub play_hosts: Vec<Vec<String>>,
    pub warnings: Vec<String>,
    /// Every inventory host's variables, for `hostvars` (built on first use).
    hostvars: std::sync::OnceLock<Vars>,
}

/// Above this many hosts, `hostvars` of other hosts is not sent with every program (it would
/// grow with the square of the fleet); the SSH and orchestration issues fetch it on demand.
pub const HOSTVARS_MAX_HOSTS: usize = 200;

impl Prepared {
    /// Inventory variables of every host, as `hostvars` shows other hosts.
    pub fn all_hostvars(&self) -> &Vars {
        self.hostvars.get_or_init(|| {
            let hosts: Vec<String> = self.inventory.hosts().map(|h| h.name.clone()).collect();
            if hosts.len() > HOSTVARS_MAX_HOSTS {
                return Vars::new();
            }
            hosts
                .into_iter()
                .map(|h| {
                    let mut v = self.inventory.host_vars(&h, Some(&self.playbook_vars));
                    v.extend(self.inventory.host_magic_vars(&h));
                    (h, serde_json::Value::Object(v))
                })
                .collect()
        })
    }
}

/// Loads inventory and playbook and checks everything that can be checked before running:
/// syntax, modules, handler names, host patterns.
pub fn prepare(settings: Settings) -> Result<Prepared, EngineError> {
    let inventory = Inventory::load(&settings.inventories)?;
    let playbook = playbook::load(&settings.playbook)?;
    let playbook_vars = tend_lang::inventory::load_vars_dirs(&playbook.dir)?;
    let mut warnings: Vec<String> = inventory.warnings().to_vec();
    let limit = match &settings.limit {
        Some(l) => Some(parse_limit(l)?),
        None => None,
    };
    let mut errors = Vec::new();
    let supported = tend_agent::supported_modules();
    let mut play_hosts = Vec::new();
    for play in &playbook.plays {
        compile::check_play(play, &supported, &mut errors);
        let pattern = if tend_lang::Templar::is_template(&play.hosts) {
            render_pattern(&play.hosts, &settings.extra_vars)
                .map_err(|e| Diag::new(play.loc.clone(), e))?
        } else {
            play.hosts.clone()
        };
        match inventory.select(&pattern, limit.as_deref()) {
            Ok(sel) => {
                warnings.extend(sel.warnings);
                for h in &sel.hosts {
                    let vars = inventory.host_vars(h, Some(&playbook_vars));
                    let conn = connection_of(h, &vars, settings.connection.as_deref());
                    if conn != "local" {
                        errors.push(
                            Diag::new(play.loc.clone(), format!("host `{h}` uses the `{conn}` connection, which tend does not support yet"))
                                .with_hint("only local hosts run for now: set `ansible_connection=local` for it, or pass `-c local`; SSH hosts arrive with the fleet issue"),
                        );
                    }
                }
                play_hosts.push(sel.hosts);
            }
            Err(e) => errors.push(e.at(play.loc.clone())),
        }
    }
    if !errors.is_empty() {
        return Err(EngineError::Input(Diags(errors)));
    }
    Ok(Prepared {
        settings,
        playbook,
        inventory,
        playbook_vars,
        play_hosts,
        warnings,
        hostvars: Default::default(),
    })
}

/// How tend reaches a host: its `ansible_connection`, else `-c`, else local for the names of
/// this machine (like Ansible's implicit localhost) and ssh for everything else.
fn connection_of(host: &str, vars: &Vars, cli: Option<&str>) -> String {
    if let Some(c) = vars.get("ansible_connection").and_then(|v| v.as_str()) {
        return c.to_string();
    }
    if let Some(c) = cli {
        return c.to_string();
    }
    if matches!(host, "localhost" | "127.0.0.1" | "::1") {
        "local".into()
    } else {
        "ssh".into()
    }
}

/// `hosts:` may use extra vars (`hosts: "{{ target }}"`).
fn render_pattern(pattern: &str, extra: &Vars) -> Result<String, String> {
    let t = tend_lang::Templar::new();
    let scope = tend_lang::Scope::new(&t, vec![tend_lang::Layer::from_map(extra, true)]);
    t.render_str(pattern, &scope)
        .map_err(|e| format!("cannot render hosts pattern: {e}"))
}

/// The result of a whole run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Per host, counters summed over plays, in the order hosts first appeared.
    pub stats: IndexMap<String, HostStats>,
}

impl Summary {
    /// ansible-playbook's exit status: 2 if a host failed, 4 if one was unreachable, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.stats.values().any(|s| s.failed > 0) {
            2
        } else if self.stats.values().any(|s| s.unreachable > 0) {
            4
        } else {
            0
        }
    }
}

/// Runs every play on its hosts. Events go to `tx`; compile errors of one host fail that host.
pub fn run(prep: &Prepared, tx: &Sender<Event>) -> Summary {
    let mut summary = Summary::default();
    let mut failed: HashSet<String> = HashSet::new();
    let mut states: HashMap<String, HostState> = HashMap::new();
    for (idx, play) in prep.playbook.plays.iter().enumerate() {
        let hosts: Vec<String> = prep.play_hosts[idx]
            .iter()
            .filter(|h| !failed.contains(*h))
            .cloned()
            .collect();
        let _ = tx.send(Event::PlayStart {
            name: play.name.clone(),
            hosts: hosts.clone(),
        });
        for h in &hosts {
            summary.stats.entry(h.clone()).or_default();
        }
        if hosts.is_empty() {
            continue;
        }
        let results: Mutex<Vec<(String, HostStats, HostState)>> = Mutex::new(Vec::new());
        let next = Mutex::new(0usize);
        let forks = prep.settings.forks.max(1).min(hosts.len());
        let rendezvous = tend_agent::LocalRendezvous::new(hosts.clone());
        std::thread::scope(|s| {
            for _ in 0..forks {
                let tx = tx.clone();
                let (hosts, next, results, states, rv) =
                    (&hosts, &next, &results, &states, &rendezvous);
                s.spawn(move || loop {
                    let i = {
                        let Ok(mut n) = next.lock() else { return };
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(host) = hosts.get(i) else { return };
                    let state = states.get(host).cloned().unwrap_or_default();
                    let (stats, state) = run_host(prep, idx, host, hosts, state, rv, &tx);
                    if let Ok(mut r) = results.lock() {
                        r.push((host.clone(), stats, state));
                    }
                });
            }
        });
        for (host, stats, state) in results.into_inner().unwrap_or_default() {
            if stats.failed > 0 || stats.unreachable > 0 {
                failed.insert(host.clone());
            }
            states.insert(host.clone(), state);
            summary.stats.entry(host).or_default().add(&stats);
        }
    }
    summary
}

fn run_host(
    prep: &Prepared,
    play: usize,
    host: &str,
    play_hosts: &[String],
    state: HostState,
    rv: &dyn tend_agent::Rendezvous,
    tx: &Sender<Event>,
) -> (HostStats, HostState) {
    let mut sink = |e: Event| {
        let _ = tx.send(e);
    };
    match compile(prep, play, host, play_hosts) {
        Ok(mut program) => {
            program.vars.host_state = state;
            tend_agent::run(&program, &mut sink, Some(rv))
        }
        Err(d) => {
            // The host cannot run this play (e.g. a vars file it needs is missing): report it as
            // a failed task of that host, like ansible-core does.
            let stats = HostStats {
                failed: 1,
                ..Default::default()
            };
            sink(Event::TaskResult(tend_proto::TaskResult {
                host: host.to_string(),
                task: "Loading play".into(),
                loc: d.loc.clone(),
                status: tend_proto::ResultStatus::Failed,
                ignored: false,
                handler: false,
                result: serde_json::json!({"failed": true, "msg": d.render()}),
                diffs: Vec::new(),
            }));
            rv.host_done(host);
            sink(Event::HostDone {
                host: host.to_string(),
                stats,
            });
            (stats, state)
        }
    }
}
