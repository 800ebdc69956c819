//! Turning parsed arguments into resolved settings, and the listings that need no run.

use tend_engine::{parse_extra_vars, EngineError, Prepared, Settings};
use tend_lang::inventory::{load_vars_dirs, parse_limit, Inventory};
use tend_proto::{Become, RunOptions, Task, TaskKind, Value, Vars};

use crate::cli::{ApplyArgs, InventoryArgs, VaultArgs};

fn split_tags(raw: &[String]) -> Vec<String> {
    raw.iter()
        .flat_map(|t| t.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

pub fn apply_settings(a: &ApplyArgs) -> Result<Settings, EngineError> {
    // Before `-e @file`: an extra-vars file may be vault-encrypted.
    install_vault(&a.hosts.vault)?;
    let mut extra = Vars::new();
    for e in &a.extra_vars {
        parse_extra_vars(e, &mut extra)?;
    }
    if let Some(m) = &a.hosts.become_method {
        if !tend_lang::playbook::BECOME_METHODS.contains(&m.as_str()) {
            return Err(tend_lang::Diag::new(
                tend_proto::Loc::new("<--become-method>", 0, 0),
                format!("become method `{m}` is not supported by tend"),
            )
            .with_hint("use --become-method sudo or --become-method su")
            .into());
        }
    }
    let become_password = if a.hosts.ask_become_pass {
        Some(crate::prompt::become_password().map_err(|e| {
            tend_lang::Diag::new(
                tend_proto::Loc::new("<--ask-become-pass>", 0, 0),
                format!("cannot ask for the become password: {e}"),
            )
            .with_hint("run tend from a terminal, or set ansible_become_password (in a vault-encrypted vars file)")
        })?)
    } else {
        None
    };
    let inventories = if a.hosts.inventory.is_empty() {
        // Like ansible-playbook without -i and without a config: only the implicit localhost.
        Vec::new()
    } else {
        a.hosts.inventory.clone()
    };
    Ok(Settings {
        playbook: a.playbook.clone(),
        inventories,
        extra_vars: extra,
        limit: a.hosts.limit.clone(),
        options: RunOptions {
            check: a.check,
            diff: a.diff,
            tags: split_tags(&a.tags),
            skip_tags: split_tags(&a.skip_tags),
            start_at_task: a.start_at_task.clone(),
            verbosity: a.verbose,
            become_: Become {
                enabled: a.hosts.become_.then_some(Value::Bool(true)),
                user: a.hosts.become_user.clone().map(Value::String),
                method: a.hosts.become_method.clone().map(Value::String),
                ..Default::default()
            },
            plan: false,
            collect_diffs: false,
            report_facts: false,
            run_id: None,
        },
        become_password,
        guards: None,
        forks: a.hosts.forks.max(1),
        connection: a.hosts.connection.clone(),
        remote: remote_settings(&a.hosts.conn),
        lock: None,
        undo: None,
    })
}

pub fn remote_settings(c: &crate::cli::ConnectionArgs) -> tend_engine::RemoteSettings {
    tend_engine::RemoteSettings {
        accept_new_host_keys: c.accept_new_host_keys,
        timeout: c.timeout,
        user: c.user.clone(),
        private_key: c.private_key.clone(),
        ssh_common_args: c.ssh_common_args.clone(),
        ssh_extra_args: c.ssh_extra_args.clone(),
        agent_binary: std::env::var_os("TEND_AGENT_BINARY").map(Into::into),
        embedded_agent: crate::embedded::AGENT,
        ssh_persist: c.ssh_persist,
    }
}

/// `--syntax-check`, `--list-hosts`, `--list-tasks`, in ansible-playbook's layout.
pub fn listing(prep: &Prepared, a: &ApplyArgs) -> String {
    let mut out = format!("\nplaybook: {}\n", a.playbook.display());
    if a.syntax_check {
        return out;
    }
    for (i, play) in prep.playbook.plays.iter().enumerate() {
        out.push_str(&format!(
            "\n  play #{} ({}): {}\tTAGS: [{}]\n",
            i + 1,
            play.hosts,
            play.name,
            play.tags.join(",")
        ));
        if a.list_hosts {
            let hosts = &prep.play_hosts[i];
            out.push_str(&format!(
                "    pattern: ['{}']\n    hosts ({}):\n",
                play.hosts,
                hosts.len()
            ));
            for h in hosts {
                out.push_str(&format!("      {h}\n"));
            }
        }
        if a.list_tasks {
            out.push_str("    tasks:\n");
            list_tasks(&play.tasks, play, &mut out, &[]);
        }
    }
    out
}

fn list_tasks(
    tasks: &[Task],
    play: &tend_lang::playbook::Play,
    out: &mut String,
    inherited: &[String],
) {
    for t in tasks {
        let mut tags: Vec<String> = inherited.to_vec();
        tags.extend(t.tags.iter().cloned());
        match &t.kind {
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                list_tasks(block, play, out, &tags);
                list_tasks(rescue, play, out, &tags);
                list_tasks(always, play, out, &tags);
            }
            TaskKind::Meta(_) if t.implicit => {}
            _ => {
                let name = match t.role.and_then(|r| play.roles.get(r)) {
                    Some(r) => format!("{} : {}", r.name, t.display_name()),
                    None => t.display_name(),
                };
                let mut sorted = tags.clone();
                sorted.sort();
                sorted.dedup();
                out.push_str(&format!("      {name}\tTAGS: [{}]\n", sorted.join(", ")));
            }
        }
    }
}

pub fn inventory_output(a: &InventoryArgs) -> Result<String, EngineError> {
    let inv = Inventory::load(&a.inventory)?;
    let pb_vars = match &a.playbook_dir {
        Some(d) => Some(load_vars_dirs(d)?),
        None => None,
    };
    let hosts: Option<Vec<String>> = match &a.limit {
        Some(l) => {
            let lim = parse_limit(l)?;
            Some(
                inv.select("all", Some(&lim))
                    .map_err(|e| e.at(tend_proto::Loc::new("<--limit>", 0, 0)))?
                    .hosts,
            )
        }
        None => None,
    };
    if let Some(h) = &a.host {
        return match inv.host_json(h, pb_vars.as_ref()) {
            Some(v) => Ok(format!("{}\n", pretty(&v))),
            None => Err(tend_lang::Diag::new(
                tend_proto::Loc::new("<--host>", 0, 0),
                format!("You must pass a single valid host to --host parameter: {h}"),
            )
            .into()),
        };
    }
    if let Some(g) = &a.graph {
        return match inv.to_graph(g, a.vars) {
            Some(s) if s.ends_with('\n') => Ok(s),
            Some(s) => Ok(format!("{s}\n")),
            None => Err(tend_lang::Diag::new(
                tend_proto::Loc::new("<--graph>", 0, 0),
                format!("Pattern must be valid group name when using --graph: {g}"),
            )
            .into()),
        };
    }
    let v = inv.to_list_json(hosts.as_deref(), pb_vars.as_ref());
    Ok(format!("{}\n", pretty(&v)))
}

fn pretty(v: &serde_json::Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Resolves the vault passwords of the command line (and `ANSIBLE_VAULT_PASSWORD_FILE`) once
/// per process and installs them for every reader of the user's files. A second call (`tend
/// drift --fix` resolves its settings twice) asks nothing again.
pub fn install_vault(v: &VaultArgs) -> Result<(), tend_lang::Diag> {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    let keyring = vault_keyring(v)?;
    tend_lang::vault::install(keyring);
    let _ = DONE.set(());
    Ok(())
}

/// ansible's order: every `--vault-id`, then each password file as the default id, then the
/// prompt of `--ask-vault-pass`.
pub fn vault_keyring(v: &VaultArgs) -> Result<tend_lang::vault::Keyring, tend_lang::Diag> {
    use tend_lang::vault::{Keyring, VaultSecret, DEFAULT_ID};
    let mut sources: Vec<(String, String, &'static str)> = Vec::new();
    for id in &v.vault_id {
        let (label, source) = match id.split_once('@') {
            Some((l, s)) if !l.is_empty() => (l.to_string(), s.to_string()),
            Some((_, s)) => (DEFAULT_ID.to_string(), s.to_string()),
            None => (DEFAULT_ID.to_string(), id.clone()),
        };
        sources.push((label, source, "<--vault-id>"));
    }
    let mut files: Vec<String> = v
        .vault_password_file
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if files.is_empty() {
        if let Some(f) = std::env::var_os("ANSIBLE_VAULT_PASSWORD_FILE").filter(|f| !f.is_empty()) {
            files.push(f.to_string_lossy().into_owned());
        }
    }
    for f in files {
        sources.push((DEFAULT_ID.to_string(), f, "<--vault-password-file>"));
    }
    if v.ask_vault_pass {
        sources.push((
            DEFAULT_ID.to_string(),
            "prompt".into(),
            "<--ask-vault-pass>",
        ));
    }
    let mut ring = Keyring::default();
    let mut prompted: Vec<String> = Vec::new();
    for (label, source, flag) in sources {
        let at = tend_proto::Loc::new(flag, 0, 0);
        let password = if source == "prompt" {
            if prompted.contains(&label) {
                continue;
            }
            prompted.push(label.clone());
            crate::prompt::vault_password(&label)
                .map_err(|e| {
                    tend_lang::Diag::new(
                        at.clone(),
                        format!("cannot ask for the vault password: {e}"),
                    )
                    .with_hint("run tend from a terminal, or give --vault-password-file FILE")
                })?
                .expose()
                .as_bytes()
                .to_vec()
        } else {
            read_password_source(std::path::Path::new(&source), &label)
                .map_err(|msg| {
                    tend_lang::Diag::new(at.clone(), msg).with_hint(
                        "a vault password file holds the password; an executable one prints it on stdout",
                    )
                })?
        };
        if password.is_empty() {
            return Err(tend_lang::Diag::new(
                at,
                format!("the vault password from {source} is empty"),
            )
            .with_hint("put the password in the file (or have the script print it)"));
        }
        ring.secrets.push(VaultSecret::new(label, password));
    }
    Ok(ring)
}

/// A password file's contents (whitespace around it removed), or an executable's output (line
/// ends around it removed), as ansible reads them. A script named `*-client[.ext]` is asked
/// for the vault id (`--vault-id LABEL`).
fn read_password_source(path: &std::path::Path, label: &str) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read vault password file {shown}: {e}"))?;
    if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // An absolute path: a bare name would be looked up in $PATH.
        let mut cmd =
            std::process::Command::new(std::path::absolute(path).unwrap_or(path.to_path_buf()));
        if stem.ends_with("-client") {
            cmd.args(["--vault-id", label]);
        }
        let out = cmd
            .stdin(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run vault password script {shown}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "vault password script {shown} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let pw = out.stdout;
        let start = pw
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(pw.len());
        let end = pw
            .iter()
            .rposition(|b| !matches!(b, b'\r' | b'\n'))
            .map_or(start, |i| i + 1);
        return Ok(pw[start..end.max(start)].to_vec());
    }
    let data =
        std::fs::read(path).map_err(|e| format!("cannot read vault password file {shown}: {e}"))?;
    Ok(data.trim_ascii().to_vec())
}
