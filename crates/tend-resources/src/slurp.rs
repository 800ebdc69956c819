//! `slurp`: a file's content, base64-encoded.

use base64::Engine;
use tend_proto::Value;

use crate::fsutil;
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Slurp;

impl Action for Slurp {
    fn params(&self) -> &'static [&'static str] {
        &["src", "path"]
    }

    fn run(&self, args: &Args, _ctx: &ModuleCtx) -> ModuleResult {
        let src = args
            .str_any(&["src", "path"])?
            .ok_or_else(|| ModuleError::new("missing required arguments: src"))?;
        let path = fsutil::path_arg(&src);
        let data = fsutil::read_file(&path).map_err(|e| {
            ModuleError::new(match e.raw_os_error() {
                Some(libc::ENOENT) => format!("file not found: {src}"),
                Some(libc::EACCES) => format!("file is not readable: {src}"),
                Some(libc::EISDIR) => format!("source is a directory and must be a file: {src}"),
                _ => format!("unable to slurp file: {e}"),
            })
        })?;
        Ok(ModuleOutput::ok()
            .field(
                "content",
                base64::engine::general_purpose::STANDARD.encode(data),
            )
            .field("source", Value::String(src))
            .field("encoding", "base64"))
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;

    #[test]
    fn slurps_base64() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "hello\n").unwrap();
        let out = run("slurp", json!({"src": f}));
        assert_eq!(out.fields["content"], json!("aGVsbG8K"));
        assert_eq!(out.fields["encoding"], json!("base64"));
        let e = run_err("slurp", json!({"src": t.path().join("nope")}));
        assert!(e.starts_with("file not found: "), "{e}");
    }
}
