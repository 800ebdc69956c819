//! The controller ↔ agent protocol end to end, with a stand-in for `ssh` that runs the remote
//! command on this machine (each "host" gets its own HOME, so its own agent cache).
//!
//! What crosses a real network (host keys, sshd stopped or killed, become over SSH) is tested
//! against lab hosts in `fleet.rs`; this file covers what does not need a network: the boot
//! script and its cache, the event stream, `run_once` across agents, and how a failed or dropped
//! session becomes UNREACHABLE.

mod common;
use common::{recap_line, text};
use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

/// `ssh [options] -- DEST COMMAND` → runs COMMAND with HOME=<root>/home-DEST (and the host
/// lock in that HOME: each "host" is its own machine). A destination named `down*` behaves
/// like a host whose sshd refuses connections.
const FAKE_SSH: &str = r#"#!/bin/sh
for a; do dest="$cmd"; cmd="$a"; done
case "$dest" in
  down*) echo "ssh: connect to host $dest port 22: Connection refused" >&2; exit 255 ;;
esac
export HOME="$FAKE_ROOT/home-$dest"
export TEND_LOCK_DIR="$HOME"
mkdir -p "$HOME"
exec /bin/sh -c "$cmd"
"#;

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(playbook: &str, inventory: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("tend-proto-")
            .tempdir()
            .unwrap();
        let p = dir.path();
        std::fs::write(p.join("ssh"), FAKE_SSH).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(p.join("site.yml"), playbook).unwrap();
        std::fs::write(p.join("inv.ini"), inventory).unwrap();
        Fixture { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn apply(&self, extra_env: &[(&str, &str)]) -> Output {
        let p = self.path();
        let mut c = Command::new(env!("CARGO_BIN_EXE_tend"));
        c.args(["apply", "site.yml", "-i", "inv.ini", "-e"])
            .arg(format!("out={}", p.join("out").display()))
            .current_dir(p)
            .env("TEND_SSH", p.join("ssh"))
            .env("FAKE_ROOT", p)
            .env("TEND_LOCK_DIR", p);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

#[test]
fn agent_is_pushed_once_and_runs_the_play() {
    let f = Fixture::new(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - file: path={{ out }}-{{ inventory_hostname }} state=touch\n      changed_when: false\n    - command: echo hi\n      register: r\n    - assert: {that: [\"r.stdout == 'hi'\"]}\n",
        "a ansible_host=hostA\nb ansible_host=hostB\n",
    );
    let first = f.apply(&[]);
    let t = text(&first);
    assert_eq!(first.status.code(), Some(0), "{t}");
    assert!(recap_line(&t, "a").contains("ok=3    changed=1"), "{t}");
    assert!(f.path().join("out-a").exists() && f.path().join("out-b").exists());
    let cache = f.path().join("home-hostA/.cache/tend");
    let agents: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
        .collect();
    assert_eq!(agents.len(), 1, "one cached agent, named by hash");
    // A copy would be a new file renamed into place: a new inode. (The mtime is not a witness:
    // each run marks the agent it uses, for the cache pruning.)
    use std::os::unix::fs::MetadataExt;
    let before = agents[0].metadata().unwrap().ino();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the cache directory is private");

    let second = f.apply(&[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let after = agents[0].metadata().unwrap().ino();
    assert_eq!(before, after, "a cached agent is not copied again");
}

#[test]
fn run_once_is_shared_between_remote_agents() {
    let f = Fixture::new(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: date +%s%N\n      register: stamp\n      run_once: true\n    - copy: content={{ stamp.stdout }} dest={{ out }}-{{ inventory_hostname }}\n",
        "a ansible_host=hostA\nb ansible_host=hostB\nc ansible_host=hostC\n",
    );
    let o = f.apply(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let read = |h: &str| std::fs::read_to_string(f.path().join(format!("out-{h}"))).unwrap();
    assert!(!read("a").is_empty());
    assert_eq!(read("a"), read("b"));
    assert_eq!(read("a"), read("c"));
}

#[test]
fn refused_connection_is_unreachable_and_others_finish() {
    let f = Fixture::new(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - file: path={{ out }}-{{ inventory_hostname }} state=touch\n- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=second\n",
        "up ansible_host=hostA\ngone ansible_host=down1\n",
    );
    let o = f.apply(&[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(
        t.contains("fatal: [gone]: UNREACHABLE! => {\"changed\": false, \"msg\": \"Failed to connect to the host via ssh: ssh: connect to host down1 port 22: Connection refused\", \"unreachable\": true}"),
        "{t}"
    );
    assert!(
        recap_line(&t, "gone").contains("ok=0    changed=0    unreachable=1"),
        "{t}"
    );
    assert!(
        recap_line(&t, "up").contains("ok=2    changed=1    unreachable=0"),
        "{t}"
    );
    assert!(f.path().join("out-up").exists());
}

#[test]
fn a_session_that_dies_mid_play_is_unreachable_after_what_it_did() {
    // The task kills the agent that runs it: the controller sees the stream end mid-play.
    let f = Fixture::new(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=before\n    - shell: kill -9 $PPID\n      when: inventory_hostname == 'b'\n    - debug: msg=after\n",
        "a ansible_host=hostA\nb ansible_host=hostB\n",
    );
    let o = f.apply(&[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(t.contains("fatal: [b]: UNREACHABLE!"), "{t}");
    assert!(t.contains("the connection closed during the run"), "{t}");
    assert!(
        recap_line(&t, "b").contains("ok=1    changed=0    unreachable=1"),
        "{t}"
    );
    assert!(recap_line(&t, "a").contains("ok=2 "), "{t}");
}

#[test]
fn a_host_of_another_platform_is_reported_not_fed_a_binary() {
    let f = Fixture::new(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n",
        "arm ansible_host=hostArm\n",
    );
    // `uname` on that "host" says riscv64.
    let bin = f.path().join("fakebin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(
        bin.join("uname"),
        "#!/bin/sh\ncase \"$1\" in -m) echo riscv64;; *) echo Linux;; esac\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("uname"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = f.apply(&[("PATH", &path)]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(
        t.contains("host runs Linux riscv64, but this tend binary is built for Linux"),
        "{t}"
    );
    let cache = f.path().join("home-hostArm/.cache/tend");
    let pushed = std::fs::read_dir(cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains("agent-"));
    assert!(!pushed, "nothing is copied to a host that cannot run it");
}

#[test]
fn a_cache_directory_owned_by_someone_else_is_refused() {
    let f = Fixture::new(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n",
        "h ansible_host=hostX\n",
    );
    let cache = f.path().join("home-hostX/.cache/tend");
    std::fs::create_dir_all(&cache).unwrap();
    // nobody (65534) owns it: tend must not run a binary from a directory another user controls.
    std::os::unix::fs::chown(&cache, Some(65534), Some(65534)).unwrap();
    let o = f.apply(&[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(t.contains("belongs to uid 65534"), "{t}");
    assert!(t.contains("refusing to run an agent from it"), "{t}");
}

/// The slim agent (crates/tend-agentd, what release builds embed) is pushed instead of tend
/// itself, cached by its own hash, and runs the play (templates, registered results, handlers,
/// a bundle file) the same as `tend agent` does.
#[test]
fn the_slim_agent_runs_a_play_like_tend_itself() {
    let slim = common::slim_agent();
    let play = "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo hi\n      register: r\n      changed_when: false\n    - template: src=t.j2 dest={{ out }}-{{ inventory_hostname }}\n      notify: done\n    - assert: {that: [\"r.stdout == 'hi'\"]}\n  handlers:\n    - name: done\n      copy: content=handled dest={{ out }}-{{ inventory_hostname }}-handler\n";
    let f = Fixture::new(play, "a ansible_host=hostA\nb ansible_host=hostB\n");
    std::fs::write(
        f.path().join("t.j2"),
        "{{ inventory_hostname }} says {{ r.stdout }}\n",
    )
    .unwrap();
    let slim_s = slim.to_str().unwrap();
    let first = f.apply(&[("TEND_AGENT_BINARY", slim_s)]);
    let t = text(&first);
    assert_eq!(first.status.code(), Some(0), "{t}");
    assert!(recap_line(&t, "a").contains("ok=4    changed=2"), "{t}");
    let out = |s: &str| std::fs::read_to_string(f.path().join(format!("out-{s}"))).unwrap();
    assert_eq!(out("a"), "a says hi\n");
    assert_eq!(out("b-handler"), "handled");

    // The cached agent is the slim binary, byte for byte.
    let cache = f.path().join("home-hostA/.cache/tend");
    let agents: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
        .collect();
    assert_eq!(agents.len(), 1);
    assert!(
        std::fs::read(agents[0].path()).unwrap() == std::fs::read(&slim).unwrap(),
        "the pushed agent is tend-agentd"
    );

    // Re-apply: nothing changes, nothing is pushed again.
    let second = f.apply(&[("TEND_AGENT_BINARY", slim_s)]);
    let t = text(&second);
    assert_eq!(second.status.code(), Some(0), "{t}");
    assert!(recap_line(&t, "b").contains("ok=3    changed=0"), "{t}");
}

/// tend-agentd's own command line: anything but the boot script's commands is a usage error
/// (status 2), `--version` names it.
#[test]
fn the_slim_agent_refuses_other_command_lines() {
    let slim = common::slim_agent();
    let o = Command::new(&slim).arg("--version").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("tend-agentd "));
    for args in [&["apply", "site.yml"][..], &["agent", "--verbose"], &[]] {
        let o = Command::new(&slim).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("usage: tend-agentd"));
    }
}
