//! Modules that act on the run itself rather than on the host: `debug`, `set_fact`, `assert`,
//! `fail`, `include_vars`, `ping`.

use std::path::{Path, PathBuf};

use tend_lang::ctlfs;
use tend_lang::{Scope, Templar};
use tend_proto::{Value, Vars};
use tend_resources::{Args, ModuleOutput};

/// Module names the agent runs itself (plus the task-level ones the loader turns into task
/// kinds: include_tasks, import_tasks, include_role, import_role, meta).
pub const BUILTIN_MODULES: &[&str] = &[
    "debug",
    "set_fact",
    "assert",
    "fail",
    "include_vars",
    "ping",
    "wait_for_connection",
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "meta",
];

pub(crate) enum Outcome {
    Output(ModuleOutput),
    SetFacts(Vars, ModuleOutput),
    IncludeVars(Vars, ModuleOutput),
}

pub(crate) fn run(
    name: &str,
    args: &Vars,
    scope: &Scope,
    templar: &Templar,
    search: &[PathBuf],
    verbosity: u8,
    check: bool,
) -> Result<Outcome, String> {
    let a = Args::new(args.clone());
    match name {
        "wait_for_connection" => wait_for_connection(&a, check),
        "debug" => {
            let wanted = a.int("verbosity").map_err(|e| e.0)?.unwrap_or(0);
            if wanted > i64::from(verbosity) {
                let mut out = ModuleOutput {
                    skipped: true,
                    ..Default::default()
                };
                out.fields.insert(
                    "skipped_reason".into(),
                    Value::String("Verbosity threshold not met.".into()),
                );
                return Ok(Outcome::Output(out));
            }
            debug(&a, scope, templar)
        }
        "set_fact" => {
            let mut facts = Vars::new();
            for (k, v) in args {
                if k == "cacheable" {
                    continue;
                }
                if k == "_raw_params" {
                    return Err("set_fact takes key=value pairs or a mapping".into());
                }
                if !is_identifier(k) {
                    return Err(format!("The variable name '{k}' is not valid. Variables must start with a letter or underscore character, and contain only letters, numbers and underscores."));
                }
                facts.insert(k.clone(), v.clone());
            }
            if facts.is_empty() {
                return Err("No key/value pairs provided, at least one is required for this action to succeed".into());
            }
            let out = ModuleOutput::ok().field("ansible_facts", Value::Object(facts.clone()));
            Ok(Outcome::SetFacts(facts, out))
        }
        "fail" => {
            a.check_known("fail", &["msg"]).map_err(|e| e.0)?;
            let msg = a
                .str("msg")
                .map_err(|e| e.0)?
                .unwrap_or_else(|| "Failed as requested from task".into());
            Ok(Outcome::Output(ModuleOutput::failed(msg)))
        }
        "assert" => assert(&a, scope, templar),
        "ping" => {
            let data = a
                .str("data")
                .map_err(|e| e.0)?
                .unwrap_or_else(|| "pong".into());
            if data == "crash" {
                return Err("boom".into());
            }
            Ok(Outcome::Output(ModuleOutput::ok().field("ping", data)))
        }
        "include_vars" => include_vars(&a, search),
        other => Err(format!("`{other}` cannot be used here")),
    }
}

/// `wait_for_connection`: the agent answering is the connection working end to end (what
/// ansible-core's ping test proves), so after `delay` it succeeds with the seconds elapsed.
/// A host that reboots ends its session: that is where a reconnecting wait belongs (the
/// controller's, once `reboot` exists), not here.
fn wait_for_connection(a: &Args, check: bool) -> Result<Outcome, String> {
    a.check_known(
        "wait_for_connection",
        &["connect_timeout", "delay", "sleep", "timeout"],
    )
    .map_err(|e| e.0)?;
    for k in ["connect_timeout", "sleep", "timeout"] {
        a.int(k).map_err(|e| e.0)?;
    }
    let delay = a.int("delay").map_err(|e| e.0)?.unwrap_or(0).max(0) as u64;
    if check {
        return Ok(Outcome::Output(ModuleOutput {
            skipped: true,
            ..Default::default()
        }));
    }
    let start = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(delay));
    Ok(Outcome::Output(
        ModuleOutput::ok().field("elapsed", start.elapsed().as_secs()),
    ))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn debug(a: &Args, scope: &Scope, templar: &Templar) -> Result<Outcome, String> {
    a.check_known("debug", &["msg", "var", "verbosity"])
        .map_err(|e| e.0)?;
    if a.has("msg") && a.has("var") {
        return Err("parameters are mutually exclusive: msg|var".into());
    }
    if let Some(var) = a.str("var").map_err(|e| e.0)? {
        let value = match templar.eval_expr(&var, scope) {
            Ok(v) => tend_lang::template::to_json(&v).unwrap_or(Value::Null),
            Err(_) => Value::String("VARIABLE IS NOT DEFINED!".into()),
        };
        return Ok(Outcome::Output(ModuleOutput::ok().field(&var, value)));
    }
    // An explicit `msg` that renders to None is shown as null, not as the default greeting.
    let msg =
        a.0.get("msg")
            .cloned()
            .unwrap_or_else(|| Value::String("Hello world!".into()));
    Ok(Outcome::Output(ModuleOutput::ok().field("msg", msg)))
}

fn assert(a: &Args, scope: &Scope, templar: &Templar) -> Result<Outcome, String> {
    a.check_known(
        "assert",
        &["that", "fail_msg", "msg", "success_msg", "quiet"],
    )
    .map_err(|e| e.0)?;
    let that: Vec<Value> = match a.raw("that") {
        Some(Value::Array(items)) => items.clone(),
        Some(v) => vec![v.clone()],
        None => return Err("missing required arguments: that".into()),
    };
    let quiet = a.bool_or("quiet", false).map_err(|e| e.0)?;
    for cond in &that {
        let ok = templar.eval_condition(cond, scope).map_err(|e| {
            let shown = cond
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| cond.to_string());
            format!("The conditional check '{shown}' failed. The error was: {e}")
        })?;
        if !ok {
            let msg = a
                .raw("fail_msg")
                .or_else(|| a.raw("msg"))
                .cloned()
                .unwrap_or_else(|| Value::String("Assertion failed".into()));
            let mut out = ModuleOutput {
                failed: true,
                ..Default::default()
            };
            out.fields.insert("assertion".into(), cond.clone());
            out.fields.insert("evaluated_to".into(), Value::Bool(false));
            match msg {
                Value::String(s) => out.msg = Some(s),
                other => {
                    out.fields.insert("msg".into(), other);
                }
            }
            return Ok(Outcome::Output(out));
        }
    }
    let mut out = ModuleOutput::ok();
    if !quiet {
        let msg = a
            .raw("success_msg")
            .cloned()
            .unwrap_or_else(|| Value::String("All assertions passed".into()));
        match msg {
            Value::String(s) => out.msg = Some(s),
            other => {
                out.fields.insert("msg".into(), other);
            }
        }
    }
    Ok(Outcome::Output(out))
}

fn include_vars(a: &Args, search: &[PathBuf]) -> Result<Outcome, String> {
    a.check_known(
        "include_vars",
        &[
            "file",
            "dir",
            "name",
            "depth",
            "files_matching",
            "ignore_files",
            "extensions",
            "ignore_unknown_extensions",
            "hash_behaviour",
        ],
    )
    .map_err(|e| e.0)?;
    let file = a.str_any(&["file", "_raw_params"]).map_err(|e| e.0)?;
    let dir = a.str("dir").map_err(|e| e.0)?;
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(f) = file {
        files.push(find_vars_path(&f, search).ok_or_else(|| not_found(&f))?);
    } else if let Some(d) = dir {
        let root = find_vars_path(&d, search).ok_or_else(|| not_found(&d))?;
        let exts = a
            .list("extensions")
            .map_err(|e| e.0)?
            .unwrap_or_else(|| vec!["yaml".into(), "yml".into(), "json".into()]);
        let depth = a.int("depth").map_err(|e| e.0)?.unwrap_or(0);
        let matching = a
            .str("files_matching")
            .map_err(|e| e.0)?
            .map(|p| regex::Regex::new(&p))
            .transpose()
            .map_err(|e| e.to_string())?;
        let ignore = a.list("ignore_files").map_err(|e| e.0)?.unwrap_or_default();
        collect_dir(
            &root,
            &exts,
            depth,
            1,
            matching.as_ref(),
            &ignore,
            &mut files,
        );
    } else {
        return Err("one of the following is required: file, dir".into());
    }
    let mut vars = Vars::new();
    for f in &files {
        let v = tend_lang::playbook::load_vars_file(f).map_err(|d| d.render())?;
        vars.extend(v);
    }
    let vars = match a.str("name").map_err(|e| e.0)? {
        Some(n) => {
            let mut m = Vars::new();
            m.insert(n, Value::Object(vars));
            m
        }
        None => vars,
    };
    let names: Vec<Value> = files
        .iter()
        .map(|f| Value::String(f.display().to_string()))
        .collect();
    let out = ModuleOutput::ok()
        .field("ansible_facts", Value::Object(vars.clone()))
        .field("ansible_included_var_files", Value::Array(names));
    Ok(Outcome::IncludeVars(vars, out))
}

/// A vars file or directory on the controller: absolute, or in `vars/` of the search dirs.
fn find_vars_path(name: &str, search: &[PathBuf]) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return ctlfs::exists(p).then(|| p.to_path_buf());
    }
    search
        .iter()
        .flat_map(|d| [d.join("vars").join(name), d.join(name)])
        .find(|c| ctlfs::exists(c))
}

fn not_found(name: &str) -> String {
    match ctlfs::not_shipped(Path::new(name)) {
        Some(why) if Path::new(name).is_absolute() => {
            format!("Could not find or access '{name}': {why}")
        }
        _ => format!("Could not find or access '{name}'"),
    }
}

fn collect_dir(
    dir: &Path,
    exts: &[String],
    max_depth: i64,
    depth: i64,
    matching: Option<&regex::Regex>,
    ignore: &[String],
    out: &mut Vec<PathBuf>,
) {
    let Ok(entries) = ctlfs::read_dir(dir) else {
        return;
    };
    for p in entries {
        let fname = p
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        if ctlfs::is_dir(&p) {
            if max_depth == 0 || depth < max_depth {
                collect_dir(&p, exts, max_depth, depth + 1, matching, ignore, out);
            }
            continue;
        }
        if ignore.contains(&fname) {
            continue;
        }
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_string())
            .unwrap_or_default();
        if !exts.contains(&ext) {
            continue;
        }
        if let Some(re) = matching {
            if !re.is_match(&fname) {
                continue;
            }
        }
        out.push(p);
    }
}
