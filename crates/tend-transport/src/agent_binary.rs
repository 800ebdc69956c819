//! The agent that is pushed to hosts: the running tend binary itself, named by its hash.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The binary tend pushes, hashed once per run and compressed only if some host needs it.
pub struct AgentBinary {
    path: PathBuf,
    hash: String,
    gz: OnceLock<Result<Vec<u8>, String>>,
}

impl AgentBinary {
    /// The running executable (`std::env::current_exe`).
    pub fn current() -> std::io::Result<Self> {
        Self::from_path(&std::env::current_exe()?)
    }

    pub fn from_path(path: &Path) -> std::io::Result<Self> {
        let mut f = std::fs::File::open(path)?;
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h)?;
        let digest = h.finalize();
        Ok(AgentBinary {
            path: path.to_path_buf(),
            // 128 bits are plenty to name a file; the name appears in paths and commands.
            hash: hex::encode(&digest[..16]),
            gz: OnceLock::new(),
        })
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The gzip stream the host unpacks with `gzip -dc` (every Linux has gzip).
    pub fn gzipped(&self) -> Result<&[u8], String> {
        self.gz
            .get_or_init(|| {
                let data = std::fs::read(&self.path)
                    .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&data)
                    .and_then(|_| enc.finish())
                    .map_err(|e| format!("cannot compress the agent: {e}"))
            })
            .as_deref()
            .map_err(|e| e.clone())
    }

    /// `uname -s` / `uname -m` of the machines this binary runs on.
    pub fn platform() -> (&'static str, &'static str) {
        let os = match std::env::consts::OS {
            "linux" => "Linux",
            "macos" => "Darwin",
            "freebsd" => "FreeBSD",
            other => other,
        };
        let arch = match std::env::consts::ARCH {
            "aarch64" => "aarch64",
            "x86" => "i686",
            other => other,
        };
        (os, arch)
    }
}
