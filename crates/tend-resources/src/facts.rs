//! Facts: what a host is, gathered natively (no Python, no processes), as `ansible_facts`.
//!
//! [`gather`] returns the keys of `ansible_facts` without the `ansible_` prefix, with the values
//! ansible-core's `setup` module computes on Linux, read from `/proc`, `/sys`, `/etc` and a few
//! libc calls (`uname`, `localtime_r`, `getifaddrs`, `statvfs`). `gather_subset` works as in
//! Ansible: `all` (the default), `min`, and `hardware`, `network`, `virtual`, each addable or
//! removable with `!`; the `min` facts are always gathered.
//!
//! Left out: per-interface `ansible_<iface>` dicts, `devices`, `lvm`, DMI/`bios_*`, `python`,
//! `lsb` from the `lsb_release` command, `ssh_*_pubkey`, `system_capabilities`.

use std::collections::{BTreeMap, HashSet};
use std::ffi::CStr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde_json::json;
use tend_proto::{Value, Vars};

/// Gathers the facts of this host. `subset` is `gather_subset` (empty means `all`).
pub fn gather(subset: &[String]) -> Vars {
    let want = Subsets::from(subset);
    let mut f = Vars::new();
    let uts = uname();

    // min: platform
    let node = uts.nodename.clone();
    let fqdn = fqdn(&node);
    f.insert("system".into(), json!(uts.sysname));
    f.insert("kernel".into(), json!(uts.release));
    f.insert("kernel_version".into(), json!(uts.version));
    f.insert("machine".into(), json!(uts.machine));
    f.insert("architecture".into(), json!(architecture(&uts.machine)));
    f.insert(
        "userspace_architecture".into(),
        json!(architecture(&uts.machine)),
    );
    f.insert("userspace_bits".into(), json!((usize::BITS).to_string()));
    f.insert("nodename".into(), json!(node));
    f.insert(
        "hostname".into(),
        json!(node.split('.').next().unwrap_or_default()),
    );
    f.insert(
        "domain".into(),
        json!(fqdn.split_once('.').map_or("", |(_, d)| d)),
    );
    f.insert("fqdn".into(), json!(fqdn));
    if let Some(id) = read_trim("/etc/machine-id").or_else(|| read_trim("/var/lib/dbus/machine-id"))
    {
        f.insert("machine_id".into(), json!(id));
    }

    // min: distribution, os_family, pkg_mgr, service_mgr
    let os = os_release();
    for (k, v) in distribution(&os) {
        f.insert(k.into(), json!(v));
    }
    f.insert("pkg_mgr".into(), json!(pkg_mgr()));
    f.insert("service_mgr".into(), json!(service_mgr()));

    // min: user, env, date_time, selinux, apparmor, fips, dns, cmdline, chroot, local
    user_facts(&mut f);
    let env: Vars = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), json!(v.to_string_lossy())))
        .collect();
    f.insert("env".into(), Value::Object(env));
    f.insert("date_time".into(), date_time());
    f.insert("selinux".into(), selinux());
    let apparmor = if Path::new("/sys/kernel/security/apparmor").exists() {
        "enabled"
    } else {
        "disabled"
    };
    f.insert("apparmor".into(), json!({ "status": apparmor }));
    f.insert(
        "fips".into(),
        json!(read_trim("/proc/sys/crypto/fips_enabled").as_deref() == Some("1")),
    );
    f.insert("dns".into(), dns());
    if let Some(cl) = read_trim("/proc/cmdline") {
        let (cmdline, proc_cmdline) = cmdline(&cl);
        f.insert("cmdline".into(), cmdline);
        f.insert("proc_cmdline".into(), proc_cmdline);
    }
    f.insert("is_chroot".into(), json!(is_chroot()));
    f.insert("local".into(), json!({}));

    if want.hardware {
        hardware(&mut f);
    }
    if want.network {
        network(&mut f);
    }
    if want.virtual_ {
        let (t, r) = virtualization();
        f.insert("virtualization_type".into(), json!(t));
        f.insert("virtualization_role".into(), json!(r));
    }
    f
}

/// Which optional fact groups to gather.
struct Subsets {
    hardware: bool,
    network: bool,
    virtual_: bool,
}

impl From<&[String]> for Subsets {
    fn from(subset: &[String]) -> Self {
        let names: Vec<&str> = subset
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .collect();
        // Only exclusions (`!hardware`) start from everything, as in Ansible.
        let all =
            names.is_empty() || names.contains(&"all") || names.iter().all(|n| n.starts_with('!'));
        let mut s = Subsets {
            hardware: all,
            network: all,
            virtual_: all,
        };
        for n in &names {
            let (on, name) = match n.strip_prefix('!') {
                Some(rest) => (false, rest),
                None => (true, *n),
            };
            match name {
                "all" if !on => {
                    s = Subsets {
                        hardware: false,
                        network: false,
                        virtual_: false,
                    }
                }
                "hardware" => s.hardware = on,
                "network" => s.network = on,
                "virtual" => s.virtual_ = on,
                _ => {}
            }
        }
        s
    }
}

// ---- platform ---------------------------------------------------------------------------------

struct Uname {
    sysname: String,
    nodename: String,
    release: String,
    version: String,
    machine: String,
}

fn uname() -> Uname {
    let mut u = Uname {
        sysname: "Linux".into(),
        nodename: read_trim("/proc/sys/kernel/hostname").unwrap_or_default(),
        release: read_trim("/proc/sys/kernel/osrelease").unwrap_or_default(),
        version: read_trim("/proc/sys/kernel/version").unwrap_or_default(),
        machine: std::env::consts::ARCH.to_string(),
    };
    // SAFETY: `utsname` is plain bytes, zero-initialised; `uname` fills it and returns 0 on
    // success, after which every field is a NUL-terminated string within its array.
    #[allow(unsafe_code)]
    let raw = unsafe {
        let mut raw: libc::utsname = std::mem::zeroed();
        (libc::uname(&mut raw) == 0).then_some(raw)
    };
    if let Some(raw) = raw {
        let s = |f: &[libc::c_char]| {
            let bytes: Vec<u8> = f
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        u = Uname {
            sysname: s(&raw.sysname),
            nodename: s(&raw.nodename),
            release: s(&raw.release),
            version: s(&raw.version),
            machine: s(&raw.machine),
        };
    }
    u
}

/// Ansible's `architecture`: `i386` for the 32-bit x86 family, the machine otherwise.
fn architecture(machine: &str) -> String {
    match machine {
        "i386" | "i486" | "i586" | "i686" => "i386".into(),
        m => m.into(),
    }
}

/// `socket.getfqdn()` answered from `/etc/hosts` (no DNS queries): the first name with a dot
/// among the canonical name and aliases of the host's address, else the canonical name.
fn fqdn(node: &str) -> String {
    let Some(hosts) = read("/etc/hosts") else {
        return node.to_string();
    };
    let lines: Vec<Vec<&str>> = hosts
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
        })
        .filter(|w| w.len() >= 2)
        .collect();
    let Some(addr) = lines.iter().find(|w| w[1..].contains(&node)).map(|w| w[0]) else {
        return node.to_string();
    };
    let Some(entry) = lines.iter().find(|w| w[0] == addr) else {
        return node.to_string();
    };
    entry[1..]
        .iter()
        .find(|n| n.contains('.'))
        .unwrap_or(&entry[1])
        .to_string()
}

// ---- distribution -----------------------------------------------------------------------------

fn os_release() -> BTreeMap<String, String> {
    let text = read("/etc/os-release")
        .or_else(|| read("/usr/lib/os-release"))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches(['"', '\'']).to_string(),
            )
        })
        .collect()
}

/// `distribution*` and `os_family`, named as Ansible names them.
fn distribution(os: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
    let id = os.get("ID").map(String::as_str).unwrap_or("");
    let name = match id {
        "debian" => "Debian",
        "ubuntu" => "Ubuntu",
        "linuxmint" => "Linux Mint",
        "raspbian" => "Debian",
        "kali" => "Kali",
        "devuan" => "Devuan",
        "pop" => "Pop!_OS",
        "centos" => "CentOS",
        "rhel" => "RedHat",
        "fedora" => "Fedora",
        "rocky" => "Rocky",
        "almalinux" => "AlmaLinux",
        "ol" => "OracleLinux",
        "amzn" => "Amazon",
        "arch" => "Archlinux",
        "manjaro" => "Manjaro",
        "alpine" => "Alpine",
        "gentoo" => "Gentoo",
        "sles" => "SLES",
        "opensuse-leap" => "openSUSE Leap",
        "opensuse-tumbleweed" => "openSUSE Tumbleweed",
        "void" => "Void",
        "nixos" => "NixOS",
        "" => "NA",
        other => os.get("NAME").map(String::as_str).unwrap_or(other),
    }
    .to_string();
    let family = match name.as_str() {
        "Debian" | "Ubuntu" | "Linux Mint" | "Kali" | "Devuan" | "Pop!_OS" => "Debian",
        "CentOS" | "RedHat" | "Fedora" | "Rocky" | "AlmaLinux" | "OracleLinux" | "Amazon" => {
            "RedHat"
        }
        "Archlinux" | "Manjaro" => "Archlinux",
        "Alpine" => "Alpine",
        "Gentoo" => "Gentoo",
        "SLES" | "openSUSE Leap" | "openSUSE Tumbleweed" => "Suse",
        other => other,
    }
    .to_string();
    let mut version = os.get("VERSION_ID").cloned().unwrap_or_else(|| "NA".into());
    if name == "Debian" {
        // Ansible reads the point release from /etc/debian_version (12.11, not 12).
        if let Some(v) = read_trim("/etc/debian_version") {
            if v.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                version = v;
            }
        }
    }
    let release = os
        .get("VERSION_CODENAME")
        .or_else(|| os.get("UBUNTU_CODENAME"))
        .cloned()
        .unwrap_or_else(|| "NA".into());
    let major = version.split('.').next().unwrap_or("").to_string();
    let mut out = vec![
        ("distribution", name),
        ("os_family", family),
        ("distribution_version", version.clone()),
        ("distribution_major_version", major),
        ("distribution_release", release),
    ];
    if let Some(minor) = version.split('.').nth(1) {
        out.push(("distribution_minor_version", minor.to_string()));
    }
    out
}

/// ansible-core's `pkg_mgr` fact: the first package manager found on the host.
pub fn pkg_mgr() -> &'static str {
    const MGRS: [(&str, &str); 9] = [
        ("/usr/bin/apt-get", "apt"),
        ("/usr/bin/dnf", "dnf"),
        ("/usr/bin/yum", "yum"),
        ("/usr/bin/zypper", "zypper"),
        ("/usr/bin/pacman", "pacman"),
        ("/sbin/apk", "apk"),
        ("/usr/bin/emerge", "portage"),
        ("/usr/bin/xbps-install", "xbps"),
        ("/usr/bin/nix-env", "nix"),
    ];
    MGRS.iter()
        .find(|(p, _)| Path::new(p).exists())
        .map_or("unknown", |(_, m)| m)
}

/// Ansible's rules: the name of PID 1 (mapped for a few inits), unless it is `init` or a shell;
/// then systemd if `/run/systemd/system` exists, else sysvinit / openrc / `service`.
pub fn service_mgr() -> String {
    let proc1 = read_trim("/proc/1/comm")
        .or_else(|| {
            std::fs::read_link("/sbin/init")
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .map(|p| p.rsplit('/').next().unwrap_or(&p).trim().to_string())
        .filter(|p| !p.is_empty() && p != "init" && !p.ends_with("sh"));
    if let Some(p) = proc1 {
        return match p.as_str() {
            "procd" => "openwrt_init".into(),
            "runit-init" => "runit".into(),
            "svscan" => "svc".into(),
            "openrc-init" => "openrc".into(),
            other => other.into(),
        };
    }
    if Path::new("/run/systemd/system").is_dir() {
        "systemd".into()
    } else if Path::new("/sbin/openrc").exists() {
        "openrc".into()
    } else if Path::new("/etc/init.d").is_dir() {
        "sysvinit".into()
    } else {
        "service".into()
    }
}

// ---- user, time, security, dns, cmdline -------------------------------------------------------

fn user_facts(f: &mut Vars) {
    let status = read("/proc/self/status").unwrap_or_default();
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|r| {
                r.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (uids, gids) = (ids("Uid:"), ids("Gid:"));
    let (ruid, euid) = (
        uids.first().copied().unwrap_or(0),
        uids.get(1).copied().unwrap_or(0),
    );
    let (rgid, egid) = (
        gids.first().copied().unwrap_or(0),
        gids.get(1).copied().unwrap_or(0),
    );
    let passwd = read("/etc/passwd").unwrap_or_default();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|p| p.len() >= 7 && p[2].parse::<u32>().ok() == Some(euid));
    let user = entry
        .as_ref()
        .map_or_else(|| euid.to_string(), |p| p[0].to_string());
    f.insert("user_id".into(), json!(user));
    f.insert("user_uid".into(), json!(euid));
    f.insert(
        "user_gid".into(),
        json!(entry
            .as_ref()
            .and_then(|p| p[3].parse::<u32>().ok())
            .unwrap_or(egid)),
    );
    f.insert(
        "user_gecos".into(),
        json!(entry.as_ref().map_or("", |p| p[4])),
    );
    f.insert(
        "user_dir".into(),
        json!(entry.as_ref().map_or_else(
            || std::env::var("HOME").unwrap_or_default(),
            |p| p[5].to_string()
        )),
    );
    f.insert(
        "user_shell".into(),
        json!(entry.as_ref().map_or("", |p| p[6])),
    );
    f.insert("real_user_id".into(), json!(ruid));
    f.insert("effective_user_id".into(), json!(euid));
    f.insert("real_group_id".into(), json!(rgid));
    f.insert("effective_group_id".into(), json!(egid));
}

/// Broken-down local time.
struct LocalTime {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: u32,
    yday: u32,
    gmtoff: i64,
    zone: String,
    isdst: bool,
}

fn localtime(epoch: i64) -> Option<LocalTime> {
    let t = epoch as libc::time_t;
    // SAFETY: `tm` is plain data, zero-initialised; `localtime_r` only writes into it and
    // returns NULL on failure. `tm_zone`, when non-NULL, points at a static NUL-terminated
    // string owned by libc's timezone data, which we copy at once.
    #[allow(unsafe_code)]
    let (tm, zone) = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned()
        };
        (tm, zone)
    };
    Some(LocalTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
        weekday: tm.tm_wday as u32,
        yday: tm.tm_yday as u32,
        gmtoff: tm.tm_gmtoff,
        zone,
        isdst: tm.tm_isdst > 0,
    })
}

/// UTC broken down (civil-from-days), for the `iso8601*` fields Ansible prints in UTC.
fn utc(epoch: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

fn date_time() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = now.as_secs() as i64;
    let micros = now.subsec_micros();
    let (uy, um, ud, uh, umi, us) = utc(epoch);
    let lt = localtime(epoch).unwrap_or(LocalTime {
        year: uy as i32,
        month: um,
        day: ud,
        hour: uh,
        minute: umi,
        second: us,
        weekday: ((epoch.div_euclid(86_400) + 4).rem_euclid(7)) as u32,
        yday: 0,
        gmtoff: 0,
        zone: "UTC".into(),
        isdst: false,
    });
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    let off = lt.gmtoff;
    let tz_offset = format!(
        "{}{:02}{:02}",
        if off < 0 { '-' } else { '+' },
        off.abs() / 3600,
        off.abs() / 60 % 60
    );
    // %W: week of the year, Monday first, days before the first Monday in week 0.
    let weeknumber = (lt.yday + 7 - (lt.weekday + 6) % 7) / 7;
    // time.tzname[1]: the zone's DST name, looked up in midsummer (either hemisphere).
    let tz_dst = [lt.year, lt.year]
        .iter()
        .zip([(1, 15), (7, 15)])
        .filter_map(|(y, (m, d))| {
            let e = days_from_civil(i64::from(*y), m, d) * 86_400 + 43_200;
            localtime(e).filter(|t| t.isdst).map(|t| t.zone)
        })
        .next()
        .unwrap_or_else(|| lt.zone.clone());
    let _ = lt.isdst;
    json!({
        "year": format!("{:04}", lt.year),
        "month": format!("{:02}", lt.month),
        "weekday": DAYS[lt.weekday as usize % 7],
        "weekday_number": lt.weekday.to_string(),
        "weeknumber": format!("{weeknumber:02}"),
        "day": format!("{:02}", lt.day),
        "hour": format!("{:02}", lt.hour),
        "minute": format!("{:02}", lt.minute),
        "second": format!("{:02}", lt.second),
        "epoch": epoch.to_string(),
        "epoch_int": epoch.to_string(),
        "date": format!("{:04}-{:02}-{:02}", lt.year, lt.month, lt.day),
        "time": format!("{:02}:{:02}:{:02}", lt.hour, lt.minute, lt.second),
        "iso8601_micro": format!("{uy:04}-{um:02}-{ud:02}T{uh:02}:{umi:02}:{us:02}.{micros:06}Z"),
        "iso8601": format!("{uy:04}-{um:02}-{ud:02}T{uh:02}:{umi:02}:{us:02}Z"),
        "iso8601_basic": format!("{:04}{:02}{:02}T{:02}{:02}{:02}{micros:06}", lt.year, lt.month, lt.day, lt.hour, lt.minute, lt.second),
        "iso8601_basic_short": format!("{:04}{:02}{:02}T{:02}{:02}{:02}", lt.year, lt.month, lt.day, lt.hour, lt.minute, lt.second),
        "tz": lt.zone,
        "tz_dst": tz_dst,
        "tz_offset": tz_offset,
    })
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn selinux() -> Value {
    let Some(enforce) = read_trim("/sys/fs/selinux/enforce") else {
        return json!({ "status": "disabled" });
    };
    let mode = if enforce == "1" {
        "enforcing"
    } else {
        "permissive"
    };
    json!({ "status": "enabled", "mode": mode })
}

fn dns() -> Value {
    let mut out = Vars::new();
    let mut ns = Vec::new();
    for line in read("/etc/resolv.conf").unwrap_or_default().lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["nameserver", addr, ..] => ns.push(json!(addr)),
            ["domain", d, ..] => {
                out.insert("domain".into(), json!(d));
            }
            ["search", rest @ ..] => {
                out.insert("search".into(), json!(rest));
            }
            _ => {}
        }
    }
    if !ns.is_empty() {
        out.insert("nameservers".into(), Value::Array(ns));
    }
    Value::Object(out)
}

/// `cmdline` (last value wins) and `proc_cmdline` (repeated keys become lists).
fn cmdline(text: &str) -> (Value, Value) {
    let mut simple = Vars::new();
    let mut multi = Vars::new();
    for item in text.split_whitespace() {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, json!(v)),
            None => (item, json!(true)),
        };
        simple.insert(k.into(), v.clone());
        match multi.get_mut(k) {
            Some(Value::Array(list)) => list.push(v),
            Some(prev) => *prev = json!([prev.clone(), v]),
            None => {
                multi.insert(k.into(), v);
            }
        }
    }
    (Value::Object(simple), Value::Object(multi))
}

fn is_chroot() -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata("/"), std::fs::metadata("/proc/1/root/.")) {
        (Ok(a), Ok(b)) => a.ino() != b.ino() || a.dev() != b.dev(),
        _ => false,
    }
}

// ---- hardware ---------------------------------------------------------------------------------

fn hardware(f: &mut Vars) {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let mut vcpus = 0u64;
    let mut physical = HashSet::new();
    let mut cores = None;
    let mut siblings = None;
    let mut processor = Vec::new();
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                vcpus += 1;
                processor.push(json!(v));
            }
            "vendor_id" | "model name" | "Processor" | "cpu model" => processor.push(json!(v)),
            "physical id" => {
                physical.insert(v.to_string());
            }
            "cpu cores" if cores.is_none() => cores = v.parse::<u64>().ok(),
            "siblings" if siblings.is_none() => siblings = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    let count = physical.len().max(1) as u64;
    let cores = cores.unwrap_or(1);
    let threads = siblings.map_or(1, |s| (s / cores.max(1)).max(1));
    f.insert("processor".into(), Value::Array(processor));
    f.insert("processor_count".into(), json!(count));
    f.insert("processor_cores".into(), json!(cores));
    f.insert("processor_threads_per_core".into(), json!(threads));
    f.insert(
        "processor_vcpus".into(),
        json!(if vcpus > 0 {
            vcpus
        } else {
            count * cores * threads
        }),
    );
    let nproc = std::thread::available_parallelism().map_or(vcpus.max(1), |n| n.get() as u64);
    f.insert("processor_nproc".into(), json!(nproc));

    let meminfo: BTreeMap<String, u64> = read("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    let mb = |k: &str| meminfo.get(k).copied().unwrap_or(0) / 1024;
    let (total, free) = (mb("MemTotal"), mb("MemFree"));
    let nocache_free = mb("MemFree") + mb("Buffers") + mb("Cached");
    let (swap_total, swap_free) = (mb("SwapTotal"), mb("SwapFree"));
    f.insert("memtotal_mb".into(), json!(total));
    f.insert("memfree_mb".into(), json!(free));
    f.insert("swaptotal_mb".into(), json!(swap_total));
    f.insert("swapfree_mb".into(), json!(swap_free));
    f.insert(
        "memory_mb".into(),
        json!({
            "real": {"total": total, "used": total.saturating_sub(free), "free": free},
            "nocache": {"free": nocache_free, "used": total.saturating_sub(nocache_free)},
            "swap": {"total": swap_total, "free": swap_free,
                     "used": swap_total.saturating_sub(swap_free), "cached": mb("SwapCached")},
        }),
    );
    if let Some(up) = read_trim("/proc/uptime") {
        if let Some(secs) = up
            .split_whitespace()
            .next()
            .and_then(|s| s.parse::<f64>().ok())
        {
            f.insert("uptime_seconds".into(), json!(secs as u64));
        }
    }
    if let Some(load) = read_trim("/proc/loadavg") {
        let l: Vec<f64> = load
            .split_whitespace()
            .take(3)
            .filter_map(|s| s.parse().ok())
            .collect();
        if l.len() == 3 {
            f.insert(
                "loadavg".into(),
                json!({"1m": l[0], "5m": l[1], "15m": l[2]}),
            );
        }
    }
    f.insert("mounts".into(), Value::Array(mounts()));
}

/// Mounted block-device and network filesystems, as Ansible lists them.
fn mounts() -> Vec<Value> {
    let text = read("/proc/self/mounts").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [device, mount, fstype, options, ..] = w[..] else {
            continue;
        };
        if (!device.starts_with('/') && !device.contains(":/")) || fstype == "none" {
            continue;
        }
        let mount = unescape_octal(mount);
        let mut m = json!({
            "device": unescape_octal(device),
            "mount": mount,
            "fstype": fstype,
            "options": options,
            "dump": 0,
            "passno": 0,
            "uuid": "N/A",
        });
        if let (Some(obj), Some(s)) = (m.as_object_mut(), statvfs(&mount)) {
            for (k, v) in s {
                obj.insert(k.into(), json!(v));
            }
        }
        out.push(m);
    }
    out
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn statvfs(path: &str) -> Option<Vec<(&'static str, u64)>> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a zero-initialised plain struct that
    // `statvfs` fills; it reads nothing else and we only use `st` on success.
    #[allow(unsafe_code)]
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut st) == 0).then_some(st)
    }?;
    let bsize = st.f_frsize as u64;
    Some(vec![
        ("block_size", st.f_bsize as u64),
        ("block_total", st.f_blocks as u64),
        ("block_available", st.f_bavail as u64),
        ("block_used", (st.f_blocks - st.f_bavail) as u64),
        ("inode_total", st.f_files as u64),
        ("inode_available", st.f_favail as u64),
        ("inode_used", (st.f_files - st.f_favail) as u64),
        ("size_total", st.f_blocks as u64 * bsize),
        ("size_available", st.f_bavail as u64 * bsize),
    ])
}

// ---- network ----------------------------------------------------------------------------------

/// One address of one interface.
struct IfAddr {
    name: String,
    v4: Option<(Ipv4Addr, Ipv4Addr, Option<Ipv4Addr>)>,
    v6: Option<Ipv6Addr>,
}

fn ifaddrs() -> Vec<IfAddr> {
    let mut out = Vec::new();
    // SAFETY: `getifaddrs` allocates a linked list we walk read-only and free exactly once with
    // `freeifaddrs`. Each `ifa_addr`/`ifa_netmask`/`ifa_ifu` is checked for NULL and only cast to
    // `sockaddr_in`/`sockaddr_in6` after checking `sa_family`; names are NUL-terminated. Nothing
    // borrowed from the list outlives this block.
    #[allow(unsafe_code)]
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            let name = CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            let v4 = |sa: *const libc::sockaddr| -> Option<Ipv4Addr> {
                if sa.is_null() || i32::from((*sa).sa_family) != libc::AF_INET {
                    return None;
                }
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            };
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let addr = v4(ifa.ifa_addr);
                    let mask = v4(ifa.ifa_netmask).unwrap_or(Ipv4Addr::UNSPECIFIED);
                    let bcast = if ifa.ifa_flags & libc::IFF_BROADCAST as u32 != 0 {
                        v4(ifa.ifa_ifu)
                    } else {
                        None
                    };
                    if let Some(a) = addr {
                        out.push(IfAddr {
                            name,
                            v4: Some((a, mask, bcast)),
                            v6: None,
                        });
                    }
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    out.push(IfAddr {
                        name,
                        v4: None,
                        v6: Some(Ipv6Addr::from(sin6.sin6_addr.s6_addr)),
                    });
                }
                _ => {}
            }
        }
        libc::freeifaddrs(head);
    }
    out
}

fn network(f: &mut Vars) {
    let interfaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    f.insert("interfaces".into(), json!(interfaces));
    let addrs = ifaddrs();
    let v4: Vec<Value> = addrs
        .iter()
        .filter_map(|a| a.v4.map(|(ip, _, _)| ip))
        .filter(|ip| !ip.is_loopback())
        .map(|ip| json!(ip.to_string()))
        .collect();
    let v6: Vec<Value> = addrs
        .iter()
        .filter_map(|a| a.v6)
        .filter(|ip| !ip.is_loopback())
        .map(|ip| json!(ip.to_string()))
        .collect();
    f.insert("all_ipv4_addresses".into(), Value::Array(v4));
    f.insert("all_ipv6_addresses".into(), Value::Array(v6));

    let mut default = Vars::new();
    if let Some((iface, gateway)) = default_route_v4() {
        let sys = |what: &str| read_trim(&format!("/sys/class/net/{iface}/{what}"));
        default.insert("interface".into(), json!(iface));
        default.insert("alias".into(), json!(iface));
        default.insert("gateway".into(), json!(gateway.to_string()));
        if let Some((ip, mask, bcast)) = addrs.iter().filter(|a| a.name == iface).find_map(|a| a.v4)
        {
            let prefix = u32::from(mask).count_ones();
            let network = Ipv4Addr::from(u32::from(ip) & u32::from(mask));
            default.insert("address".into(), json!(ip.to_string()));
            default.insert("netmask".into(), json!(mask.to_string()));
            default.insert("network".into(), json!(network.to_string()));
            default.insert("prefix".into(), json!(prefix.to_string()));
            if let Some(b) = bcast {
                default.insert("broadcast".into(), json!(b.to_string()));
            }
        }
        if let Some(mac) = sys("address") {
            default.insert("macaddress".into(), json!(mac));
        }
        if let Some(mtu) = sys("mtu").and_then(|m| m.parse::<u64>().ok()) {
            default.insert("mtu".into(), json!(mtu));
        }
        let kind = match sys("type").as_deref() {
            Some("1") => "ether",
            Some("772") => "loopback",
            Some("776") => "tunnel6",
            Some("768") => "tunnel",
            _ => "unknown",
        };
        default.insert("type".into(), json!(kind));
    }
    f.insert("default_ipv4".into(), Value::Object(default));
    f.insert("default_ipv6".into(), default_ipv6());
}

/// The IPv6 default route's interface and gateway, with the interface's first global address.
fn default_ipv6() -> Value {
    let mut d = Vars::new();
    let Some(routes) = read("/proc/net/ipv6_route") else {
        return Value::Object(d);
    };
    let best = routes
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(w.get(8)?, 16).ok()?;
            // RTF_UP without RTF_REJECT, default destination.
            if w.len() < 10
                || w[1] != "00"
                || w[0].bytes().any(|b| b != b'0')
                || flags & 0x1 == 0
                || flags & 0x200 != 0
            {
                return None;
            }
            let metric = u32::from_str_radix(w[5], 16).ok()?;
            Some((metric, w[9].to_string(), hex_ipv6(w[4])?))
        })
        .min_by_key(|(m, _, _)| *m);
    let Some((_, iface, gateway)) = best else {
        return Value::Object(d);
    };
    d.insert("interface".into(), json!(iface));
    d.insert("gateway".into(), json!(gateway.to_string()));
    let addrs = read("/proc/net/if_inet6").unwrap_or_default();
    let global = addrs.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.len() >= 6 && w[5] == iface && w[3] == "00")
            .then(|| (hex_ipv6(w[0]), u8::from_str_radix(w[2], 16).ok()))
    });
    if let Some((Some(addr), prefix)) = global {
        d.insert("address".into(), json!(addr.to_string()));
        if let Some(p) = prefix {
            d.insert("prefix".into(), json!(p.to_string()));
        }
        d.insert("scope".into(), json!("global"));
    }
    let sys = |what: &str| read_trim(&format!("/sys/class/net/{iface}/{what}"));
    if let Some(mac) = sys("address") {
        d.insert("macaddress".into(), json!(mac));
    }
    if let Some(mtu) = sys("mtu").and_then(|m| m.parse::<u64>().ok()) {
        d.insert("mtu".into(), json!(mtu));
    }
    d.insert(
        "type".into(),
        json!(if sys("type").as_deref() == Some("1") {
            "ether"
        } else {
            "unknown"
        }),
    );
    Value::Object(d)
}

fn hex_ipv6(s: &str) -> Option<Ipv6Addr> {
    u128::from_str_radix(s, 16)
        .ok()
        .filter(|_| s.len() == 32)
        .map(Ipv6Addr::from)
}

/// The interface and gateway of the IPv4 default route with the lowest metric.
fn default_route_v4() -> Option<(String, Ipv4Addr)> {
    let text = read("/proc/net/route")?;
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 8 || w[1] != "00000000" || w[7] != "00000000" {
                return None;
            }
            let gw = u32::from_str_radix(w[2], 16).ok()?;
            let metric: u64 = w[6].parse().ok()?;
            // The kernel prints the address in host byte order (little-endian here).
            Some((metric, w[0].to_string(), Ipv4Addr::from(u32::from_be(gw))))
        })
        .min_by_key(|(m, _, _)| *m)
        .map(|(_, i, g)| (i, g))
}

// ---- virtualization ---------------------------------------------------------------------------

/// Best effort at Ansible's Linux virtualization detection: containers first, then hypervisors.
fn virtualization() -> (String, String) {
    let guest = |t: &str| (t.to_string(), "guest".to_string());
    if Path::new("/.dockerenv").exists() || Path::new("/.dockerinit").exists() {
        return guest("docker");
    }
    if Path::new("/run/.containerenv").exists() {
        return guest("podman");
    }
    if let Some(cg) = read("/proc/1/cgroup") {
        for (needle, kind) in [
            ("docker", "docker"),
            ("lxc", "lxc"),
            ("machine-rkt", "rkt"),
            ("kubepods", "containerd"),
        ] {
            if cg.contains(needle) {
                return guest(kind);
            }
        }
    }
    if let Ok(env) = std::fs::read("/proc/1/environ") {
        let env = String::from_utf8_lossy(&env);
        for var in env.split('\0') {
            if let Some(c) = var.strip_prefix("container=") {
                return guest(if c == "podman" { "podman" } else { c });
            }
        }
    }
    if let Some(c) = read_trim("/run/systemd/container") {
        return guest(&c);
    }
    let product = read_trim("/sys/devices/virtual/dmi/id/product_name").unwrap_or_default();
    let vendor = read_trim("/sys/devices/virtual/dmi/id/sys_vendor").unwrap_or_default();
    for (needle, kind) in [
        ("KVM", "kvm"),
        ("QEMU", "kvm"),
        ("VMware", "VMware"),
        ("VirtualBox", "virtualbox"),
        ("HVM domU", "xen"),
        ("Bochs", "kvm"),
        ("OpenStack", "openstack"),
        ("Parallels", "parallels"),
        ("RHEV Hypervisor", "RHEV"),
    ] {
        if product.contains(needle) || vendor.contains(needle) {
            return guest(kind);
        }
    }
    if vendor.contains("Microsoft Corporation") && product.contains("Virtual Machine") {
        return guest("VirtualPC");
    }
    if vendor.contains("Amazon EC2") {
        return guest("kvm");
    }
    if Path::new("/proc/xen").exists() {
        return guest("xen");
    }
    if read("/proc/cpuinfo").is_some_and(|c| {
        c.lines()
            .any(|l| l.starts_with("flags") && l.contains(" hypervisor"))
    }) {
        return guest("kvm");
    }
    ("NA".into(), "NA".into())
}

// ---- helpers ----------------------------------------------------------------------------------

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_trim(path: &str) -> Option<String> {
    read(path)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Vars {
        gather(&[])
    }

    #[test]
    fn platform_matches_the_kernel() {
        let f = facts();
        assert_eq!(f["system"], "Linux");
        assert_eq!(
            f["kernel"],
            json!(read_trim("/proc/sys/kernel/osrelease").unwrap())
        );
        let node = read_trim("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(f["nodename"], json!(node));
        assert_eq!(f["hostname"], json!(node.split('.').next().unwrap()));
        assert_eq!(f["machine"], json!(std::env::consts::ARCH));
        assert!(f["fqdn"].is_string() && f["domain"].is_string());
    }

    #[test]
    fn distribution_matches_os_release() {
        let f = facts();
        let os = os_release();
        if let Some(codename) = os.get("VERSION_CODENAME") {
            assert_eq!(f["distribution_release"], json!(codename));
        }
        let v = f["distribution_version"].as_str().unwrap();
        if let Some(id) = os.get("VERSION_ID") {
            assert!(v.starts_with(id.as_str()), "{v} vs {id}");
        }
        assert_eq!(
            f["distribution_major_version"],
            json!(v.split('.').next().unwrap())
        );
        if os.get("ID").map(String::as_str) == Some("debian") {
            assert_eq!(f["os_family"], "Debian");
            assert_eq!(f["distribution"], "Debian");
            assert_eq!(f["pkg_mgr"], "apt");
        }
    }

    #[test]
    fn shapes() {
        let f = facts();
        for k in [
            "processor_count",
            "processor_cores",
            "processor_vcpus",
            "processor_threads_per_core",
            "memtotal_mb",
            "memfree_mb",
            "swaptotal_mb",
            "uptime_seconds",
            "user_uid",
            "user_gid",
        ] {
            assert!(f[k].is_u64(), "{k}: {}", f[k]);
        }
        assert!(f["memtotal_mb"].as_u64().unwrap() > 0);
        assert!(f["processor_vcpus"].as_u64().unwrap() >= 1);
        assert!(f["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "lo"));
        assert!(
            f["env"].as_object().unwrap().contains_key("PATH") || std::env::var("PATH").is_err()
        );
        let dt = f["date_time"].as_object().unwrap();
        for k in [
            "date",
            "time",
            "year",
            "month",
            "day",
            "hour",
            "minute",
            "second",
            "epoch",
            "iso8601",
            "tz",
            "tz_offset",
            "weekday",
        ] {
            assert!(dt[k].is_string(), "date_time.{k}");
        }
        assert_eq!(dt["date"].as_str().unwrap().len(), 10);
        assert!(f["selinux"]["status"].is_string());
        assert!(f["service_mgr"].is_string());
        assert!(f["virtualization_type"].is_string());
        assert!(f.keys().all(|k| !k.starts_with("ansible_")));
    }

    #[test]
    fn user_matches_the_process() {
        let f = facts();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let euid: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(f["user_uid"], json!(euid));
        if euid == 0 {
            assert_eq!(f["user_id"], "root");
            assert_eq!(f["user_dir"], "/root");
        }
    }

    #[test]
    fn default_ipv4_agrees_with_the_route_table() {
        let f = facts();
        let d = f["default_ipv4"].as_object().unwrap();
        match default_route_v4() {
            Some((iface, _)) => {
                assert_eq!(d["interface"], json!(iface));
                if let Some(addr) = d.get("address") {
                    assert!(f["all_ipv4_addresses"].as_array().unwrap().contains(addr));
                }
            }
            None => assert!(d.is_empty()),
        }
    }

    #[test]
    fn subsets() {
        let min = gather(&["min".to_string()]);
        assert!(!min.contains_key("memtotal_mb") && min.contains_key("distribution"));
        let min = gather(&["!all".to_string(), "network".to_string()]);
        assert!(min.contains_key("interfaces") && !min.contains_key("mounts"));
        let no_hw = gather(&["!hardware".to_string()]);
        assert!(!no_hw.contains_key("processor_count") && no_hw.contains_key("default_ipv4"));
    }

    #[test]
    fn is_fast() {
        gather(&[]);
        let t = std::time::Instant::now();
        for _ in 0..5 {
            gather(&[]);
        }
        let per = t.elapsed() / 5;
        // Generous for debug builds on busy CI; release builds take about a millisecond.
        assert!(per < std::time::Duration::from_millis(50), "{per:?}");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        let (c, p) = cmdline("ro quiet console=ttyS0 console=tty0");
        assert_eq!(c["console"], "tty0");
        assert_eq!(p["console"], json!(["ttyS0", "tty0"]));
        assert_eq!(c["ro"], true);
    }
}
