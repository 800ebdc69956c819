//! The crypt(3) password hashes `password_hash` produces: SHA-512 (`$6$`), SHA-256 (`$5$`)
//! per Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512" specification, and MD5 (`$1$`),
//! the FreeBSD scheme.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The salt alphabet crypt accepts.
pub const SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const DEFAULT_ROUNDS: u32 = 5000;

/// Which SHA variant: its crypt id and the byte order of the final encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sha {
    Sha256,
    Sha512,
}

/// SHA-crypt of `password` with `salt` (at most 16 characters are used). `rounds` is written
/// into the result when given, as crypt(3) and passlib do.
pub fn sha_crypt(kind: Sha, password: &[u8], salt: &str, rounds: Option<u32>) -> String {
    match kind {
        Sha::Sha256 => sha_crypt_with::<Sha256>(password, salt, rounds, "5", &SHA256_ORDER, 3),
        Sha::Sha512 => sha_crypt_with::<Sha512>(password, salt, rounds, "6", &SHA512_ORDER, 2),
    }
}

/// Triples of digest byte indexes, each encoded as four characters (high byte first).
const SHA512_ORDER: [(usize, usize, usize); 21] = [
    (0, 21, 42),
    (22, 43, 1),
    (44, 2, 23),
    (3, 24, 45),
    (25, 46, 4),
    (47, 5, 26),
    (6, 27, 48),
    (28, 49, 7),
    (50, 8, 29),
    (9, 30, 51),
    (31, 52, 10),
    (53, 11, 32),
    (12, 33, 54),
    (34, 55, 13),
    (56, 14, 35),
    (15, 36, 57),
    (37, 58, 16),
    (59, 17, 38),
    (18, 39, 60),
    (40, 61, 19),
    (62, 20, 41),
];

const SHA256_ORDER: [(usize, usize, usize); 10] = [
    (0, 10, 20),
    (21, 1, 11),
    (12, 22, 2),
    (3, 13, 23),
    (24, 4, 14),
    (15, 25, 5),
    (6, 16, 26),
    (27, 7, 17),
    (18, 28, 8),
    (9, 19, 29),
];

fn push_b64(out: &mut String, b2: u8, b1: u8, b0: u8, n: usize) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..n {
        out.push(char::from(ITOA64[(w & 0x3f) as usize]));
        w >>= 6;
    }
}

/// `src` repeated to exactly `len` bytes.
fn stretch(src: &[u8], len: usize) -> Vec<u8> {
    src.iter().copied().cycle().take(len).collect()
}

fn sha_crypt_with<D: Digest + Clone>(
    password: &[u8],
    salt: &str,
    rounds: Option<u32>,
    id: &str,
    order: &[(usize, usize, usize)],
    tail_chars: usize,
) -> String {
    let salt: Vec<u8> = salt.bytes().take(16).collect();
    let n_rounds = rounds.unwrap_or(DEFAULT_ROUNDS).clamp(1000, 999_999_999);

    let mut b = D::new();
    b.update(password);
    b.update(&salt);
    b.update(password);
    let b = b.finalize();
    let size = b.len();

    let mut a = D::new();
    a.update(password);
    a.update(&salt);
    a.update(stretch(&b, password.len()));
    let mut len = password.len();
    while len > 0 {
        if len & 1 == 1 {
            a.update(&b);
        } else {
            a.update(password);
        }
        len >>= 1;
    }
    let a = a.finalize();

    let mut dp = D::new();
    for _ in 0..password.len() {
        dp.update(password);
    }
    let p = stretch(&dp.finalize(), password.len());

    let mut ds = D::new();
    for _ in 0..(16 + usize::from(a[0])) {
        ds.update(&salt);
    }
    let s = stretch(&ds.finalize(), salt.len());

    let mut c: Vec<u8> = a.to_vec();
    for i in 0..n_rounds {
        let mut ctx = D::new();
        if i & 1 == 1 {
            ctx.update(&p);
        } else {
            ctx.update(&c);
        }
        if i % 3 != 0 {
            ctx.update(&s);
        }
        if i % 7 != 0 {
            ctx.update(&p);
        }
        if i & 1 == 1 {
            ctx.update(&c);
        } else {
            ctx.update(&p);
        }
        c = ctx.finalize().to_vec();
    }

    let mut out = format!("${id}$");
    if let Some(r) = rounds {
        out.push_str(&format!("rounds={}$", r.clamp(1000, 999_999_999)));
    }
    out.push_str(&String::from_utf8_lossy(&salt));
    out.push('$');
    for &(x, y, z) in order {
        push_b64(&mut out, c[x], c[y], c[z], 4);
    }
    if size == 64 {
        push_b64(&mut out, 0, 0, c[63], tail_chars);
    } else {
        push_b64(&mut out, 0, c[31], c[30], tail_chars);
    }
    out
}

/// MD5-crypt (`$1$`), salt of at most 8 characters.
pub fn md5_crypt(password: &[u8], salt: &str) -> String {
    let salt: Vec<u8> = salt.bytes().take(8).collect();
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(&salt);
    alt.update(password);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(b"$1$");
    ctx.update(&salt);
    ctx.update(stretch(&alt, password.len()));
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin: Vec<u8> = ctx.finalize().to_vec();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(password);
        } else {
            c.update(&fin);
        }
        if i % 3 != 0 {
            c.update(&salt);
        }
        if i % 7 != 0 {
            c.update(password);
        }
        if i & 1 == 1 {
            c.update(&fin);
        } else {
            c.update(password);
        }
        fin = c.finalize().to_vec();
    }
    let mut out = format!("$1${}$", String::from_utf8_lossy(&salt));
    for (x, y, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push_b64(&mut out, fin[x], fin[y], fin[z], 4);
    }
    push_b64(&mut out, 0, 0, fin[11], 2);
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    // Expected values from Python's crypt.crypt (glibc).
    #[test]
    fn sha512_crypt_matches_glibc() {
        assert_eq!(
            sha_crypt(Sha::Sha512, b"Hello world!", "saltstring", None),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        assert_eq!(
            sha_crypt(Sha::Sha512, b"secret", "mysalt", Some(10000)),
            "$6$rounds=10000$mysalt$9XTP7570fxVN/uTspSrH6kRPdR4KKGzGz7.TmJjDYGrKSwZuavW/3YaLur8JX6WP75Czcxa.megIO0lKreY0R."
        );
        let long = "a".repeat(100);
        assert_eq!(
            sha_crypt(Sha::Sha512, long.as_bytes(), "toolongsaltstring1234", Some(1000)),
            "$6$rounds=1000$toolongsaltstrin$fwwt46Gyotjeo0qJittUAtRgd04ojg7G.A0NUIViVQJDtsWQp55eM3Wx0sBM6uQo5S32bkXry5c312U7HNSRX/"
        );
    }

    #[test]
    fn sha256_and_md5_crypt_match_glibc() {
        assert_eq!(
            sha_crypt(Sha::Sha256, b"secret", "mysalt", Some(535000)),
            "$5$rounds=535000$mysalt$GnEktJhWXRuwViyPsEWK9s63HYW1GqXFqU5SdKDqol6"
        );
        assert_eq!(
            md5_crypt(b"secret", "mysalt"),
            "$1$mysalt$n/EfEiV74OYgBdqhKQzSW/"
        );
    }
}
