//! Tasks: keywords, module calls, blocks, imports and includes.

use std::path::Path;

use tend_proto::{Become, Handler, LoopControl, LoopSpec, Module, Task, TaskKind, Value, Vars};

use super::{kv, Loader, RoleScope};
use crate::diag::Diag;
use crate::yaml::{Node, NodeValue};

/// Modules whose string form is a command line rather than `k=v` pairs.
const FREE_FORM: &[&str] = &["command", "shell", "raw", "script"];

/// Keywords ansible-core knows that tend refuses rather than ignores, with the reason.
/// The task keywords tend reads (besides the module call). Listed in docs/supported.md, checked by a test there.
pub const TASK_KEYWORDS: &[&str] = &[
    "name",
    "when",
    "loop",
    "loop_control",
    "register",
    "until",
    "retries",
    "delay",
    "notify",
    "listen",
    "tags",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "any_errors_fatal",
    "check_mode",
    "diff",
    "no_log",
    "vars",
    "environment",
    "delegate_to",
    "delegate_facts",
    "run_once",
    "throttle",
    "args",
    "block",
    "rescue",
    "always",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "action",
    "local_action",
];

/// The `with_*` loops tend runs.
pub const LOOP_KEYWORDS: &[&str] = &[
    "with_items",
    "with_list",
    "with_dict",
    "with_fileglob",
    "with_sequence",
    "with_together",
    "with_nested",
    "with_cartesian",
    "with_subelements",
];

pub const REFUSED: &[(&str, &str)] = &[
    (
        "async",
        "asynchronous tasks are not supported yet; run the task synchronously",
    ),
    (
        "poll",
        "asynchronous tasks are not supported yet; run the task synchronously",
    ),
    (
        "connection",
        "per-task connections are not supported yet; set ansible_connection in the inventory",
    ),
    (
        "remote_user",
        "remote users arrive with SSH hosts; remove it for local runs",
    ),
    ("timeout", "task timeouts are not supported yet"),
    ("debugger", "the task debugger is not supported"),
    ("module_defaults", "module_defaults is not supported yet"),
    (
        "collections",
        "collections are not supported; use ansible.builtin modules by name",
    ),
    ("port", "per-task ports arrive with SSH hosts"),
];

pub(super) struct TaskParser<'a> {
    pub loader: &'a Loader,
    pub roles: &'a mut RoleScope,
    /// Directory relative imports are resolved from.
    pub base_dir: &'a Path,
    /// Role the tasks belong to.
    pub role: Option<usize>,
    /// How deep static imports are nested (to stop import cycles).
    pub depth: usize,
}

impl TaskParser<'_> {
    pub fn tasks(&mut self, node: &Node, errors: &mut Vec<Diag>) -> Vec<Task> {
        let items = match &node.value {
            NodeValue::Null => return Vec::new(),
            NodeValue::Seq(items) => items,
            _ => {
                errors.push(
                    Diag::new(
                        node.loc.clone(),
                        format!("a task list must be a list, not {}", node.kind()),
                    )
                    .with_hint("write tasks as a YAML list: `- name: …`"),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match self.task(item, errors) {
                Ok(mut tasks) => out.append(&mut tasks),
                Err(e) => errors.push(e),
            }
        }
        out
    }

    /// Parses one task entry. Static imports expand to several tasks.
    fn task(&mut self, node: &Node, errors: &mut Vec<Diag>) -> Result<Vec<Task>, Diag> {
        let Some(map) = node.as_map() else {
            return Err(Diag::new(
                node.loc.clone(),
                format!("a task must be a mapping, not {}", node.kind()),
            )
            .with_hint("each task is a mapping like `- name: …\\n  module: args`"));
        };
        let mut task = Task::new(TaskKind::Meta(String::new()), node.loc.clone());
        task.role = self.role;
        let mut action: Option<(&Node, &Node)> = None;
        let mut args_kw: Option<&Node> = None;
        let mut block: Option<&Node> = None;
        let mut rescue: Option<&Node> = None;
        let mut always: Option<&Node> = None;
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                return Err(Diag::new(k.loc.clone(), "task keys must be strings"));
            };
            if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == key) {
                return Err(Diag::new(
                    k.loc.clone(),
                    format!("task keyword `{key}` is not supported by tend"),
                )
                .with_hint(*why));
            }
            match key {
                "name" => task.name = Some(scalar(v)?),
                "when" => task.when = conditions(v),
                "loop" => set_loop(
                    &mut task,
                    k,
                    LoopSpec::Items {
                        value: v.to_value(),
                        flatten: false,
                    },
                )?,
                "loop_control" => task.loop_control = loop_control(v)?,
                "register" => task.register = Some(scalar(v)?),
                "until" => task.until = conditions(v),
                "retries" => task.retries = Some(v.to_value()),
                "delay" => task.delay = Some(v.to_value()),
                "notify" => task.notify = string_list(v)?,
                "listen" => {} // read by the handler parser
                "tags" => task.tags = tag_list(v)?,
                "changed_when" => task.changed_when = Some(conditions(v)),
                "failed_when" => task.failed_when = Some(conditions(v)),
                "ignore_errors" => task.ignore_errors = Some(v.to_value()),
                "any_errors_fatal" => task.any_errors_fatal = Some(v.to_value()),
                "ignore_unreachable" => {}
                "check_mode" => task.check_mode = Some(v.to_value()),
                "diff" => task.diff = Some(v.to_value()),
                "no_log" => task.no_log = Some(v.to_value()),
                "vars" => task.vars = mapping(v, "vars")?,
                "environment" => task.environment = Some(v.to_value()),
                "delegate_to" => task.delegate_to = Some(scalar(v)?),
                "delegate_facts" => task.delegate_facts = Some(v.to_value()),
                "run_once" => task.run_once = Some(v.to_value()),
                "throttle" => task.throttle = Some(throttle_of(v)?),
                "args" => args_kw = Some(v),
                "block" => block = Some(v),
                "rescue" => rescue = Some(v),
                "always" => always = Some(v),
                _ if become_keyword(&mut task.become_, key, v)? => {}
                "action" | "local_action" => {
                    if action.is_some() {
                        return Err(conflict(k, action));
                    }
                    action = Some((k, v));
                }
                _ if key.starts_with("with_") => {
                    let spec = with_loop(key, v).ok_or_else(|| {
                        Diag::new(k.loc.clone(), format!("loop `{key}` is not supported by tend"))
                            .with_hint("supported: loop, with_items, with_list, with_dict, with_fileglob, with_sequence, with_together, with_nested, with_subelements")
                    })?;
                    set_loop(&mut task, k, spec)?;
                }
                _ => {
                    if action.is_some() {
                        return Err(conflict(k, action));
                    }
                    action = Some((k, v));
                }
            }
        }

        if let Some(b) = block {
            if let Some((k, _)) = action {
                return Err(Diag::new(
                    k.loc.clone(),
                    format!("`{}` cannot be used in a block", k.as_str().unwrap_or("?")),
                )
                .with_hint(
                    "a block holds tasks under `block:`; move the module into one of them",
                ));
            }
            let block = self.tasks(b, errors);
            let rescue = rescue.map(|r| self.tasks(r, errors)).unwrap_or_default();
            let always = always.map(|a| self.tasks(a, errors)).unwrap_or_default();
            task.kind = TaskKind::Block {
                block,
                rescue,
                always,
            };
            return Ok(vec![task]);
        }
        if let Some(k) = rescue.or(always) {
            return Err(Diag::new(k.loc.clone(), "`rescue`/`always` need a `block`"));
        }

        let Some((mk, mv)) = action else {
            return Err(
                Diag::new(node.loc.clone(), "no module or action in this task").with_hint(
                    "a task needs exactly one module, e.g. `copy:` or `ansible.builtin.file:`",
                ),
            );
        };
        let (name, mut args) = module_call(mk, mv)?;
        let mut args_template = match args.remove(ARGS_TEMPLATE_KEY) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        if let Some(a) = args_kw {
            match &a.value {
                NodeValue::Str(s) if crate::Templar::is_template(s) => {
                    args_template = Some(s.clone())
                }
                _ => {
                    for (k, v) in mapping(a, "args")? {
                        args.entry(k).or_insert(v);
                    }
                }
            }
        }
        if mk.as_str() == Some("local_action") {
            task.delegate_to = Some("localhost".into());
        }
        if task.any_errors_fatal.is_some()
            && matches!(
                name.as_str(),
                "include_tasks" | "import_tasks" | "include_role" | "import_role"
            )
        {
            return Err(Diag::new(
                mk.loc.clone(),
                format!("'any_errors_fatal' is not a valid attribute for {name}"),
            )
            .with_hint("set any_errors_fatal on the play, or on a block around the include"));
        }
        match name.as_str() {
            "import_tasks" => self.import_tasks(task, &args, mk, errors),
            "import_role" => self.import_role(task, &args, mk, errors),
            "include_tasks" | "include" => {
                if name == "include" {
                    return Err(Diag::new(
                        mk.loc.clone(),
                        "`include` was removed from ansible-core",
                    )
                    .with_hint("use include_tasks or import_tasks"));
                }
                let file = arg_str(&args, &["file", "_raw_params"])
                    .ok_or_else(|| Diag::new(mv.loc.clone(), "include_tasks needs a file name"))?;
                let apply = match args.get("apply") {
                    Some(Value::Object(m)) => m.clone(),
                    None => Vars::new(),
                    Some(_) => {
                        return Err(Diag::new(
                            mv.loc.clone(),
                            "`apply` must be a mapping of task keywords",
                        ))
                    }
                };
                task.kind = TaskKind::IncludeTasks {
                    file,
                    params: std::mem::take(&mut task.vars),
                    apply,
                };
                Ok(vec![task])
            }
            "include_role" => {
                let name = arg_str(&args, &["name", "role"])
                    .ok_or_else(|| Diag::new(mv.loc.clone(), "include_role needs `name`"))?;
                task.kind = TaskKind::IncludeRole {
                    name,
                    tasks_from: arg_str(&args, &["tasks_from"]),
                    vars_from: arg_str(&args, &["vars_from"]),
                    defaults_from: arg_str(&args, &["defaults_from"]),
                    handlers_from: arg_str(&args, &["handlers_from"]),
                    public: matches!(args.get("public"), Some(Value::Bool(true))),
                    params: std::mem::take(&mut task.vars),
                };
                Ok(vec![task])
            }
            "meta" => {
                let what = arg_str(&args, &["_raw_params", "free_form"]).ok_or_else(|| {
                    Diag::new(
                        mv.loc.clone(),
                        "meta needs an action, e.g. `meta: flush_handlers`",
                    )
                })?;
                const METAS: &[&str] = &[
                    "flush_handlers",
                    "end_play",
                    "end_host",
                    "noop",
                    "clear_facts",
                    "clear_host_errors",
                    "refresh_inventory",
                    "end_batch",
                    "reset_connection",
                ];
                if !METAS.contains(&what.as_str()) {
                    return Err(
                        Diag::new(mv.loc.clone(), format!("invalid meta action `{what}`"))
                            .with_hint(format!("valid: {}", METAS.join(", "))),
                    );
                }
                task.kind = TaskKind::Meta(what);
                Ok(vec![task])
            }
            _ => {
                task.kind = TaskKind::Module(Module {
                    name,
                    args,
                    args_template,
                    loc: mk.loc.clone(),
                });
                Ok(vec![task])
            }
        }
    }

    fn import_tasks(
        &mut self,
        task: Task,
        args: &Vars,
        mk: &Node,
        errors: &mut Vec<Diag>,
    ) -> Result<Vec<Task>, Diag> {
        let file = arg_str(args, &["file", "_raw_params"])
            .ok_or_else(|| Diag::new(mk.loc.clone(), "import_tasks needs a file name"))?;
        if crate::Templar::is_template(&file) {
            return Err(Diag::new(
                mk.loc.clone(),
                "import_tasks is static: its file name cannot be a template",
            )
            .with_hint("use include_tasks for a file name that depends on variables"));
        }
        if self.depth > 50 {
            return Err(Diag::new(
                mk.loc.clone(),
                "imports are nested more than 50 deep (an import cycle?)",
            ));
        }
        let path = self.base_dir.join(&file);
        let text = crate::ctlfs::read_to_string(&path).map_err(|e| {
            Diag::new(
                mk.loc.clone(),
                format!("cannot read {}: {e}", path.display()),
            )
            .with_hint("import_tasks paths are relative to the file that imports them")
        })?;
        let node = crate::yaml::parse(&path.to_string_lossy(), &text)?;
        let dir = path.parent().unwrap_or(self.base_dir).to_path_buf();
        let mut sub = TaskParser {
            loader: self.loader,
            roles: self.roles,
            base_dir: &dir,
            role: self.role,
            depth: self.depth + 1,
        };
        let tasks = sub.tasks(&node, errors);
        Ok(vec![wrap_inherited(task, tasks)])
    }

    fn import_role(
        &mut self,
        task: Task,
        args: &Vars,
        mk: &Node,
        errors: &mut Vec<Diag>,
    ) -> Result<Vec<Task>, Diag> {
        let name = arg_str(args, &["name", "role"])
            .ok_or_else(|| Diag::new(mk.loc.clone(), "import_role needs `name`"))?;
        let tasks_from = arg_str(args, &["tasks_from"]);
        let mut task = task;
        let params = std::mem::take(&mut task.vars);
        let tasks = self.loader.role_tasks(
            self.roles,
            &name,
            params,
            tasks_from.as_deref(),
            &mk.loc,
            self.depth + 1,
            errors,
        )?;
        Ok(vec![wrap_inherited(task, tasks)])
    }
}

/// Wraps tasks in a block that carries the importer's `when`, `tags` and other inherited
/// keywords, the way a static import applies them to every imported task.
pub(super) fn wrap_inherited(mut parent: Task, tasks: Vec<Task>) -> Task {
    parent.kind = TaskKind::Block {
        block: tasks,
        rescue: Vec::new(),
        always: Vec::new(),
    };
    parent.name = None;
    parent.implicit = true;
    parent
}

pub(super) fn handlers(
    parser: &mut TaskParser,
    node: &Node,
    errors: &mut Vec<Diag>,
) -> Vec<Handler> {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            errors.push(Diag::new(
                node.loc.clone(),
                "handlers must be a list of tasks",
            ));
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let listen = item.get("listen").map(string_list).transpose();
        let listen = match listen {
            Ok(l) => l.unwrap_or_default(),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let one = std::slice::from_ref(item);
        let node = Node {
            value: NodeValue::Seq(one.to_vec()),
            loc: item.loc.clone(),
        };
        for task in parser.tasks(&node, errors) {
            flatten_handler(task, &listen, &mut out);
        }
    }
    out
}

/// Handlers imported from a file arrive in an implicit block; each becomes a handler.
fn flatten_handler(task: Task, listen: &[String], out: &mut Vec<Handler>) {
    match task.kind {
        TaskKind::Block { block, .. } if task.implicit => {
            for t in block {
                flatten_handler(t, listen, out);
            }
        }
        _ => out.push(Handler {
            task,
            listen: listen.to_vec(),
        }),
    }
}

fn conflict(k: &Node, prev: Option<(&Node, &Node)>) -> Diag {
    let a = prev.and_then(|(p, _)| p.as_str()).unwrap_or("?");
    let b = k.as_str().unwrap_or("?");
    let near = |w: &str| {
        TASK_KEYWORDS
            .iter()
            .chain(LOOP_KEYWORDS)
            .copied()
            .filter(|kw| edit_distance(kw, w) <= 2 && w.len() > 2)
            .min_by_key(|kw| edit_distance(kw, w))
    };
    match near(b)
        .map(|kw| (b, kw))
        .or_else(|| near(a).map(|kw| (a, kw)))
    {
        Some((typo, kw)) => Diag::new(
            k.loc.clone(),
            format!("conflicting action statements: {a}, {b}"),
        )
        .with_hint(format!(
            "`{typo}` is not a task keyword; did you mean `{kw}`?"
        )),
        None => Diag::new(
            k.loc.clone(),
            format!("conflicting action statements: {a}, {b}"),
        )
        .with_hint("a task runs exactly one module; split it into two tasks"),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Canonical module name and arguments of `module: args`, `action: module args` and
/// `local_action: …`.
fn module_call(k: &Node, v: &Node) -> Result<(String, Vars), Diag> {
    let key = k.as_str().unwrap_or_default();
    let (raw_name, args_node) = if key == "action" || key == "local_action" {
        match &v.value {
            NodeValue::Str(s) => {
                let mut parts = s.trim().splitn(2, char::is_whitespace);
                let m = parts.next().unwrap_or_default().to_string();
                let rest = parts.next().unwrap_or_default().to_string();
                let name = canonical(&m);
                let args = kv::parse_kv(&rest, FREE_FORM.contains(&name.as_str()))
                    .map_err(|e| Diag::new(v.loc.clone(), e))?;
                return Ok((name, args));
            }
            NodeValue::Map(entries) => {
                let module = v.get("module").and_then(Node::as_str).ok_or_else(|| {
                    Diag::new(
                        v.loc.clone(),
                        "`action:` as a mapping needs a `module:` key",
                    )
                })?;
                let mut args = Vars::new();
                for (ek, ev) in entries {
                    if ek.as_str() != Some("module") {
                        args.insert(ek.scalar_string().unwrap_or_default(), ev.to_value());
                    }
                }
                return Ok((canonical(module), args));
            }
            _ => {
                return Err(Diag::new(
                    v.loc.clone(),
                    "`action:` must be a string or a mapping",
                ))
            }
        }
    } else {
        (key, v)
    };
    let name = canonical(raw_name);
    let args = match &args_node.value {
        NodeValue::Null => Vars::new(),
        NodeValue::Map(_) => match args_node.to_value() {
            Value::Object(m) => m,
            _ => Vars::new(),
        },
        NodeValue::Str(s) if is_raw_module(&name) => match kv::parse_kv(s, false) {
            Ok(m)
                if !m.is_empty() && m.keys().all(|k| RAW_MODULE_OPTIONS.contains(&k.as_str())) =>
            {
                m
            }
            _ => {
                let mut m = Vars::new();
                m.insert("_raw_params".into(), Value::String(s.trim().to_string()));
                m
            }
        },
        NodeValue::Str(s) if !FREE_FORM.contains(&name.as_str()) && is_whole_template(s) => {
            let mut m = Vars::new();
            m.insert(
                ARGS_TEMPLATE_KEY.into(),
                Value::String(s.trim().to_string()),
            );
            m
        }
        NodeValue::Str(s) => kv::parse_kv(s, FREE_FORM.contains(&name.as_str()))
            .map_err(|e| Diag::new(args_node.loc.clone(), e))?,
        NodeValue::Bool(_) | NodeValue::Int(_) | NodeValue::Float(_) => {
            let mut m = Vars::new();
            m.insert(
                "_raw_params".into(),
                Value::String(args_node.scalar_string().unwrap_or_default()),
            );
            m
        }
        NodeValue::Seq(_) => {
            return Err(Diag::new(
                args_node.loc.clone(),
                format!(
                    "arguments of `{name}` must be a mapping or a key=value string, not a list"
                ),
            ))
        }
    };
    Ok((name, args))
}

/// Where `module: "{{ a_mapping }}"` is parked until the task is built.
const ARGS_TEMPLATE_KEY: &str = "\u{0}args_template";

fn is_whole_template(s: &str) -> bool {
    let t = s.trim();
    t.starts_with("{{") && t.ends_with("}}") && t[2..t.len() - 2].find("{{").is_none()
}

/// Modules whose single string argument is a raw value (`include_tasks: x.yml`, `meta: …`).
fn is_raw_module(name: &str) -> bool {
    matches!(
        name,
        "include_tasks"
            | "import_tasks"
            | "include_role"
            | "import_role"
            | "meta"
            | "include_vars"
            | "include"
    )
}

/// Options those modules take in `k=v` form; anything else is the raw value.
const RAW_MODULE_OPTIONS: &[&str] = &[
    "file",
    "name",
    "dir",
    "tasks_from",
    "vars_from",
    "defaults_from",
    "handlers_from",
    "public",
    "apply",
    "depth",
    "files_matching",
    "ignore_files",
    "extensions",
    "allow_duplicates",
    "rolespec_validate",
];

/// `ansible.builtin.copy` and `ansible.legacy.copy` are `copy`, and the few collection
/// modules tend provides are their short names (`ansible.posix.authorized_key`,
/// `ansible.posix.sysctl`); other FQCNs stay as written.
pub fn canonical(name: &str) -> String {
    if let Some(short @ ("authorized_key" | "sysctl")) = name.strip_prefix("ansible.posix.") {
        return short.into();
    }
    name.strip_prefix("ansible.builtin.")
        .or_else(|| name.strip_prefix("ansible.legacy."))
        .unwrap_or(name)
        .to_string()
}

fn arg_str(args: &Vars, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match args.get(*k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn set_loop(task: &mut Task, k: &Node, spec: LoopSpec) -> Result<(), Diag> {
    if task.loop_.is_some() {
        return Err(Diag::new(k.loc.clone(), "a task can have only one loop")
            .with_hint("use either `loop:` or one `with_*:`"));
    }
    task.loop_ = Some(spec);
    Ok(())
}

fn with_loop(key: &str, v: &Node) -> Option<LoopSpec> {
    let value = v.to_value();
    Some(match key {
        "with_items" => LoopSpec::Items {
            value,
            flatten: true,
        },
        "with_list" => LoopSpec::Items {
            value,
            flatten: false,
        },
        "with_dict" => LoopSpec::Dict(value),
        "with_fileglob" => LoopSpec::Fileglob(value),
        "with_sequence" => LoopSpec::Sequence(value),
        "with_together" => LoopSpec::Together(value),
        "with_nested" | "with_cartesian" => LoopSpec::Nested(value),
        "with_subelements" => LoopSpec::Subelements(value),
        _ => return None,
    })
}

fn loop_control(v: &Node) -> Result<LoopControl, Diag> {
    let mut lc = LoopControl::default();
    let Some(map) = v.as_map() else {
        return Err(Diag::new(v.loc.clone(), "loop_control must be a mapping"));
    };
    for (k, val) in map {
        match k.as_str().unwrap_or_default() {
            "loop_var" => lc.loop_var = Some(scalar(val)?),
            "index_var" => lc.index_var = Some(scalar(val)?),
            "label" => lc.label = Some(scalar(val)?),
            "pause" => lc.pause = Some(val.to_value()),
            "extended" => lc.extended = matches!(val.value, NodeValue::Bool(true)),
            "extended_allitems" | "break_when" => {
                return Err(Diag::new(
                    k.loc.clone(),
                    format!(
                        "loop_control.{} is not supported yet",
                        k.as_str().unwrap_or_default()
                    ),
                ))
            }
            other => {
                return Err(Diag::new(
                    k.loc.clone(),
                    format!("unknown loop_control option `{other}`"),
                )
                .with_hint("valid: loop_var, index_var, label, pause, extended"))
            }
        }
    }
    Ok(lc)
}

/// The privilege escalation methods tend runs.
pub const BECOME_METHODS: &[&str] = &["sudo", "su"];

/// Reads `become`, `become_user`, `become_method`, `become_flags` or `become_exe` into `b`;
/// false if `key` is none of them. Values stay unrendered (templates are allowed), but a literal
/// method tend does not run is refused here.
pub(super) fn become_keyword(b: &mut Become, key: &str, v: &Node) -> Result<bool, Diag> {
    let slot = match key {
        "become" => &mut b.enabled,
        "become_user" => &mut b.user,
        "become_method" => {
            if let Some(m) = v.as_str() {
                let m = m.strip_prefix("ansible.builtin.").unwrap_or(m);
                if !crate::Templar::is_template(m) && !BECOME_METHODS.contains(&m) {
                    return Err(Diag::new(
                        v.loc.clone(),
                        format!("become_method `{m}` is not supported by tend"),
                    )
                    .with_hint("tend escalates with `sudo` or `su`"));
                }
            }
            &mut b.method
        }
        "become_flags" => &mut b.flags,
        "become_exe" => &mut b.exe,
        _ => return Ok(false),
    };
    match &v.value {
        NodeValue::Map(_) | NodeValue::Seq(_) => {
            return Err(Diag::new(
                v.loc.clone(),
                format!("`{key}` must be a single value, not {}", v.kind()),
            ))
        }
        NodeValue::Null => *slot = None,
        _ => *slot = Some(v.to_value()),
    }
    Ok(true)
}

/// `throttle`: a whole number (0: no limit) or a template that renders to one.
pub(super) fn throttle_of(v: &Node) -> Result<Value, Diag> {
    match &v.value {
        NodeValue::Int(i) if *i >= 0 => Ok(v.to_value()),
        NodeValue::Str(s) if crate::Templar::is_template(s) => Ok(v.to_value()),
        NodeValue::Str(s) if s.trim().parse::<u64>().is_ok() => Ok(v.to_value()),
        _ => Err(Diag::new(
            v.loc.clone(),
            "throttle must be a whole number of hosts (0: no limit)",
        )
        .with_hint("e.g. `throttle: 2`: at most two hosts run the task at once")),
    }
}

pub(super) fn scalar(v: &Node) -> Result<String, Diag> {
    v.scalar_string().ok_or_else(|| {
        Diag::new(
            v.loc.clone(),
            format!("expected a string here, not {}", v.kind()),
        )
    })
}

pub(super) fn conditions(v: &Node) -> Vec<Value> {
    match &v.value {
        NodeValue::Seq(items) => items.iter().map(Node::to_value).collect(),
        NodeValue::Null => Vec::new(),
        _ => vec![v.to_value()],
    }
}

pub(super) fn string_list(v: &Node) -> Result<Vec<String>, Diag> {
    match &v.value {
        NodeValue::Seq(items) => items.iter().map(scalar).collect(),
        NodeValue::Null => Ok(Vec::new()),
        _ => Ok(vec![scalar(v)?]),
    }
}

/// Tags: a list, or a comma-separated string.
pub(super) fn tag_list(v: &Node) -> Result<Vec<String>, Diag> {
    Ok(string_list(v)?
        .into_iter()
        .flat_map(|s| {
            s.split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect())
}

pub(super) fn mapping(v: &Node, what: &str) -> Result<Vars, Diag> {
    match v.to_value() {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Vars::new()),
        _ => Err(Diag::new(
            v.loc.clone(),
            format!("`{what}` must be a mapping, not {}", v.kind()),
        )),
    }
}
