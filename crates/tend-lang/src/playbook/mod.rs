//! Playbooks, plays and roles, parsed with locations.

pub mod kv;
pub mod role;
mod task;

use std::path::{Path, PathBuf};

use tend_proto::{Handler, Loc, RoleInfo, Task, TaskKind, Value, Vars};

use crate::diag::{Diag, Diags};
use crate::yaml::{self, Node, NodeValue};

use task::TaskParser;
pub use task::{
    canonical, BECOME_METHODS, LOOP_KEYWORDS, REFUSED as REFUSED_TASK_KEYWORDS, TASK_KEYWORDS,
};

/// A parsed playbook: its plays in order, `import_playbook` already expanded.
#[derive(Clone, Debug)]
pub struct Playbook {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Clone, Debug)]
pub struct Play {
    pub name: String,
    pub loc: Loc,
    /// Host pattern, possibly a template.
    pub hosts: String,
    pub gather_facts: bool,
    pub vars: Vars,
    /// `vars_files` entries: a path (maybe a template) or a list of candidates (first found).
    pub vars_files: Vec<(Value, Loc)>,
    /// Directory of the playbook file this play came from.
    pub dir: PathBuf,
    /// Every role this play uses statically; tasks point into this list.
    pub roles: Vec<RoleInfo>,
    /// All tasks in run order, wrapped in one implicit block that carries play keywords, with
    /// implicit handler flushes between pre_tasks, roles+tasks and post_tasks.
    pub tasks: Vec<Task>,
    pub handlers: Vec<Handler>,
    pub force_handlers: bool,
    pub tags: Vec<String>,
    /// The play's `connection:` (only `local` is accepted).
    pub connection: Option<String>,
    /// How the play's hosts are split and stopped: `serial`, `max_fail_percentage`,
    /// `any_errors_fatal`, `order`.
    pub rollout: Rollout,
    /// tend's `health:` gate: tasks run on each batch's hosts after the batch converged, in
    /// one implicit block that carries the play's keywords (as `tasks`). Empty: no gate.
    pub health: Vec<Task>,
    /// tend's `needs:` (the plays this one waits for, by name); `None`: the play comes after
    /// the one before it in the file, as in Ansible.
    pub needs: Option<Needs>,
}

/// A play's `needs:` as written: play names, and where the keyword stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Needs {
    pub names: Vec<(String, Loc)>,
    pub loc: Loc,
}

/// A play's batch keywords, as written (the engine computes the batches).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollout {
    /// `serial`: batch sizes; the last one repeats. Empty: one batch of every host.
    pub serial: Vec<BatchSize>,
    /// `max_fail_percentage`: the play stops when more than this share of a batch failed.
    pub max_fail_percentage: Option<f64>,
    /// `any_errors_fatal`: the first failed host ends the play for every host.
    pub any_errors_fatal: bool,
    /// `order`: in which order hosts are batched and run.
    pub order: HostOrder,
}

/// One `serial` entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchSize {
    /// A number of hosts (0 or less: all remaining hosts).
    Count(i64),
    /// A percentage of the play's hosts, rounded down, at least 1.
    Percent(i64),
}

/// The play keyword `order`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostOrder {
    #[default]
    Inventory,
    ReverseInventory,
    Sorted,
    ReverseSorted,
    Shuffle,
}

/// Finds files and roles relative to a playbook.
#[derive(Clone, Debug)]
pub struct Loader {
    pub playbook_dir: PathBuf,
    pub roles_paths: Vec<PathBuf>,
}

/// Roles and handlers collected while loading one play.
#[derive(Default, Debug)]
pub struct RoleScope {
    pub roles: Vec<RoleInfo>,
    pub handlers: Vec<Handler>,
    /// Roles that already ran in `roles:` (name, params) — a role runs once per play with the
    /// same parameters, as in Ansible.
    ran: Vec<(String, Vars)>,
}

impl RoleScope {
    /// A scope that starts with the roles a program already knows.
    pub fn with_roles(roles: Vec<RoleInfo>) -> Self {
        RoleScope {
            roles,
            ..Default::default()
        }
    }
}

impl Loader {
    pub fn new(playbook_dir: &Path) -> Self {
        let mut roles_paths = vec![playbook_dir.join("roles")];
        if let Ok(p) = std::env::var("ANSIBLE_ROLES_PATH") {
            // Absolute, so the same directories are meant wherever the program runs.
            roles_paths.extend(
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(|s| std::path::absolute(s).unwrap_or_else(|_| PathBuf::from(s))),
            );
        }
        roles_paths.push(playbook_dir.to_path_buf());
        Loader {
            playbook_dir: playbook_dir.to_path_buf(),
            roles_paths,
        }
    }

    /// A loader with the role search path the controller computed (a remote host's
    /// environment has no say in where the controller's roles are).
    pub fn with_roles_paths(playbook_dir: &Path, roles_paths: Vec<PathBuf>) -> Self {
        Loader {
            playbook_dir: playbook_dir.to_path_buf(),
            roles_paths,
        }
    }

    /// Reads and parses a task file (for `include_tasks` at run time).
    pub fn load_tasks_file(
        &self,
        path: &Path,
        role: Option<usize>,
        roles: &mut RoleScope,
    ) -> Result<Vec<Task>, Diags> {
        let text = crate::ctlfs::read_to_string(path).map_err(|e| {
            Diag::new(
                Loc::new(path.to_string_lossy().as_ref(), 0, 0),
                format!("cannot read task file: {e}"),
            )
        })?;
        let node = yaml::parse(&path.to_string_lossy(), &text)?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut errors = Vec::new();
        let mut p = TaskParser {
            loader: self,
            roles,
            base_dir: &dir,
            role,
            depth: 0,
        };
        let tasks = p.tasks(&node, &mut errors);
        if errors.is_empty() {
            Ok(tasks)
        } else {
            Err(Diags(errors))
        }
    }
}

/// Reads a playbook file.
pub fn load(path: &Path) -> Result<Playbook, Diags> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut plays = Vec::new();
    let mut errors = Vec::new();
    load_into(&path, &dir, &mut plays, &mut errors, 0);
    if errors.is_empty() {
        Ok(Playbook { path, dir, plays })
    } else {
        Err(Diags(errors))
    }
}

fn load_into(path: &Path, dir: &Path, plays: &mut Vec<Play>, errors: &mut Vec<Diag>, depth: usize) {
    let file = path.to_string_lossy().to_string();
    let text = match crate::ctlfs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(
                Diag::new(
                    Loc::new(file.as_str(), 0, 0),
                    format!("cannot read playbook: {e}"),
                )
                .with_hint("check the path; playbooks are YAML files like site.yml"),
            );
            return;
        }
    };
    let node = match yaml::parse(&file, &text) {
        Ok(n) => n,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    let Some(items) = node.as_seq() else {
        errors.push(
            Diag::new(
                node.loc.clone(),
                format!("a playbook must be a list of plays, not {}", node.kind()),
            )
            .with_hint("start each play with `- hosts: …`"),
        );
        return;
    };
    for item in items {
        if let Some(imp) = item
            .get("import_playbook")
            .or_else(|| item.get("ansible.builtin.import_playbook"))
        {
            let Some(rel) = imp.as_str() else {
                errors.push(Diag::new(
                    imp.loc.clone(),
                    "import_playbook needs a file name",
                ));
                continue;
            };
            if depth > 20 {
                errors.push(Diag::new(
                    imp.loc.clone(),
                    "import_playbook is nested too deep (a cycle?)",
                ));
                continue;
            }
            let p = dir.join(rel);
            let d = p.parent().unwrap_or(dir).to_path_buf();
            load_into(&p, &d, plays, errors, depth + 1);
            continue;
        }
        match play(item, dir, errors) {
            Ok(p) => plays.push(p),
            Err(e) => errors.push(e),
        }
    }
}

/// Play keywords tend refuses, with the reason.
/// The play keywords tend reads (`connection` only as `local`).
/// Listed in docs/supported.md, checked by a test there.
pub const PLAY_KEYWORDS: &[&str] = &[
    "name",
    "hosts",
    "gather_facts",
    "gather_subset",
    "gather_timeout",
    "fact_path",
    "vars",
    "vars_files",
    "pre_tasks",
    "roles",
    "tasks",
    "post_tasks",
    "handlers",
    "tags",
    "force_handlers",
    "serial",
    "max_fail_percentage",
    "any_errors_fatal",
    "order",
    "throttle",
    "run_once",
    "health",
    "environment",
    "check_mode",
    "diff",
    "no_log",
    "ignore_errors",
    "ignore_unreachable",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "connection",
    "needs",
];

pub const REFUSED_PLAY: &[(&str, &str)] = &[
    (
        "vars_prompt",
        "interactive prompts are not supported; pass values with -e",
    ),
    (
        "strategy",
        "tend runs every host at full speed; remove `strategy`",
    ),
    ("remote_user", "remote users arrive with SSH hosts"),
    ("module_defaults", "module_defaults is not supported yet"),
    (
        "collections",
        "collections are not supported; use ansible.builtin modules",
    ),
    ("debugger", "the task debugger is not supported"),
    ("timeout", "task timeouts are not supported yet"),
];

fn play(node: &Node, dir: &Path, errors: &mut Vec<Diag>) -> Result<Play, Diag> {
    let Some(map) = node.as_map() else {
        return Err(Diag::new(
            node.loc.clone(),
            format!("a play must be a mapping, not {}", node.kind()),
        ));
    };
    let loader = Loader::new(dir);
    let mut play = Play {
        name: String::new(),
        loc: node.loc.clone(),
        hosts: String::new(),
        gather_facts: true,
        vars: Vars::new(),
        vars_files: Vec::new(),
        dir: dir.to_path_buf(),
        roles: Vec::new(),
        tasks: Vec::new(),
        handlers: Vec::new(),
        force_handlers: false,
        tags: Vec::new(),
        connection: None,
        rollout: Rollout::default(),
        health: Vec::new(),
        needs: None,
    };
    let mut wrapper = Task::new(TaskKind::Meta(String::new()), node.loc.clone());
    wrapper.implicit = true;
    let mut sections: [Option<&Node>; 5] = [None; 5]; // pre_tasks, roles, tasks, post_tasks, handlers
    let mut health: Option<&Node> = None;
    let mut has_hosts = false;
    for (k, v) in map {
        let key = k.as_str().unwrap_or_default();
        if let Some((_, why)) = REFUSED_PLAY.iter().find(|(n, _)| *n == key) {
            return Err(Diag::new(
                k.loc.clone(),
                format!("play keyword `{key}` is not supported by tend yet"),
            )
            .with_hint(*why));
        }
        match key {
            "name" => play.name = task::scalar(v)?,
            "hosts" => {
                has_hosts = true;
                play.hosts = match &v.value {
                    NodeValue::Seq(items) => items
                        .iter()
                        .map(task::scalar)
                        .collect::<Result<Vec<_>, _>>()?
                        .join(":"),
                    _ => task::scalar(v)?,
                };
            }
            "gather_facts" => play.gather_facts = bool_of(v)?,
            "gather_subset" | "gather_timeout" | "fact_path" => {}
            "vars" => {
                play.vars = match &v.value {
                    // A list of mappings is accepted by Ansible too.
                    NodeValue::Seq(items) => {
                        let mut m = Vars::new();
                        for i in items {
                            m.extend(task::mapping(i, "vars")?);
                        }
                        m
                    }
                    _ => task::mapping(v, "vars")?,
                }
            }
            "vars_files" => match &v.value {
                NodeValue::Seq(items) => {
                    play.vars_files = items
                        .iter()
                        .map(|i| (i.to_value(), i.loc.clone()))
                        .collect()
                }
                NodeValue::Str(_) => play.vars_files = vec![(v.to_value(), v.loc.clone())],
                NodeValue::Null => {}
                _ => {
                    return Err(Diag::new(
                        v.loc.clone(),
                        "vars_files must be a list of file names",
                    ))
                }
            },
            "pre_tasks" => sections[0] = Some(v),
            "roles" => sections[1] = Some(v),
            "tasks" => sections[2] = Some(v),
            "post_tasks" => sections[3] = Some(v),
            "handlers" => sections[4] = Some(v),
            "health" => health = Some(v),
            "throttle" => wrapper.throttle = Some(task::throttle_of(v)?),
            "run_once" => wrapper.run_once = Some(v.to_value()),
            "tags" => play.tags = task::tag_list(v)?,
            "force_handlers" => play.force_handlers = bool_of(v)?,
            "serial" => play.rollout.serial = serial_of(v)?,
            "max_fail_percentage" => play.rollout.max_fail_percentage = Some(percent_of(v)?),
            "any_errors_fatal" => play.rollout.any_errors_fatal = bool_of(v)?,
            "order" => play.rollout.order = order_of(v)?,
            "needs" => play.needs = Some(needs_of(k, v)?),
            "environment" => wrapper.environment = Some(v.to_value()),
            "check_mode" => wrapper.check_mode = Some(v.to_value()),
            "diff" => wrapper.diff = Some(v.to_value()),
            "no_log" => wrapper.no_log = Some(v.to_value()),
            "ignore_errors" => wrapper.ignore_errors = Some(v.to_value()),
            "ignore_unreachable" => {}
            _ if task::become_keyword(&mut wrapper.become_, key, v)? => {}
            "connection" => {
                if v.as_str() != Some("local") {
                    return Err(Diag::new(
                        v.loc.clone(),
                        "only `connection: local` is supported for now",
                    ));
                }
                play.connection = Some("local".into());
            }
            other => {
                return Err(Diag::new(k.loc.clone(), format!("`{other}` is not a valid play keyword"))
                    .with_hint("play keywords: name, hosts, gather_facts, vars, vars_files, pre_tasks, roles, tasks, post_tasks, handlers, tags, environment, check_mode, diff, no_log, ignore_errors, force_handlers, serial, max_fail_percentage, any_errors_fatal, order, throttle, run_once, health, needs, become, become_user, become_method"));
            }
        }
    }
    if !has_hosts {
        return Err(Diag::new(node.loc.clone(), "this play has no `hosts:`")
            .with_hint("add `hosts: all` or a group name"));
    }
    if play.name.is_empty() {
        play.name = play.hosts.clone();
    }

    let mut scope = RoleScope::default();
    let mut body = Vec::new();
    {
        let mut parser = TaskParser {
            loader: &loader,
            roles: &mut scope,
            base_dir: dir,
            role: None,
            depth: 0,
        };
        if let Some(n) = sections[0] {
            body.extend(parser.tasks(n, errors));
        }
        body.push(flush(&node.loc));
        if let Some(n) = sections[1] {
            body.extend(role::roles_section(&loader, parser.roles, n, errors));
        }
        if let Some(n) = sections[2] {
            body.extend(parser.tasks(n, errors));
        }
        body.push(flush(&node.loc));
        if let Some(n) = sections[3] {
            body.extend(parser.tasks(n, errors));
        }
        body.push(flush(&node.loc));
        if let Some(n) = sections[4] {
            let own = task::handlers(&mut parser, n, errors);
            parser.roles.handlers.extend(own);
        }
        if let Some(n) = health {
            let mut gate = parser.tasks(n, errors);
            if !gate.is_empty() {
                gate.push(flush(&node.loc));
                let mut w = wrapper.clone();
                // A gate runs whatever `--tags` selects: a rollout of some tags is still gated.
                w.tags = play.tags.clone();
                w.tags.push("always".into());
                w.kind = TaskKind::Block {
                    block: gate,
                    rescue: Vec::new(),
                    always: Vec::new(),
                };
                play.health = vec![w];
            }
        }
    }
    wrapper.tags = play.tags.clone();
    wrapper.kind = TaskKind::Block {
        block: body,
        rescue: Vec::new(),
        always: Vec::new(),
    };
    play.tasks = vec![wrapper];
    play.roles = scope.roles;
    play.handlers = scope.handlers;
    Ok(play)
}

fn flush(loc: &Loc) -> Task {
    let mut t = Task::new(TaskKind::Meta("flush_handlers".into()), loc.clone());
    t.implicit = true;
    t
}

fn bool_of(v: &Node) -> Result<bool, Diag> {
    match &v.value {
        NodeValue::Bool(b) => Ok(*b),
        NodeValue::Str(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" | "y" => Ok(true),
            "no" | "false" | "off" | "0" | "n" => Ok(false),
            _ => Err(Diag::new(
                v.loc.clone(),
                format!("expected a boolean, not `{s}`"),
            )),
        },
        NodeValue::Int(i) => Ok(*i != 0),
        _ => Err(Diag::new(
            v.loc.clone(),
            format!("expected a boolean, not {}", v.kind()),
        )),
    }
}

/// Reads a vars file (YAML or JSON) as a mapping.
pub fn load_vars_file(path: &Path) -> Result<Vars, Diag> {
    let file = path.to_string_lossy().to_string();
    let text = crate::ctlfs::read_to_string(path).map_err(|e| {
        Diag::new(
            Loc::new(file.as_str(), 0, 0),
            format!("cannot read vars file: {e}"),
        )
    })?;
    let node = yaml::parse(&file, &text)?;
    match node.to_value() {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Vars::new()),
        _ => Err(Diag::new(
            node.loc.clone(),
            "a vars file must hold a mapping of variable names to values",
        )),
    }
}

#[cfg(test)]
mod tests;

/// `serial: 2`, `serial: "30%"`, `serial: [1, "25%", "100%"]`.
fn serial_of(v: &Node) -> Result<Vec<BatchSize>, Diag> {
    match &v.value {
        NodeValue::Seq(items) => items.iter().map(batch_size_of).collect(),
        NodeValue::Null => Ok(Vec::new()),
        _ => Ok(vec![batch_size_of(v)?]),
    }
}

fn batch_size_of(v: &Node) -> Result<BatchSize, Diag> {
    let bad = || {
        Diag::new(
            v.loc.clone(),
            format!(
                "`serial` takes a number of hosts or a percentage such as \"25%\", not {}",
                v.kind()
            ),
        )
        .with_hint("serial: 2, serial: \"30%\" or serial: [1, \"25%\", \"100%\"]")
    };
    let text = match &v.value {
        NodeValue::Int(i) => return Ok(BatchSize::Count(*i)),
        NodeValue::Str(s) => s.trim().to_string(),
        _ => return Err(bad()),
    };
    if text.contains("{{") || text.contains("{%") {
        return Err(
            Diag::new(v.loc.clone(), "tend does not template `serial` yet")
                .with_hint("write the number or percentage literally"),
        );
    }
    if let Some(p) = text.strip_suffix('%') {
        return p
            .trim()
            .parse::<i64>()
            .map(BatchSize::Percent)
            .map_err(|_| bad());
    }
    text.parse::<i64>().map(BatchSize::Count).map_err(|_| bad())
}

/// `max_fail_percentage: 30` (a number; Ansible also takes "30%" strings in some versions).
fn percent_of(v: &Node) -> Result<f64, Diag> {
    let n = match &v.value {
        NodeValue::Int(i) => Some(*i as f64),
        NodeValue::Float(f) => Some(*f),
        NodeValue::Str(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
        _ => None,
    };
    n.ok_or_else(|| {
        Diag::new(
            v.loc.clone(),
            format!(
                "`max_fail_percentage` takes a number from 0 to 100, not {}",
                v.kind()
            ),
        )
    })
}

fn order_of(v: &Node) -> Result<HostOrder, Diag> {
    Ok(match v.as_str().unwrap_or_default() {
        "inventory" => HostOrder::Inventory,
        "reverse_inventory" => HostOrder::ReverseInventory,
        "sorted" => HostOrder::Sorted,
        "reverse_sorted" => HostOrder::ReverseSorted,
        "shuffle" => HostOrder::Shuffle,
        _ => return Err(Diag::new(
            v.loc.clone(),
            "`order` must be one of inventory, reverse_inventory, sorted, reverse_sorted, shuffle",
        )),
    })
}

/// `needs: db`, `needs: [db, cache]`, `needs: []`.
fn needs_of(key: &Node, v: &Node) -> Result<Needs, Diag> {
    let name = |i: &Node| match &i.value {
        NodeValue::Str(s) if !s.trim().is_empty() => Ok((s.trim().to_string(), i.loc.clone())),
        _ => Err(Diag::new(
            i.loc.clone(),
            format!("`needs` takes play names, not {}", i.kind()),
        )
        .with_hint("needs: [db, cache] waits for the plays named `db` and `cache`")),
    };
    let names = match &v.value {
        NodeValue::Seq(items) => items.iter().map(name).collect::<Result<Vec<_>, _>>()?,
        _ => vec![name(v)?],
    };
    Ok(Needs {
        names,
        loc: key.loc.clone(),
    })
}
