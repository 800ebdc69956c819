//! What a Debian host says about its packages, read without python-apt: the dpkg status
//! database (read directly, no process), `apt-cache policy` output (one process for a whole
//! list), `apt-cache showpkg` reverse provides, apt's extended states, and Debian version
//! ordering (deb-version(7)).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

/// Where dpkg keeps its status database.
pub const STATUS_PATH: &str = "/var/lib/dpkg/status";
/// Where dpkg keeps each package's file list (`<name>[:<arch>].list`).
pub const INFO_DIR: &str = "/var/lib/dpkg/info";
/// apt's auto-installed marks.
pub const EXTENDED_STATES_PATH: &str = "/var/lib/apt/extended_states";

/// One stanza of the dpkg status database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub arch: String,
    pub version: String,
    /// `Status:` words: want, error flag, state (`install ok installed`).
    pub want: String,
    pub state: String,
    pub section: String,
    /// Names this package provides (virtual packages), without versions.
    pub provides: Vec<String>,
}

impl Installed {
    /// dpkg's "installed" state (python-apt's `CURSTATE_INSTALLED`): not half-configured,
    /// not only config files left.
    pub fn is_installed(&self) -> bool {
        self.state == "installed"
    }
}

/// The dpkg status database: package name → its stanzas (one per architecture).
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub packages: BTreeMap<String, Vec<Installed>>,
}

impl Status {
    pub fn read() -> std::io::Result<Status> {
        Self::read_from(Path::new(STATUS_PATH))
    }

    pub fn read_from(path: &Path) -> std::io::Result<Status> {
        match std::fs::read(path) {
            Ok(data) => Ok(Status::parse(&String::from_utf8_lossy(&data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Status::default()),
            Err(e) => Err(e),
        }
    }

    pub fn parse(text: &str) -> Status {
        let mut packages: BTreeMap<String, Vec<Installed>> = BTreeMap::new();
        for stanza in stanzas(text) {
            let mut p = Installed::default();
            for (k, v) in &stanza {
                match k.as_str() {
                    "Package" => p.name = v.clone(),
                    "Architecture" => p.arch = v.clone(),
                    "Version" => p.version = v.clone(),
                    "Section" => p.section = v.clone(),
                    "Status" => {
                        let words: Vec<&str> = v.split_whitespace().collect();
                        p.want = words.first().unwrap_or(&"").to_string();
                        p.state = words.get(2).unwrap_or(&"").to_string();
                    }
                    "Provides" => {
                        p.provides = v
                            .split(',')
                            .filter_map(|d| d.split_whitespace().next())
                            .map(|n| n.split(':').next().unwrap_or(n).to_string())
                            .collect()
                    }
                    _ => {}
                }
            }
            if !p.name.is_empty() {
                packages.entry(p.name.clone()).or_default().push(p);
            }
        }
        Status { packages }
    }

    /// The installed stanza of `name` (`name:arch` picks the architecture).
    pub fn installed(&self, name: &str) -> Option<&Installed> {
        let (base, arch) = split_arch(name);
        self.packages
            .get(base)?
            .iter()
            .find(|p| p.is_installed() && arch.is_none_or(|a| p.arch == a || p.arch == "all"))
    }

    /// Any stanza of `name`, installed or not.
    pub fn any(&self, name: &str) -> Option<&Installed> {
        let (base, arch) = split_arch(name);
        self.packages
            .get(base)?
            .iter()
            .find(|p| arch.is_none_or(|a| p.arch == a))
    }

    /// Installed packages that provide `virtual_name`.
    pub fn providers(&self, virtual_name: &str) -> Vec<&Installed> {
        self.packages
            .values()
            .flatten()
            .filter(|p| p.is_installed() && p.provides.iter().any(|v| v == virtual_name))
            .collect()
    }

    /// Every installed stanza.
    pub fn all_installed(&self) -> impl Iterator<Item = &Installed> {
        self.packages
            .values()
            .flatten()
            .filter(|p| p.is_installed())
    }
}

/// `name:arch` → (`name`, `Some(arch)`).
pub fn split_arch(name: &str) -> (&str, Option<&str>) {
    match name.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (name, None),
    }
}

/// Whether dpkg still has files of `name` on disk (its `.list`: a removed package whose
/// configuration files are left, which only a purge removes). python-apt's `installed_files`.
pub fn has_files(info_dir: &Path, name: &str, arch: &str) -> bool {
    let (base, _) = split_arch(name);
    [format!("{base}.list"), format!("{base}:{arch}.list")]
        .iter()
        .any(|f| {
            std::fs::metadata(info_dir.join(f))
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        })
}

/// Packages apt marked as automatically installed.
pub fn auto_installed(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in stanzas(text) {
        let get = |k: &str| stanza.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("Auto-Installed") == Some("1") {
            if let Some(name) = get("Package") {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// deb822 stanzas: `Key: value` lines, continuation lines (leading blank) appended, blank
/// lines between stanzas.
fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.push((k.to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One package in `apt-cache policy` output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub installed: Option<String>,
    pub candidate: Option<String>,
    /// Every version apt knows (repositories and dpkg status), as listed.
    pub versions: Vec<String>,
}

impl Policy {
    /// A virtual package (only provided by others): known to apt without a version.
    pub fn is_virtual(&self) -> bool {
        self.versions.is_empty() && self.candidate.is_none() && self.installed.is_none()
    }
}

/// Parses `apt-cache policy NAME…` (C locale). Names apt does not know are absent.
pub fn parse_policy(text: &str) -> BTreeMap<String, Policy> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, Policy)> = None;
    let mut in_table = false;
    let none = |v: &str| {
        let v = v.trim();
        (v != "(none)" && !v.is_empty()).then(|| v.to_string())
    };
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            if let Some((n, p)) = cur.take() {
                out.insert(n, p);
            }
            cur = Some((line[..line.len() - 1].to_string(), Policy::default()));
            in_table = false;
            continue;
        }
        let Some((_, p)) = cur.as_mut() else {
            continue;
        };
        let t = line.trim_start();
        if let Some(v) = t.strip_prefix("Installed:") {
            p.installed = none(v);
        } else if let Some(v) = t.strip_prefix("Candidate:") {
            p.candidate = none(v);
        } else if t.starts_with("Version table:") {
            in_table = true;
        } else if in_table {
            // Version lines: 5 columns of indent (or ` *** `), then `VERSION PRIORITY`;
            // source lines are indented further and start with a priority number.
            let indent = line.len() - t.len();
            let (t, marked) = match t.strip_prefix("*** ") {
                Some(rest) => (rest, true),
                None => (t, false),
            };
            if marked || indent <= 5 {
                if let Some(v) = t.split_whitespace().next() {
                    p.versions.push(v.to_string());
                }
            }
        }
    }
    if let Some((n, p)) = cur.take() {
        out.insert(n, p);
    }
    out
}

/// Parses `apt-cache showpkg NAME…`: package → the names in its "Reverse Provides" section.
pub fn parse_reverse_provides(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut pkg = String::new();
    let mut in_rp = false;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("Package: ") {
            pkg = n.trim().to_string();
            out.entry(pkg.clone()).or_default();
            in_rp = false;
        } else if line.starts_with("Reverse Provides:") {
            in_rp = true;
        } else if in_rp {
            match line.split_whitespace().next() {
                Some(name) if !line.starts_with(' ') => {
                    out.entry(pkg.clone()).or_default().push(name.to_string());
                }
                _ => in_rp = false,
            }
        }
    }
    out
}

/// Debian version ordering (deb-version(7)): epoch, then upstream version and revision by
/// dpkg's `verrevcmp` (`~` sorts before everything, letters before other characters).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ra) = split_epoch(a);
    let (eb, rb) = split_epoch(b);
    if ea != eb {
        return ea.cmp(&eb);
    }
    let (ua, va) = split_revision(ra);
    let (ub, vb) = split_revision(rb);
    match verrevcmp(ua, ub) {
        Ordering::Equal => verrevcmp(va, vb),
        o => o,
    }
}

fn split_epoch(v: &str) -> (u64, &str) {
    match v.split_once(':') {
        Some((e, rest)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), rest),
        _ => (0, v),
    }
}

fn split_revision(v: &str) -> (&str, &str) {
    match v.rfind('-') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, ""),
    }
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        // Numeric part, leading zeros ignored.
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let si = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let sj = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (na, nb) = (&a[si..i], &b[sj..j]);
        if na.len() != nb.len() {
            return na.len().cmp(&nb.len());
        }
        match na.cmp(nb) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_version_order() {
        use Ordering::*;
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1:0.9", "2.0", Greater),
            ("1.0-1", "1.0-2", Less),
            ("1.0-10", "1.0-9", Greater),
            ("1.01", "1.1", Equal),
            ("5.2.15-2+b8", "5.2.15-2+b13", Less),
            ("1.0a", "1.0", Greater),
            ("1.0a", "1.0+", Less),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("0", "", Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn status_stanzas() {
        let text = "Package: tree\nStatus: install ok installed\nPriority: optional\n\
Section: utils\nArchitecture: amd64\nVersion: 2.1.0-1\nDescription: tree\n more text\n\n\
Package: nginx-common\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1.22\n\n\
Package: exim4-daemon-light\nStatus: install ok installed\nArchitecture: amd64\n\
Version: 4.96\nProvides: mail-transport-agent, exim4-localscanapi-6.0 (= 1)\n";
        let s = Status::parse(text);
        let t = s.installed("tree").unwrap();
        assert_eq!(
            (t.version.as_str(), t.arch.as_str(), t.section.as_str()),
            ("2.1.0-1", "amd64", "utils")
        );
        assert!(s.installed("tree:amd64").is_some());
        assert!(s.installed("tree:i386").is_none());
        assert!(s.installed("nginx-common").is_none());
        assert_eq!(s.any("nginx-common").unwrap().state, "config-files");
        assert_eq!(s.providers("mail-transport-agent").len(), 1);
        assert_eq!(
            s.installed("exim4-daemon-light").unwrap().provides,
            vec!["mail-transport-agent", "exim4-localscanapi-6.0"]
        );
        assert_eq!(s.all_installed().count(), 2);
    }

    #[test]
    fn policy_output() {
        let text = [
            "bash:",
            "  Installed: 5.2.15-2+b8",
            "  Candidate: 5.2.15-2+b13",
            "  Version table:",
            "     5.2.15-2+b13 500",
            "        500 http://deb.debian.org/debian bookworm/main amd64 Packages",
            " *** 5.2.15-2+b8 100",
            "        100 /var/lib/dpkg/status",
            "mail-transport-agent:",
            "  Installed: (none)",
            "  Candidate: (none)",
            "  Version table:",
            "tend-demo:",
            "  Installed: (none)",
            "  Candidate: 2.0",
            "  Version table:",
            "     2.0 500",
            "        500 file:/srv/tend-lab-repo ./ Packages",
            "     1.0 500",
            "        500 file:/srv/tend-lab-repo ./ Packages",
        ]
        .join("\n");
        let p = parse_policy(&text);
        assert_eq!(p.len(), 3);
        assert_eq!(p["bash"].installed.as_deref(), Some("5.2.15-2+b8"));
        assert_eq!(p["bash"].candidate.as_deref(), Some("5.2.15-2+b13"));
        assert_eq!(p["bash"].versions, vec!["5.2.15-2+b13", "5.2.15-2+b8"]);
        assert!(p["mail-transport-agent"].is_virtual());
        assert_eq!(p["tend-demo"].versions, vec!["2.0", "1.0"]);
        assert!(!p["tend-demo"].is_virtual());
    }

    #[test]
    fn reverse_provides_and_auto_marks() {
        let text = "Package: mail-transport-agent\nVersions: \n\nReverse Depends: \n  mutt,mail-transport-agent\n\
Dependencies: \nProvides: \nReverse Provides: \nssmtp 2.64-11 (= )\npostfix 3.7 (= )\n\
Package: awk\nVersions: \n\nReverse Provides: \n";
        let rp = parse_reverse_provides(text);
        assert_eq!(rp["mail-transport-agent"], vec!["ssmtp", "postfix"]);
        assert!(rp["awk"].is_empty());
        let ext = "Package: libfoo\nArchitecture: amd64\nAuto-Installed: 1\n\n\
Package: bar\nArchitecture: amd64\nAuto-Installed: 0\n";
        assert_eq!(auto_installed(ext), vec!["libfoo"]);
    }
}
