//! The agent that is pushed to hosts, named by its hash: the agent a release build embeds
//! (tend-agentd, pre-compressed at build time), or else the running tend binary itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// An agent compiled into the controller (see crates/tend/build.rs): its gzip stream, ready to
/// send, and what it was made from.
#[derive(Clone, Copy)]
pub struct EmbeddedAgent {
    /// sha256 of the uncompressed binary, hex.
    pub sha256: &'static str,
    /// Size of the uncompressed binary in bytes.
    pub size: u64,
    /// The gzip stream the host unpacks with `gzip -dc`.
    pub gz: &'static [u8],
}

impl std::fmt::Debug for EmbeddedAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedAgent")
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .field("gz_len", &self.gz.len())
            .finish()
    }
}

enum Source {
    /// A binary on disk, compressed only if some host needs it.
    File {
        path: PathBuf,
        gz: OnceLock<Result<Vec<u8>, String>>,
    },
    Embedded(&'static [u8]),
}

/// The binary tend pushes, hashed once per run.
pub struct AgentBinary {
    source: Source,
    hash: String,
}

/// A cached agent's name: 128 bits of the sha256 of the uncompressed binary are plenty to name
/// a file; the name appears in paths and commands. The same binary gets the same name however
/// the controller holds it (embedded, `TEND_AGENT_BINARY`, itself).
fn name_of(sha256: &[u8]) -> String {
    hex::encode(&sha256[..16])
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
        Ok(AgentBinary {
            source: Source::File {
                path: path.to_path_buf(),
                gz: OnceLock::new(),
            },
            hash: name_of(&h.finalize()),
        })
    }

    /// The embedded agent; nothing is read or compressed at run time.
    pub fn embedded(agent: &EmbeddedAgent) -> Result<Self, String> {
        let digest = hex::decode(agent.sha256)
            .ok()
            .filter(|d| d.len() == 32)
            .ok_or_else(|| {
                format!(
                    "the embedded agent's sha256 {:?} is not 64 hex digits (a broken build)",
                    agent.sha256
                )
            })?;
        Ok(AgentBinary {
            source: Source::Embedded(agent.gz),
            hash: name_of(&digest),
        })
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether this is an agent compiled into the controller.
    pub fn is_embedded(&self) -> bool {
        matches!(self.source, Source::Embedded(_))
    }

    /// The gzip stream the host unpacks with `gzip -dc` (every Linux has gzip).
    pub fn gzipped(&self) -> Result<&[u8], String> {
        match &self.source {
            Source::Embedded(gz) => Ok(gz),
            Source::File { path, gz } => gz
                .get_or_init(|| {
                    let data = std::fs::read(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    gzip(&data).map_err(|e| format!("cannot compress the agent: {e}"))
                })
                .as_deref()
                .map_err(|e| e.clone()),
        }
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

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn an_embedded_agent_and_the_same_file_on_disk_get_one_name_and_unpack_alike() {
        let dir = tempfile::tempdir().unwrap();
        let bin: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let path = dir.path().join("agent");
        std::fs::write(&path, &bin).unwrap();
        let from_file = AgentBinary::from_path(&path).unwrap();

        let sha = hex::encode(Sha256::digest(&bin));
        let gz: &'static [u8] = Box::leak(gzip(&bin).unwrap().into_boxed_slice());
        let embedded = AgentBinary::embedded(&EmbeddedAgent {
            sha256: Box::leak(sha.into_boxed_str()),
            size: bin.len() as u64,
            gz,
        })
        .unwrap();
        assert_eq!(embedded.hash(), from_file.hash());
        assert_eq!(embedded.hash().len(), 32);
        assert!(embedded.is_embedded() && !from_file.is_embedded());
        assert!(
            std::ptr::eq(embedded.gzipped().unwrap(), gz),
            "sent as built"
        );

        for a in [&embedded, &from_file] {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(a.gzipped().unwrap())
                .read_to_end(&mut out)
                .unwrap();
            assert!(out == bin);
        }
    }

    #[test]
    fn a_malformed_embedded_hash_is_an_error_not_a_name() {
        for bad in ["", "abc", &"z".repeat(64), &"a".repeat(62)] {
            let e = AgentBinary::embedded(&EmbeddedAgent {
                sha256: Box::leak(bad.to_string().into_boxed_str()),
                size: 0,
                gz: &[],
            });
            assert!(e.is_err(), "{bad:?}");
        }
    }
}
