use serde::{Deserialize, Serialize};

use crate::{Loc, PlanGuard, Value, Vars};

/// Version of the controller ↔ agent wire format. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Everything one host needs to run one play: its variables, the task tree with templates left
/// unrendered, and the handlers. The agent renders and runs it locally.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Program {
    pub version: u32,
    pub host: String,
    pub play: PlayInfo,
    /// The play-wide variable layers. Facts, registered results, role- block- and task-scoped
    /// vars are layered in between by the agent as it runs.
    pub vars: ProgramVars,
    /// Roles this play uses; tasks point into this list.
    pub roles: Vec<RoleInfo>,
    pub tasks: Vec<Task>,
    pub handlers: Vec<Handler>,
    pub options: RunOptions,
    /// The become password given on the controller (`-K`). `ansible_become_password` in the
    /// variables takes precedence. Travels to the agent, never into an event or output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_password: Option<Secret>,
    /// Under `tend apply PLAN`: the changes the plan holds for this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<PlanGuard>,
    /// Vault-encrypted files the controller decrypted, for reads on the agent (`copy`/
    /// `template` sources, `include_vars`, lookups): SHA-256 (hex) of the envelope → the
    /// plaintext in base64. The agent never gets a vault password.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vault: std::collections::BTreeMap<String, Secret>,
    /// A rollback: the agent ignores the tasks and restores what this run's journal on the
    /// host says the run replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<Undo>,
}

/// What a rollback Program restores: the changes run `run_id` made on the host (only those
/// of `plays`, when given), newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub run_id: String,
    /// Play indexes ([`PlayInfo::index`]); `None`: every play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plays: Option<Vec<usize>>,
    /// Which batch is rolled back (shown in messages), e.g. `2/3` of a rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
}

/// A value that must never be shown: `Debug` prints `<redacted>`, and there is no `Display`.
/// It serialises as the plain string, because it has to reach the agent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that hands it on (a privilege-escalation prompt).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Privilege escalation keywords as written (`become`, `become_user`, `become_method`,
/// `become_flags`, `become_exe`), each unrendered and unset unless given. On a task they are
/// inherited like other keywords; in [`RunOptions`] they are the command line's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Become {
    #[serde(default, rename = "become", skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<Value>,
}

impl Become {
    pub fn is_empty(&self) -> bool {
        *self == Become::default()
    }

    /// These keywords over `outer`: each one given here wins, the others are inherited.
    pub fn over(&self, outer: &Become) -> Become {
        let pick = |a: &Option<Value>, b: &Option<Value>| a.clone().or_else(|| b.clone());
        Become {
            enabled: pick(&self.enabled, &outer.enabled),
            user: pick(&self.user, &outer.user),
            method: pick(&self.method, &outer.method),
            flags: pick(&self.flags, &outer.flags),
            exe: pick(&self.exe, &outer.exe),
        }
    }
}

/// The play-wide variables of one host, one field per precedence level that the controller
/// knows, lowest first. All but `magic` hold user-written values that are rendered when read
/// (Ansible's lazy templating); `magic` is data.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProgramVars {
    /// Defaults of every role in the play.
    pub role_defaults: Vars,
    /// Inventory variables for this host, already merged in inventory precedence order.
    pub inventory: Vars,
    pub play_vars: Vars,
    pub vars_files: Vars,
    /// Vars of every role in the play.
    pub role_vars: Vars,
    pub extra_vars: Vars,
    /// `inventory_hostname`, `groups`, `group_names`, `playbook_dir`, `omit` …
    pub magic: Vars,
    /// What earlier plays left on this host: facts, `set_fact`/registered values, `include_vars`.
    #[serde(default)]
    pub host_state: HostState,
}

/// Per-host variables that outlive a play (Ansible's fact cache, `set_fact`, `register`,
/// `include_vars`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Vars>,
    #[serde(default)]
    pub host_facts: Vars,
    #[serde(default)]
    pub include_vars: Vars,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PlayInfo {
    pub name: String,
    pub loc: Loc,
    pub gather_facts: bool,
    /// Directory of the playbook (for relative paths and `playbook_dir`).
    pub playbook_dir: String,
    pub force_handlers: bool,
    pub check_mode: Option<bool>,
    pub diff: Option<bool>,
    pub no_log: Option<bool>,
    pub environment: Option<Value>,
    /// Where `include_role` looks for roles, as the controller computed it (empty: the agent
    /// computes it from `playbook_dir`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles_paths: Vec<String>,
    /// The play's `connection:` keyword (`local`: Ansible runs every task on the controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The play's number in the playbook (0-based), part of each planned change's key.
    #[serde(default)]
    pub index: usize,
    /// The batch's hosts meet after every step (`any_errors_fatal`, `max_fail_percentage`):
    /// the agent asks the rendezvous whether the play goes on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lockstep: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RoleInfo {
    pub name: String,
    pub path: String,
    pub defaults: Vars,
    pub vars: Vars,
    pub params: Vars,
}

/// Settings that come from the command line and hold for the whole run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunOptions {
    pub check: bool,
    pub diff: bool,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub start_at_task: Option<String>,
    pub verbosity: u8,
    /// `--become`, `--become-user`, `--become-method`: below every keyword and variable.
    #[serde(default, rename = "become", skip_serializing_if = "Become::is_empty")]
    pub become_: Become,
    /// `tend plan`: report each resource's change (with its key and digest) in the task result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plan: bool,
    /// Collect diffs into the events even without `--diff` (for the history); the registered
    /// result has a `diff` key, and the printer shows diffs, only under `--diff`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collect_diffs: bool,
    /// Send the gathered facts to the controller in the `Gathering Facts` result (`tend
    /// compliance` judges them; a plan always does). A run otherwise keeps them on the host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub report_facts: bool,
    /// The run's id, for runs that may change hosts: the agent journals what each change
    /// replaces under it (never in check mode), for `tend rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// A task as written, with its templates unrendered.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub name: Option<String>,
    pub kind: TaskKind,
    pub loc: Loc,
    /// `when` conditions: strings are expressions, booleans are literal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_: Option<LoopSpec>,
    #[serde(default)]
    pub loop_control: LoopControl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub until: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_when: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_when: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_errors: Option<Value>,
    /// `any_errors_fatal` on the task or block (the play's is in the engine's rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_errors_fatal: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_mode: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_log: Option<Value>,
    #[serde(default, skip_serializing_if = "Vars::is_empty")]
    pub vars: Vars,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_to: Option<String>,
    /// `delegate_facts`: facts a delegated task returns go to the delegate, not to this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_facts: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_once: Option<Value>,
    /// `throttle`: at most this many hosts run the task at once (0: no limit). Blocks and
    /// plays pass it to the tasks inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Value>,
    #[serde(default, rename = "become", skip_serializing_if = "Become::is_empty")]
    pub become_: Become,
    /// Index into [`Program::roles`] of the role this task came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<usize>,
    /// True for tasks tend inserts itself (the implicit handler flushes between sections).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

impl Task {
    /// A task named `name` that calls `module` with literal `args`, located at `loc` (the
    /// one-play runs tend builds itself: `tend ping`, `tend compliance` …).
    pub fn module(name: &str, module: &str, args: Vars, loc: Loc) -> Self {
        let mut t = Task::new(
            TaskKind::Module(Module {
                name: module.to_string(),
                args,
                args_template: None,
                loc: loc.clone(),
            }),
            loc,
        );
        t.name = Some(name.to_string());
        t
    }

    pub fn new(kind: TaskKind, loc: Loc) -> Self {
        Task {
            name: None,
            kind,
            loc,
            when: Vec::new(),
            loop_: None,
            loop_control: LoopControl::default(),
            register: None,
            until: Vec::new(),
            retries: None,
            delay: None,
            notify: Vec::new(),
            tags: Vec::new(),
            changed_when: None,
            failed_when: None,
            ignore_errors: None,
            any_errors_fatal: None,
            check_mode: None,
            diff: None,
            no_log: None,
            vars: Vars::new(),
            environment: None,
            delegate_to: None,
            delegate_facts: None,
            run_once: None,
            throttle: None,
            become_: Become::default(),
            role: None,
            implicit: false,
        }
    }

    /// The name shown in output: the task's own name, else the module (Ansible's default).
    pub fn display_name(&self) -> String {
        match (&self.name, &self.kind) {
            (Some(n), _) => n.clone(),
            (None, TaskKind::Module(m)) => m.name.clone(),
            (None, TaskKind::Block { .. }) => "block".into(),
            (None, TaskKind::IncludeTasks { .. }) => "include_tasks".into(),
            (None, TaskKind::IncludeRole { .. }) => "include_role".into(),
            (None, TaskKind::Meta(_)) => "meta".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TaskKind {
    Module(Module),
    Block {
        block: Vec<Task>,
        rescue: Vec<Task>,
        always: Vec<Task>,
    },
    /// `include_tasks`: resolved and loaded when it runs. `file` may be a template.
    IncludeTasks {
        file: String,
        params: Vars,
        /// `apply:` keywords given to every included task.
        #[serde(default)]
        apply: Vars,
    },
    /// `include_role`: loaded when it runs.
    IncludeRole {
        name: String,
        tasks_from: Option<String>,
        vars_from: Option<String>,
        defaults_from: Option<String>,
        handlers_from: Option<String>,
        public: bool,
        params: Vars,
    },
    Meta(String),
}

/// A module call: the canonical short module name and its arguments, unrendered.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Module {
    pub name: String,
    pub args: Vars,
    /// `args: "{{ a_mapping }}"`: a template for more arguments, rendered at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_template: Option<String>,
    /// Where the module's name was written (diagnostics point here, not at the task).
    #[serde(default)]
    pub loc: Loc,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LoopSpec {
    /// `loop:` or `with_items:`/`with_list:` — a template or a literal list.
    Items { value: Value, flatten: bool },
    /// `with_dict:` — each item is `{key, value}`.
    Dict(Value),
    /// `with_fileglob:` — patterns relative to the files search path.
    Fileglob(Value),
    /// `with_sequence:`.
    Sequence(Value),
    /// `with_together:`.
    Together(Value),
    /// `with_nested:`/`with_cartesian:`.
    Nested(Value),
    /// `with_subelements:`.
    Subelements(Value),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoopControl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_var: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_var: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extended: bool,
}

/// A handler: a task with a name and the topics it listens to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Handler {
    pub task: Task,
    pub listen: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let mut p = RunOptions::default();
        p.become_.enabled = Some(Value::Bool(true));
        let s = Secret::new("hunter2");
        let shown = format!("{:?} {:?}", s, Some(&s));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        assert_eq!(
            serde_json::to_value(&p).unwrap()["become"],
            serde_json::json!({"become": true})
        );
    }

    #[test]
    fn inner_become_keywords_win_field_by_field() {
        let outer = Become {
            enabled: Some(Value::Bool(true)),
            user: Some("postgres".into()),
            ..Default::default()
        };
        let inner = Become {
            user: Some("nobody".into()),
            ..Default::default()
        };
        let b = inner.over(&outer);
        assert_eq!(b.enabled, Some(Value::Bool(true)));
        assert_eq!(b.user, Some("nobody".into()));
        assert_eq!(b.method, None);
    }
}
