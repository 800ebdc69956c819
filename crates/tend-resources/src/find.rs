//! `find`: files matching criteria, with ansible-core's filters and result fields.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use regex::Regex;
use tend_proto::{Value, Vars};

use crate::lineinfile::py_regex;
use crate::stat::{statinfo, ALGORITHMS};
use crate::{fsutil, Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Find;

pub const PARAMS: &[&str] = &[
    "paths",
    "name",
    "path",
    "patterns",
    "pattern",
    "excludes",
    "exclude",
    "contains",
    "read_whole_file",
    "file_type",
    "age",
    "age_stamp",
    "size",
    "recurse",
    "hidden",
    "follow",
    "get_checksum",
    "checksum_algorithm",
    "checksum",
    "checksum_algo",
    "use_regex",
    "depth",
    "mode",
    "exact_mode",
    "encoding",
    "limit",
];

enum Matcher {
    Glob(Vec<glob::Pattern>),
    Regex(Vec<Regex>),
}

impl Matcher {
    fn new(pats: &[String], use_regex: bool) -> Result<Matcher, ModuleError> {
        if use_regex {
            pats.iter()
                .map(|p| {
                    Regex::new(&format!("\\A(?:{})", py_regex(p, false))).map_err(|e| {
                        ModuleError::new(format!("invalid regular expression {p}: {e}"))
                    })
                })
                .collect::<Result<_, _>>()
                .map(Matcher::Regex)
        } else {
            // fnmatch: a pattern that is not valid glob syntax matches nothing special.
            Ok(Matcher::Glob(
                pats.iter()
                    .map(|p| {
                        glob::Pattern::new(p).unwrap_or_else(|_| {
                            glob::Pattern::new(&glob::Pattern::escape(p)).unwrap_or_default()
                        })
                    })
                    .collect(),
            ))
        }
    }

    fn any(&self, name: &str) -> bool {
        match self {
            Matcher::Glob(g) => g.iter().any(|p| p.matches(name)),
            Matcher::Regex(r) => r.iter().any(|p| p.is_match(name)),
        }
    }
}

/// `3d`, `-2h` → seconds; `10k`, `-1m` → bytes (ansible-core's units).
fn with_unit(s: &str, units: &[(char, i64)]) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            (&s[..s.len() - 1], units.iter().find(|(u, _)| *u == c)?.1)
        }
        _ => (s.as_str(), 1),
    };
    num.parse::<i64>().ok().map(|n| n * mult)
}

struct Opts {
    patterns: Matcher,
    excludes: Option<Matcher>,
    contains: Option<Regex>,
    read_whole_file: bool,
    file_type: String,
    age: Option<i64>,
    age_stamp: String,
    size: Option<i64>,
    recurse: bool,
    hidden: bool,
    follow: bool,
    checksum: Option<String>,
    depth: Option<i64>,
    mode: Option<(u32, bool)>,
    limit: Option<usize>,
    now: f64,
}

impl Opts {
    fn name_ok(&self, name: &str) -> bool {
        self.patterns.any(name) && !self.excludes.as_ref().is_some_and(|e| e.any(name))
    }

    fn age_ok(&self, m: &fs::Metadata) -> bool {
        let Some(age) = self.age else { return true };
        let t = match self.age_stamp.as_str() {
            "atime" => m.atime() as f64 + m.atime_nsec() as f64 / 1e9,
            "ctime" => m.ctime() as f64 + m.ctime_nsec() as f64 / 1e9,
            _ => m.mtime() as f64 + m.mtime_nsec() as f64 / 1e9,
        };
        let d = self.now - t;
        if age >= 0 {
            d >= age as f64
        } else {
            d <= age.unsigned_abs() as f64
        }
    }

    fn size_ok(&self, m: &fs::Metadata) -> bool {
        match self.size {
            None => true,
            Some(s) if s >= 0 => m.size() >= s as u64,
            Some(s) => m.size() <= s.unsigned_abs(),
        }
    }

    fn mode_ok(&self, m: &fs::Metadata) -> bool {
        match self.mode {
            None => true,
            Some((want, true)) => m.mode() & fsutil::PERM_BITS == want,
            Some((want, false)) => m.mode() & want == want,
        }
    }

    fn content_ok(&self, p: &Path) -> bool {
        let Some(re) = &self.contains else {
            return true;
        };
        let Ok(f) = fsutil::open_noatime(p) else {
            return false;
        };
        if self.read_whole_file {
            let mut s = String::new();
            return std::io::Read::read_to_string(&mut BufReader::new(f), &mut s).is_ok()
                && re.is_match(&s);
        }
        // ansible-core tests each line with `re.match` (anchored at the line's start).
        BufReader::new(f)
            .split(b'\n')
            .map_while(Result::ok)
            .any(|l| {
                let s = String::from_utf8_lossy(&l);
                re.find(&s).is_some_and(|m| m.start() == 0)
            })
    }
}

fn walk(
    root: &Path,
    top: &Path,
    o: &Opts,
    files: &mut Vec<Value>,
    looked: &mut u64,
) -> Result<bool, ModuleError> {
    let Ok(rd) = fs::read_dir(root) else {
        return Ok(false);
    };
    let mut entries: Vec<(String, bool)> = rd
        .filter_map(Result::ok)
        .map(|e| {
            let is_dir = fs::metadata(e.path()).map(|m| m.is_dir()).unwrap_or(false);
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    // os.walk lists files before directories.
    entries.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    *looked += entries.len() as u64;
    let top_depth = top.components().count() as i64;
    let mut subdirs = Vec::new();
    for (name, is_dir) in entries {
        let p = root.join(&name);
        if let Some(max) = o.depth.filter(|d| *d > 0) {
            if p.components().count() as i64 - top_depth > max {
                continue;
            }
        }
        if is_dir {
            let real = fs::symlink_metadata(&p)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            if real || o.follow {
                subdirs.push(p.clone());
            }
        }
        if name.starts_with('.') && !o.hidden {
            continue;
        }
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        let ft = m.file_type();
        let common = o.name_ok(&name) && o.age_ok(&m) && o.mode_ok(&m);
        let take = match o.file_type.as_str() {
            "any" => common && (!ft.is_file() || o.size_ok(&m)),
            "directory" => ft.is_dir() && common,
            "link" => ft.is_symlink() && common,
            _ => ft.is_file() && common && o.size_ok(&m) && o.content_ok(&p),
        };
        if take {
            let mut r = Vars::new();
            r.insert("path".into(), p.display().to_string().into());
            r.extend(statinfo(&m));
            if let (Some(algo), true) = (&o.checksum, ft.is_file()) {
                r.insert("checksum".into(), fsutil::file_digest(&p, algo)?.into());
            }
            files.push(Value::Object(r));
            if o.limit == Some(files.len()) {
                return Ok(true);
            }
        }
    }
    if o.recurse {
        for d in subdirs {
            if walk(&d, top, o, files, looked)? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

impl Action for Find {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn run(&self, args: &Args, _ctx: &ModuleCtx) -> ModuleResult {
        let paths = match args.first(&["paths", "name", "path"]) {
            Some((k, _)) => args.list(k)?.unwrap_or_default(),
            None => return Err(ModuleError::new("missing required arguments: paths")),
        };
        let use_regex = args.bool_or("use_regex", false)?;
        let list = |ks: &[&str]| -> Result<Option<Vec<String>>, ModuleError> {
            match args.first(ks) {
                Some((k, _)) => Ok(args.list(k)?),
                None => Ok(None),
            }
        };
        let mut patterns = list(&["patterns", "pattern"])?.unwrap_or_default();
        if patterns.is_empty() {
            patterns.push(if use_regex { ".*".into() } else { "*".into() });
        }
        let excludes = list(&["excludes", "exclude"])?.filter(|e| !e.is_empty());
        let age = match args.str("age")? {
            None => None,
            Some(a) => Some(
                with_unit(
                    &a,
                    &[
                        ('s', 1),
                        ('m', 60),
                        ('h', 3600),
                        ('d', 86400),
                        ('w', 604800),
                    ],
                )
                .ok_or_else(|| ModuleError::new("failed to process age"))?,
            ),
        };
        let size = match args.str("size")? {
            None => None,
            Some(s) => Some(
                with_unit(
                    &s,
                    &[
                        ('b', 1),
                        ('k', 1 << 10),
                        ('m', 1 << 20),
                        ('g', 1 << 30),
                        ('t', 1 << 40),
                    ],
                )
                .ok_or_else(|| ModuleError::new("failed to process size"))?,
            ),
        };
        let limit = match args.int("limit")? {
            Some(l) if l <= 0 => {
                return Err(ModuleError::new(format!(
                    "limit cannot be {l} (use None for unlimited)"
                )))
            }
            l => l.map(|l| l as usize),
        };
        let mode = match args.raw("mode") {
            None => None,
            Some(Value::String(s)) => match fsutil::Mode::parse_str(s)? {
                fsutil::Mode::Octal(m) => Some((m, args.bool_or("exact_mode", true)?)),
                _ => return Err(ModuleError::new(format!("find supports only octal modes, got {s}"))),
            },
            Some(v) => {
                return Err(ModuleError::new(format!(
                    "argument 'mode' is not a string and conversion is not allowed, value is of type {}",
                    if v.is_number() { "int" } else { "other" }
                )))
            }
        };
        let checksum = if args.bool_or("get_checksum", false)? {
            let a = args
                .str_any(&["checksum_algorithm", "checksum", "checksum_algo"])?
                .unwrap_or_else(|| "sha1".into());
            if !ALGORITHMS.contains(&a.as_str()) {
                return Err(ModuleError::new(format!(
                    "value of checksum_algorithm must be one of: {}, got: {a}",
                    ALGORITHMS.join(", ")
                )));
            }
            Some(a)
        } else {
            None
        };
        let o = Opts {
            patterns: Matcher::new(&patterns, use_regex)?,
            excludes: excludes.map(|e| Matcher::new(&e, use_regex)).transpose()?,
            contains: args
                .str("contains")?
                .map(|c| {
                    Regex::new(&py_regex(&c, false))
                        .map_err(|e| ModuleError::new(format!("invalid contains: {e}")))
                })
                .transpose()?,
            read_whole_file: args.bool_or("read_whole_file", false)?,
            file_type: args
                .choice("file_type", &["any", "directory", "file", "link"])?
                .unwrap_or_else(|| "file".into()),
            age,
            age_stamp: args
                .choice("age_stamp", &["atime", "ctime", "mtime"])?
                .unwrap_or_else(|| "mtime".into()),
            size,
            recurse: args.bool_or("recurse", false)?,
            hidden: args.bool_or("hidden", false)?,
            follow: args.bool_or("follow", false)?,
            checksum,
            depth: args.int("depth")?,
            mode,
            limit,
            now: {
                let (s, us) = fsutil::now();
                s as f64 + us as f64 / 1e6
            },
        };
        let mut files = Vec::new();
        let mut looked = 0;
        let mut skipped = Vars::new();
        let mut msg = "All paths examined";
        for p in &paths {
            let path = fsutil::path_arg(p);
            if !path.is_dir() {
                skipped.insert(p.clone(), format!("'{p}' is not a directory").into());
                continue;
            }
            if walk(&path, &path, &o, &mut files, &mut looked)? {
                msg = "Limit of matches reached";
                break;
            }
        }
        if !skipped.is_empty() {
            msg = "Not all paths examined, check warnings for details";
        }
        let matched = files.len();
        Ok(ModuleOutput {
            msg: Some(msg.into()),
            ..Default::default()
        }
        .field("files", Value::Array(files))
        .field("matched", matched)
        .field("examined", looked)
        .field("skipped_paths", Value::Object(skipped)))
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;
    use std::fs;

    fn names(out: &crate::ModuleOutput) -> Vec<String> {
        let mut v: Vec<String> = out.fields["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn finds_like_ansible() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("sub/deeper")).unwrap();
        fs::write(t.path().join("a.log"), "error: x\n").unwrap();
        fs::write(t.path().join("b.txt"), "fine\n").unwrap();
        fs::write(t.path().join(".hidden.log"), "").unwrap();
        fs::write(t.path().join("sub/c.log"), "0123456789").unwrap();
        fs::write(t.path().join("sub/deeper/d.log"), "").unwrap();
        let p = t.path();
        let out = run("find", json!({"paths": p}));
        assert_eq!(names(&out), ["a.log", "b.txt"]);
        assert_eq!(out.fields["examined"], json!(4));
        assert_eq!(out.fields["matched"], json!(2));
        let out = run(
            "find",
            json!({"paths": p, "patterns": "*.log", "recurse": true}),
        );
        assert_eq!(names(&out), ["a.log", "c.log", "d.log"]);
        let out = run(
            "find",
            json!({"paths": p, "patterns": "*.log", "recurse": true, "depth": 2}),
        );
        assert_eq!(names(&out), ["a.log", "c.log"]);
        let out = run(
            "find",
            json!({"paths": p, "patterns": "*.log", "hidden": true, "excludes": "a*"}),
        );
        assert_eq!(names(&out), [".hidden.log"]);
        let out = run(
            "find",
            json!({"paths": p, "patterns": "^[ab]\\..*$", "use_regex": true}),
        );
        assert_eq!(names(&out), ["a.log", "b.txt"]);
        let out = run("find", json!({"paths": p, "contains": "error"}));
        assert_eq!(names(&out), ["a.log"]);
        let out = run("find", json!({"paths": p, "recurse": true, "size": "5"}));
        assert_eq!(names(&out), ["a.log", "b.txt", "c.log"]);
        let out = run(
            "find",
            json!({"paths": p, "file_type": "directory", "recurse": true}),
        );
        assert_eq!(names(&out), ["deeper", "sub"]);
        let out = run("find", json!({"paths": p, "age": "1d"}));
        assert_eq!(names(&out), Vec::<String>::new());
    }
}
