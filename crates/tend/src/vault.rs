//! `tend vault encrypt|decrypt|view|encrypt_string`: ansible-vault's core subcommands, with
//! the same passwords options as a run. Files are replaced atomically, keeping owner and mode.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tend_lang::vault::{self, Keyring, VaultSecret};

use crate::cli::{VaultCmdArgs, VaultCommand, VaultFilesArgs, VaultStringArgs};

#[allow(clippy::print_stderr)]
fn fail(msg: &str, hint: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {msg}\nhint: {hint}");
    ExitCode::from(1)
}

pub fn vault(args: VaultCmdArgs) -> ExitCode {
    let r = match args.command {
        VaultCommand::Encrypt(a) => files(&a, Op::Encrypt),
        VaultCommand::Decrypt(a) => files(&a, Op::Decrypt),
        VaultCommand::View(a) => files(&a, Op::View),
        VaultCommand::EncryptString(a) => strings(&a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err((msg, hint)) => fail(&msg, &hint),
    }
}

type Failure = (String, String);

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Encrypt,
    Decrypt,
    View,
}

fn keyring(v: &crate::cli::VaultArgs) -> Result<Keyring, Failure> {
    let ring = crate::settings::vault_keyring(v).map_err(|d| {
        (
            d.to_string(),
            d.hint.unwrap_or_else(|| "check the vault options".into()),
        )
    })?;
    if ring.secrets.is_empty() {
        return Err((
            "no vault password was given".into(),
            "give one with --vault-password-file FILE, --vault-id [LABEL@]SOURCE, --ask-vault-pass (-J) or ANSIBLE_VAULT_PASSWORD_FILE".into(),
        ));
    }
    Ok(ring)
}

/// The secret to encrypt with: `--encrypt-vault-id`, or the only one given.
fn encrypting(ring: &Keyring, id: Option<&str>) -> Result<VaultSecret, Failure> {
    match id {
        Some(id) => ring
            .secrets
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or_else(|| {
                (
                    format!("no vault password was given for --encrypt-vault-id {id}"),
                    format!("add --vault-id {id}@SOURCE"),
                )
            }),
        None if ring.secrets.len() == 1 => Ok(ring.secrets[0].clone()),
        None => Err((
            format!(
                "the vault ids {} are available to encrypt with",
                ring.secrets
                    .iter()
                    .map(|s| format!("'{}'", s.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "choose one with --encrypt-vault-id LABEL".into(),
        )),
    }
}

fn read_input(p: &Path) -> Result<Vec<u8>, Failure> {
    let mut data = Vec::new();
    let r = if p == Path::new("-") {
        std::io::stdin().read_to_end(&mut data).map(|_| ())
    } else {
        std::fs::read(p).map(|d| data = d)
    };
    r.map_err(|e| {
        (
            format!("cannot read {}: {e}", p.display()),
            "check the path and its permissions".into(),
        )
    })?;
    Ok(data)
}

fn write_output(p: &Path, data: &[u8]) -> Result<(), Failure> {
    if p == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return out.write_all(data).and_then(|()| out.flush()).map_err(|e| {
            (
                format!("cannot write stdout: {e}"),
                "check where stdout goes".into(),
            )
        });
    }
    tend_resources::fsutil::atomic_write(p, data, &Default::default(), None, None).map_err(|e| {
        (
            format!("cannot write {}: {e}", p.display()),
            "check the directory's permissions".into(),
        )
    })
}

fn files(a: &VaultFilesArgs, op: Op) -> Result<(), Failure> {
    let ring = keyring(&a.vault)?;
    if a.output.is_some() && a.files.len() > 1 && op != Op::View {
        return Err((
            "--output takes one input file".into(),
            "run once per file, or leave --output out to work in place".into(),
        ));
    }
    let secret = match op {
        Op::Encrypt => Some(encrypting(&ring, a.encrypt_vault_id.as_deref())?),
        _ => None,
    };
    for f in &a.files {
        let data = read_input(f)?;
        let result = match op {
            Op::Encrypt => {
                if vault::is_encrypted(&data) {
                    return Err((
                        format!("{}: input is already encrypted", f.display()),
                        "decrypt it first, or leave it as it is".into(),
                    ));
                }
                let s = secret.as_ref().expect("encrypting has a secret");
                vault::encrypt(&data, s.password(), Some(&s.id))
                    .map_err(|e| {
                        (
                            format!("cannot read /dev/urandom: {e}"),
                            "check /dev/urandom".into(),
                        )
                    })?
                    .into_bytes()
            }
            Op::Decrypt | Op::View => {
                if !vault::is_encrypted(&data) {
                    return Err((
                        format!("{}: input is not vault encrypted data", f.display()),
                        "only files written by `tend vault encrypt` or ansible-vault decrypt"
                            .into(),
                    ));
                }
                ring.decrypt(&data).map_err(|e| {
                    (
                        format!("{}: vault: {e}", f.display()),
                        "give the password it was encrypted with (--vault-id, --vault-password-file, -J)".into(),
                    )
                })?
            }
        };
        let dest: PathBuf = match (op, &a.output) {
            (Op::View, _) => PathBuf::from("-"),
            (_, Some(o)) => o.clone(),
            (_, None) => f.clone(),
        };
        write_output(&dest, &result)?;
    }
    if op != Op::View && a.output.as_deref() != Some(Path::new("-")) {
        let what = if op == Op::Encrypt {
            "Encryption"
        } else {
            "Decryption"
        };
        let _ = writeln!(std::io::stderr(), "{what} successful");
    }
    Ok(())
}

fn strings(a: &VaultStringArgs) -> Result<(), Failure> {
    let ring = keyring(&a.vault)?;
    let secret = encrypting(&ring, a.encrypt_vault_id.as_deref())?;
    let inputs: Vec<String> = if a.strings.is_empty() {
        let data = read_input(Path::new("-"))?;
        vec![String::from_utf8_lossy(&data).into_owned()]
    } else {
        a.strings.clone()
    };
    let mut out = String::new();
    for (i, s) in inputs.iter().enumerate() {
        let env =
            vault::encrypt(s.as_bytes(), secret.password(), Some(&secret.id)).map_err(|e| {
                (
                    format!("cannot read /dev/urandom: {e}"),
                    "check /dev/urandom".into(),
                )
            })?;
        let (head, indent) = match a.names.get(i) {
            Some(n) => (format!("{n}: !vault |\n"), "          "),
            None => ("!vault |\n".to_string(), "          "),
        };
        out.push_str(&head);
        for l in env.lines() {
            out.push_str(indent);
            out.push_str(l);
            out.push('\n');
        }
    }
    let mut o = std::io::stdout().lock();
    o.write_all(out.as_bytes())
        .and_then(|()| o.flush())
        .map_err(|e| {
            (
                format!("cannot write stdout: {e}"),
                "check where stdout goes".into(),
            )
        })?;
    let _ = writeln!(std::io::stderr(), "Encryption successful");
    Ok(())
}
