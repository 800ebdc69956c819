//! `get_url`: a file downloaded over HTTP to `dest`, as ansible-core's `get_url` does it.
//!
//! The body streams into a temporary file in `dest`'s directory, is checked against
//! `checksum`, and only then renamed over `dest` ([`fsutil::commit_temp`]): a failed or
//! mismatching download leaves nothing behind. An existing `dest` is kept when `checksum`
//! matches it (no request at all), or when the server answers `If-Modified-Since` with 304.
//! Check mode sends `HEAD` and writes nothing. `url_password` is never part of a result.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha1::Digest;
use tend_proto::{Value, Vars};

use crate::fsutil::{self, Attrs};
use crate::http::{self, Request};
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct GetUrl;

pub const PARAMS: &[&str] = with_file_args![
    "url",
    "dest",
    "backup",
    "checksum",
    "timeout",
    "headers",
    "tmp_dest",
    "force",
    "url_username",
    "username",
    "url_password",
    "password",
    "force_basic_auth",
    "use_proxy",
    "validate_certs",
    "ca_path",
    "http_agent",
    "client_cert",
    "client_key",
    "use_gssapi",
    "unredirected_headers",
    "decompress",
    "ciphers",
    "use_netrc",
];

/// A checksum to verify: algorithm and lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: String,
    pub hex: String,
}

/// Splits `algo:value` (ansible-core's message when there is no colon).
pub fn split_checksum(s: &str) -> Result<(String, String), ModuleError> {
    let (a, v) = s.split_once(':').ok_or_else(|| {
        ModuleError::new("The checksum parameter has to be in format <algorithm>:<checksum>")
    })?;
    let a = a.to_ascii_lowercase();
    if !crate::stat::ALGORITHMS.contains(&a.as_str()) {
        return Err(ModuleError::new(format!(
            "Unsupported hash algorithm: {a}. Supported: {}",
            crate::stat::ALGORITHMS.join(", ")
        )));
    }
    Ok((a, v.to_string()))
}

/// Normalises a checksum value (non-word characters dropped, lowercased) and checks it is hex.
pub fn normalize_hex(v: &str) -> Result<String, ModuleError> {
    let h: String = v
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_lowercase();
    if h.is_empty() || !h.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ModuleError::new("The checksum format is invalid"));
    }
    Ok(h)
}

/// The checksum for `filename` in a checksum file (`sha256sum` output, or one bare value).
pub fn find_in_checksum_file(text: &str, filename: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 && lines[0].split_whitespace().count() == 1 {
        return Some(lines[0].to_string());
    }
    for line in lines {
        if let Some((sum, name)) = line.split_once(' ') {
            let name = name.strip_prefix([' ', '*']).unwrap_or(name);
            if name.trim_start_matches(['.', '/']) == filename {
                return Some(sum.to_string());
            }
        }
    }
    None
}

/// Writes to a file and hashes what it writes (sha1 for `checksum_src`).
struct HashingWriter<W: Write> {
    inner: W,
    sha1: sha1::Sha1,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha1.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Params {
    url: String,
    dest: PathBuf,
    backup: bool,
    force: bool,
    checksum: Option<(String, String)>,
    timeout: Duration,
    headers: Vec<(String, String)>,
    tmp_dest: Option<PathBuf>,
    auth: Option<(String, String)>,
    force_basic_auth: bool,
    tls: crate::http::Tls,
    proxies: crate::http::Proxies,
    attrs: Attrs,
}

fn params(args: &Args) -> Result<Params, ModuleError> {
    for k in ["client_cert", "client_key"] {
        if args.has(k) {
            return Err(ModuleError::new(format!(
                "tend's get_url does not support '{k}' (client certificates): download with a task that can present one"
            )));
        }
    }
    if args.bool_or("use_gssapi", false)? {
        return Err(ModuleError::new(
            "tend's get_url does not support use_gssapi",
        ));
    }
    if args.has("unredirected_headers")
        && !args
            .list("unredirected_headers")?
            .unwrap_or_default()
            .is_empty()
    {
        return Err(ModuleError::new(
            "tend's get_url does not support unredirected_headers yet",
        ));
    }
    let url = args.req_str("url")?;
    let dest = args
        .str("dest")?
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ModuleError::new("missing required arguments: dest"))?;
    let headers = match args.raw("headers") {
        None => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), crate::args::to_str(k, v)?)))
            .collect::<Result<_, crate::args::ArgError>>()?,
        Some(other) => {
            return Err(ModuleError::new(format!(
                "argument 'headers' is of type {} and we were unable to convert to dict",
                if other.is_array() { "list" } else { "str" }
            )))
        }
    };
    let user = args.str_any(&["url_username", "username"])?;
    let password = args.str_any(&["url_password", "password"])?;
    let auth = match (user, password) {
        (Some(u), p) if !u.is_empty() => Some((u, p.unwrap_or_default())),
        _ => None,
    };
    let checksum = match args.str("checksum")?.filter(|c| !c.is_empty()) {
        Some(c) => Some(split_checksum(&c)?),
        None => None,
    };
    let timeout = args.int("timeout")?.unwrap_or(10).max(1) as u64;
    Ok(Params {
        url,
        dest: fsutil::path_arg(&dest),
        backup: args.bool_or("backup", false)?,
        force: args.bool_or("force", false)?,
        checksum,
        timeout: Duration::from_secs(timeout),
        headers,
        tmp_dest: args.str("tmp_dest")?.map(|t| fsutil::path_arg(&t)),
        auth,
        force_basic_auth: args.bool_or("force_basic_auth", false)?,
        tls: crate::http::Tls::from_args(args)?,
        proxies: Default::default(),
        attrs: Attrs::from_args(args)?,
    })
}

fn err_with(msg: impl Into<String>, fields: &Vars) -> ModuleError {
    let mut e = ModuleError::new(msg);
    e.fields = fields.clone();
    e
}

impl GetUrl {
    fn request(&self, p: &Params, url: &str, method: &str) -> Request {
        let mut r = Request::get(url, p.timeout);
        r.method = method.into();
        r.headers = p.headers.clone();
        r.auth = p.auth.clone();
        r.force_basic_auth = p.force_basic_auth;
        r.tls = p.tls.clone();
        r.proxies = p.proxies.clone();
        r
    }
}

impl Action for GetUrl {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        let mut p = params(args)?;
        p.proxies =
            crate::http::Proxies::from_env(ctx.environment, args.bool_or("use_proxy", true)?)
                .map_err(ModuleError::new)?;
        let mut fields = Vars::new();
        fields.insert("checksum_dest".into(), Value::Null);
        fields.insert("checksum_src".into(), Value::Null);
        fields.insert("dest".into(), p.dest.display().to_string().into());
        fields.insert("elapsed".into(), 0.into());
        fields.insert("url".into(), p.url.clone().into());

        let dest_is_dir = p.dest.is_dir();
        let mut force = p.force;
        let mut want: Option<Checksum> = None;
        if let Some((algorithm, value)) = &p.checksum {
            let value = if value.contains("://") {
                let mut body = Vec::new();
                let resp = http::send(&self.request(&p, value, "GET"), &mut body)
                    .map_err(|e| err_with(e.to_string(), &fields))?;
                if resp.status != 200 {
                    return Err(err_with(
                        format!("Request failed: {}", http::http_error_msg(&resp)),
                        &fields,
                    ));
                }
                let filename = http::Url::parse(&p.url)
                    .map(|u| u.filename())
                    .unwrap_or_default();
                find_in_checksum_file(&String::from_utf8_lossy(&body), &filename).ok_or_else(
                    || {
                        ModuleError::new(format!(
                            "Unable to find a checksum for file '{filename}' in '{value}'"
                        ))
                    },
                )?
            } else {
                value.clone()
            };
            let hex = normalize_hex(&value).map_err(|e| err_with(e.msg, &fields))?;
            want = Some(Checksum {
                algorithm: algorithm.clone(),
                hex,
            });
        }

        let mut last_mod = None;
        if !dest_is_dir && p.dest.exists() {
            let mut mismatch = false;
            if let (false, Some(c)) = (force, &want) {
                mismatch = fsutil::file_digest(&p.dest, &c.algorithm)? != c.hex;
                if !mismatch {
                    let changed = if ctx.check {
                        !p.attrs.satisfied_by(&fsutil::info(&p.dest, true)?, None)
                    } else {
                        p.attrs.apply(&p.dest, true, None)?
                    };
                    let mut out = ModuleOutput::ok();
                    out.changed = changed;
                    out.msg = Some(if changed {
                        "file already exists but file attributes changed".into()
                    } else {
                        "file already exists".into()
                    });
                    fields.extend(fsutil::path_fields("dest", &p.dest, true));
                    out.fields = fields;
                    return Ok(out);
                }
            }
            last_mod = Some(fsutil::info(&p.dest, true)?.mtime.0);
            if mismatch {
                force = true;
            }
        }

        // Where the body goes: a temporary file beside the destination (or in tmp_dest),
        // never anything in check mode.
        let tmp_dir = match &p.tmp_dest {
            Some(t) => {
                if !t.is_dir() {
                    let what = if t.exists() {
                        format!("{} is a file but should be a directory.", t.display())
                    } else {
                        format!("{} directory does not exist.", t.display())
                    };
                    return Err(err_with(what, &fields));
                }
                t.clone()
            }
            None if dest_is_dir => p.dest.clone(),
            None => p
                .dest
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let method = if ctx.check { "HEAD" } else { "GET" };
        let mut req = self.request(&p, &p.url, method);
        if force {
            req.headers
                .push(("cache-control".into(), "no-cache".into()));
        } else if let Some(t) = last_mod {
            req.headers
                .push(("If-Modified-Since".into(), http::http_date(t)));
        }
        let start = Instant::now();
        let mut tmp: Option<(PathBuf, fsutil::TempGuard)> = None;
        let (resp, checksum_src) = if ctx.check {
            let r = http::send(&req, &mut io::sink());
            (r, fsutil::sha1_hex(b""))
        } else {
            if !tmp_dir.is_dir() {
                return Err(err_with(
                    format!("Destination {} does not exist", tmp_dir.display()),
                    &fields,
                ));
            }
            let (path, file) = fsutil::create_temp_in(&tmp_dir, "get_url")?;
            tmp = Some((path.clone(), fsutil::TempGuard(Some(path))));
            let mut w = HashingWriter {
                inner: io::BufWriter::new(file),
                sha1: sha1::Sha1::new(),
            };
            let r = http::send(&req, &mut w);
            let r = r.and_then(|resp| {
                w.flush().map_err(|e| {
                    http::HttpError::Connection(format!(
                        "failed to create temporary content file: {e}"
                    ))
                })?;
                Ok(resp)
            });
            (r, hex::encode(w.sha1.finalize()))
        };
        let elapsed = start.elapsed().as_secs();
        fields.insert("elapsed".into(), elapsed.into());
        let resp = resp.map_err(|e| err_with(e.to_string(), &fields))?;
        if resp.status == 304 {
            let mut out = ModuleOutput::ok();
            out.msg = Some(http::http_error_msg(&resp));
            fields.insert("status_code".into(), 304.into());
            out.fields = fields;
            return Ok(out);
        }
        if resp.status != 200 {
            let mut e = err_with("Request failed", &fields);
            e.fields.insert("status_code".into(), resp.status.into());
            e.fields
                .insert("response".into(), http::http_error_msg(&resp).into());
            return Err(e);
        }
        let mut dest = p.dest.clone();
        if dest_is_dir {
            let name = resp
                .header("content-disposition")
                .and_then(disposition_filename)
                .unwrap_or_else(|| {
                    http::Url::parse(&resp.url)
                        .map(|u| u.filename())
                        .unwrap_or_else(|_| "index.html".into())
                });
            dest = dest.join(name);
            fields.insert("dest".into(), dest.display().to_string().into());
        }
        if let Some((t, _)) = &tmp {
            fields.insert("src".into(), t.display().to_string().into());
        }
        fields.insert("checksum_src".into(), checksum_src.clone().into());
        if dest.exists() {
            if !fsutil::access(&dest, libc::W_OK) {
                return Err(err_with(
                    format!("Destination {} is not writable", dest.display()),
                    &fields,
                ));
            }
            fields.insert(
                "checksum_dest".into(),
                fsutil::file_digest(&dest, "sha1")?.into(),
            );
        } else {
            let parent = dest.parent().unwrap_or(Path::new("/"));
            if !parent.exists() {
                return Err(err_with(
                    format!("Destination {} does not exist", parent.display()),
                    &fields,
                ));
            }
        }
        let msg = format!(
            "OK ({} bytes)",
            resp.header("content-length").unwrap_or("unknown")
        );
        let same = fields.get("checksum_dest") == Some(&Value::String(checksum_src.clone()));
        if ctx.check {
            let mut out = ModuleOutput::ok();
            out.changed = !same;
            out.msg = Some(msg);
            out.fields = fields;
            return Ok(out);
        }
        let (tmp_path, mut guard) = tmp.expect("a temporary file outside check mode");
        if let Some(c) = &want {
            let got = fsutil::file_digest(&tmp_path, &c.algorithm)?;
            if got != c.hex {
                return Err(err_with(
                    format!(
                        "The checksum for {} did not match {}; it was {got}.",
                        tmp_path.display(),
                        c.hex
                    ),
                    &fields,
                ));
            }
        }
        let mut changed = false;
        let mut backup_file = None;
        if !same {
            if p.backup && dest.exists() {
                backup_file = Some(fsutil::backup(&dest)?);
            }
            // Renaming needs the same file system: from tmp_dest elsewhere, copy beside.
            let beside = if tmp_path.parent() == dest.parent() {
                tmp_path.clone()
            } else {
                let dir = dest.parent().unwrap_or(Path::new("/"));
                let (b, _) = fsutil::create_temp_in(dir, "get_url")?;
                std::fs::copy(&tmp_path, &b).map_err(|e| {
                    let _ = std::fs::remove_file(&b);
                    ModuleError::io("failed to copy to", &dest, e)
                })?;
                b
            };
            fsutil::commit_temp(&beside, &dest, &Attrs::default(), None, None).map_err(|e| {
                err_with(
                    format!(
                        "failed to copy {} to {}: {}",
                        tmp_path.display(),
                        dest.display(),
                        e.msg
                    ),
                    &fields,
                )
            })?;
            if beside == tmp_path {
                guard.0 = None;
            }
            changed = true;
        }
        drop(guard);
        changed |= p.attrs.apply(&dest, true, None)?;
        fields.insert("md5sum".into(), fsutil::file_digest(&dest, "md5")?.into());
        if let Some(b) = backup_file {
            fields.insert("backup_file".into(), b.display().to_string().into());
        }
        fields.insert("status_code".into(), resp.status.into());
        let dest_key = fields.get("dest").cloned();
        fields.extend(fsutil::path_fields("dest", &dest, true));
        if let Some(d) = dest_key {
            fields.insert("dest".into(), d);
        }
        let mut out = ModuleOutput::ok();
        out.changed = changed;
        out.msg = Some(msg);
        out.fields = fields;
        Ok(out)
    }
}

/// `filename=` of a `Content-Disposition` header, as a base name.
fn disposition_filename(h: &str) -> Option<String> {
    h.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        let base = v.rsplit('/').next().unwrap_or(v);
        (!base.is_empty()).then(|| base.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testserver;
    use crate::testutil::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    const BODY: &[u8] = b"release 1.0\n";

    fn sha256(data: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(data))
    }

    fn server() -> testserver::Server {
        testserver::start(Box::new(|line, headers| {
            let ims = headers.iter().any(|(k, _)| k == "if-modified-since");
            if line.starts_with("GET /sums ") {
                let text = format!(
                    "{}  other.tgz\n{} *./app.tgz\n",
                    "ab".repeat(32),
                    sha256(BODY)
                );
                testserver::ok(text.as_bytes())
            } else if line.contains(" /app.tgz ") && ims {
                b"HTTP/1.1 304 Not Modified\r\n\r\n".to_vec()
            } else if line.starts_with("HEAD /app.tgz ") {
                let mut r = testserver::ok(BODY);
                r.truncate(r.len() - BODY.len());
                r
            } else if line.starts_with("GET /app.tgz ") || line.starts_with("GET /dl?") {
                let mut r = testserver::ok(BODY);
                if line.starts_with("GET /dl?") {
                    let at = r.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    r.splice(
                        at..at,
                        b"\r\nContent-Disposition: attachment; filename=\"named.bin\""
                            .iter()
                            .copied(),
                    );
                }
                r
            } else {
                b"HTTP/1.1 404 File not found\r\nContent-Length: 0\r\n\r\n".to_vec()
            }
        }))
    }

    #[test]
    fn download_with_checksum_mode_and_idempotence() {
        let srv = server();
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("app.tgz");
        let url = format!("{}/app.tgz", srv.base);
        let args = json!({"url": url, "dest": dest, "mode": "0640",
                          "checksum": format!("sha256:{}", sha256(BODY))});
        let o = run_check("get_url", args.clone());
        assert!(o.changed);
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);

        let o = run("get_url", args.clone());
        assert!(o.changed);
        assert_eq!(std::fs::read(&dest).unwrap(), BODY);
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert_eq!(o.fields["status_code"], json!(200));
        assert_eq!(o.fields["checksum_src"], json!(fsutil::sha1_hex(BODY)));
        assert_eq!(o.fields["mode"], json!("0640"));
        assert_eq!(o.msg.as_deref(), Some("OK (12 bytes)"));

        // Checksum matches: no request at all.
        let before = srv.requests.lock().unwrap().len();
        let o = run("get_url", args.clone());
        assert!(!o.changed);
        assert_eq!(o.msg.as_deref(), Some("file already exists"));
        assert_eq!(srv.requests.lock().unwrap().len(), before);
        let o = run(
            "get_url",
            json!({"url": url, "dest": dest, "mode": "0600",
                          "checksum": format!("sha256:{}", sha256(BODY))}),
        );
        assert!(o.changed);
        assert_eq!(
            o.msg.as_deref(),
            Some("file already exists but file attributes changed")
        );

        // Without a checksum: If-Modified-Since, 304, no change (check mode too).
        let plain = json!({"url": url, "dest": dest});
        let o = run("get_url", plain.clone());
        assert!(!o.changed);
        assert_eq!(o.msg.as_deref(), Some("HTTP Error 304: Not Modified"));
        assert!(!run_check("get_url", plain).changed);
    }

    #[test]
    fn checksum_mismatch_leaves_nothing_behind() {
        let srv = server();
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("app.tgz");
        let e = run_err(
            "get_url",
            json!({"url": format!("{}/app.tgz", srv.base), "dest": dest,
                          "checksum": format!("sha256:{}", "0".repeat(64))}),
        );
        assert!(e.starts_with("The checksum for "), "{e}");
        assert!(
            e.ends_with(&format!(
                "did not match {}; it was {}.",
                "0".repeat(64),
                sha256(BODY)
            )),
            "{e}"
        );
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            0,
            "no file left"
        );
        let e = run_err(
            "get_url",
            json!({"url": format!("{}/app.tgz", srv.base), "dest": dest,
                          "checksum": "sha256"}),
        );
        assert_eq!(
            e,
            "The checksum parameter has to be in format <algorithm>:<checksum>"
        );
        let e = run_err(
            "get_url",
            json!({"url": format!("{}/app.tgz", srv.base), "dest": dest,
                          "checksum": "sha256:xyz"}),
        );
        assert_eq!(e, "The checksum format is invalid");
    }

    #[test]
    fn checksum_files_directories_and_errors() {
        let srv = server();
        let t = tempfile::tempdir().unwrap();
        let o = run(
            "get_url",
            json!({"url": format!("{}/app.tgz", srv.base), "dest": t.path(),
                          "checksum": format!("sha256:{}/sums", srv.base)}),
        );
        assert!(o.changed);
        assert_eq!(
            o.fields["dest"],
            json!(t.path().join("app.tgz").display().to_string())
        );
        let o = run(
            "get_url",
            json!({"url": format!("{}/dl?id=3", srv.base), "dest": t.path()}),
        );
        assert_eq!(std::fs::read(t.path().join("named.bin")).unwrap(), BODY);
        assert!(o.changed);
        let e = run_err(
            "get_url",
            json!({"url": format!("{}/missing", srv.base), "dest": t.path().join("m")}),
        );
        assert_eq!(e, "Request failed");
        let e = run_err(
            "get_url",
            json!({"url": format!("{}/app.tgz", srv.base), "dest": t.path().join("no/dir/f")}),
        );
        assert_eq!(
            e,
            format!(
                "Destination {} does not exist",
                t.path().join("no/dir").display()
            )
        );
        // https: the server's certificate is checked, against ca_path when given.
        let port = crate::testutil::https_server("over tls\n");
        let url = format!("https://localhost:{port}/f.txt");
        let e = run_err("get_url", json!({"url": url, "dest": t.path().join("m")}));
        assert!(e.contains("CERTIFICATE_VERIFY_FAILED"), "{e}");
        let out = run(
            "get_url",
            json!({"url": url, "dest": t.path().join("m"), "ca_path": crate::testutil::test_ca()}),
        );
        assert!(out.changed);
        assert_eq!(
            std::fs::read_to_string(t.path().join("m")).unwrap(),
            "over tls\n"
        );
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn checksum_file_lines() {
        assert_eq!(find_in_checksum_file("abc\n", "x"), Some("abc".into()));
        assert_eq!(
            find_in_checksum_file("a  x\nb *./y\n", "y"),
            Some("b".into())
        );
        assert_eq!(find_in_checksum_file("a  x\n", "y"), None);
        assert_eq!(normalize_hex("AB:CD").unwrap(), "abcd");
    }
}
