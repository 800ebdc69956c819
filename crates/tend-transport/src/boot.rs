//! The one command tend runs on a host: check the cache, receive the agent if it is missing,
//! and exec it. POSIX sh only; nothing secret in it (it is visible in `ps`).
//!
//! The cache is written under `umask 077`, but the agent runs with the login's own umask (as
//! ansible-core's modules do): files that commands and modules create without an explicit mode
//! get the same mode under both.

/// Exit statuses of the script, so the controller can tell what went wrong.
pub const EXIT_CACHE: i32 = 90;
pub const EXIT_FOREIGN_CACHE: i32 = 91;
pub const EXIT_NO_UPLOAD: i32 = 92;
pub const EXIT_UPLOAD: i32 = 93;

/// The script, for an agent and a bundle of these hashes (both hex).
pub fn script(agent_hash: &str, bundle_hash: Option<&str>) -> String {
    debug_assert!(agent_hash.bytes().all(|b| b.is_ascii_hexdigit()));
    let bundle = bundle_hash.unwrap_or("none");
    format!(
        r#"u=$(umask)
umask 077
d="${{XDG_CACHE_HOME:-$HOME/.cache}}/tend"
mkdir -p "$d" || exit {EXIT_CACHE}
o=$(stat -c %u "$d") || exit {EXIT_CACHE}
if [ "$o" != "$(id -u)" ]; then echo "tend: $d belongs to uid $o, not to $(id -un); refusing to run an agent from it" >&2; exit {EXIT_FOREIGN_CACHE}; fi
chmod 700 "$d" || exit {EXIT_CACHE}
a="$d/agent-{agent_hash}"
ha=0; [ -x "$a" ] && ha=1
hb=0; [ -f "$d/bundles/{bundle}/manifest.json" ] && hb=1
echo "{marker} $(uname -s) $(uname -m) agent=$ha bundle=$hb"
if [ $ha = 0 ]; then
read n || exit {EXIT_NO_UPLOAD}
t="$d/.agent-{agent_hash}.$$"
head -c "$n" | gzip -dc > "$t" || {{ rm -f "$t"; exit {EXIT_UPLOAD}; }}
chmod 700 "$t" && mv -f "$t" "$a" || exit {EXIT_UPLOAD}
fi
umask "$u"
exec "$a" agent --cache "$d""#,
        marker = tend_proto::wire::BOOT_MARKER,
    )
}

/// What the script's first line says.
#[derive(Debug, PartialEq, Eq)]
pub struct Boot {
    pub os: String,
    pub arch: String,
    pub has_agent: bool,
    pub has_bundle: bool,
}

pub fn parse(line: &str) -> Option<Boot> {
    let mut w = line.split_whitespace();
    if w.next()? != tend_proto::wire::BOOT_MARKER {
        return None;
    }
    let os = w.next()?.to_string();
    let arch = w.next()?.to_string();
    let has_agent = w.next()? == "agent=1";
    let has_bundle = w.next()? == "bundle=1";
    Some(Boot {
        os,
        arch,
        has_agent,
        has_bundle,
    })
}

/// Quotes a string for POSIX sh as one word.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_line_round_trip() {
        assert_eq!(
            parse("tend-boot Linux x86_64 agent=0 bundle=1"),
            Some(Boot {
                os: "Linux".into(),
                arch: "x86_64".into(),
                has_agent: false,
                has_bundle: true
            })
        );
        assert_eq!(parse("Welcome to the machine"), None);
    }

    /// The script is valid sh and does what it says on a real shell: a first run asks for the
    /// agent, stores it under the hash, and execs it; a second run finds it cached.
    #[test]
    fn script_runs_in_sh() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let home = tempfile::tempdir().unwrap();
        // A fake "agent": a shell script that prints its arguments and its umask.
        let agent = b"#!/bin/sh\necho started \"$@\"\necho umask $(umask)\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(agent).unwrap();
        let gz = gz.finish().unwrap();
        let run = |upload: bool| {
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                // The login's umask (sshd's is usually 022; 027 here to tell it from the default).
                .arg(format!("umask 027\n{}", script("00ff", None)))
                .env("HOME", home.path())
                .env_remove("XDG_CACHE_HOME")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            if upload {
                writeln!(stdin, "{}", gz.len()).unwrap();
                stdin.write_all(&gz).unwrap();
            }
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let first = run(true);
        assert!(first.contains("agent=0 bundle=0"), "{first}");
        assert!(first.contains("started agent --cache"), "{first}");
        // The cache is private, but the agent gets the login's umask back: modules and commands
        // create files with the modes ansible-core's would have.
        assert!(first.contains("umask 0027"), "{first}");
        let second = run(false);
        assert!(second.contains("agent=1"), "{second}");
        assert!(second.contains("started agent"), "{second}");
        let dir = home.path().join(".cache/tend");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(dir.join("agent-00ff").exists());
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }
}
