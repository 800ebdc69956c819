//! What can go wrong while building, starting, driving or stopping a lab.

use std::path::PathBuf;

/// Every failure names what it was doing, the file or host involved, and where possible the
/// next step (`hint`).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("tend-lab needs root (it creates network namespaces, mounts and cgroups)\nhint: run the tests or `tend-lab` as root, as CI does")]
    NotRoot,

    #[error(
        "`{tool}` is not installed\nhint: run tests/setup.sh (as root) to install the lab's tools"
    )]
    MissingTool { tool: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{what} failed ({status}){stderr}\nhint: {hint}")]
    Command {
        what: String,
        status: String,
        /// Last lines of the command's stderr, already prefixed with a newline when not empty.
        stderr: String,
        hint: String,
    },

    #[error("no cgroup v2 hierarchy is mounted (looked in /proc/self/mountinfo)\nhint: mount one: `mount -t cgroup2 none /sys/fs/cgroup/unified`")]
    NoCgroup2,

    #[error("{prefix}: {reason}\nhint: a prefix is 1-8 characters, a-z then a-z/0-9; see `tend-lab status`")]
    BadPrefix { prefix: String, reason: String },

    #[error("all {0} lab slots are in use\nhint: `tend-lab status` lists them; `tend-lab down --all` stops them")]
    NoFreeSlot(usize),

    #[error("a lab holds 1 to {max} hosts, not {asked}")]
    BadHostCount { asked: usize, max: usize },

    #[error("lab {prefix}: no host named `{host}` (hosts: {known})")]
    UnknownHost {
        prefix: String,
        host: String,
        known: String,
    },

    #[error("lab {prefix}: host {host} is not running\nhint: `boot_host` starts it again")]
    HostDown { prefix: String, host: String },

    #[error("{host} {what} within {secs} s\nhint: see its console log {console}{tail}")]
    HostTimeout {
        /// `lab/host (address)`.
        host: String,
        what: String,
        secs: u64,
        console: PathBuf,
        /// Last lines of the console log, prefixed with a newline when not empty.
        tail: String,
    },

    #[error("no lab named `{0}`\nhint: `tend-lab status` lists the labs on this machine")]
    NoSuchLab(String),

    #[error("{path}: unreadable lab record: {reason}\nhint: `tend-lab down --all` removes it")]
    BadRecord { path: PathBuf, reason: String },

    #[error("lab {prefix}: left behind after stop: {leftovers}")]
    Leftovers { prefix: String, leftovers: String },
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// Attach a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| LabError::Io {
            path: path.into(),
            source,
        })
    }
}
