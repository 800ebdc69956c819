//! `tempfile`: a new temporary file or directory. Always a change, as in ansible-core.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::fsutil;
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct TempFile;

/// Eight random-looking name characters (Python's `tempfile` uses the same alphabet).
fn random_name() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ ((std::process::id() as u64) << 32);
    let mut buf = [0u8; 8];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut buf).is_ok() {
            seed ^= u64::from_le_bytes(buf);
        }
    }
    (0..8)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[((seed >> 33) % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

impl Action for TempFile {
    fn params(&self) -> &'static [&'static str] {
        &["state", "path", "prefix", "suffix"]
    }

    fn supports_check_mode(&self) -> bool {
        false
    }

    fn run(&self, args: &Args, _ctx: &ModuleCtx) -> ModuleResult {
        let dir_state =
            args.choice("state", &["file", "directory"])?.as_deref() == Some("directory");
        let prefix = args.str("prefix")?.unwrap_or_else(|| "ansible.".into());
        let suffix = args.str("suffix")?.unwrap_or_default();
        for (k, v) in [("prefix", &prefix), ("suffix", &suffix)] {
            if v.contains('/') {
                return Err(ModuleError::new(format!(
                    "{k} must be a valid file name component, got '{v}'"
                )));
            }
        }
        let dir = match args.str("path")? {
            Some(p) => fsutil::path_arg(&p),
            None => PathBuf::from(std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())),
        };
        for _ in 0..100 {
            let p = dir.join(format!("{prefix}{}{suffix}", random_name()));
            let r = if dir_state {
                fs::DirBuilder::new().mode(0o700).create(&p)
            } else {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&p)
                    .map(|_| ())
            };
            match r {
                Ok(()) => {
                    let mut out = ModuleOutput {
                        changed: true,
                        ..Default::default()
                    };
                    out.fields = fsutil::path_fields("path", &p, false);
                    return Ok(out);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(ModuleError::new(format!(
                        "[Errno {}] {e}: '{}'",
                        e.raw_os_error().unwrap_or(0),
                        p.display()
                    )))
                }
            }
        }
        Err(ModuleError::new("No usable temporary file name found"))
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;

    #[test]
    fn makes_files_and_directories() {
        let t = tempfile::tempdir().unwrap();
        let out = run("tempfile", json!({"path": t.path(), "suffix": ".x"}));
        assert!(out.changed);
        let p = out.fields["path"].as_str().unwrap().to_string();
        assert!(p.contains("/ansible.") && p.ends_with(".x"));
        assert_eq!(out.fields["mode"], json!("0600"));
        let out = run(
            "tempfile",
            json!({"path": t.path(), "state": "directory", "prefix": "d"}),
        );
        assert_eq!(out.fields["state"], json!("directory"));
        assert_eq!(out.fields["mode"], json!("0700"));
    }
}
