//! tend's modules.
//!
//! Two kinds, one registry:
//!
//! - **Resources** manage a piece of state on the host (a file, a line in a file …) through the
//!   [`Resource`] contract: `observe` only reads, `diff` is pure and returns a structured
//!   [`Change`], `apply` changes the host and returns the new observation. The shared driver
//!   ([`run_resource`]) stops after `diff` in check mode, and re-diffs after `apply`: a resource
//!   that does not converge is reported as a bug of that resource.
//! - **Actions** do something and report what happened (`command`, `stat`, `wait_for` …); they
//!   implement [`Action`] directly.
//!
//! Modules never print and never template: they get rendered arguments and a [`ModuleCtx`], and
//! return a [`ModuleOutput`]. Cross-cutting behaviour (loops, retries, `changed_when`, `no_log`,
//! check mode for actions that do not support it) lives in the agent.

/// A module's argument names followed by those every file-writing module accepts besides its
/// own (`owner`, `group`, `mode`, the SELinux context, `unsafe_writes`, `attributes`), which
/// [`fsutil::Attrs::from_args`] reads.
macro_rules! with_file_args {
    ($($p:literal),* $(,)?) => {
        &[
            $($p,)*
            "owner", "group", "mode", "seuser", "serole", "setype", "selevel", "unsafe_writes",
            "attributes", "attr",
        ]
    };
}

pub mod accounts;
pub mod apt;
pub mod args;
pub mod authorized_key;
pub mod blockinfile;
pub mod change;
pub mod command;
pub mod content;
pub mod copy;
pub mod cron;
pub mod dpkg;
pub mod facts;
pub mod file;
pub mod find;
pub mod fsutil;
pub mod get_url;
pub mod git;
pub mod group;
pub mod hostname;
pub mod http;
pub mod journal;
pub mod lineinfile;
pub mod observe_files;
pub mod package_facts;
pub mod process;
mod registry;
pub mod replace;
pub mod service;
pub mod service_facts;
pub mod slurp;
pub mod stat;
pub mod sysctl;
pub mod tempfile;
pub mod template;
pub mod unarchive;
pub mod uri;
pub mod user;
pub mod wait_for;

pub use args::Args;
pub use change::{digest_value, Change, ChangeKind, FieldChange};
pub use registry::{lookup, module_names, renders_templates, ModuleEntry};

use std::path::PathBuf;

use tend_lang::{Scope, Templar};
use tend_proto::{Value, Vars};

/// What a module may use while it runs.
pub struct ModuleCtx<'a> {
    /// Check mode: report what would change, change nothing.
    pub check: bool,
    /// Collect diffs (`--diff`).
    pub diff: bool,
    /// For modules that render templates (`template`).
    pub templar: &'a Templar,
    pub scope: &'a Scope,
    /// Where relative `src` paths are looked up, most specific first (role dir, playbook dir).
    pub search_dirs: &'a [PathBuf],
    /// `environment:` of the task, for modules that start processes.
    pub environment: &'a [(String, String)],
    /// Plans: whether to report the change, and under `tend apply PLAN` what the plan holds.
    pub plan: PlanMode<'a>,
    /// A run that journals (see [`journal`]): what each change replaces is written on the host
    /// before the change is made. Never in check mode.
    pub journal: Option<&'a journal::JournalCtx>,
}

/// What a run asks of a resource about plans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlanMode<'a> {
    /// An ordinary run.
    #[default]
    Off,
    /// `tend plan`: report the change ([`ModuleOutput::change`]).
    Report,
    /// `tend apply PLAN`: report the change, and apply it only if its digest is the planned
    /// one (`None`: the plan changes nothing here, so any change is refused).
    Expect(Option<&'a str>),
}

impl ModuleCtx<'_> {
    /// Finds a file given as `src` in `subdir` (`files`, `templates`) of the search dirs, then
    /// in the search dirs themselves, the way Ansible searches. The answer is a controller
    /// path (what messages show); read it through [`tend_lang::ctlfs`], which knows where a
    /// remote host keeps the controller's files.
    pub fn find_file(&self, subdir: &str, name: &str) -> Option<PathBuf> {
        use tend_lang::ctlfs;
        let p = std::path::Path::new(name);
        if p.is_absolute() {
            return ctlfs::exists(p).then(|| p.to_path_buf());
        }
        for dir in self.search_dirs {
            for candidate in [dir.join(subdir).join(name), dir.join(name)] {
                if ctlfs::exists(&candidate) {
                    return Some(candidate);
                }
            }
        }
        None
    }
}

/// What a module reports.
#[derive(Clone, Debug, Default)]
pub struct ModuleOutput {
    pub changed: bool,
    pub failed: bool,
    /// Ansible's `skipped` (e.g. `command` with `creates` satisfied is not a skip; `skipped` is
    /// for modules that decline to run).
    pub skipped: bool,
    pub msg: Option<String>,
    /// The module's result fields (`path`, `mode`, `stdout` …), registered as Ansible does.
    pub fields: Vars,
    /// `--diff` records: `{before, after, before_header, after_header}`.
    pub diffs: Vec<Value>,
    /// Under [`PlanMode::Report`] and [`PlanMode::Expect`]: a resource's change (none when it
    /// changes nothing).
    pub change: Option<Change>,
    /// Under [`PlanMode::Expect`]: the change is not the planned one, nothing was touched.
    pub changed_since_plan: bool,
    /// What the change replaces was journaled (see [`journal`]).
    pub journaled: bool,
}

impl ModuleOutput {
    pub fn ok() -> Self {
        Self::default()
    }

    pub fn failed(msg: impl Into<String>) -> Self {
        ModuleOutput {
            failed: true,
            msg: Some(msg.into()),
            ..Default::default()
        }
    }

    pub fn field(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.fields.insert(k.to_string(), v.into());
        self
    }
}

/// An error that ends the module's run. Shown to the user as the task's failure message, the
/// way ansible-core's `fail_json(msg=…)` is.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{msg}")]
pub struct ModuleError {
    pub msg: String,
    /// Extra result fields to register with the failure.
    pub fields: Vars,
}

impl ModuleError {
    pub fn new(msg: impl Into<String>) -> Self {
        ModuleError {
            msg: msg.into(),
            fields: Vars::new(),
        }
    }

    pub fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> Self {
        ModuleError::new(format!("{what} {}: {e}", path.display()))
    }

    /// The same error naming `shown` where it named `read` (a controller file's local copy
    /// is named as the user wrote it).
    pub fn naming(mut self, read: &std::path::Path, shown: &std::path::Path) -> Self {
        if read != shown {
            self.msg = self
                .msg
                .replace(&*read.to_string_lossy(), &shown.to_string_lossy());
        }
        self
    }
}

impl From<args::ArgError> for ModuleError {
    fn from(e: args::ArgError) -> Self {
        ModuleError::new(e.to_string())
    }
}

impl From<ModuleError> for ModuleOutput {
    /// A failed task's result: the message and the fields the module registered with it
    /// (`status_code` of a download, `rc` of a command …), as ansible-core's `fail_json` keeps
    /// them.
    fn from(e: ModuleError) -> Self {
        ModuleOutput {
            failed: true,
            msg: Some(e.msg),
            fields: e.fields,
            ..Default::default()
        }
    }
}

pub type ModuleResult = Result<ModuleOutput, ModuleError>;

/// A module that does something and reports what happened.
pub trait Action: Sync {
    /// The argument names the module accepts (besides aliases the module resolves itself).
    fn params(&self) -> &'static [&'static str];
    /// Whether the module can predict its result in check mode; if not, the agent skips it in
    /// check mode as Ansible does.
    fn supports_check_mode(&self) -> bool {
        true
    }
    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult;
    /// Before it runs for real in a run that journals: what it may replace, as
    /// `(subject, restore)` — observed now, before anything changes. `None` (the default):
    /// it cannot be undone, and if it changes something the journal says so.
    fn restore(
        &self,
        _args: &Args,
        _ctx: &ModuleCtx,
    ) -> Result<Option<(String, journal::Restore)>, ModuleError> {
        Ok(None)
    }
}

/// The one driver for actions: in a run that journals, what the action may replace is
/// journaled before it runs (and marked unchanged after, if it changed nothing). An action
/// without a restore that changes something is journaled by the agent as one that ran, once
/// `changed_when` has had its say.
pub fn run_action<A: Action>(a: &A, name: &str, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
    let Some(j) = ctx.journal.filter(|_| !ctx.check) else {
        return a.run(args, ctx);
    };
    let Some((subject, restore)) = a.restore(args, ctx)? else {
        return a.run(args, ctx);
    };
    let seq = journal::record_before(j, &format!("{name}[{subject}]"), restore)?;
    let mut out = a.run(args, ctx);
    if let Ok(o) = &mut out {
        o.journaled = true;
        if !o.changed {
            if let Err(e) = journal::mark_unchanged(j, seq) {
                o.failed = true;
                o.msg = Some(format!("{name} ran, but {}", e.msg));
            }
        }
    }
    out
}

/// A module that keeps one piece of host state as declared.
pub trait Resource: Sync {
    /// Parsed, validated desired state.
    type Desired;
    /// What is on the host now.
    type Observed;

    fn params(&self) -> &'static [&'static str];
    fn desired(&self, args: &Args, ctx: &ModuleCtx) -> Result<Self::Desired, ModuleError>;
    /// Reads the host. Never changes anything (not even atimes where avoidable).
    fn observe(&self, d: &Self::Desired) -> Result<Self::Observed, ModuleError>;
    /// Pure: what must change to get from `o` to `d`.
    fn diff(&self, d: &Self::Desired, o: &Self::Observed) -> Change;
    /// Makes the change and returns the new observation.
    fn apply(
        &self,
        d: &Self::Desired,
        o: &Self::Observed,
        change: &Change,
        ctx: &ModuleCtx,
    ) -> Result<Self::Observed, ModuleError>;
    /// The registered result fields for the final state.
    fn result(&self, d: &Self::Desired, o: &Self::Observed, change: &Change) -> Vars;
    /// What `change` replaces, as desired states that put `o` back (see [`journal`]); called
    /// before `apply`, in runs that journal. `None` (the default): it cannot be undone.
    fn restore(
        &self,
        _d: &Self::Desired,
        _o: &Self::Observed,
        _change: &Change,
    ) -> Result<Option<journal::Restore>, ModuleError> {
        Ok(None)
    }
}

/// The one driver for every resource: observe → diff → (check mode stops here) → apply →
/// observe again → diff must be empty.
pub fn run_resource<R: Resource>(r: &R, name: &str, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
    args.check_known(name, r.params())?;
    let d = r.desired(args, ctx)?;
    let before = r.observe(&d)?;
    let change = r.diff(&d, &before);
    let diffs = if ctx.diff {
        change.diff_records()
    } else {
        Vec::new()
    };
    if change.is_none() {
        return Ok(output(false, r.result(&d, &before, &change), diffs));
    }
    let reported = (ctx.plan != PlanMode::Off).then(|| change.clone());
    if let PlanMode::Expect(planned) = ctx.plan {
        if planned != Some(change.digest().as_str()) {
            let mut out = output(false, r.result(&d, &before, &change), diffs);
            out.failed = true;
            out.changed_since_plan = true;
            out.msg = Some(changed_since_plan_msg(name, &change, planned.is_some()));
            out.change = reported;
            return Ok(out);
        }
    }
    if ctx.check {
        let mut out = output(true, r.result(&d, &before, &change), diffs);
        out.change = reported;
        return Ok(out);
    }
    if let Some(j) = ctx.journal {
        let restore = r.restore(&d, &before, &change)?.unwrap_or_else(|| {
            journal::Restore::Cannot(format!(
                "`{name}` changed it at {} and tend does not journal what {name} replaces",
                j.loc
            ))
        });
        journal::record_before(j, &format!("{name}[{}]", change.subject), restore)?;
    }
    let after = r.apply(&d, &before, &change, ctx)?;
    let residual = r.diff(&d, &after);
    if !residual.is_none() {
        return Err(ModuleError::new(format!(
            "bug in tend's {name} module: after applying, the host still differs from the \
             desired state ({}); please report this",
            residual.summary()
        )));
    }
    let mut out = output(true, r.result(&d, &after, &change), diffs);
    out.change = reported;
    out.journaled = ctx.journal.is_some();
    Ok(out)
}

/// Why a resource was not touched under `tend apply PLAN`.
pub fn changed_since_plan_msg(module: &str, change: &Change, planned: bool) -> String {
    let what = if planned {
        "the change it would make now is not the planned one"
    } else {
        "the plan has no change for it"
    };
    format!(
        "changed since plan: {module}[{}] was not touched: the host is not as it was when the \
         plan was made ({what}); run `tend plan` again and review the new plan",
        change.subject
    )
}

/// A resource's output; a string `msg` among its result fields becomes the output's `msg`.
fn output(changed: bool, mut fields: Vars, diffs: Vec<Value>) -> ModuleOutput {
    let msg = match fields.get("msg") {
        Some(Value::String(_)) => fields
            .remove("msg")
            .and_then(|m| m.as_str().map(str::to_string)),
        _ => None,
    };
    ModuleOutput {
        changed,
        msg,
        fields,
        diffs,
        ..Default::default()
    }
}

/// Helpers for the modules' tests: run a module the way the agent does, snapshot a tree.
#[cfg(test)]
pub(crate) mod testutil {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use tend_lang::{Scope, Templar};
    use tend_proto::Value;

    use crate::{Args, ModuleCtx, ModuleOutput};

    pub struct Opts {
        pub check: bool,
        pub diff: bool,
        pub search_dirs: Vec<PathBuf>,
        pub vars: Value,
    }

    pub fn run_with(name: &str, args: Value, o: &Opts) -> Result<ModuleOutput, String> {
        let templar = Templar::new();
        let scope = Scope::new(&templar, vec![tend_lang::Layer::from_json(&o.vars, false)]);
        let ctx = ModuleCtx {
            check: o.check,
            diff: o.diff,
            templar: &templar,
            scope: &scope,
            search_dirs: &o.search_dirs,
            environment: &[],
            plan: crate::PlanMode::Off,
            journal: None,
        };
        let entry = crate::lookup(name).ok_or_else(|| format!("no module {name}"))?;
        let a = Args::new(args.as_object().cloned().unwrap_or_default());
        (entry.run)(&a, &ctx).map_err(|e| e.msg)
    }

    fn opts(check: bool) -> Opts {
        Opts {
            check,
            diff: true,
            search_dirs: Vec::new(),
            vars: Value::Object(Default::default()),
        }
    }

    pub fn run(name: &str, args: Value) -> ModuleOutput {
        match run_with(name, args.clone(), &opts(false)) {
            Ok(o) => o,
            Err(e) => panic!("{name} {args} failed: {e}"),
        }
    }

    pub fn run_check(name: &str, args: Value) -> ModuleOutput {
        match run_with(name, args.clone(), &opts(true)) {
            Ok(o) => o,
            Err(e) => panic!("{name} {args} failed in check mode: {e}"),
        }
    }

    /// The CA that signed the test HTTPS server's certificate (tests/fixtures/tls, made with
    /// openssl for these tests; the certificate names `localhost` only).
    pub fn test_ca() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem")
    }

    /// An HTTPS server on 127.0.0.1 answering every request with `200` and `body`, with the
    /// test CA's certificate for `localhost`: its port.
    pub fn https_server(body: &'static str) -> u16 {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::io::{Read, Write};
        use std::sync::Arc;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("server.pem"))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { continue };
                let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
                {
                    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match tls.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => break,
                        }
                    }
                    if head.is_empty() {
                        continue;
                    }
                    let _ = write!(
                        tls,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.flush();
                }
                conn.send_close_notify();
                let _ = conn.write_tls(&mut tcp);
            }
        });
        port
    }

    /// An http proxy on 127.0.0.1: answers absolute-URI requests itself (`200`, "via proxy"),
    /// tunnels `CONNECT host:port` to 127.0.0.1:port (refusing `refuse.invalid` with 403).
    /// Its port, and the request lines it saw.
    pub fn http_proxy() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let mut r = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let line = line.trim_end().to_string();
                log.lock().unwrap().push(line.clone());
                if let Some(target) = line.strip_prefix("CONNECT ") {
                    let target = target.split(' ').next().unwrap_or("");
                    if target.starts_with("refuse.invalid") {
                        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
                        continue;
                    }
                    let port: u16 = target.rsplit(':').next().unwrap().parse().unwrap();
                    let upstream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    let (mut a, mut b) =
                        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let (mut c, mut d) = (upstream, client);
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut a, &mut b);
                        let _ = b.shutdown(std::net::Shutdown::Write);
                    });
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c, &mut d);
                        let _ = d.shutdown(std::net::Shutdown::Write);
                    });
                } else {
                    let _ = client.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nvia proxy",
                    );
                }
            }
        });
        (port, seen)
    }

    pub fn run_err(name: &str, args: Value) -> String {
        match run_with(name, args.clone(), &opts(false)) {
            Ok(o) => panic!("{name} {args} should fail, got {o:?}"),
            Err(e) => e,
        }
    }

    /// Every path below `root` with its content, mode, owner, times and link target.
    pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        fn walk(p: &Path, out: &mut BTreeMap<PathBuf, String>) {
            let Ok(m) = std::fs::symlink_metadata(p) else {
                return;
            };
            let content = if m.is_file() {
                crate::fsutil::read_file(p).unwrap_or_default()
            } else {
                Vec::new()
            };
            let link = std::fs::read_link(p).ok();
            // Listing a directory or reading a link (which this walk does) may update its
            // atime: leave those out.
            let atime = if m.is_file() {
                (m.atime(), m.atime_nsec())
            } else {
                (0, 0)
            };
            out.insert(
                p.to_path_buf(),
                format!(
                    "{:o} {} {} {}.{} {}.{} {:?} {:?}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.mtime(),
                    m.mtime_nsec(),
                    atime.0,
                    atime.1,
                    link,
                    String::from_utf8_lossy(&content)
                ),
            );
            if m.is_dir() {
                if let Ok(rd) = std::fs::read_dir(p) {
                    for e in rd.flatten() {
                        walk(&e.path(), out);
                    }
                }
            }
        }
        walk(root, &mut out);
        out
    }
}
