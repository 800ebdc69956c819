//! The slim agent compiled into release builds (crates/tend/build.rs, build-release.sh); dev
//! builds embed none and push themselves.

use tend_engine::EmbeddedAgent;

#[cfg(tend_embedded_agent)]
pub const AGENT: Option<EmbeddedAgent> = Some(EmbeddedAgent {
    sha256: env!("TEND_AGENT_SHA256"),
    size: parse_u64(env!("TEND_AGENT_SIZE")),
    gz: include_bytes!(concat!(env!("OUT_DIR"), "/tend-agentd.gz")),
});

#[cfg(not(tend_embedded_agent))]
pub const AGENT: Option<EmbeddedAgent> = None;

/// `tend --version`: which agent this build pushes to SSH hosts.
#[cfg(tend_embedded_agent)]
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (agent: embedded tend-agentd ",
    env!("TEND_AGENT_SIZE"),
    " bytes, sha256 ",
    env!("TEND_AGENT_SHA256"),
    ")"
);

#[cfg(not(tend_embedded_agent))]
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (agent: this binary itself; build-release.sh embeds the slim tend-agentd)"
);

/// A decimal number at compile time (the build script wrote it).
#[cfg_attr(not(tend_embedded_agent), allow(dead_code))]
const fn parse_u64(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut n = 0u64;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "TEND_AGENT_SIZE is not a number");
        n = n * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_u64("0"), 0);
        assert_eq!(parse_u64("3145728"), 3_145_728);
    }

    #[test]
    fn the_version_says_which_agent_is_pushed() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(VERSION.contains("agent: "));
        if let Some(a) = AGENT {
            assert_eq!(a.sha256.len(), 64);
            assert!(VERSION.contains(a.sha256));
            // A gzip stream.
            assert_eq!(&a.gz[..2], &[0x1f, 0x8b]);
        }
    }
}
