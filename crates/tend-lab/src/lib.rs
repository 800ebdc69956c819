//! tend-lab: a fleet of real Debian hosts on one Linux machine, for tests and benchmarks.
//!
//! Each host has its own root filesystem (an overlay on one shared bookworm rootfs), network
//! namespace on a private bridge, pid/mount/uts/ipc namespaces, cgroup and sshd. Clients
//! reach them over real SSH with strict host keys, as root, `deploy` (sudo with password
//! `deploy-pw`) or `nopw` (sudo without password). No packet leaves the machine: hosts have
//! no default route and `ip_forward` is left alone.
//!
//! ```no_run
//! let lab = tend_lab::Lab::start(3)?;
//! for h in lab.hosts() {
//!     let out = lab.ssh(&h.name).arg("hostname").output().unwrap();
//!     assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), h.name);
//! }
//! lab.stop_sshd("h02")?; // connection refused from now on
//! # Ok::<(), tend_lab::LabError>(())
//! ```
//!
//! Everything needs root. The rootfs is built once (debootstrap, minutes) and cached.

mod cgroup;
mod client;
mod error;
mod host;
mod lab;
mod lock;
mod net;
mod registry;
pub mod repo;
pub mod rootfs;
mod tool;

pub use error::{LabError, Result};
pub use host::host_name;
pub use lab::{down, down_all, list, Lab, LabBuilder, LabHost, LabStatus};
pub use net::MAX_HOSTS;
pub use registry::STATE_ROOT;
pub use rootfs::{DEPLOY_PASSWORD, DEPLOY_USER, NOPW_USER};
