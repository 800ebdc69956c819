//! A short, stable-toolchain fuzz run of the loaders that read user files: the YAML parser, the
//! INI and YAML inventory loaders and the playbook loader.
//!
//! Seeds are the playbooks and inventories of the differential suite and of the inventory
//! fixtures; each iteration mutates one (flip, insert, delete, splice, duplicate, a YAML/INI
//! token), feeds it to every loader and checks that nothing panics and that every error names
//! the file it is about. The run stops after `TEND_FUZZ_ITERATIONS` inputs (default 20 000) or
//! `TEND_FUZZ_SECONDS` seconds (default 10, at most 20), whichever comes first; `TEND_FUZZ_SEED`
//! picks another sequence. A failing input is saved and its path printed.
//!
//! Deep fuzzing with coverage feedback lives in `fuzz/` (cargo-fuzz, needs nightly).

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tend_lang::inventory::Inventory;
use tend_lang::{playbook, yaml, Diag};

/// Small, fast and reproducible: xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Fragments that mean something to YAML, INI inventories, Jinja or Ansible.
const TOKENS: &[&str] = &[
    ":",
    "- ",
    "\n",
    "\t",
    "  ",
    "#",
    "'",
    "\"",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!str ",
    "!vault |",
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "? ",
    "{{ ",
    " }}",
    "{% if x %}",
    "=",
    "[all:vars]",
    "[g:children]",
    "host[1:3]",
    "host[a:c:2]",
    "ansible_host=",
    "ansible_port=99999",
    "hosts: all\n",
    "tasks:\n",
    "block:\n",
    "import_tasks: x.yml",
    "include_role: {name: r}",
    "roles: [r]",
    "vars_files: [v.yml]",
    "loop: ",
    "when: ",
    "0x1F",
    "1e999",
    "-.inf",
    "~",
    "null",
    "yes",
    "no",
    "\u{feff}",
    "\u{0}",
    "é",
    "\r\n",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let b = b" :-\n\t[]{}#=,'\"&*!|>%"[rng.below(20)];
                out.insert(rng.below(len + 1), b);
            }
            2 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                out.drain(start..end);
            }
            3 => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(64)).min(other.len());
                    let at = rng.below(len + 1);
                    out.splice(at..at, other[start..end].iter().copied());
                }
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(32)).min(len);
                let piece = out[start..end].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, piece);
            }
            5 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let at = rng.below(len + 1);
                out.splice(at..at, token.iter().copied());
            }
            _ if len > 0 => {
                // Cut at a line boundary: truncated files are common in real life.
                let at = rng.below(len);
                let cut = out[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(len, |p| at + p);
                out.truncate(cut);
            }
            _ => out.extend_from_slice(b"\n- x"),
        }
    }
    out
}

fn corpus(root: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for pattern in [
        "tests/differential/cases/*/site.yml",
        "tests/differential/cases/*/inventory",
        "tests/differential/cases/*/inventory/hosts*",
        "tests/differential/cases/*/roles/*/tasks/*.yml",
        "tests/differential/cases/*/vars/*.yml",
        "crates/tend-lang/tests/fixtures/inventory/*/hosts*",
        "crates/tend-lang/tests/fixtures/inventory/dir/*",
        "examples/*/*.yml",
        "examples/*/*.ini",
    ] {
        let full = root.join(pattern);
        for p in glob::glob(&full.to_string_lossy())
            .into_iter()
            .flatten()
            .flatten()
        {
            if p.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    assert!(
        seeds.len() >= 20,
        "fuzz corpus too small ({} files under {})",
        seeds.len(),
        root.display()
    );
    seeds
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An error must say which file it is about: the one the loader was given.
fn check_located(what: &str, d: &Diag, file: &Path) -> Result<(), String> {
    let named = d.loc.file.as_ref();
    if named.is_empty() {
        return Err(format!("{what}: error without a file: {}", d.msg));
    }
    let expected = file
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    if !named.contains(expected) && !Path::new(named).is_absolute() {
        return Err(format!(
            "{what}: error names `{named}`, not the loaded file {}",
            file.display()
        ));
    }
    Ok(())
}

/// Feeds one input to every loader. `Err` is a property violation; a panic propagates.
fn feed(dir: &Path, input: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(input);

    match yaml::parse("fuzz.yml", &text) {
        Ok(_) => {}
        Err(d) if d.loc.file.as_ref() == "fuzz.yml" && d.loc.line > 0 => {}
        Err(d) => {
            return Err(format!(
                "yaml::parse: error without a line: {} at {:?}",
                d.msg, d.loc
            ))
        }
    }

    for name in ["hosts.ini", "hosts.yml"] {
        let path = dir.join(name);
        std::fs::write(&path, input).map_err(|e| e.to_string())?;
        if let Err(d) = Inventory::load(&[path.to_string_lossy().into_owned()]) {
            check_located("inventory", &d, &path)?;
        }
        std::fs::remove_file(&path).map_err(|e| e.to_string())?;
    }

    let site = dir.join("site.yml");
    std::fs::write(&site, input).map_err(|e| e.to_string())?;
    if let Err(diags) = playbook::load(&site) {
        if diags.0.is_empty() {
            return Err("playbook::load: failed without a diagnostic".into());
        }
        for d in &diags.0 {
            if d.loc.file.is_empty() {
                return Err(format!("playbook::load: error without a file: {}", d.msg));
            }
        }
    }
    Ok(())
}

#[test]
fn loaders_survive_mutated_inputs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let seeds = corpus(&root);
    let seed = env_number("TEND_FUZZ_SEED", 0x7e4d_f022);
    let iterations = env_number("TEND_FUZZ_ITERATIONS", 20_000);
    let budget = Duration::from_secs(env_number("TEND_FUZZ_SECONDS", 10).min(20));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng(seed | 1);
    let started = Instant::now();

    // The unmutated seeds must load without panicking too.
    let mut inputs: Vec<Vec<u8>> = seeds.clone();
    let mut done = 0u64;
    while done < iterations && started.elapsed() < budget {
        let input = match inputs.pop() {
            Some(i) => i,
            None => {
                let pick = rng.below(seeds.len());
                mutate(&mut rng, &seeds[pick], &seeds)
            }
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| feed(dir.path(), &input)));
        let problem = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(violation)) => Some(violation),
            Err(p) => Some(format!(
                "panic: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        };
        if let Some(problem) = problem {
            let saved = std::env::temp_dir().join(format!("tend-fuzz-failure-{seed:x}-{done}.txt"));
            let _ = std::fs::write(&saved, &input);
            panic!(
                "input #{done} (TEND_FUZZ_SEED={seed}): {problem}\ninput saved to {}",
                saved.display()
            );
        }
        done += 1;
    }
    assert!(
        done >= seeds.len() as u64,
        "only {done} inputs in {budget:?}: the loaders are too slow to fuzz"
    );
}
