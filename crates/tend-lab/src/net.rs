//! The lab's network: one bridge in the root namespace, one network namespace per host joined
//! to it by a veth pair, addresses on a private /24. Hosts get no default route and the
//! machine's `ip_forward` is left alone, so no packet from a host leaves the machine.
//!
//! Names are global on a machine, so every name carries the lab's prefix.

use std::net::Ipv4Addr;

/// First three octets of every lab subnet: lab `i` is 10.250.i.0/24.
const NET: [u8; 2] = [10, 250];
/// Host `n` (1-based) gets .(10 + n); the bridge (the controller's side) gets .1.
const HOST_OFFSET: u8 = 10;
/// Most hosts one lab can hold (.11 to .210).
pub const MAX_HOSTS: usize = 200;
/// Labs one machine can hold at once (one /24 each).
pub const MAX_LABS: usize = 256;

/// The controller's address on lab `index`'s bridge: hosts reach the controller there.
pub fn bridge_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(NET[0], NET[1], index, 1)
}

/// Host `n`'s address (1-based).
pub fn host_ip(index: u8, n: usize) -> Ipv4Addr {
    debug_assert!((1..=MAX_HOSTS).contains(&n));
    Ipv4Addr::new(NET[0], NET[1], index, HOST_OFFSET + n as u8)
}

/// `10.250.<index>.0/24`.
pub fn subnet(index: u8) -> String {
    format!("{}.{}.{index}.0/24", NET[0], NET[1])
}

/// Does `addr` fall in lab `index`'s subnet?
pub fn in_subnet(index: u8, addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    o[0] == NET[0] && o[1] == NET[1] && o[2] == index
}

pub fn bridge_name(prefix: &str) -> String {
    format!("{prefix}-br")
}

/// The host's network namespace and the root-side end of its veth pair share one name.
pub fn host_link(prefix: &str, host: &str) -> String {
    format!("{prefix}-{host}")
}

/// `ip -batch` input that creates the bridge, every host's namespace and veth pair. Inside a
/// namespace the peer is `eth0`; each host's boot script gives it its address (`ip -batch`
/// has no per-line `-n`), so this stays one process for the whole lab.
pub fn up_batch(prefix: &str, index: u8, hosts: &[String]) -> String {
    let br = bridge_name(prefix);
    let mut b = format!(
        "link add {br} type bridge\n\
         addr add {}/24 dev {br}\n\
         link set {br} up\n",
        bridge_ip(index)
    );
    for host in hosts {
        let link = host_link(prefix, host);
        b.push_str(&format!(
            "netns add {link}\n\
             link add {link} type veth peer name eth0 netns {link}\n\
             link set {link} master {br} up\n"
        ));
    }
    b
}

/// `ip -force -batch` input that removes everything [`up_batch`] made. Deleting a namespace
/// takes its `eth0` and with it the root-side end of the pair; the explicit `link del`
/// covers a namespace that is already gone.
pub fn down_batch(prefix: &str, hosts: &[String]) -> String {
    let mut b = String::new();
    for host in hosts {
        let link = host_link(prefix, host);
        b.push_str(&format!("link del {link}\nnetns del {link}\n"));
    }
    b.push_str(&format!("link del {}\n", bridge_name(prefix)));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_lab_index() {
        assert_eq!(bridge_ip(7).to_string(), "10.250.7.1");
        assert_eq!(host_ip(7, 1).to_string(), "10.250.7.11");
        assert_eq!(host_ip(7, MAX_HOSTS).to_string(), "10.250.7.210");
        assert_eq!(subnet(3), "10.250.3.0/24");
        assert!(in_subnet(3, Ipv4Addr::new(10, 250, 3, 99)));
        assert!(!in_subnet(3, Ipv4Addr::new(10, 250, 4, 99)));
    }

    #[test]
    fn link_names_fit_the_kernel_limit() {
        // IFNAMSIZ is 16 with the NUL: 15 characters at most.
        let longest = host_link("abcdefgh", "h200");
        assert!(longest.len() <= 15, "{longest}");
        assert!(bridge_name("abcdefgh").len() <= 15);
    }

    #[test]
    fn batches_create_and_remove_the_same_names() {
        let hosts = vec!["h01".to_string(), "h02".to_string()];
        let up = up_batch("tl4", 4, &hosts);
        assert!(up.starts_with("link add tl4-br type bridge\naddr add 10.250.4.1/24 dev tl4-br\n"));
        assert!(up.contains(
            "netns add tl4-h02\nlink add tl4-h02 type veth peer name eth0 netns tl4-h02\n"
        ));
        assert!(!up.contains("route"), "hosts must get no route out");
        let down = down_batch("tl4", &hosts);
        assert_eq!(
            down,
            "link del tl4-h01\nnetns del tl4-h01\nlink del tl4-h02\nnetns del tl4-h02\nlink del tl4-br\n"
        );
    }
}
