//! Python's `random.Random`: the Mersenne Twister seeded the way CPython seeds it, so that
//! `random(seed=…)` and `shuffle(seed=…)` pick what Ansible picks for the same seed.

use sha2::{Digest, Sha512};

const N: usize = 624;
const M: usize = 397;

pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

/// A seed as Python would receive it.
pub enum Seed<'a> {
    Int(i128),
    Str(&'a str),
}

impl PyRandom {
    pub fn new(seed: Seed<'_>) -> Self {
        let key = match seed {
            Seed::Int(i) => words_of(&i.unsigned_abs().to_be_bytes()),
            Seed::Str(s) => {
                // Python 3 seeds from str with version 2: the text's UTF-8 bytes followed by
                // their SHA-512, read as one big-endian integer.
                let mut bytes = s.as_bytes().to_vec();
                bytes.extend_from_slice(&Sha512::digest(s.as_bytes()));
                words_of(&bytes)
            }
        };
        let mut r = PyRandom {
            mt: [0; N],
            index: N,
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let mut i = 1usize;
        let mut j = 0usize;
        for _ in 0..N.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mut v = self.mt[(k + M) % N] ^ (y >> 1);
                if y & 1 == 1 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `getrandbits(k)` for k ≤ 64.
    fn getrandbits(&mut self, k: u32) -> u64 {
        if k <= 32 {
            return u64::from(self.next_u32() >> (32 - k));
        }
        let low = u64::from(self.next_u32());
        let high = u64::from(self.next_u32() >> (64 - k));
        (high << 32) | low
    }

    /// A number in `0..n` (`n` ≥ 1), as `Random._randbelow`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randrange(start, stop, step)`.
    pub fn randrange(&mut self, start: i64, stop: i64, step: i64) -> Option<i64> {
        let (start, stop, step) = (i128::from(start), i128::from(stop), i128::from(step));
        let width = stop - start;
        let n = match step.cmp(&0) {
            std::cmp::Ordering::Greater => (width + step - 1).div_euclid(step),
            std::cmp::Ordering::Less => (width + step + 1).div_euclid(step),
            std::cmp::Ordering::Equal => return None,
        };
        if n <= 0 {
            return None;
        }
        let pick = i128::from(self.below(u64::try_from(n).ok()?));
        i64::try_from(start + step * pick).ok()
    }

    /// Shuffles in place as `Random.shuffle`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The 32-bit words of a big-endian unsigned integer, least significant first, without leading
/// zero words (at least one word), as CPython's `random_seed` builds its key.
fn words_of(be: &[u8]) -> Vec<u32> {
    let first = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    let digits = &be[first..];
    let mut words = Vec::with_capacity(digits.len() / 4 + 1);
    let mut end = digits.len();
    while end > 0 {
        let start = end.saturating_sub(4);
        let mut w = 0u32;
        for &b in &digits[start..end] {
            w = (w << 8) | u32::from(b);
        }
        words.push(w);
        end = start;
    }
    if words.is_empty() {
        words.push(0);
    }
    words
}

#[cfg(test)]
mod unit {
    use super::*;

    // Expected values from CPython 3.11's random.Random.
    #[test]
    fn matches_cpython() {
        assert_eq!(PyRandom::new(Seed::Str("abc")).randrange(0, 10, 1), Some(8));
        assert_eq!(PyRandom::new(Seed::Int(42)).randrange(10, 100, 5), Some(25));
        assert_eq!(PyRandom::new(Seed::Int(7)).randrange(0, 7, 1), Some(2));
        let mut r = PyRandom::new(Seed::Str("x"));
        let mut v = [1, 2, 3, 4, 5];
        r.shuffle(&mut v);
        assert_eq!(v, [5, 2, 1, 4, 3]);
    }
}
