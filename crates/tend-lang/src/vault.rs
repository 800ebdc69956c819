//! Ansible Vault: the `$ANSIBLE_VAULT;1.1;AES256` and `$ANSIBLE_VAULT;1.2;AES256;LABEL`
//! envelopes, with ansible-core's meaning.
//!
//! An envelope is a header line and a hex body wrapped at 80 columns. The body decodes to three
//! lines: the hex salt, the hex HMAC and the hex ciphertext. From the password and the salt,
//! PBKDF2-HMAC-SHA256 (10 000 rounds) derives 80 bytes: the AES-256 key, the HMAC-SHA256 key
//! and the initial CTR counter. The HMAC over the ciphertext is checked (in constant time)
//! before anything is decrypted; the plaintext is PKCS#7-padded to the AES block size.
//!
//! Decryption happens on the controller only. The process holds one [`Keyring`] (installed
//! from the command line's `--vault-id`/`--vault-password-file`/`--ask-vault-pass`), and every
//! reader of the user's files — [`crate::yaml::parse`] for whole encrypted YAML files and
//! `!vault` scalars, [`crate::ctlfs::read`] for `copy`/`template` sources and lookups — goes
//! through [`decrypt`]. Every value decrypted is remembered as a secret ([`revealed`]), so the
//! controller can mask it in everything it prints or stores.
//!
//! A remote agent gets no password: the controller sends it the plaintexts of the envelopes
//! it decrypted ([`known`] → [`install_known`]), keyed by the SHA-256 of the envelope.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tend_proto::Loc;

use crate::diag::Diag;

/// What every envelope starts with.
pub const HEADER: &str = "$ANSIBLE_VAULT";
/// The vault id of a password given without a label (ansible's `DEFAULT_VAULT_IDENTITY`).
pub const DEFAULT_ID: &str = "default";
/// Decrypted values shorter than this are not masked in output: masking every `yes` or `80`
/// would garble the output and hide nothing. Such a secret gets a warning instead.
pub const MIN_MASKED_LEN: usize = 4;

const ROUNDS: u32 = 10_000;
const SALT_LEN: usize = 32;
const BLOCK: usize = 16;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;
type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("not a vault envelope: {0}")]
    Format(String),
    #[error("unsupported vault cipher `{0}` (tend decrypts AES256, as ansible-core does)")]
    Cipher(String),
    #[error("HMAC check failed")]
    Hmac,
    #[error("decrypted data has bad padding")]
    Padding,
    #[error("no vault password was given")]
    NoSecrets,
}

/// Whether `data` is a vault envelope (as ansible's `is_encrypted`: the header at the start).
pub fn is_encrypted(data: &[u8]) -> bool {
    data.starts_with(HEADER.as_bytes())
}

/// A parsed envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub version: String,
    pub cipher: String,
    /// The vault id of a 1.2 envelope.
    pub label: Option<String>,
    salt: Vec<u8>,
    hmac: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn unhex(what: &str, s: &[u8]) -> Result<Vec<u8>, VaultError> {
    hex::decode(s).map_err(|e| VaultError::Format(format!("{what} is not hex ({e})")))
}

impl Envelope {
    pub fn parse(data: &[u8]) -> Result<Envelope, VaultError> {
        let text = std::str::from_utf8(data)
            .map_err(|_| VaultError::Format("the envelope is not text".into()))?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default().trim();
        let parts: Vec<&str> = header.split(';').map(str::trim).collect();
        if parts.first() != Some(&HEADER) || parts.len() < 3 {
            return Err(VaultError::Format(format!("bad header `{header}`")));
        }
        let (version, cipher) = (parts[1].to_string(), parts[2].to_string());
        if cipher != "AES256" {
            return Err(VaultError::Cipher(cipher));
        }
        let label = parts
            .get(3)
            .filter(|l| !l.is_empty())
            .map(|l| l.to_string());
        let body: String = lines.flat_map(|l| l.trim().chars()).collect();
        let inner = unhex("the body", body.as_bytes())?;
        let mut fields = inner.split(|b| *b == b'\n');
        let (Some(salt), Some(hmac), Some(ct), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(VaultError::Format(
                "the body does not hold salt, HMAC and ciphertext".into(),
            ));
        };
        Ok(Envelope {
            version,
            cipher,
            label,
            salt: unhex("the salt", salt)?,
            hmac: unhex("the HMAC", hmac)?,
            ciphertext: unhex("the ciphertext", ct)?,
        })
    }

    /// The plaintext, if `password` is the one it was encrypted with.
    pub fn decrypt(&self, password: &[u8]) -> Result<Vec<u8>, VaultError> {
        let keys = derive(password, &self.salt);
        let mut mac = HmacSha256::new_from_slice(&keys[32..64]).expect("any key length");
        mac.update(&self.ciphertext);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&self.hmac).map_err(|_| VaultError::Hmac)?;
        let mut buf = self.ciphertext.clone();
        let mut cipher = Aes256Ctr::new(keys[..32].into(), keys[64..80].into());
        cipher.apply_keystream(&mut buf);
        let pad = *buf.last().ok_or(VaultError::Padding)? as usize;
        if pad == 0
            || pad > BLOCK
            || pad > buf.len()
            || !buf[buf.len() - pad..].iter().all(|b| *b as usize == pad)
        {
            return Err(VaultError::Padding);
        }
        buf.truncate(buf.len() - pad);
        Ok(buf)
    }
}

fn derive(password: &[u8], salt: &[u8]) -> [u8; 80] {
    let mut out = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, ROUNDS, &mut out);
    out
}

/// Encrypts `plain` as ansible-vault does: a 1.1 envelope, or 1.2 when `label` is given and is
/// not the default id. Ends with a newline.
pub fn encrypt(plain: &[u8], password: &[u8], label: Option<&str>) -> std::io::Result<String> {
    let mut salt = [0u8; SALT_LEN];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    Ok(encrypt_with_salt(plain, password, label, &salt))
}

fn encrypt_with_salt(plain: &[u8], password: &[u8], label: Option<&str>, salt: &[u8]) -> String {
    let keys = derive(password, salt);
    let pad = BLOCK - plain.len() % BLOCK;
    let mut buf = plain.to_vec();
    buf.extend(std::iter::repeat_n(pad as u8, pad));
    let mut cipher = Aes256Ctr::new(keys[..32].into(), keys[64..80].into());
    cipher.apply_keystream(&mut buf);
    let mut mac = HmacSha256::new_from_slice(&keys[32..64]).expect("any key length");
    mac.update(&buf);
    let inner = format!(
        "{}\n{}\n{}",
        hex::encode(salt),
        hex::encode(mac.finalize().into_bytes()),
        hex::encode(&buf)
    );
    let body = hex::encode(inner.as_bytes());
    let mut out = match label.filter(|l| *l != DEFAULT_ID) {
        Some(l) => format!("{HEADER};1.2;AES256;{l}"),
        None => format!("{HEADER};1.1;AES256"),
    };
    for chunk in body.as_bytes().chunks(80) {
        out.push('\n');
        out.push_str(std::str::from_utf8(chunk).expect("hex is ASCII"));
    }
    out.push('\n');
    out
}

/// One vault password and its id.
#[derive(Clone)]
pub struct VaultSecret {
    pub id: String,
    password: Vec<u8>,
}

impl VaultSecret {
    pub fn new(id: impl Into<String>, password: impl Into<Vec<u8>>) -> Self {
        VaultSecret {
            id: id.into(),
            password: password.into(),
        }
    }

    pub fn password(&self) -> &[u8] {
        &self.password
    }
}

impl fmt::Debug for VaultSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultSecret({}, <redacted>)", self.id)
    }
}

/// The passwords a run was given, in command-line order.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    pub secrets: Vec<VaultSecret>,
}

impl Keyring {
    /// Decrypts with ansible's matching: the secrets whose id is the envelope's label first,
    /// then every secret in order.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, VaultError> {
        let env = Envelope::parse(data)?;
        if self.secrets.is_empty() {
            return Err(VaultError::NoSecrets);
        }
        let labelled = self
            .secrets
            .iter()
            .filter(|s| Some(&s.id) == env.label.as_ref());
        let others = self
            .secrets
            .iter()
            .filter(|s| Some(&s.id) != env.label.as_ref());
        for s in labelled.chain(others) {
            match env.decrypt(&s.password) {
                Err(VaultError::Hmac) => continue,
                r => return r,
            }
        }
        Err(VaultError::Hmac)
    }
}

/// The process's vault state.
#[derive(Default)]
struct State {
    keyring: Keyring,
    /// SHA-256 of an envelope → its plaintext.
    known: HashMap<[u8; 32], Arc<Vec<u8>>>,
    revealed: BTreeSet<String>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(State::default))
}

/// Makes `keyring` the passwords this process decrypts with (a later call replaces it).
pub fn install(keyring: Keyring) {
    with_state(|s| s.keyring = keyring);
}

/// Whether a password was given.
pub fn has_secrets() -> bool {
    with_state(|s| !s.keyring.secrets.is_empty())
}

/// The plaintexts decrypted so far, for a remote agent: hex SHA-256 of the envelope → the
/// plaintext in base64.
pub fn known() -> BTreeMap<String, tend_proto::Secret> {
    use base64::Engine;
    with_state(|s| {
        s.known
            .iter()
            .map(|(k, v)| {
                let b64 = base64::engine::general_purpose::STANDARD.encode(v.as_slice());
                (hex::encode(k), tend_proto::Secret::new(b64))
            })
            .collect()
    })
}

/// On an agent: the plaintexts the controller decrypted ([`known`]). Entries that do not
/// decode are left out (the read then fails as "no vault password").
pub fn install_known(map: &BTreeMap<String, tend_proto::Secret>) {
    use base64::Engine;
    with_state(|s| {
        for (k, v) in map {
            let digest = hex::decode(k)
                .ok()
                .and_then(|d| <[u8; 32]>::try_from(d).ok());
            let plain = base64::engine::general_purpose::STANDARD
                .decode(v.expose())
                .ok();
            if let (Some(d), Some(p)) = (digest, plain) {
                s.known.insert(d, Arc::new(p));
            }
        }
    });
}

/// Remembers `value` as a secret to mask (when it is at least [`MIN_MASKED_LEN`] long).
pub fn reveal(value: &str) {
    if value.len() >= MIN_MASKED_LEN && with_state(|s| s.revealed.insert(value.to_string())) {
        GENERATION.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every text of a decrypted file (whole, and each line) is a secret.
pub fn reveal_text(text: &str) {
    reveal(text.trim());
    for line in text.lines() {
        reveal(line.trim());
    }
}

/// The secrets revealed so far.
pub fn revealed() -> Vec<String> {
    with_state(|s| s.revealed.iter().cloned().collect())
}

/// Changes whenever a secret is revealed: consumers rebuild their matcher when it moves.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Decrypts an envelope found at `loc` with the installed keyring, with a located error that
/// names the next step.
pub fn decrypt(data: &[u8], loc: &Loc) -> Result<Vec<u8>, Diag> {
    let digest: [u8; 32] = Sha256::digest(data).into();
    let (found, keyring) = with_state(|s| (s.known.get(&digest).cloned(), s.keyring.clone()));
    if let Some(p) = found {
        return Ok(p.as_ref().clone());
    }
    let label = Envelope::parse(data).ok().and_then(|e| e.label);
    match keyring.decrypt(data) {
        Ok(plain) => {
            with_state(|s| s.known.insert(digest, Arc::new(plain.clone())));
            Ok(plain)
        }
        Err(e) => Err(error_diag(&e, label.as_deref(), &keyring, loc)),
    }
}

fn error_diag(e: &VaultError, label: Option<&str>, keyring: &Keyring, loc: &Loc) -> Diag {
    const HOW: &str = "--vault-password-file FILE, --vault-id [LABEL@]SOURCE, --ask-vault-pass (-J) or ANSIBLE_VAULT_PASSWORD_FILE";
    match e {
        VaultError::NoSecrets => Diag::new(
            loc.clone(),
            "vault: this is vault-encrypted data, but no vault password was given",
        )
        .with_hint(format!("give the password with {HOW}")),
        VaultError::Hmac => {
            let id = label.map(str::to_string).unwrap_or_else(|| {
                keyring
                    .secrets
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join("', '")
            });
            let ids = if label.is_some() {
                "it carries"
            } else {
                "of the passwords given"
            };
            Diag::new(
                loc.clone(),
                format!("vault: HMAC check failed — wrong vault password for vault id '{id}'?"),
            )
            .with_hint(format!(
                "none of the vault passwords given decrypts this (vault id {ids}: '{id}'); give the right one with {HOW}"
            ))
        }
        other => Diag::new(loc.clone(), format!("vault: {other}"))
            .with_hint("re-create the data with `tend vault encrypt` or `ansible-vault encrypt`"),
    }
}

/// The contents of a controller file read as data (`copy`/`template` `src`, the `file`
/// lookup): decrypted if it is vault-encrypted (its text, whole and by line, is then a secret),
/// else as it is.
pub fn decrypt_file(data: Vec<u8>, path: &std::path::Path) -> Result<Vec<u8>, Diag> {
    if !is_encrypted(&data) {
        return Ok(data);
    }
    let plain = decrypt(&data, &Loc::new(path.to_string_lossy().as_ref(), 1, 1))?;
    reveal_text(&String::from_utf8_lossy(&plain));
    Ok(plain)
}

/// The value of an inline `!vault |` scalar. The envelope is decrypted and the text revealed.
pub fn decrypt_scalar(envelope: &str, loc: &Loc) -> Result<String, Diag> {
    let plain = decrypt(envelope.trim_start().as_bytes(), loc)?;
    let text = String::from_utf8(plain)
        .map_err(|_| Diag::new(loc.clone(), "vault: the decrypted value is not UTF-8 text"))?;
    reveal_text(&text);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vault/");

    fn data(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DATA}{name}")).unwrap()
    }

    fn pw() -> Vec<u8> {
        b"correct horse".to_vec()
    }

    #[test]
    fn decrypts_ansible_vault_1_1() {
        let env = Envelope::parse(&data("v11.yml")).unwrap();
        assert_eq!(env.version, "1.1");
        assert_eq!(env.label, None);
        assert_eq!(env.decrypt(&pw()).unwrap(), data("plain.yml"));
    }

    #[test]
    fn decrypts_ansible_vault_1_2_with_its_label() {
        let env = Envelope::parse(&data("v12.yml")).unwrap();
        assert_eq!(env.version, "1.2");
        assert_eq!(env.label.as_deref(), Some("prod"));
        let ring = Keyring {
            secrets: vec![
                VaultSecret::new(DEFAULT_ID, pw()),
                VaultSecret::new("prod", b"other-pass".to_vec()),
            ],
        };
        assert_eq!(ring.decrypt(&data("v12.yml")).unwrap(), data("plain.yml"));
        // Any password is tried, whatever its id, as ansible-core does.
        let ring = Keyring {
            secrets: vec![VaultSecret::new("dev", b"other-pass".to_vec())],
        };
        assert_eq!(ring.decrypt(&data("v12.yml")).unwrap(), data("plain.yml"));
    }

    #[test]
    fn block_sized_and_empty_plaintexts_are_padded() {
        let env = Envelope::parse(&data("block16.txt")).unwrap();
        assert_eq!(env.decrypt(&pw()).unwrap(), b"x".repeat(16));
        let env = Envelope::parse(&data("empty.txt")).unwrap();
        assert_eq!(env.decrypt(&pw()).unwrap(), b"");
    }

    #[test]
    fn wrong_password_fails_the_hmac_check() {
        let env = Envelope::parse(&data("v11.yml")).unwrap();
        assert_eq!(env.decrypt(b"wrong"), Err(VaultError::Hmac));
        let ring = Keyring {
            secrets: vec![VaultSecret::new("a", b"x".to_vec())],
        };
        assert_eq!(ring.decrypt(&data("v11.yml")), Err(VaultError::Hmac));
        assert_eq!(
            Keyring::default().decrypt(&data("v11.yml")),
            Err(VaultError::NoSecrets)
        );
    }

    #[test]
    fn tampered_ciphertext_fails_the_hmac_check() {
        let text = String::from_utf8(data("v11.yml")).unwrap();
        let mut env = Envelope::parse(text.as_bytes()).unwrap();
        env.ciphertext[0] ^= 1;
        assert_eq!(env.decrypt(&pw()), Err(VaultError::Hmac));
        let mut env = Envelope::parse(text.as_bytes()).unwrap();
        env.hmac[5] ^= 0x80;
        assert_eq!(env.decrypt(&pw()), Err(VaultError::Hmac));
    }

    #[test]
    fn encrypt_round_trips_and_matches_ansible_vault_layout() {
        let plain = data("plain.yml");
        let out = encrypt(&plain, &pw(), None).unwrap();
        assert!(out.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"));
        assert!(out.lines().skip(1).all(|l| l.len() <= 80));
        assert!(out.ends_with('\n'));
        assert_eq!(
            Envelope::parse(out.as_bytes())
                .unwrap()
                .decrypt(&pw())
                .unwrap(),
            plain
        );
        let out = encrypt(b"s", b"p", Some("prod")).unwrap();
        assert!(out.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"));
        // Same salt, same password: the same bytes as ansible-vault wrote.
        let env = Envelope::parse(&data("v11.yml")).unwrap();
        let again = encrypt_with_salt(&plain, &pw(), None, &env.salt);
        assert_eq!(again.as_bytes(), data("v11.yml").as_slice());
    }

    #[test]
    fn malformed_envelopes_are_format_errors() {
        assert!(matches!(
            Envelope::parse(b"$ANSIBLE_VAULT;1.1"),
            Err(VaultError::Format(_))
        ));
        assert!(matches!(
            Envelope::parse(b"$ANSIBLE_VAULT;1.1;AES256\nzz\n"),
            Err(VaultError::Format(_))
        ));
        assert!(matches!(
            Envelope::parse(b"$ANSIBLE_VAULT;1.0;AES\n00\n"),
            Err(VaultError::Cipher(_))
        ));
    }

    #[test]
    fn errors_name_the_place_the_vault_id_and_the_flags() {
        let ring = Keyring {
            secrets: vec![VaultSecret::new("ops", b"nope".to_vec())],
        };
        let loc = Loc::new("group_vars/all.yml", 1, 1);
        let d = error_diag(&VaultError::Hmac, None, &ring, &loc).render();
        assert!(d.contains("group_vars/all.yml:1"), "{d}");
        assert!(
            d.contains("HMAC check failed — wrong vault password for vault id 'ops'?"),
            "{d}"
        );
        let d = error_diag(&VaultError::NoSecrets, None, &Keyring::default(), &loc).render();
        assert!(d.contains("--vault-password-file"), "{d}");
    }
}
