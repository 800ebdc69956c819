//! The command line, in one place. Raw arguments become resolved settings in one step
//! ([`crate::settings`]); nothing else looks at flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "tend",
    version = crate::embedded::VERSION,
    about = "Configuration management and orchestration: Ansible playbooks, natively fast."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a playbook against an inventory (like ansible-playbook), or apply a saved plan
    /// (`tend apply plan.json`): exactly that plan, refused if its inputs changed.
    Apply(Box<ApplyArgs>),
    /// Check every host against a playbook and report drift (check mode with diffs); --fix
    /// corrects it.
    Drift(Box<DriftArgs>),
    /// Check mode with diffs on every host, printed as a plan and saved with -o for
    /// `tend apply PLAN`.
    Plan(Box<PlanArgs>),
    /// Render a saved plan as `tend plan` printed it.
    Show(ShowArgs),
    /// Undo a run: restore on each host it changed what its changes replaced, from the
    /// journal the run left there.
    Rollback(Box<RollbackArgs>),
    /// Show an inventory (like ansible-inventory).
    Inventory(InventoryArgs),
    /// Check that hosts are reachable and their agent runs (like `ansible -m ping`).
    Ping(PingArgs),
    /// The runs tend recorded: list them, or `show` one with what changed where.
    History(HistoryArgs),
    /// Check the history's tamper-evident audit chain.
    Audit(AuditArgs),
    /// Metrics from the history: run success, deployments, drift, compliance, provisioning, MTTR.
    Metrics(MetricsArgs),
    /// Release a host's run lease left behind by a run that died.
    Unlock(UnlockArgs),
    /// Encrypt, decrypt and view Ansible Vault files and strings (like ansible-vault).
    Vault(VaultCmdArgs),
    /// Judge the fleet's observed state (facts, packages, services, files) by compliance
    /// policies, without a playbook: a report per host, recorded in the history.
    Compliance(Box<ComplianceArgs>),
    /// Rego policies: `tend policy test` runs their unit tests (like `opa test`).
    Policy(PolicyCmdArgs),
    /// Close the SSH connections that earlier runs kept open with --ssh-persist.
    #[command(name = "ssh-close")]
    SshClose(SshCloseArgs),
    /// The agent on a host: speaks the wire protocol on stdin/stdout (started by tend itself).
    #[command(hide = true)]
    Agent(AgentArgs),
    /// The privileged worker an agent starts through sudo/su for `become` tasks: speaks the
    /// worker protocol on stdin/stdout. Not for people.
    #[command(name = "agent-worker", hide = true)]
    AgentWorker,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Where bundles are cached (default: $XDG_CACHE_HOME/tend or ~/.cache/tend).
    #[arg(long = "cache", value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

/// How tend reaches SSH hosts (host variables such as `ansible_user` win over these).
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// Log in as this user (like `ansible_user`).
    #[arg(short = 'u', long = "user", value_name = "REMOTE_USER")]
    pub user: Option<String>,
    /// SSH private key file (like `ansible_ssh_private_key_file`).
    #[arg(long = "private-key", alias = "key-file", value_name = "FILE")]
    pub private_key: Option<String>,
    /// Connection timeout in seconds.
    #[arg(short = 'T', long = "timeout", value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Extra arguments for every ssh command (like `ansible_ssh_common_args`).
    #[arg(
        long = "ssh-common-args",
        value_name = "ARGS",
        allow_hyphen_values = true
    )]
    pub ssh_common_args: Option<String>,
    /// Extra arguments for ssh only (like `ansible_ssh_extra_args`).
    #[arg(
        long = "ssh-extra-args",
        value_name = "ARGS",
        allow_hyphen_values = true
    )]
    pub ssh_extra_args: Option<String>,
    /// Record the host key of a host seen for the first time instead of refusing it. A key that
    /// changed is always refused.
    #[arg(long = "accept-new-host-keys")]
    pub accept_new_host_keys: bool,
    /// Keep each host's SSH connection open this many seconds after the run (like Ansible's
    /// ControlPersist), so that a later run reuses it: no new connection, no key exchange.
    /// 0 closes them at the end of the run. `tend ssh-close` closes them earlier.
    #[arg(
        long = "ssh-persist",
        env = "TEND_SSH_PERSIST",
        value_name = "SECONDS",
        default_value_t = 0
    )]
    pub ssh_persist: u64,
}

/// Vault passwords, for every command that reads the user's files.
#[derive(Args, Clone, Debug, Default)]
pub struct VaultArgs {
    /// A vault password file (repeatable); an executable file is run and what it prints is
    /// the password. Default: $ANSIBLE_VAULT_PASSWORD_FILE.
    #[arg(
        long = "vault-password-file",
        alias = "vault-pass-file",
        value_name = "FILE"
    )]
    pub vault_password_file: Vec<std::path::PathBuf>,
    /// Ask for the vault password once, on the terminal.
    #[arg(short = 'J', long = "ask-vault-pass", alias = "ask-vault-password")]
    pub ask_vault_pass: bool,
    /// A vault id and the source of its password: [LABEL@]SOURCE, SOURCE being a file, a
    /// script or `prompt` (repeatable).
    #[arg(long = "vault-id", value_name = "[LABEL@]SOURCE")]
    pub vault_id: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PolicyCmdArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Run every `test_` rule of the policies (like `opa test`): pass or fail per test, exit 1
    /// when one fails or errors.
    Test(PolicyTestArgs),
}

#[derive(Args, Debug)]
pub struct PolicyTestArgs {
    /// Policy directories [default: `policies/` in the current directory].
    pub dirs: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct VaultCmdArgs {
    #[command(subcommand)]
    pub command: VaultCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum VaultCommand {
    /// Encrypt files in place (or to --output).
    Encrypt(VaultFilesArgs),
    /// Decrypt files in place (or to --output).
    Decrypt(VaultFilesArgs),
    /// Show the decrypted contents of files on stdout.
    View(VaultFilesArgs),
    /// Encrypt strings (or stdin) as `!vault |` YAML values.
    #[command(name = "encrypt_string", alias = "encrypt-string")]
    EncryptString(VaultStringArgs),
}

#[derive(Args, Debug)]
pub struct VaultFilesArgs {
    /// The files (`-` for stdin).
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Write the result here (`-` for stdout) instead of in place.
    #[arg(long = "output", value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// The vault id to encrypt with, when several are given.
    #[arg(long = "encrypt-vault-id", value_name = "LABEL")]
    pub encrypt_vault_id: Option<String>,
    #[command(flatten)]
    pub vault: VaultArgs,
}

#[derive(Args, Debug)]
pub struct VaultStringArgs {
    /// The strings to encrypt (none: read stdin).
    pub strings: Vec<String>,
    /// The variable name of each string, in order.
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// The vault id to encrypt with, when several are given.
    #[arg(long = "encrypt-vault-id", value_name = "LABEL")]
    pub encrypt_vault_id: Option<String>,
    #[command(flatten)]
    pub vault: VaultArgs,
}

#[derive(Args, Debug)]
pub struct PingArgs {
    /// Host pattern (like ansible's): `all`, a group, `web*:!web3` …
    #[arg(default_value = "all")]
    pub pattern: String,
    /// Inventory file, directory or comma-separated host list (repeatable).
    #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
    pub inventory: Vec<String>,
    /// Limit to hosts matching this pattern.
    #[arg(short = 'l', long = "limit", value_name = "SUBSET")]
    pub limit: Option<String>,
    /// Connection for hosts that set no `ansible_connection`: `ssh` (default) or `local`.
    #[arg(short = 'c', long = "connection", value_name = "CONNECTION")]
    pub connection: Option<String>,
    /// How many hosts are contacted at once.
    #[arg(short = 'f', long = "forks", default_value_t = 50)]
    pub forks: usize,
    #[command(flatten)]
    pub conn: ConnectionArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
}

#[derive(Args, Debug)]
pub struct SshCloseArgs {
    /// Host pattern: `all`, a group, `web*:!web3` …
    #[arg(default_value = "all")]
    pub pattern: String,
    /// Inventory file, directory or comma-separated host list (repeatable).
    #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
    pub inventory: Vec<String>,
    /// Limit to hosts matching this pattern.
    #[arg(short = 'l', long = "limit", value_name = "SUBSET")]
    pub limit: Option<String>,
    #[command(flatten)]
    pub conn: ConnectionArgs,
}

/// Which hosts a command reaches, and how: the inventory, the selection, the connection, the
/// privilege escalation, the vault passwords, the fan-out. One definition for every command
/// that runs on hosts (apply, plan, drift, rollback, compliance).
#[derive(Args, Debug, Clone, Default)]
pub struct HostArgs {
    /// Inventory file, directory or comma-separated host list (repeatable).
    #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
    pub inventory: Vec<String>,
    /// Limit the run to hosts matching this pattern.
    #[arg(short = 'l', long = "limit", value_name = "SUBSET")]
    pub limit: Option<String>,
    /// Connection for hosts that set no `ansible_connection`: `ssh` (default) or `local`.
    #[arg(short = 'c', long = "connection", value_name = "CONNECTION")]
    pub connection: Option<String>,
    #[command(flatten)]
    pub conn: ConnectionArgs,
    /// Run as another user (privilege escalation, like ansible-playbook -b).
    #[arg(short = 'b', long = "become")]
    pub become_: bool,
    /// The user to become (default root); playbook keywords and variables override it.
    #[arg(long = "become-user", value_name = "USER")]
    pub become_user: Option<String>,
    /// How to become that user: sudo (default) or su.
    #[arg(long = "become-method", value_name = "METHOD")]
    pub become_method: Option<String>,
    /// Ask for the privilege escalation password once, on the terminal.
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    #[command(flatten)]
    pub vault: VaultArgs,
    /// How many hosts run at once.
    #[arg(short = 'f', long = "forks", default_value_t = 50)]
    pub forks: usize,
}

#[derive(Args, Debug, Default)]
pub struct ApplyArgs {
    /// The playbook to run.
    pub playbook: PathBuf,
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Extra variables: key=value, a JSON/YAML mapping, or @file (repeatable).
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Only run tasks tagged with these tags (comma-separated, repeatable).
    #[arg(short = 't', long = "tags", value_name = "TAGS")]
    pub tags: Vec<String>,
    /// Skip tasks tagged with these tags (comma-separated, repeatable).
    #[arg(long = "skip-tags", value_name = "TAGS")]
    pub skip_tags: Vec<String>,
    /// Report what would change, change nothing.
    #[arg(short = 'C', long = "check")]
    pub check: bool,
    /// Show differences of changed files.
    #[arg(short = 'D', long = "diff")]
    pub diff: bool,
    /// More output (-v … -vvvv).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// List the hosts each play would run on, and stop.
    #[arg(long = "list-hosts")]
    pub list_hosts: bool,
    /// List the tasks each play would run, and stop.
    #[arg(long = "list-tasks")]
    pub list_tasks: bool,
    /// Check the playbook's syntax, and stop.
    #[arg(long = "syntax-check")]
    pub syntax_check: bool,
    /// Print the execution order (stages of plays that run in parallel, `needs`, batches and
    /// their hosts) and stop: no host is contacted, nothing changes.
    #[arg(long = "dry-run-orchestration")]
    pub dry_run_orchestration: bool,
    /// Start at the task with this name.
    #[arg(long = "start-at-task", value_name = "NAME")]
    pub start_at_task: Option<String>,
    /// Output format on stdout.
    #[arg(long = "output", value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Write the PLAY RECAP counters as JSON to this file.
    #[arg(long = "recap-file", value_name = "PATH")]
    pub recap_file: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Rego policies to evaluate on the plan before anything changes (a directory of
    /// `*.rego` files; repeatable) [default: `policies/` beside the playbook, when it exists].
    #[arg(long = "policy", value_name = "DIR")]
    pub policy: Vec<PathBuf>,
    /// Do not record this run in the history (and take no run lease).
    #[arg(long = "no-history")]
    pub no_history: bool,
    /// Wait up to this long for hosts another run holds, instead of failing at once.
    #[arg(long = "lock-timeout", value_name = "SECONDS", default_value_t = 0)]
    pub lock_timeout: u64,
}

/// `tend drift`: the apply options that choose hosts, tasks and variables; the playbook always
/// runs in check mode with diffs (`--fix` then applies it to the drifted hosts).
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status: 0 every host checked is in its declared state, 2 drift found, 1 an error \
(bad input, a failed task, an unreachable host, a history that cannot be written). An error \
wins over drift: a run with both exits 1.
With --fix: 0 when the drift was corrected without error (or there was none), 1 on any error.")]
pub struct DriftArgs {
    /// The playbook that declares the desired state.
    pub playbook: PathBuf,
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Extra variables: key=value, a JSON/YAML mapping, or @file (repeatable).
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Only check tasks tagged with these tags (comma-separated, repeatable).
    #[arg(short = 't', long = "tags", value_name = "TAGS")]
    pub tags: Vec<String>,
    /// Skip tasks tagged with these tags (comma-separated, repeatable).
    #[arg(long = "skip-tags", value_name = "TAGS")]
    pub skip_tags: Vec<String>,
    /// Correct the drift: apply the playbook to the hosts that drifted (recorded as a fix run).
    /// With policies the fix is planned and judged first, as `tend apply` is.
    #[arg(long = "fix")]
    pub fix: bool,
    /// With --fix: Rego policies to judge the fix by before anything changes (a directory of
    /// `*.rego` files; repeatable) [default: `policies/` beside the playbook, when it exists].
    #[arg(long = "policy", value_name = "DIR")]
    pub policy: Vec<PathBuf>,
    /// Output format on stdout: the report for people, or one JSON document
    /// (docs/architecture.md, "Drift", describes its fields).
    #[arg(long = "output", value_enum, default_value_t = ReportFormat::Human)]
    pub output: ReportFormat,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Do not record the check (or the fix) in the history.
    #[arg(long = "no-history")]
    pub no_history: bool,
    /// With --fix: wait up to this long for hosts another run holds, instead of failing at once.
    #[arg(long = "lock-timeout", value_name = "SECONDS", default_value_t = 0)]
    pub lock_timeout: u64,
}

/// `tend rollback RUN`: the options that reach hosts and choose them; the run says the rest.
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status: 0 everything the run changed is restored (or nothing was left to restore), 2 a \
change could not be restored (each one is listed with the reason), 1 an error (an unknown run, \
a run that changed nothing, an unreachable host, a history that cannot be written), 5 bad \
input (an inventory tend cannot read).")]
pub struct RollbackArgs {
    /// The run to undo: its id, or a unique prefix of it (`tend history` lists them).
    pub run: String,
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Show the differences each restore makes.
    #[arg(short = 'D', long = "diff")]
    pub diff: bool,
    /// More output (-v … -vvvv).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Output format on stdout.
    #[arg(long = "output", value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Wait up to this long for hosts another run holds, instead of failing at once.
    #[arg(long = "lock-timeout", value_name = "SECONDS", default_value_t = 0)]
    pub lock_timeout: u64,
}

/// `tend compliance`: the options that reach hosts and choose them, and the policies.
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status: 0 every host is compliant, 2 a host is non-compliant (a deny rule holds), 1 an \
error (a policy that does not load or cannot be evaluated, an unreachable host, a collection \
that failed, a history that cannot be written). An error wins over non-compliance.")]
pub struct ComplianceArgs {
    /// Host pattern: `all`, a group, `web*:!web3` …
    #[arg(default_value = "all")]
    pub pattern: String,
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Compliance policies: a directory of `*.rego` files (repeatable) [default:
    /// `compliance/` in the current directory].
    #[arg(long = "policy", value_name = "DIR")]
    pub policy: Vec<PathBuf>,
    /// Output format on stdout: the report for people, or one JSON document.
    #[arg(long = "output", value_enum, default_value_t = ReportFormat::Human)]
    pub output: ReportFormat,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Do not record the check in the history.
    #[arg(long = "no-history")]
    pub no_history: bool,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The run's options: the same as `tend apply`'s.
    #[command(flatten)]
    pub run: ApplyArgs,
    /// Save the plan to this file (JSON), for `tend show` and `tend apply`.
    #[arg(short = 'o', long = "out", value_name = "PLAN")]
    pub out: Option<PathBuf>,
    /// Exit status 0: no changes, 2: changes, 1: error.
    #[arg(long = "detailed-exitcode")]
    pub detailed_exitcode: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A plan saved by `tend plan -o`.
    pub plan: PathBuf,
    /// Output format on stdout.
    #[arg(long = "output", value_enum, default_value_t = ReportFormat::Human)]
    pub output: ReportFormat,
}

/// Where the history is kept.
#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// The history store: a SQLite file, or a postgres:// URL shared by a team
    /// [default: .tend/history.db beside the playbook; for the history commands, in the
    /// current directory].
    #[arg(
        long = "store",
        env = "TEND_STORE",
        hide_env_values = true,
        value_name = "PATH|URL"
    )]
    pub store: Option<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
    /// Only runs that targeted this host.
    #[arg(long = "host", value_name = "HOST")]
    pub host: Option<String>,
    /// Only runs that ended so: succeeded, failed, unreachable, error, unfinished.
    #[arg(long = "status", value_name = "STATUS")]
    pub status: Option<String>,
    /// Only runs of this kind: apply, plan, drift, rollback, fix, compliance.
    #[arg(long = "kind", value_name = "KIND")]
    pub kind: Option<String>,
    /// Only runs started at or after: 2025-01-02, 2025-01-02T10:00 (UTC), or an age: 12h, 7d.
    #[arg(long = "since", value_name = "DATE")]
    pub since: Option<String>,
    /// Only runs started before (same forms as --since).
    #[arg(long = "until", value_name = "DATE")]
    pub until: Option<String>,
    /// Output format on stdout.
    #[arg(long = "output", value_enum, default_value_t = ReportFormat::Human)]
    pub output: ReportFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// One run: who ran what from which commit, and per host what changed, with diffs.
    Show(HistoryShowArgs),
}

#[derive(Args, Debug)]
pub struct HistoryShowArgs {
    /// The run id (or a unique prefix of it).
    pub run: String,
    /// Also list tasks that changed nothing.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Output format on stdout.
    #[arg(long = "output", value_enum, default_value_t = ReportFormat::Human)]
    pub output: ReportFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the chain: name the first edited, deleted or reordered record, and runs without
    /// an end. Exit status 1 when something is wrong.
    Verify(AuditVerifyArgs),
}

#[derive(Args, Debug)]
pub struct AuditVerifyArgs {
    /// Output format on stdout.
    #[arg(long = "output", value_enum, default_value_t = ReportFormat::Human)]
    pub output: ReportFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Output format on stdout.
    #[arg(long = "output", value_enum, default_value_t = MetricsFormat::Human)]
    pub output: MetricsFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Text for people.
    Human,
    /// One JSON document.
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum MetricsFormat {
    /// A table: in total, per day, per group.
    Human,
    /// One JSON document.
    Json,
    /// The Prometheus text exposition format.
    Prometheus,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// The host whose lease to release.
    pub host: String,
    /// The run holding it (refused if another run holds the host).
    #[arg(long = "run", value_name = "RUN")]
    pub run: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Task-by-task text, like ansible-playbook.
    #[default]
    Human,
    /// One JSON event per line.
    Json,
}

#[derive(Args, Debug)]
pub struct InventoryArgs {
    /// Inventory file, directory or comma-separated host list (repeatable).
    #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
    pub inventory: Vec<String>,
    /// All hosts and groups as JSON, with host variables under _meta.
    #[arg(long = "list", group = "action")]
    pub list: bool,
    /// The group tree.
    #[arg(long = "graph", group = "action", num_args = 0..=1, default_missing_value = "all", value_name = "GROUP")]
    pub graph: Option<String>,
    /// One host's variables as JSON.
    #[arg(long = "host", group = "action", value_name = "HOST")]
    pub host: Option<String>,
    /// With --graph: show variables.
    #[arg(long = "vars")]
    pub vars: bool,
    /// Limit to hosts matching this pattern.
    #[arg(short = 'l', long = "limit", value_name = "SUBSET")]
    pub limit: Option<String>,
    /// Also apply group_vars/ and host_vars/ from this playbook directory.
    #[arg(long = "playbook-dir", value_name = "DIR")]
    pub playbook_dir: Option<PathBuf>,
}
