//! Files for clients (ssh, ansible-core, tend) in a lab's state dir: the private key, a
//! known_hosts with every host's key, an ssh_config and an inventory. Strict host key
//! checking everywhere: a changed or unknown key is an error, never a prompt.

use std::path::Path;

use crate::LabHost;

/// One `IP ssh-ed25519 AAAA...` line per host; `keys` are the hosts' `.pub` file contents.
pub fn known_hosts(hosts: &[(&LabHost, &str)]) -> String {
    let mut out = String::new();
    for (host, public) in hosts {
        out.push_str(&known_hosts_line(host, public));
    }
    out
}

pub fn known_hosts_line(host: &LabHost, public: &str) -> String {
    // A .pub file is `type base64 comment`; known_hosts wants `address type base64`.
    let mut words = public.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let key = words.next().unwrap_or_default();
    format!("{} {kind} {key}\n", host.ip)
}

/// `known_hosts` without the lines for `ip`.
pub fn without_host(known_hosts: &str, ip: &str) -> String {
    known_hosts
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(ip))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// An ssh_config with one block per host, for `ssh -F ssh_config h01`.
pub fn ssh_config(hosts: &[LabHost], key: &Path, known_hosts: &Path) -> String {
    let mut out = String::from("# tend-lab: ssh -F this-file HOST\n");
    for h in hosts {
        out.push_str(&format!(
            "\nHost {name} {ip}\n\
             \x20   HostName {ip}\n\
             \x20   User root\n\
             \x20   IdentityFile {key}\n\
             \x20   IdentitiesOnly yes\n\
             \x20   UserKnownHostsFile {known}\n\
             \x20   GlobalKnownHostsFile /dev/null\n\
             \x20   StrictHostKeyChecking yes\n\
             \x20   BatchMode yes\n\
             \x20   ConnectTimeout 10\n",
            name = h.name,
            ip = h.ip,
            key = key.display(),
            known = known_hosts.display(),
        ));
    }
    out
}

/// An INI inventory for ansible-core and tend: every host in group `lab`, with its address,
/// key and strict host key options as host variables.
pub fn inventory(hosts: &[LabHost], key: &Path, known_hosts: &Path) -> String {
    let mut out = String::from("# tend-lab inventory\n[lab]\n");
    for h in hosts {
        out.push_str(&format!(
            "{name} ansible_host={ip} ansible_user=root ansible_ssh_private_key_file={key} \
             ansible_ssh_common_args='-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes' \
             ansible_python_interpreter=/usr/bin/python3\n",
            name = h.name,
            ip = h.ip,
            key = key.display(),
            known = known_hosts.display(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn hosts() -> Vec<LabHost> {
        vec![
            LabHost {
                name: "h01".into(),
                ip: Ipv4Addr::new(10, 250, 2, 11),
            },
            LabHost {
                name: "h02".into(),
                ip: Ipv4Addr::new(10, 250, 2, 12),
            },
        ]
    }

    #[test]
    fn known_hosts_lines_are_by_address_without_the_comment() {
        let h = hosts();
        let text = known_hosts(&[
            (&h[0], "ssh-ed25519 AAAAkey1 root@h01\n"),
            (&h[1], "ssh-ed25519 AAAAkey2 x"),
        ]);
        assert_eq!(
            text,
            "10.250.2.11 ssh-ed25519 AAAAkey1\n10.250.2.12 ssh-ed25519 AAAAkey2\n"
        );
        assert_eq!(
            without_host(&text, "10.250.2.11"),
            "10.250.2.12 ssh-ed25519 AAAAkey2\n"
        );
        // 10.250.2.1 is a prefix of 10.250.2.11 but not the same host.
        assert_eq!(without_host(&text, "10.250.2.1"), text);
    }

    #[test]
    fn ssh_config_is_strict_and_names_each_host() {
        let text = ssh_config(
            &hosts(),
            Path::new("/s/id_ed25519"),
            Path::new("/s/known_hosts"),
        );
        assert!(text.contains("\nHost h02 10.250.2.12\n    HostName 10.250.2.12\n    User root\n"));
        assert!(text.contains("    StrictHostKeyChecking yes\n"));
        assert!(text.contains("    UserKnownHostsFile /s/known_hosts\n"));
        assert!(text.contains("    IdentitiesOnly yes\n"));
        assert!(!text.contains("Host *"));
    }

    #[test]
    fn inventory_puts_every_host_in_group_lab() {
        let text = inventory(
            &hosts(),
            Path::new("/s/id_ed25519"),
            Path::new("/s/known_hosts"),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "[lab]");
        assert_eq!(
            lines[2],
            "h01 ansible_host=10.250.2.11 ansible_user=root ansible_ssh_private_key_file=/s/id_ed25519 \
             ansible_ssh_common_args='-o UserKnownHostsFile=/s/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes' \
             ansible_python_interpreter=/usr/bin/python3"
        );
        assert!(lines[3].starts_with("h02 ansible_host=10.250.2.12 "));
    }
}
