//! `uri`: one HTTP request, and its answer registered as ansible-core's `uri` registers it.
//!
//! The request is built as ansible-core builds it (`body_format` json or form-urlencoded
//! encodes a structured `body` and sets `Content-Type`; a body without a type is
//! `application/x-www-form-urlencoded`, as urllib sends it; `force` asks for a fresh copy, an
//! existing `dest` file asks `If-Modified-Since`), and sent with tend's HTTP/1.1 client
//! ([`crate::http`], `http://` only). The answer becomes the result fields: `status`, `msg`
//! (`OK (N bytes)` or `HTTP Error 404: Not Found`), `url` (after redirects), `redirected`,
//! `elapsed`, every response header with its name lowercased and dashes as underscores
//! (`content_type`, `content_length` …), `cookies` and `cookies_string`, `json` when the
//! answer is JSON, `content` with `return_content`. A status outside `status_code` fails the
//! task: `Status code was 404 and not [200]: HTTP Error 404: Not Found`. With `dest` the body
//! is written there (atomically, keeping owner and mode) and the task reports a change, as in
//! ansible-core. The module does not run in check mode (ansible-core's `uri` does not
//! support it). `url_password` is never part of a result: any result text containing it
//! shows `********` instead.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tend_lang::ctlfs;
use tend_proto::{Value, Vars};

use crate::fsutil::{self, Attrs};
use crate::http::{self, Follow, Request};
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Uri;

pub const PARAMS: &[&str] = with_file_args![
    "url",
    "dest",
    "url_username",
    "user",
    "url_password",
    "password",
    "body",
    "body_format",
    "src",
    "remote_src",
    "method",
    "return_content",
    "follow_redirects",
    "creates",
    "removes",
    "status_code",
    "timeout",
    "headers",
    "unix_socket",
    "ca_path",
    "unredirected_headers",
    "decompress",
    "ciphers",
    "use_netrc",
    "force",
    "http_agent",
    "use_proxy",
    "validate_certs",
    "force_basic_auth",
    "client_cert",
    "client_key",
    "use_gssapi",
];

/// Where the body comes from.
enum Body {
    None,
    Bytes(Vec<u8>),
    /// `src`: a controller file (shipped with the playbook) or a host file (`remote_src`).
    File(PathBuf),
}

struct Params {
    url: String,
    dest: Option<PathBuf>,
    auth: Option<(String, String)>,
    password: Option<String>,
    body: Body,
    method: String,
    return_content: bool,
    follow: Follow,
    creates: Option<PathBuf>,
    removes: Option<PathBuf>,
    status_code: Vec<i64>,
    timeout: Duration,
    headers: Vec<(String, String)>,
    unredirected_headers: Vec<String>,
    decompress: bool,
    use_netrc: bool,
    force: bool,
    http_agent: String,
    force_basic_auth: bool,
    tls: http::Tls,
    proxies: http::Proxies,
    attrs: Attrs,
}

fn refuse(what: &str, why: &str) -> ModuleError {
    ModuleError::new(format!("tend's uri does not support {what}: {why}"))
}

fn params(args: &Args, ctx: &ModuleCtx) -> Result<Params, ModuleError> {
    if args.has("body") && args.has("src") {
        return Err(ModuleError::new(
            "parameters are mutually exclusive: body|src",
        ));
    }
    for k in ["client_cert", "client_key"] {
        if args.has(k) {
            return Err(refuse(&format!("'{k}'"), "no client certificates"));
        }
    }
    if args.has("unix_socket") {
        return Err(refuse(
            "'unix_socket'",
            "it speaks HTTP over TCP only; use an http:// URL",
        ));
    }
    if args.bool_or("use_gssapi", false)? {
        return Err(refuse("use_gssapi", "no Kerberos support"));
    }
    let url = args.req_str("url")?;
    let method = args
        .str("method")?
        .unwrap_or_else(|| "GET".into())
        .to_uppercase();
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(ModuleError::new(
            "Parameter 'method' needs to be a single word in uppercase, like GET or POST.",
        ));
    }
    let body_format = args
        .choice(
            "body_format",
            &["form-urlencoded", "json", "raw", "form-multipart"],
        )?
        .unwrap_or_else(|| "raw".into());
    let mut headers: Vec<(String, String)> = match args.raw("headers") {
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
    let has_header =
        |h: &[(String, String)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let body = match (args.raw("body"), body_format.as_str()) {
        (_, "form-multipart") => {
            return Err(refuse(
                "body_format: form-multipart",
                "not implemented yet; send a prepared body with body_format: raw and a \
                 Content-Type header",
            ))
        }
        (None, "json") if !args.has("src") => Body::Bytes(b"null".to_vec()),
        (None, _) => match args.str("src")? {
            None => Body::None,
            Some(src) if args.bool_or("remote_src", false)? => Body::File(fsutil::path_arg(&src)),
            Some(src) => {
                let found = ctx
                    .find_file("files", &fsutil::expand_user(&src))
                    .ok_or_else(|| crate::copy::not_found(&src, "files", ctx))?;
                Body::File(ctlfs::local(&found))
            }
        },
        (Some(Value::String(s)), _) => Body::Bytes(s.clone().into_bytes()),
        (Some(v), "json") => Body::Bytes(tend_lang::template::py_json_dumps(v).into_bytes()),
        (Some(v), "form-urlencoded") => Body::Bytes(
            form_urlencoded(v)
                .map_err(|e| {
                    ModuleError::new(format!("failed to parse body as form_urlencoded: {e}"))
                })?
                .into_bytes(),
        ),
        (Some(v @ (Value::Number(_) | Value::Bool(_))), _) => {
            Body::Bytes(crate::args::to_str("body", v)?.into_bytes())
        }
        (Some(_), _) => {
            return Err(ModuleError::new(
                "a dict or list body needs body_format: json or form-urlencoded (with \
                 body_format: raw the body must be text)",
            ))
        }
    };
    match body_format.as_str() {
        "json" if !has_header(&headers, "content-type") => {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        "form-urlencoded" if !has_header(&headers, "content-type") => {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        _ => {}
    }
    let user = args.str_any(&["url_username", "user"])?;
    let password = args.str_any(&["url_password", "password"])?;
    let auth = match (&user, &password) {
        (Some(u), p) if !u.is_empty() => Some((u.clone(), p.clone().unwrap_or_default())),
        _ => None,
    };
    let follow_s = args
        .choice(
            "follow_redirects",
            &["all", "no", "none", "safe", "urllib2", "yes"],
        )?
        .unwrap_or_else(|| "safe".into());
    let status_code = match args.raw("status_code") {
        None => vec![200],
        Some(Value::Array(items)) => items.iter().map(status_int).collect::<Result<_, _>>()?,
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| status_int(&Value::String(p.trim().to_string())))
            .collect::<Result<_, _>>()?,
        Some(v) => vec![status_int(v)?],
    };
    Ok(Params {
        url,
        dest: args.str("dest")?.map(|d| fsutil::path_arg(&d)),
        auth,
        password: password.filter(|p| !p.is_empty()),
        body,
        method,
        return_content: args.bool_or("return_content", false)?,
        follow: Follow::parse(&follow_s).unwrap_or_default(),
        creates: args.str("creates")?.map(|p| fsutil::path_arg(&p)),
        removes: args.str("removes")?.map(|p| fsutil::path_arg(&p)),
        status_code,
        timeout: Duration::from_secs(args.int("timeout")?.unwrap_or(30).max(1) as u64),
        headers,
        unredirected_headers: args.list("unredirected_headers")?.unwrap_or_default(),
        decompress: args.bool_or("decompress", true)?,
        use_netrc: args.bool_or("use_netrc", true)?,
        force: args.bool_or("force", false)?,
        http_agent: args
            .str("http_agent")?
            .unwrap_or_else(|| "ansible-httpget".into()),
        force_basic_auth: args.bool_or("force_basic_auth", false)?,
        tls: crate::http::Tls::from_args(args)?,
        proxies: http::Proxies::from_env(ctx.environment, args.bool_or("use_proxy", true)?)
            .map_err(ModuleError::new)?,
        attrs: Attrs::from_args(args)?,
    })
}

fn status_int(v: &Value) -> Result<i64, ModuleError> {
    crate::args::to_int("status_code", v).map_err(|_| {
        ModuleError::new(format!(
            "Elements value for option 'status_code' is of type {} and we were unable to \
             convert to int: {v}",
            match v {
                Value::String(_) => "<class 'str'>",
                _ => "<class 'dict'>",
            }
        ))
    })
}

/// Python's `urlencode(pairs, doseq=True)` of a dict or a list of pairs; a list value is one
/// pair per item, `null` values are left out.
pub fn form_urlencoded(v: &Value) -> Result<String, String> {
    let pairs: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Array(kv) if kv.len() == 2 => Ok((text(&kv[0]), &kv[1])),
                _ => Err(format!("expected a [key, value] pair, got {i}")),
            })
            .collect::<Result<_, _>>()?,
        other => return Ok(text(other)),
    };
    let mut out = Vec::new();
    for (k, v) in pairs {
        let values: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for v in values.into_iter().filter(|v| !v.is_null()) {
            out.push(format!("{}={}", quote_plus(&k), quote_plus(&text(v))));
        }
    }
    Ok(out.join("&"))
}

/// Python's `str()` of a scalar (`True`, `3`, the string itself).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) => n.to_string(),
        other => tend_lang::template::py_json_dumps(other),
    }
}

/// Python's `quote_plus`: unreserved characters stay, a space is `+`, the rest `%XX`.
pub fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// ansible-core's `mask_url`: credentials in the URL shown as `****`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((cred, host)) => {
            let masked = if cred.contains(':') {
                "****:****"
            } else {
                "****"
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// The media type of a `Content-Type` header as Python's `email` reads it (`text/plain` when
/// missing or malformed) and its charset (`utf-8` by default).
pub fn parse_content_type(header: Option<&str>) -> (String, String, String) {
    let (mut main, mut sub) = ("text".to_string(), "plain".to_string());
    let mut charset = "utf-8".to_string();
    if let Some(h) = header {
        let mut parts = h.split(';');
        let t = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if let Some((m, s)) = t.split_once('/') {
            if !m.is_empty() && !s.is_empty() && !s.contains('/') {
                main = m.to_string();
                sub = s.to_string();
            }
        }
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("charset") {
                    charset = v.trim().trim_matches('"').to_string();
                }
            }
        }
    }
    (main, sub, charset)
}

/// Whether a response of this media type is read as JSON (ansible-core's `json` and
/// `javascript` subtypes, also as a `+json` suffix).
fn is_json(sub: &str) -> bool {
    let s = sub
        .rsplit_once('+')
        .map(|(_, suffix)| suffix)
        .unwrap_or(sub);
    matches!(s, "json" | "javascript")
}

/// Bytes as text in the response's charset (Latin-1 byte by byte, everything else as UTF-8).
fn decode(bytes: &[u8], charset: &str) -> String {
    match charset.to_ascii_lowercase().as_str() {
        "iso-8859-1" | "latin-1" | "latin1" | "iso8859-1" => {
            bytes.iter().map(|&b| b as char).collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The file name a response names (ansible-core's `get_response_filename`).
fn response_filename(resp: &http::Response) -> String {
    if let Some(name) = resp
        .header("content-disposition")
        .and_then(disposition_filename)
    {
        return name;
    }
    let path = resp
        .url
        .split_once("://")
        .map(|(_, r)| r)
        .and_then(|r| r.find('/').map(|i| &r[i..]))
        .unwrap_or("")
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if base.is_empty() {
        "index.html".into()
    } else {
        http::Url::parse(&format!("http://h/{base}"))
            .map(|u| u.filename())
            .unwrap_or_else(|_| base.to_string())
    }
}

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

/// Python's `repr` of a list of ints: `[200, 201]`.
fn py_list(codes: &[i64]) -> String {
    let items: Vec<String> = codes.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// The credentials `~/.netrc` (or `$NETRC`) holds for `host`: `machine` entries first,
/// `default` otherwise; both a login and a password, as ansible-core requires.
fn netrc_login(env: &[(String, String)], host: &str) -> Option<(String, String)> {
    let from_env = env
        .iter()
        .rev()
        .find(|(k, _)| k == "NETRC")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("NETRC").ok());
    let path = from_env.unwrap_or_else(|| fsutil::expand_user("~/.netrc"));
    let text = std::fs::read_to_string(path).ok()?;
    netrc_lookup(&text, host)
}

pub fn netrc_lookup(text: &str, host: &str) -> Option<(String, String)> {
    let mut tokens = text.split_whitespace();
    let mut entries: Vec<(Option<String>, String, String)> = Vec::new();
    let mut current: Option<(Option<String>, String, String)> = None;
    while let Some(t) = tokens.next() {
        match t {
            "machine" | "default" => {
                entries.extend(current.take());
                let machine = if t == "machine" {
                    Some(tokens.next()?.to_string())
                } else {
                    None
                };
                current = Some((machine, String::new(), String::new()));
            }
            "login" | "password" | "account" => {
                let v = tokens.next()?.to_string();
                if let Some(c) = current.as_mut() {
                    match t {
                        "login" => c.1 = v,
                        "password" => c.2 = v,
                        _ => {}
                    }
                }
            }
            "macdef" => {
                entries.extend(current.take());
                // A macro runs to the next empty line; tend has no use for it.
                break;
            }
            _ => {}
        }
    }
    entries.extend(current);
    let found = entries
        .iter()
        .find(|(m, _, _)| m.as_deref() == Some(host))
        .or_else(|| entries.iter().find(|(m, _, _)| m.is_none()))?;
    (!found.1.is_empty() && !found.2.is_empty()).then(|| (found.1.clone(), found.2.clone()))
}

/// ansible-core's `remove_values`: the password shown as `********` wherever it appears.
fn mask_secret(v: &mut Value, secret: &str) {
    match v {
        Value::String(s) if s.contains(secret) => *s = s.replace(secret, "********"),
        Value::Array(items) => items.iter_mut().for_each(|i| mask_secret(i, secret)),
        Value::Object(m) => m.values_mut().for_each(|i| mask_secret(i, secret)),
        _ => {}
    }
}

fn finish(mut fields: Vars, p: &Params, failed_msg: Option<String>) -> ModuleResult {
    let mut msg = match fields.remove("msg") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    if let Some(secret) = &p.password {
        for v in fields.values_mut() {
            mask_secret(v, secret);
        }
        msg = msg.map(|m| m.replace(secret.as_str(), "********"));
    }
    let changed = fields
        .get("changed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    fields.remove("changed");
    match failed_msg {
        Some(m) => {
            let m = match &p.password {
                Some(s) => m.replace(s.as_str(), "********"),
                None => m,
            };
            // A failed output rather than an error: the result fields are registered with
            // the failure (`status`, `content` …), as ansible-core's `fail_json(**resp)`.
            Ok(ModuleOutput {
                failed: true,
                msg: Some(m),
                fields,
                ..Default::default()
            })
        }
        None => {
            let mut out = ModuleOutput::ok();
            out.changed = changed;
            out.msg = msg;
            out.fields = fields;
            Ok(out)
        }
    }
}

impl Action for Uri {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn supports_check_mode(&self) -> bool {
        false
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        let p = params(args, ctx)?;
        if let Some(c) = &p.creates {
            if c.exists() {
                return Ok(ModuleOutput::ok()
                    .field("stdout", format!("skipped, since '{}' exists", c.display())));
            }
        }
        if let Some(r) = &p.removes {
            if !r.exists() {
                return Ok(ModuleOutput::ok().field(
                    "stdout",
                    format!("skipped, since '{}' does not exist", r.display()),
                ));
            }
        }
        let masked_url = mask_url(&p.url);

        let mut headers: Vec<(String, String)> = Vec::new();
        if !p.http_agent.is_empty() {
            headers.push(("User-Agent".into(), p.http_agent.clone()));
        }
        if p.force {
            headers.push(("cache-control".into(), "no-cache".into()));
        } else if let Some(d) = p.dest.as_deref().filter(|d| d.is_file()) {
            let mtime = fsutil::info(d, true)?.mtime.0;
            headers.push(("If-Modified-Since".into(), http::http_date(mtime)));
        }
        // The task's headers override the ones above (same name, any case).
        headers.retain(|(k, _)| !p.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)));
        headers.extend(p.headers.iter().cloned());
        let body = match &p.body {
            Body::None => None,
            Body::Bytes(b) => Some(b.clone()),
            Body::File(f) => Some(fsutil::read_file(f).map_err(|_| {
                let mut e = ModuleError::new(format!("Unable to open source file {}", f.display()));
                e.fields.insert("elapsed".into(), 0.into());
                e
            })?),
        };
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            // urllib's default for a request with data.
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        if body.is_none()
            && matches!(p.method.as_str(), "POST" | "PUT" | "PATCH")
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            // http.client announces an empty body for the methods that expect one.
            headers.push(("Content-Length".into(), "0".into()));
        }
        let mut auth = p.auth.clone();
        let mut force_basic_auth = p.force_basic_auth;
        if auth.is_none() && p.use_netrc {
            if let Ok(u) = http::Url::parse(&p.url) {
                if let Some(login) = netrc_login(ctx.environment, &u.host) {
                    auth = Some(login);
                    force_basic_auth = true;
                }
            }
        }
        let req = Request {
            method: p.method.clone(),
            url: p.url.clone(),
            headers,
            unredirected_headers: p.unredirected_headers.clone(),
            body,
            timeout: p.timeout,
            auth,
            force_basic_auth,
            follow_redirects: p.follow,
            tls: p.tls.clone(),
            proxies: p.proxies.clone(),
        };

        let start = Instant::now();
        let mut raw = Vec::new();
        let sent = http::send(&req, &mut raw);
        let elapsed = start.elapsed().as_secs();

        let mut fields = Vars::new();
        fields.insert("redirected".into(), false.into());
        fields.insert("url".into(), masked_url.clone().into());
        fields.insert("elapsed".into(), elapsed.into());
        fields.insert("changed".into(), false.into());
        let resp = match sent {
            Err(e) => {
                let msg = match e {
                    http::HttpError::Url(m) => format!("Request failed: <urlopen error {m}>"),
                    http::HttpError::Connection(m)
                        if m.starts_with("Request failed")
                            || m.starts_with("Connection failure") =>
                    {
                        m
                    }
                    // Python's socket says a read that timed out "timed out".
                    http::HttpError::Connection(m) if m == "The read operation timed out" => {
                        "Connection failure: timed out".to_string()
                    }
                    http::HttpError::Connection(m) => format!("Connection failure: {m}"),
                };
                fields.insert("status".into(), (-1).into());
                fields.insert("msg".into(), msg.into());
                None
            }
            Ok(r) => Some(r),
        };

        let status: i64 = resp.as_ref().map(|r| i64::from(r.status)).unwrap_or(-1);
        let success = resp
            .as_ref()
            .is_some_and(|r| (200..300).contains(&r.status));
        let (mut sub, mut charset) = ("octet-stream".to_string(), "utf-8".to_string());
        let mut content: Vec<u8> = Vec::new();
        if let Some(r) = &resp {
            (_, sub, charset) = parse_content_type(r.header("content-type"));
            content = raw;
            if success
                && p.decompress
                && r.header("content-encoding")
                    .is_some_and(|e| e.eq_ignore_ascii_case("gzip"))
            {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(content.as_slice())
                    .read_to_end(&mut out)
                    .map_err(|e| {
                        ModuleError::new(format!(
                            "HTTP Error while fetching {masked_url}: cannot decompress the \
                             gzip body: {e}"
                        ))
                    })?;
                content = out;
            }
            for (k, v) in &r.headers {
                fields.insert(k.replace('-', "_").to_ascii_lowercase(), v.clone().into());
            }
            if success {
                let jar = http::cookie_jar(&r.set_cookies);
                fields.insert("cookies_string".into(), http::cookie_string(&jar).into());
                fields.insert(
                    "cookies".into(),
                    Value::Object(jar.into_iter().map(|(k, v)| (k, v.into())).collect()),
                );
                fields.insert(
                    "msg".into(),
                    format!(
                        "OK ({} bytes)",
                        r.header("content-length").unwrap_or("unknown")
                    )
                    .into(),
                );
                let final_url = if r.redirects > 0 {
                    r.url.clone()
                } else {
                    masked_url.clone()
                };
                fields.insert("redirected".into(), (final_url != masked_url).into());
                fields.insert("url".into(), final_url.into());
            } else {
                fields.insert("msg".into(), http::http_error_msg(r).into());
            }
            fields.insert("status".into(), status.into());
            fields.insert("elapsed".into(), elapsed.into());
            fields.insert("changed".into(), false.into());
        }
        let maybe_json = resp.is_some() && is_json(&sub);
        let in_codes = p.status_code.contains(&status);
        let maybe_output = maybe_json || p.return_content || !in_codes;

        if let (Some(r), Some(dest)) = (&resp, &p.dest) {
            let mut dest = dest.clone();
            if dest.is_dir() {
                dest = dest.join(response_filename(r));
            }
            if in_codes && status != 304 {
                let same = dest.is_file()
                    && fsutil::file_digest(&dest, "sha1")? == fsutil::sha1_hex(&content);
                if !same {
                    fsutil::atomic_write(&dest, &content, &Attrs::default(), None, None).map_err(
                        |e| {
                            let mut err = ModuleError::new(format!(
                                "failed to copy the response to {}: {} {}",
                                dest.display(),
                                e.msg,
                                fields.get("msg").and_then(Value::as_str).unwrap_or("")
                            ));
                            err.fields = fields.clone();
                            err
                        },
                    )?;
                }
                p.attrs.apply(&dest, true, None)?;
                fields.insert("changed".into(), true.into());
            }
            // ansible-core's path information for a result with `path`.
            fields.extend(fsutil::path_fields("path", &dest, false));
        }
        if let Some(loc) = fields.get("location").and_then(Value::as_str) {
            if !loc.contains("://") {
                if let Ok(joined) = http::Url::parse(&masked_url).and_then(|u| u.join(loc)) {
                    fields.insert("location".into(), joined.as_string().into());
                }
            }
        }
        let u_content = decode(&content, &charset);
        if maybe_output && maybe_json {
            if let Ok(js) = serde_json::from_str::<Value>(&u_content) {
                fields.insert("json".into(), js);
            }
        }
        if !maybe_output && resp.is_some() && !success {
            // ansible-core keeps the error body it read when the status was expected.
            fields.insert("body".into(), u_content.clone().into());
        }
        if p.return_content {
            fields.insert("content".into(), u_content.into());
        }
        if !in_codes {
            let why = fields.get("msg").and_then(Value::as_str).unwrap_or("");
            let msg = format!(
                "Status code was {status} and not {}: {why}",
                py_list(&p.status_code)
            );
            fields.remove("msg");
            return finish(fields, &p, Some(msg));
        }
        finish(fields, &p, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testserver;
    use crate::testutil::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn server() -> testserver::Server {
        testserver::start(Box::new(|line, headers| {
            let header = |n: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let reply = |status: &str, extra: &str, body: &str| {
                format!(
                    "HTTP/1.1 {status}\r\nServer: test\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            };
            if line.starts_with("GET /page ") {
                reply("200 OK", "Content-Type: text/html\r\n", "<h1>hi</h1>\n")
            } else if line.starts_with("GET /api ") {
                reply(
                    "200 OK",
                    "Content-Type: application/json; charset=utf-8\r\nSet-Cookie: b=2; Path=/\r\nSet-Cookie: a=1; Expires=Wed, 21 Oct 2065 07:28:00 GMT\r\n",
                    r#"{"ok": true, "n": 3}"#,
                )
            } else if line.starts_with("POST /echo ") {
                let body = format!(
                    "{}|{}|{}",
                    header("content-type"),
                    header("content-length"),
                    header("user-agent")
                );
                reply("201 Created", "", &body)
            } else if line.starts_with("GET /old ") || line.starts_with("POST /old ") {
                reply("302 Found", "Location: /page\r\n", "")
            } else if line.starts_with("GET /secret ") {
                if header("authorization") == "Basic dTpzM2NyM3Q=" {
                    reply("200 OK", "", "you said s3cr3t")
                } else {
                    reply(
                        "401 Unauthorized",
                        "WWW-Authenticate: Basic realm=x\r\n",
                        "no",
                    )
                }
            } else {
                reply(
                    "404 Not Found",
                    "Content-Type: text/html\r\n",
                    "nothing here",
                )
            }
        }))
    }

    #[test]
    fn get_registers_ansibles_fields() {
        let srv = server();
        let url = format!("{}/page", srv.base);
        let o = run_with("uri", json!({"url": url, "return_content": true}), &opts()).unwrap();
        assert!(!o.changed);
        assert_eq!(o.msg.as_deref(), Some("OK (12 bytes)"));
        assert_eq!(o.fields["status"], json!(200));
        assert_eq!(o.fields["content"], json!("<h1>hi</h1>\n"));
        assert_eq!(o.fields["content_type"], json!("text/html"));
        assert_eq!(o.fields["content_length"], json!("12"));
        assert_eq!(o.fields["server"], json!("test"));
        assert_eq!(o.fields["url"], json!(url));
        assert_eq!(o.fields["redirected"], json!(false));
        assert_eq!(o.fields["cookies"], json!({}));
        assert_eq!(o.fields["cookies_string"], json!(""));
        assert!(!o.fields.contains_key("json"));

        // JSON answers are parsed, content only with return_content; cookies sorted by name.
        let o = run_with("uri", json!({"url": format!("{}/api", srv.base)}), &opts()).unwrap();
        assert_eq!(o.fields["json"], json!({"ok": true, "n": 3}));
        assert!(!o.fields.contains_key("content"));
        assert_eq!(o.fields["cookies"], json!({"a": "1", "b": "2"}));
        assert_eq!(o.fields["cookies_string"], json!("a=1; b=2"));

        // Redirects: followed for GET, reported.
        let o = run_with("uri", json!({"url": format!("{}/old", srv.base)}), &opts()).unwrap();
        assert_eq!(o.fields["redirected"], json!(true));
        assert_eq!(o.fields["url"], json!(format!("{}/page", srv.base)));
    }

    #[test]
    fn wrong_status_fails_with_ansibles_message() {
        let srv = server();
        let e = failure(json!({"url": format!("{}/nope", srv.base)}));
        assert_eq!(
            e,
            "Status code was 404 and not [200]: HTTP Error 404: Not Found"
        );
        let e = failure(json!({"url": format!("{}/page", srv.base), "status_code": [201, 202]}));
        assert_eq!(e, "Status code was 200 and not [201, 202]: OK (12 bytes)");
        // An expected error status is a success, with the body ansible keeps.
        let o = run_with(
            "uri",
            json!({"url": format!("{}/nope", srv.base), "status_code": "200, 404"}),
            &opts(),
        )
        .unwrap();
        assert_eq!(o.fields["status"], json!(404));
        assert_eq!(o.fields["body"], json!("nothing here"));
        assert_eq!(o.msg.as_deref(), Some("HTTP Error 404: Not Found"));
        // POST is not redirected by default: the 302 is the answer.
        let e = failure(json!({"url": format!("{}/old", srv.base), "method": "post", "body": "x"}));
        assert_eq!(
            e,
            "Status code was 302 and not [200]: HTTP Error 302: Found"
        );
        // No server: status -1.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = failure(json!({"url": format!("http://127.0.0.1:{port}/")}));
        assert_eq!(
            e,
            "Status code was -1 and not [200]: Request failed: <urlopen error [Errno 111] Connection refused>"
        );
        let port = crate::testutil::https_server("{\"tls\": true}");
        let out = run_with(
            "uri",
            json!({"url": format!("https://localhost:{port}/"), "validate_certs": false,
                   "return_content": true}),
            &opts(),
        )
        .unwrap();
        assert_eq!(out.fields["content"], json!("{\"tls\": true}"));
        let e = failure(json!({"url": format!("https://localhost:{port}/")}));
        assert!(e.starts_with("Status code was -1 and not [200]: Request failed: <urlopen error [SSL: CERTIFICATE_VERIFY_FAILED]"), "{e}");
        assert_eq!(
            run_with(
                "uri",
                json!({"url": srv.base, "method": "GET POST"}),
                &opts()
            )
            .unwrap_err(),
            "Parameter 'method' needs to be a single word in uppercase, like GET or POST."
        );
    }

    #[test]
    fn a_silent_server_times_out_like_urllib() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        std::thread::spawn(move || {
            // Accept and never answer.
            let held: Vec<_> = l.incoming().take(1).collect();
            std::thread::sleep(Duration::from_secs(5));
            drop(held);
        });
        assert_eq!(
            failure(json!({"url": url, "timeout": 1})),
            "Status code was -1 and not [200]: Connection failure: timed out"
        );
    }

    #[test]
    fn bodies_are_encoded_like_ansible() {
        let srv = server();
        let url = format!("{}/echo", srv.base);
        let post = |extra: Value| {
            let mut a = json!({"url": url, "method": "POST", "status_code": 201,
                               "return_content": true, "http_agent": "tend-test"});
            a.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            run_with("uri", a, &opts()).unwrap().fields["content"].clone()
        };
        assert_eq!(
            post(json!({"body": {"a": 1}, "body_format": "json"})),
            json!("application/json|8|tend-test")
        );
        assert_eq!(
            post(
                json!({"body": {"name": "a b", "x": ["1", "&"]}, "body_format": "form-urlencoded"})
            ),
            json!("application/x-www-form-urlencoded|18|tend-test")
        );
        assert_eq!(
            post(json!({"body": "raw", "headers": {"Content-Type": "text/plain"}})),
            json!("text/plain|3|tend-test")
        );
        assert_eq!(post(json!({})), json!("|0|tend-test"));
        assert_eq!(
            form_urlencoded(&json!({"name": "a b", "x": ["1", "&"], "n": null})).unwrap(),
            "name=a+b&x=1&x=%26"
        );
        assert_eq!(
            form_urlencoded(&json!([["k", true], ["é", 2]])).unwrap(),
            "k=True&%C3%A9=2"
        );
    }

    #[test]
    fn credentials_never_show() {
        let srv = server();
        let o = run_with(
            "uri",
            json!({"url": format!("{}/secret", srv.base), "url_username": "u",
                   "url_password": "s3cr3t", "return_content": true}),
            &opts(),
        )
        .unwrap();
        assert_eq!(o.fields["content"], json!("you said ********"));
        assert_eq!(mask_url("http://u:p@h:8/x?q"), "http://****:****@h:8/x?q");
        assert_eq!(
            netrc_lookup(
                "machine a login x password y\ndefault login d password e\n",
                "a"
            ),
            Some(("x".into(), "y".into()))
        );
        assert_eq!(
            netrc_lookup(
                "machine a login x password y\ndefault login d password e\n",
                "b"
            ),
            Some(("d".into(), "e".into()))
        );
        assert_eq!(netrc_lookup("machine a login x\n", "a"), None);
    }

    #[test]
    fn dest_creates_and_removes() {
        let srv = server();
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("page.html");
        let args = json!({"url": format!("{}/page", srv.base), "dest": dest, "mode": "0600"});
        let o = run_with("uri", args.clone(), &opts()).unwrap();
        assert!(
            o.changed,
            "ansible reports a change whenever it writes dest"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"<h1>hi</h1>\n");
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert_eq!(o.fields["path"], json!(dest.display().to_string()));
        assert_eq!(o.fields["mode"], json!("0600"));
        assert_eq!(o.fields["size"], json!(12));
        assert_eq!(o.fields["state"], json!("file"));
        // Into a directory: the URL's file name.
        let o = run_with(
            "uri",
            json!({"url": format!("{}/page", srv.base), "dest": t.path()}),
            &opts(),
        )
        .unwrap();
        assert_eq!(
            o.fields["path"],
            json!(t.path().join("page").display().to_string())
        );
        let o = run_with(
            "uri",
            json!({"url": format!("{}/page", srv.base), "creates": dest}),
            &opts(),
        )
        .unwrap();
        assert_eq!(
            o.fields["stdout"],
            json!(format!("skipped, since '{}' exists", dest.display()))
        );
        assert!(!o.fields.contains_key("status"));
        let before = srv.requests.lock().unwrap().len();
        run_with(
            "uri",
            json!({"url": format!("{}/page", srv.base), "removes": t.path().join("nope")}),
            &opts(),
        )
        .unwrap();
        assert_eq!(srv.requests.lock().unwrap().len(), before, "no request");
    }

    #[test]
    fn not_run_in_check_mode() {
        assert!(!crate::lookup("uri").unwrap().check_mode);
    }

    /// The message of a run that fails, and (for a failed output) its status field.
    fn failure(args: Value) -> String {
        match run_with("uri", args.clone(), &opts()) {
            Err(e) => e,
            Ok(o) if o.failed => {
                assert!(o.fields.contains_key("status"), "{o:?}");
                o.msg.unwrap_or_default()
            }
            Ok(o) => panic!("uri {args} should fail, got {o:?}"),
        }
    }

    fn opts() -> Opts {
        Opts {
            check: false,
            diff: false,
            search_dirs: Vec::new(),
            vars: json!({}),
        }
    }
}
