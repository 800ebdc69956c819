//! The one list of modules. Adding a module is one file and one line here.

use crate::{run_action, run_resource, Args, ModuleCtx, ModuleResult};

/// One module as the agent sees it.
pub struct ModuleEntry {
    pub name: &'static str,
    /// Whether the module predicts its result in check mode (otherwise it is skipped there).
    pub check_mode: bool,
    /// A [`crate::Resource`]: observe, diff, apply — guarded by plans itself.
    pub resource: bool,
    /// The argument names the module accepts (checked before a run, where they are literal).
    pub params: &'static [&'static str],
    pub run: fn(&Args, &ModuleCtx) -> ModuleResult,
}

macro_rules! modules {
    ($( $kind:ident $name:literal => $ty:path ),* $(,)?) => {
        // Built on first use: whether an action supports check mode is a trait method.
        static MODULES: std::sync::LazyLock<Vec<ModuleEntry>> = std::sync::LazyLock::new(|| vec![
            $( modules!(@entry $kind $name $ty) ),*
        ]);
    };
    (@entry resource $name:literal $ty:path) => {
        ModuleEntry {
            name: $name,
            check_mode: true,
            resource: true,
            params: <$ty as $crate::Resource>::params(&$ty),
            run: |a, c| run_resource(&$ty, $name, a, c),
        }
    };
    (@entry action $name:literal $ty:path) => {
        ModuleEntry {
            name: $name,
            check_mode: <$ty as $crate::Action>::supports_check_mode(&$ty),
            resource: false,
            params: <$ty as $crate::Action>::params(&$ty),
            run: |a, c| {
                a.check_known($name, <$ty as $crate::Action>::params(&$ty))?;
                run_action(&$ty, $name, a, c)
            },
        }
    };
}

modules! {
    resource "file" => crate::file::File,
    resource "copy" => crate::copy::Copy,
    resource "template" => crate::template::Template,
    resource "lineinfile" => crate::lineinfile::LineInFile,
    resource "blockinfile" => crate::blockinfile::BlockInFile,
    resource "replace" => crate::replace::Replace,
    resource "user" => crate::user::User,
    resource "group" => crate::group::Group,
    resource "authorized_key" => crate::authorized_key::AuthorizedKey,
    resource "cron" => crate::cron::Cron,
    action "command" => crate::command::Command,
    action "shell" => crate::command::Shell,
    action "stat" => crate::stat::Stat,
    action "find" => crate::find::Find,
    action "slurp" => crate::slurp::Slurp,
    action "observe_files" => crate::observe_files::ObserveFiles,
    action "tempfile" => crate::tempfile::TempFile,
    action "wait_for" => crate::wait_for::WaitFor,
    action "apt" => crate::apt::Apt,
    action "package" => crate::apt::Package,
    action "package_facts" => crate::package_facts::PackageFacts,
    action "service" => crate::service::Service,
    action "systemd_service" => crate::service::Systemd,
    action "systemd" => crate::service::Systemd,
    action "sysvinit" => crate::service::SysvInit,
    action "service_facts" => crate::service_facts::ServiceFacts,
    action "git" => crate::git::Git,
    action "get_url" => crate::get_url::GetUrl,
    action "unarchive" => crate::unarchive::Unarchive,
    action "hostname" => crate::hostname::Hostname,
    action "sysctl" => crate::sysctl::Sysctl,
    action "uri" => crate::uri::Uri,
}

/// Finds a module by its short name.
pub fn lookup(name: &str) -> Option<&'static ModuleEntry> {
    MODULES.iter().find(|m| m.name == name)
}

/// The names of all modules this crate provides.
pub fn module_names() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|m| m.name)
}

/// Modules that render templates with the task's variables (`ModuleCtx::scope`). A module
/// that runs in a privileged worker is sent the task's variables only when it is listed here.
pub fn renders_templates(name: &str) -> bool {
    matches!(name, "template")
}
