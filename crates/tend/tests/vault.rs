//! Vault: encrypted vars files, `!vault` values and encrypted `copy` sources are decrypted on
//! the controller, reach the host, and never appear in what tend prints or stores. Local hosts
//! in temporary directories (no root needed).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const PASSWORD: &str = "vault test password";
const GROUP: &str = "vault-canary-group-71c3";
const INLINE: &str = "vault-canary-inline-52aa";
const FILE: &str = "vault-canary-file-0e9d";

fn tend(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("TEND_STORE")
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .output()
        .unwrap()
}

fn enc(plain: &str, label: Option<&str>) -> String {
    tend_lang::vault::encrypt(plain.as_bytes(), PASSWORD.as_bytes(), label).unwrap()
}

/// group_vars/all.yml encrypted as a whole, an inline `!vault` play var, an encrypted copy
/// source; tasks that print, diff, register and fail with the secrets.
fn project(label: Option<&str>) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::create_dir_all(p.join("group_vars")).unwrap();
    std::fs::create_dir_all(p.join("files")).unwrap();
    std::fs::create_dir_all(p.join("out")).unwrap();
    std::fs::write(
        p.join("group_vars/all.yml"),
        enc(&format!("greeting: {GROUP}\n"), label),
    )
    .unwrap();
    std::fs::write(
        p.join("files/app.conf"),
        enc(&format!("key = {FILE}\n"), label),
    )
    .unwrap();
    let inline: String = enc(INLINE, label)
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect();
    std::fs::write(
        p.join("site.yml"),
        format!(
            r#"- hosts: all
  gather_facts: false
  vars:
    token: !vault |
{inline}  tasks:
    - debug:
        msg: "{{{{ greeting }}}} and {{{{ token }}}}"
    - copy:
        dest: "{{{{ playbook_dir }}}}/out/settings"
        content: "{{{{ greeting }}}}/{{{{ token }}}}\n"
    - copy:
        src: app.conf
        dest: "{{{{ playbook_dir }}}}/out/app.conf"
    - command: echo {{{{ token }}}}
      register: echoed
      changed_when: false
    - debug:
        var: echoed
    - fail:
        msg: "failing with {{{{ greeting }}}}"
      ignore_errors: true
"#
        ),
    )
    .unwrap();
    std::fs::write(p.join("pw"), format!("{PASSWORD}\n")).unwrap();
    d
}

fn all_output(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_no_canary(what: &str, text: &str) {
    for c in [GROUP, INLINE, FILE] {
        assert!(!text.contains(c), "{what} shows the secret {c}:\n{text}");
    }
}

#[test]
fn vault_values_reach_the_host_and_never_the_output_or_the_history() {
    let d = project(None);
    let p = d.path();
    let o = tend(
        p,
        &[
            "apply",
            "site.yml",
            "-i",
            "localhost,",
            "--vault-password-file",
            "pw",
            "--diff",
            "-v",
        ],
    );
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    assert_no_canary("human output", &out);
    assert!(out.contains("********"), "{out}");
    assert!(out.contains("ok=6") && out.contains("ignored=1"), "{out}");
    // The host got the real values.
    assert_eq!(
        std::fs::read_to_string(p.join("out/settings")).unwrap(),
        format!("{GROUP}/{INLINE}\n")
    );
    assert_eq!(
        std::fs::read_to_string(p.join("out/app.conf")).unwrap(),
        format!("key = {FILE}\n")
    );
    let o = tend(
        p,
        &[
            "apply",
            "site.yml",
            "-i",
            "localhost,",
            "--vault-password-file",
            "pw",
            "--output",
            "json",
        ],
    );
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    assert_no_canary("JSON output", &out);
    let db = std::fs::read(p.join(".tend/history.db")).unwrap();
    assert_no_canary("the history database", &String::from_utf8_lossy(&db));
    let o = tend(p, &["history", "show", "last"]);
    assert_no_canary("tend history show", &all_output(&o));
}

#[test]
fn a_password_script_and_labelled_vault_ids_work() {
    let d = project(Some("prod"));
    let p = d.path();
    let script = p.join("pw.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho '{PASSWORD}'\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(p.join("other"), "not it\n").unwrap();
    let o = tend(
        p,
        &[
            "apply",
            "site.yml",
            "-i",
            "localhost,",
            "--no-history",
            "--vault-id",
            "dev@other",
            "--vault-id",
            "prod@pw.sh",
        ],
    );
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    assert_no_canary("output", &out);
    assert_eq!(
        std::fs::read_to_string(p.join("out/settings")).unwrap(),
        format!("{GROUP}/{INLINE}\n")
    );
}

#[test]
fn wrong_and_missing_passwords_name_the_file_and_the_next_step() {
    let d = project(Some("prod"));
    let p = d.path();
    std::fs::write(p.join("bad"), "wrong\n").unwrap();
    let o = tend(
        p,
        &[
            "apply",
            "site.yml",
            "-i",
            "localhost,",
            "--no-history",
            "--vault-password-file",
            "bad",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("vault: HMAC check failed — wrong vault password for vault id 'prod'?"),
        "{err}"
    );
    assert!(
        err.contains("site.yml:") || err.contains("all.yml:"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(!p.join("out/settings").exists());

    let o = tend(
        p,
        &["apply", "site.yml", "-i", "localhost,", "--no-history"],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("no vault password was given"), "{err}");
    assert!(err.contains("--vault-password-file"), "{err}");

    let o = tend(
        p,
        &[
            "apply",
            "site.yml",
            "-i",
            "localhost,",
            "--no-history",
            "--vault-password-file",
            "missing",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("cannot read vault password file missing"),
        "{err}"
    );
}

#[test]
fn tend_vault_encrypts_views_and_decrypts_in_place_keeping_the_mode() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::write(p.join("pw"), format!("{PASSWORD}\n")).unwrap();
    let plain = format!("secret: {GROUP}\n");
    std::fs::write(p.join("s.yml"), &plain).unwrap();
    std::fs::set_permissions(p.join("s.yml"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let pw = ["--vault-password-file", "pw"];
    let o = tend(p, &[&["vault", "encrypt", "s.yml"][..], &pw].concat());
    assert!(o.status.success(), "{}", all_output(&o));
    let enc = std::fs::read_to_string(p.join("s.yml")).unwrap();
    assert!(enc.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"), "{enc}");
    assert!(!enc.contains(GROUP));
    let mode = std::fs::metadata(p.join("s.yml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    // ansible-vault reads what tend wrote, when it is installed (tests/setup.sh).
    let ansible = Path::new("/opt/tend-test/venv/bin/ansible-vault");
    if ansible.exists() {
        let o = Command::new(ansible)
            .args(["view", "--vault-password-file", "pw", "s.yml"])
            .current_dir(p)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), plain);
    }
    let o = tend(p, &[&["vault", "view", "s.yml"][..], &pw].concat());
    assert_eq!(String::from_utf8_lossy(&o.stdout), plain);
    let o = tend(p, &[&["vault", "encrypt", "s.yml"][..], &pw].concat());
    assert!(!o.status.success());
    assert!(all_output(&o).contains("already encrypted"));
    let o = tend(
        p,
        &["vault", "view", "s.yml", "--vault-password-file", "s.yml"],
    );
    assert!(!o.status.success());
    let o = tend(p, &[&["vault", "decrypt", "s.yml"][..], &pw].concat());
    assert!(o.status.success(), "{}", all_output(&o));
    assert_eq!(std::fs::read_to_string(p.join("s.yml")).unwrap(), plain);
    // encrypt_string gives a value a playbook can use.
    let o = tend(
        p,
        &[
            &["vault", "encrypt_string", INLINE, "--name", "token"][..],
            &pw,
        ]
        .concat(),
    );
    let block = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        block.starts_with("token: !vault |\n          $ANSIBLE_VAULT;1.1;AES256\n"),
        "{block}"
    );
    std::fs::write(
        p.join("site.yml"),
        format!(
            "- hosts: all\n  gather_facts: false\n  vars:\n{}  tasks:\n    - copy:\n        dest: \"{{{{ playbook_dir }}}}/t\"\n        content: \"{{{{ token }}}}\"\n",
            block.lines().map(|l| format!("    {l}\n")).collect::<String>()
        ),
    )
    .unwrap();
    let o = tend(
        p,
        &[
            &["apply", "site.yml", "-i", "localhost,", "--no-history"][..],
            &pw,
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", all_output(&o));
    assert_eq!(std::fs::read_to_string(p.join("t")).unwrap(), INLINE);
}
