//! Where `tend agent` keeps the playbook bundles the controller sends, by hash.
//! (Placeholder until the bundle format lands: refuses, so nothing runs on a half view.)

use std::path::Path;

pub fn store(_cache: &Path, hash: &str, _bytes: &[u8]) -> Result<(), String> {
    Err(format!(
        "bundle {hash}: this agent cannot unpack bundles yet"
    ))
}

pub fn install(_cache: &Path, hash: &str) -> Result<(), String> {
    Err(format!("bundle {hash} is not cached"))
}
