//! Embeds the slim agent (crates/tend-agentd) when `TEND_EMBED_AGENT=/path/to/tend-agentd` is
//! set, as build-release.sh does: the binary is gzipped here, once, into OUT_DIR and the
//! controller sends those bytes as they are. Without it (dev builds, tests) nothing is embedded
//! and tend pushes itself.
//!
//! Emits `cfg(tend_embedded_agent)` and the env `TEND_AGENT_SHA256` (of the uncompressed
//! binary, hex) and `TEND_AGENT_SIZE` (bytes, uncompressed); the stream is
//! `$OUT_DIR/tend-agentd.gz`.

use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tend_embedded_agent)");
    println!("cargo::rerun-if-env-changed=TEND_EMBED_AGENT");
    println!("cargo::rerun-if-changed=build.rs");
    let Some(path) = std::env::var_os("TEND_EMBED_AGENT").filter(|p| !p.is_empty()) else {
        return;
    };
    let path = PathBuf::from(path);
    println!("cargo::rerun-if-changed={}", path.display());
    let bin = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "TEND_EMBED_AGENT={}: cannot read the agent to embed: {e}\n\
             hint: build it first (`cargo build --release -p tend-agentd`), or use build-release.sh",
            path.display()
        )
    });
    if let Err(e) = check_platform(&bin) {
        panic!("TEND_EMBED_AGENT={}: {e}", path.display());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gz = enc
        .write_all(&bin)
        .and_then(|_| enc.finish())
        .expect("gzip in memory");
    std::fs::write(out.join("tend-agentd.gz"), gz).expect("write OUT_DIR/tend-agentd.gz");
    let sha: String = Sha256::digest(&bin)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo::rustc-cfg=tend_embedded_agent");
    println!("cargo::rustc-env=TEND_AGENT_SHA256={sha}");
    println!("cargo::rustc-env=TEND_AGENT_SIZE={}", bin.len());
}

/// The embedded agent must run where this tend's own agent would: the controller judges a
/// host's platform by its own target (`uname -s`/`uname -m`). A check of the ELF header for the
/// targets tend builds for; others pass unchecked.
fn check_platform(bin: &[u8]) -> Result<(), String> {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os != "linux" {
        return Ok(());
    }
    if bin.len() < 20 || &bin[..4] != b"\x7fELF" {
        return Err("not an ELF executable; the agent for a Linux tend is a Linux binary".into());
    }
    // e_machine, at offset 18, in the file's byte order (EI_DATA: 1 little, 2 big).
    let m = if bin[5] == 2 {
        u16::from_be_bytes([bin[18], bin[19]])
    } else {
        u16::from_le_bytes([bin[18], bin[19]])
    };
    let want = match arch.as_str() {
        "x86_64" => 62,
        "aarch64" => 183,
        "x86" => 3,
        "arm" => 40,
        "riscv64" => 243,
        _ => return Ok(()),
    };
    if m != want {
        return Err(format!(
            "built for ELF machine {m}, but this tend is built for {arch}; build tend-agentd for the same target"
        ));
    }
    Ok(())
}
