//! How the controller reaches a host.
//!
//! Remote hosts are reached with the system's OpenSSH client, so everything the user configured
//! for it (`~/.ssh/config`, ssh-agent, ProxyJump, certificates) just works. Per host and run there
//! is one multiplexed connection (ControlMaster, its socket in a private directory of the run, or
//! with `--ssh-persist` in a stable private directory so that later runs reuse it),
//! host keys are checked strictly, and the agent — the slim agent a release build embeds, else
//! this very binary — is copied to the host once
//! (cached there by hash) and started as `tend agent`, which then speaks
//! [`tend_proto::wire`] over the SSH channel.

mod agent_binary;
mod boot;
mod ssh;

pub use agent_binary::{AgentBinary, EmbeddedAgent};
pub use ssh::{close_masters, exit_masters, ControlDir, Session, SshOptions, SshTarget};

/// Why a host could not be used. Both are UNREACHABLE in the recap; the message says why.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The host could not be reached or the connection dropped (Ansible's UNREACHABLE).
    #[error("{0}")]
    Unreachable(String),
}

impl TransportError {
    pub fn message(&self) -> &str {
        match self {
            TransportError::Unreachable(m) => m,
        }
    }
}
