//! A small HTTP/1.1 client over `std::net::TcpStream` for `get_url`, `unarchive` (a URL `src`)
//! and `uri`: one request per connection (`Connection: close`), `Content-Length`, chunked
//! and read-to-close bodies streamed to a writer, redirects followed as urllib does, Basic
//! authentication answered when the server asks (or sent at once with `force_basic_auth`),
//! connect and read timeouts.
//!
//! `https://` goes through rustls (its `ring` provider), with certificates checked against the
//! host's CA bundle (`/etc/ssl/certs/ca-certificates.crt` and the other usual places, or
//! `SSL_CERT_FILE`), or only against `ca_path` when a task gives one — as ansible-core's
//! `ssl.create_default_context(cafile=…)` does; `validate_certs: false` accepts any
//! certificate. A peer that closes without TLS's close_notify ends a read-to-close body, as
//! Python's `suppress_ragged_eofs` lets it.
//!
//! Why not an HTTP crate: the agent is pushed to every host, and an HTTP crate with its
//! dependencies (URL parsing, IDNA tables, an async runtime) costs more than these few hundred
//! lines; the TLS stack is the one part worth its size.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

/// How `https://` servers are checked (ansible-core's `validate_certs` and `ca_path`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub validate_certs: bool,
    /// A PEM file of CA certificates: the only ones trusted when given.
    pub ca_path: Option<PathBuf>,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            validate_certs: true,
            ca_path: None,
        }
    }
}

/// Where Linux distributions keep their CA bundle (Debian/Ubuntu, Fedora/RHEL, openSUSE,
/// Alpine, older RHEL).
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];

impl Tls {
    /// A task's `validate_certs` (default true) and `ca_path`.
    pub fn from_args(args: &crate::Args) -> Result<Tls, crate::ModuleError> {
        Ok(Tls {
            validate_certs: args.bool_or("validate_certs", true)?,
            ca_path: args.str("ca_path")?.map(PathBuf::from),
        })
    }
}

/// The proxies a request goes through, as urllib reads them from the environment:
/// `http_proxy` / `https_proxy` (lowercase first, then uppercase) and `no_proxy`. A task's
/// `environment:` wins over the agent's own; `use_proxy: false` ignores them all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxies {
    pub http: Option<Url>,
    pub https: Option<Url>,
    /// `no_proxy` entries: host names or domain suffixes (a leading dot is optional),
    /// optionally with `:port`, or `*` for every host.
    pub no_proxy: Vec<String>,
}

impl Proxies {
    /// From a task's `environment:` (first) and the process environment, unless `use_proxy`
    /// is false.
    pub fn from_env(environment: &[(String, String)], use_proxy: bool) -> Result<Proxies, String> {
        if !use_proxy {
            return Ok(Proxies::default());
        }
        let var = |name: &str| -> Option<String> {
            let upper = name.to_ascii_uppercase();
            [name, upper.as_str()].iter().find_map(|n| {
                environment
                    .iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .or_else(|| std::env::var(n).ok())
                    .filter(|v| !v.trim().is_empty())
            })
        };
        let proxy = |name: &str| -> Result<Option<Url>, String> {
            let Some(v) = var(name) else { return Ok(None) };
            let v = v.trim();
            let with_scheme = if v.contains("://") {
                v.to_string()
            } else {
                format!("http://{v}")
            };
            let u = Url::parse(&with_scheme).map_err(|e| format!("{name}={v}: {e}"))?;
            if u.scheme != "http" {
                return Err(format!(
                    "{name}={v}: tend reaches proxies over http:// only (an https:// proxy is \
                     not supported)"
                ));
            }
            Ok(Some(u))
        };
        Ok(Proxies {
            http: proxy("http_proxy")?,
            https: proxy("https_proxy")?,
            no_proxy: var("no_proxy")
                .map(|v| {
                    v.split(',')
                        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
                        .filter(|e| !e.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The proxy for `url`, if any.
    fn for_url(&self, url: &Url) -> Option<&Url> {
        let proxy = if url.scheme == "https" {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }?;
        let host = url.host.to_ascii_lowercase();
        let with_port = format!("{host}:{}", url.port);
        let bypass = self.no_proxy.iter().any(|e| {
            e == "*"
                || *e == host
                || *e == with_port
                || host.ends_with(&format!(".{e}"))
                || with_port.ends_with(&format!(".{e}"))
        });
        (!bypass).then_some(proxy)
    }
}

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
    /// `user:password@` in the URL.
    pub userinfo: Option<(String, String)>,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("unknown url type: '{url}'"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("unknown url type: '{scheme}'"));
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let tail = tail.split('#').next().unwrap_or("");
        let target = if tail.is_empty() {
            "/".to_string()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_string()
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                (
                    Some((percent_decode(user), percent_decode(pass))),
                    h.to_string(),
                )
            }
            None => (None, authority.to_string()),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| format!("invalid URL {url}: bad IPv6 address"))?;
            (h.to_string(), p.strip_prefix(':').unwrap_or(""))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (hostport.clone(), ""),
            }
        };
        let port = if port.is_empty() {
            default_port(&scheme)
        } else {
            port.parse()
                .map_err(|_| format!("invalid URL {url}: bad port '{port}'"))?
        };
        if host.is_empty() {
            return Err(format!("invalid URL {url}: no host given"));
        }
        Ok(Url {
            scheme,
            host,
            port,
            target,
            userinfo,
        })
    }

    /// The URL a `Location` header points to, relative to this one.
    pub fn join(&self, location: &str) -> Result<Url, String> {
        if location.contains("://") {
            return Url::parse(location);
        }
        let mut u = self.clone();
        u.userinfo = None;
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme));
        }
        u.target = if location.starts_with('/') {
            location.to_string()
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
            format!("{dir}{location}")
        };
        Ok(u)
    }

    fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port(&self.scheme) {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }

    pub fn as_string(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host_header(), self.target)
    }

    /// The last path segment (ansible-core's `url_filename`), `index.html` when empty.
    pub fn filename(&self) -> String {
        let path = self.target.split('?').next().unwrap_or("");
        match path.rsplit('/').next() {
            Some(f) if !f.is_empty() => percent_decode(f),
            _ => "index.html".into(),
        }
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which redirects to follow (ansible-core's `follow_redirects`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Follow {
    /// `none`/`no`: a redirect is the answer.
    None,
    /// `safe` (the default): only for GET and HEAD.
    #[default]
    Safe,
    /// `all`/`yes`: for every method.
    All,
    /// `urllib2`: Python's own rules (GET and HEAD; POST after 301/302/303, as a GET).
    Urllib2,
}

impl Follow {
    /// ansible-core's choices for `follow_redirects`.
    pub fn parse(s: &str) -> Option<Follow> {
        Some(match s {
            "none" | "no" => Follow::None,
            "safe" => Follow::Safe,
            "all" | "yes" => Follow::All,
            "urllib2" => Follow::Urllib2,
            _ => return None,
        })
    }

    fn follows(self, status: u16, method: &str) -> bool {
        let safe = method == "GET" || method == "HEAD";
        match self {
            Follow::None => false,
            Follow::Safe => safe,
            Follow::All => true,
            Follow::Urllib2 => safe || (method == "POST" && matches!(status, 301..=303)),
        }
    }
}

/// One request.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub url: String,
    /// Extra headers, sent as given (they override tend's defaults of the same name).
    pub headers: Vec<(String, String)>,
    /// Header names (any case) sent on the first request only, not after a redirect.
    pub unredirected_headers: Vec<String>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
    /// Basic authentication (`url_username`/`url_password`); the password is never shown.
    pub auth: Option<(String, String)>,
    pub force_basic_auth: bool,
    pub follow_redirects: Follow,
    pub tls: Tls,
    pub proxies: Proxies,
}

impl Request {
    pub fn get(url: &str, timeout: Duration) -> Request {
        Request {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            unredirected_headers: Vec::new(),
            body: None,
            timeout,
            auth: None,
            force_basic_auth: false,
            follow_redirects: Follow::Safe,
            tls: Tls::default(),
            proxies: Proxies::default(),
        }
    }
}

/// What the server answered.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Header names lowercased, repeated headers joined with `, ` (as ansible-core reports).
    pub headers: Vec<(String, String)>,
    /// The URL that answered (after redirects).
    pub url: String,
    /// How many redirects were followed to get here.
    pub redirects: usize,
    /// Every `Set-Cookie` header of the exchange (redirects included), each with the path of
    /// the request it answered (a cookie's default path).
    pub set_cookies: Vec<(String, String)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no response (ansible-core's `status: -1` cases).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Refused before anything was sent (bad URL, unsupported scheme).
    #[error("{0}")]
    Url(String),
    /// Could not connect or the exchange broke.
    #[error("{0}")]
    Connection(String),
}

const MAX_REDIRECTS: usize = 10;

/// Sends `req`; the body of the final response is written to `sink` (not for HEAD, 204 or
/// 304). Redirects are followed as `req.follow_redirects` says, the way ansible-core's
/// redirect handler does: 307/308 keep the method and the body, the others drop the body
/// (301 after a POST, 302 and 303 become a GET); cookies set on the way are sent on.
pub fn send(req: &Request, sink: &mut dyn Write) -> Result<Response, HttpError> {
    let mut url = Url::parse(&req.url).map_err(HttpError::Url)?;
    let mut method = req.method.clone();
    let mut body = req.body.clone();
    let mut headers = req.headers.clone();
    let auth = req.auth.clone().or_else(|| url.userinfo.clone());
    let mut send_auth = req.force_basic_auth;
    let mut redirects = 0;
    let mut set_cookies: Vec<(String, String)> = Vec::new();
    loop {
        let proxy = req.proxies.for_url(&url);
        let mut stream = connect(&url, req.timeout, &req.tls, proxy)?;
        // Through an http proxy, an http request names the whole URL (an https one goes
        // through a CONNECT tunnel and looks direct).
        let mut head = match proxy {
            Some(_) if url.scheme == "http" => format!("{method} {} HTTP/1.1\r\n", url.as_string()),
            _ => format!("{method} {} HTTP/1.1\r\n", url.target),
        };
        if let (Some(p), "http") = (proxy, url.scheme.as_str()) {
            if let Some(auth) = proxy_authorization(p) {
                head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
            }
        }
        let push = |head: &mut String, k: &str, v: &str| {
            head.push_str(&format!("{k}: {v}\r\n"));
        };
        for (k, v) in &headers {
            push(&mut head, k, v);
        }
        let given = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        if !given("host") {
            push(&mut head, "Host", &url.host_header());
        }
        if !given("user-agent") {
            push(&mut head, "User-Agent", "ansible-httpget");
        }
        if !given("accept-encoding") {
            push(&mut head, "Accept-Encoding", "identity");
        }
        if send_auth {
            if let Some((u, p)) = &auth {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                push(&mut head, "Authorization", &format!("Basic {token}"));
            }
        }
        if !given("cookie") && !set_cookies.is_empty() {
            let jar = cookie_jar(&set_cookies);
            if !jar.is_empty() {
                push(&mut head, "Cookie", &cookie_string(&jar));
            }
        }
        if let Some(b) = &body {
            if !given("content-length") {
                push(&mut head, "Content-Length", &b.len().to_string());
            }
        }
        head.push_str("Connection: close\r\n\r\n");
        let io_err = |e: io::Error| HttpError::Connection(connection_msg(&e));
        stream.write_all(head.as_bytes()).map_err(io_err)?;
        if let Some(b) = &body {
            stream.write_all(b).map_err(io_err)?;
        }
        stream.flush().map_err(io_err)?;
        let mut r = BufReader::new(stream);
        let (mut resp, cookies) = read_head(&mut r)?;
        let path = url.target.split('?').next().unwrap_or("/").to_string();
        set_cookies.extend(cookies.into_iter().map(|c| (path.clone(), c)));
        resp.url = url.as_string();
        resp.redirects = redirects;
        // Answer a Basic challenge once.
        if resp.status == 401 && !send_auth && auth.is_some() {
            let challenge = resp.header("www-authenticate").unwrap_or("");
            if challenge.to_ascii_lowercase().starts_with("basic") {
                send_auth = true;
                continue;
            }
        }
        let redirect = matches!(resp.status, 301 | 302 | 303 | 307 | 308);
        if redirect && req.follow_redirects.follows(resp.status, &method) {
            if let Some(loc) = resp.header("location") {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(HttpError::Connection(format!(
                        "HTTP Error {}: The HTTP server returned a redirect error that would \
                         lead to an infinite loop.",
                        resp.status
                    )));
                }
                url = url.join(&loc.replace(' ', "%20")).map_err(HttpError::Url)?;
                headers.retain(|(k, _)| {
                    !req.unredirected_headers
                        .iter()
                        .any(|u| u.eq_ignore_ascii_case(k))
                });
                if !matches!(resp.status, 307 | 308) {
                    body = None;
                    headers.retain(|(k, _)| {
                        !["content-length", "content-type", "transfer-encoding"]
                            .iter()
                            .any(|n| k.eq_ignore_ascii_case(n))
                    });
                    let becomes_get = match resp.status {
                        302 | 303 => method != "HEAD",
                        _ => method == "POST",
                    };
                    if becomes_get {
                        method = "GET".into();
                    }
                }
                continue;
            }
        }
        let no_body = method == "HEAD" || resp.status == 204 || resp.status == 304;
        if !no_body {
            read_body(&mut r, &resp, sink)?;
        }
        resp.set_cookies = set_cookies;
        return Ok(resp);
    }
}

/// The cookies a cookie jar keeps from `Set-Cookie` headers (each with its request's path),
/// in the order Python's `CookieJar` lists them (by path, then name): `(name, value)`. A
/// cookie set again replaces the earlier one; one that expires now (`Max-Age` 0 or less) is
/// dropped.
pub fn cookie_jar(set_cookies: &[(String, String)]) -> Vec<(String, String)> {
    let mut jar: std::collections::BTreeMap<(String, String), String> = Default::default();
    for (req_path, raw) in set_cookies {
        let mut parts = raw.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            continue;
        };
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        if name.is_empty() {
            continue;
        }
        let mut path = None;
        let mut expired = false;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "path" if v.trim().starts_with('/') => path = Some(v.trim().to_string()),
                "max-age" => expired = v.trim().parse::<i64>().is_ok_and(|n| n <= 0),
                _ => {}
            }
        }
        // RFC 2965's default path: the request path up to its last slash.
        let path = path.unwrap_or_else(|| match req_path.rfind('/') {
            Some(0) | None => "/".to_string(),
            Some(i) => req_path[..i].to_string(),
        });
        if expired {
            jar.remove(&(path, name));
        } else {
            jar.insert((path, name), value);
        }
    }
    jar.into_iter().map(|((_, n), v)| (n, v)).collect()
}

/// `name=value; name2=value2`, as a `Cookie` header (and ansible-core's `cookies_string`).
pub fn cookie_string(jar: &[(String, String)]) -> String {
    jar.iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn connection_msg(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            "The read operation timed out".into()
        }
        _ => e.to_string(),
    }
}

/// A connection: plain, or TLS over TCP.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            // A server that closes without close_notify: the end of the body, as Python's
            // `suppress_ragged_eofs` reads it (a Content-Length body still checks its length).
            Conn::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// `Basic …` for a proxy URL's `user:password@`.
fn proxy_authorization(proxy: &Url) -> Option<String> {
    proxy.userinfo.as_ref().map(|(u, p)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    })
}

/// Opens a tunnel to `url`'s host through `proxy` (`CONNECT host:port`).
fn tunnel(proxy: &Url, url: &Url, timeout: Duration) -> Result<TcpStream, HttpError> {
    let mut tcp = connect_tcp(proxy, timeout)?;
    let target = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = proxy_authorization(proxy) {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    let io_err = |e: io::Error| {
        HttpError::Connection(format!(
            "Request failed: <urlopen error {}>",
            connection_msg(&e)
        ))
    };
    tcp.write_all(head.as_bytes()).map_err(io_err)?;
    // The proxy's answer, byte by byte: nothing past its blank line may be consumed (the TLS
    // handshake follows on the same socket).
    let mut answer = Vec::new();
    let mut b = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut b) {
            Ok(1) => answer.push(b[0]),
            Ok(_) => break,
            Err(e) => return Err(io_err(e)),
        }
        if answer.len() > 64 * 1024 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or("").trim();
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let code: u16 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let reason = parts.next().unwrap_or("");
    if !(200..300).contains(&code) {
        return Err(HttpError::Connection(format!(
            "Request failed: <urlopen error Tunnel connection failed: {code} {reason}>"
        )));
    }
    Ok(tcp)
}

fn connect(
    url: &Url,
    timeout: Duration,
    tls: &Tls,
    proxy: Option<&Url>,
) -> Result<Conn, HttpError> {
    let tcp = match proxy {
        Some(p) if url.scheme == "https" => tunnel(p, url, timeout)?,
        Some(p) => connect_tcp(p, timeout)?,
        None => connect_tcp(url, timeout)?,
    };
    if url.scheme != "https" {
        return Ok(Conn::Plain(tcp));
    }
    let config = tls_config(tls)?;
    let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| {
        HttpError::Url(format!(
            "invalid URL {}: bad host name: {e}",
            url.as_string()
        ))
    })?;
    let conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| HttpError::Connection(format!("Request failed: <urlopen error {e}>")))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    // The handshake now, so that a certificate problem is reported as one.
    while stream.conn.is_handshaking() {
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            return Err(HttpError::Connection(tls_error_msg(&e)));
        }
    }
    Ok(Conn::Tls(Box::new(stream)))
}

/// ansible-core's words for a TLS failure (`urlopen error [SSL: CERTIFICATE_VERIFY_FAILED]
/// certificate verify failed: …`), with rustls' reason.
fn tls_error_msg(e: &io::Error) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => format!(
            "Request failed: <urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify \
             failed: {}>",
            cert_reason(c)
        ),
        Some(other) => format!("Request failed: <urlopen error [SSL] {other}>"),
        None => format!("Request failed: <urlopen error {}>", connection_msg(e)),
    }
}

fn cert_reason(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => "unable to get local issuer certificate (the issuer is not \
                             a trusted CA; give its certificate with ca_path, or \
                             validate_certs: false)"
            .into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the certificate does not name this host (Hostname mismatch)".into()
        }
        C::Expired | C::ExpiredContext { .. } => "certificate has expired".into(),
        other => format!("{other:?}"),
    }
}

/// The TLS client configuration for `tls`, built once per distinct setting and kept: reading
/// and parsing the CA bundle costs more than a handshake.
fn tls_config(tls: &Tls) -> Result<Arc<rustls::ClientConfig>, HttpError> {
    use std::sync::Mutex;
    static CACHE: Mutex<Vec<(Tls, Arc<rustls::ClientConfig>)>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = cache.iter().find(|(t, _)| t == tls) {
        return Ok(c.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Connection(format!("Request failed: <urlopen error {e}>")))?;
    let config = if tls.validate_certs {
        builder
            .with_root_certificates(root_store(tls)?)
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    let config = Arc::new(config);
    cache.push((tls.clone(), config.clone()));
    Ok(config)
}

/// The trusted CAs: `ca_path` alone when given, else `SSL_CERT_FILE`, else the first system
/// bundle that exists.
fn root_store(tls: &Tls) -> Result<rustls::RootCertStore, HttpError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let file = match &tls.ca_path {
        Some(p) => p.clone(),
        None => std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .or_else(|| CA_BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file()))
            .ok_or_else(|| {
                HttpError::Connection(format!(
                    "Request failed: <urlopen error no CA certificates found (looked for {}); \
                     install ca-certificates or give ca_path>",
                    CA_BUNDLES.join(", ")
                ))
            })?,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&file).map_err(|e| {
        HttpError::Connection(format!(
            "Request failed: <urlopen error cannot read CA certificates from {}: {e}>",
            file.display()
        ))
    })?;
    for cert in certs.flatten() {
        // A certificate rustls cannot use (an old format) is skipped, as OpenSSL skips it.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(HttpError::Connection(format!(
            "Request failed: <urlopen error no usable CA certificate in {}>",
            file.display()
        )));
    }
    Ok(roots)
}

/// `validate_certs: false`: any certificate, for any name; the handshake's signatures are
/// still checked (the peer must hold the key of the certificate it sent).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn connect_tcp(url: &Url, timeout: Duration) -> Result<TcpStream, HttpError> {
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| HttpError::Connection(format!("Request failed: <urlopen error {e}>")))?
        .collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(timeout));
                let _ = s.set_write_timeout(Some(timeout));
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.map(|e| {
        let errno = e
            .raw_os_error()
            .map(|n| format!("[Errno {n}] "))
            .unwrap_or_default();
        let text = match e.kind() {
            io::ErrorKind::ConnectionRefused => "Connection refused".to_string(),
            io::ErrorKind::TimedOut => "timed out".to_string(),
            _ => e.to_string(),
        };
        format!("{errno}{text}")
    });
    Err(HttpError::Connection(format!(
        "Request failed: <urlopen error {}>",
        e.unwrap_or_else(|| format!("no address for {}", url.host))
    )))
}

fn read_line(r: &mut impl BufRead) -> Result<String, HttpError> {
    let mut line = Vec::new();
    r.by_ref()
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .map_err(|e| HttpError::Connection(connection_msg(&e)))?;
    let s = String::from_utf8_lossy(&line);
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

/// The status line and headers, and the raw `Set-Cookie` values (kept apart: their dates
/// have commas, so they cannot be joined like other repeated headers).
fn read_head(r: &mut impl BufRead) -> Result<(Response, Vec<String>), HttpError> {
    let status_line = read_line(r)?;
    if status_line.is_empty() {
        return Err(HttpError::Connection(
            "Connection failure: connection was closed before a valid response was received".into(),
        ));
    }
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
        HttpError::Connection(format!(
            "Connection failure: connection was closed before a valid response was received: \
             {status_line}"
        ))
    })?;
    if !version.starts_with("HTTP/") {
        return Err(HttpError::Connection(format!(
            "Connection failure: not an HTTP response: {status_line}"
        )));
    }
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut cookies = Vec::new();
    for _ in 0..1000 {
        let line = read_line(r)?;
        if line.is_empty() {
            let resp = Response {
                status,
                reason,
                headers,
                ..Default::default()
            };
            return Ok((resp, cookies));
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim().to_string();
            if k == "set-cookie" {
                cookies.push(v.clone());
            }
            match headers.iter_mut().find(|(n, _)| *n == k) {
                Some((_, old)) => {
                    old.push_str(", ");
                    old.push_str(&v);
                }
                None => headers.push((k, v)),
            }
        }
    }
    Err(HttpError::Connection("too many response headers".into()))
}

fn read_body(r: &mut impl BufRead, resp: &Response, sink: &mut dyn Write) -> Result<(), HttpError> {
    let io_err = |e: io::Error| HttpError::Connection(connection_msg(&e));
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let line = read_line(r)?;
            let size = line.split(';').next().unwrap_or("").trim();
            let n = u64::from_str_radix(size, 16).map_err(|_| {
                HttpError::Connection(format!("bad chunk size in response: {line:?}"))
            })?;
            if n == 0 {
                // Trailers until the empty line.
                while !read_line(r)?.is_empty() {}
                return Ok(());
            }
            let copied = io::copy(&mut r.by_ref().take(n), sink).map_err(io_err)?;
            if copied != n {
                return Err(HttpError::Connection(
                    "the connection closed in the middle of the response".into(),
                ));
            }
            read_line(r)?;
        }
    }
    if let Some(len) = resp.header("content-length") {
        let n: u64 = len
            .trim()
            .parse()
            .map_err(|_| HttpError::Connection(format!("bad Content-Length: {len}")))?;
        let copied = io::copy(&mut r.by_ref().take(n), sink).map_err(io_err)?;
        if copied != n {
            return Err(HttpError::Connection(format!(
                "IncompleteRead({copied} bytes read, {} more expected)",
                n - copied
            )));
        }
        return Ok(());
    }
    io::copy(r, sink).map_err(io_err)?;
    Ok(())
}

/// Python's `HTTPError.__str__`: `HTTP Error 404: File not found`.
pub fn http_error_msg(resp: &Response) -> String {
    format!("HTTP Error {}: {}", resp.status, resp.reason)
}

/// An RFC 2822 date in GMT (`If-Modified-Since`).
pub fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{}, {d:02} {} {y:04} {h:02}:{m:02}:{s:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(mo - 1) as usize]
    )
}

#[cfg(test)]
pub(crate) mod testserver {
    //! A tiny HTTP server on loopback for tests: canned responses by path, every request
    //! recorded.
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    pub type Handler = dyn Fn(&str, &[(String, String)]) -> Vec<u8> + Send + Sync;

    /// A request as the server saw it: its first line and its headers.
    pub type Seen = (String, Vec<(String, String)>);

    pub struct Server {
        pub base: String,
        pub requests: Arc<Mutex<Vec<Seen>>>,
    }

    /// Starts a server whose `handler(request line, headers)` returns the whole raw response.
    pub fn start(handler: Box<Handler>) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let rec = requests.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap_or(0);
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let line = line.trim().to_string();
                let resp = handler(&line, &headers);
                rec.lock().unwrap().push((line, headers));
                let _ = s.write_all(&resp);
            }
        });
        Server { base, requests }
    }

    pub fn ok(body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Thu, 01 Jan 2015 00:00:00 GMT\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_come_from_the_environment_and_no_proxy_bypasses_them() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let p = Proxies::from_env(
            &env(&[
                ("http_proxy", "proxy.example:3128"),
                ("HTTPS_PROXY", "http://u:p@sproxy.example:8080"),
                ("no_proxy", "localhost, .internal.example,10.0.0.1:8443"),
            ]),
            true,
        )
        .unwrap();
        let url = |u: &str| Url::parse(u).unwrap();
        assert_eq!(
            p.for_url(&url("http://a.example/")).unwrap().host,
            "proxy.example"
        );
        let s = p.for_url(&url("https://a.example/")).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("sproxy.example", 8080));
        assert_eq!(proxy_authorization(s).unwrap(), "Basic dTpw");
        assert!(p.for_url(&url("http://localhost:8080/")).is_none());
        assert!(p.for_url(&url("http://db.internal.example/")).is_none());
        assert!(p.for_url(&url("https://10.0.0.1:8443/")).is_none());
        assert!(p.for_url(&url("https://10.0.0.1/")).is_some());
        assert_eq!(
            Proxies::from_env(&env(&[("http_proxy", "proxy:1")]), false).unwrap(),
            Proxies::default()
        );
        let e = Proxies::from_env(&env(&[("https_proxy", "https://p:1")]), true).unwrap_err();
        assert!(e.contains("http:// only"), "{e}");
    }

    #[test]
    fn requests_go_through_the_proxy_plain_and_tunnelled() {
        use crate::testutil::{http_proxy, https_server, test_ca};
        let (proxy_port, seen) = http_proxy();
        let proxies = Proxies {
            http: Some(Url::parse(&format!("http://127.0.0.1:{proxy_port}")).unwrap()),
            https: Some(Url::parse(&format!("http://127.0.0.1:{proxy_port}")).unwrap()),
            no_proxy: Vec::new(),
        };
        // http: the proxy gets the whole URL (and answers itself here).
        let mut req = Request::get("http://origin.invalid/x?y=1", Duration::from_secs(5));
        req.proxies = proxies.clone();
        let mut out = Vec::new();
        let r = send(&req, &mut out).unwrap();
        assert_eq!((r.status, out.as_slice()), (200, &b"via proxy"[..]));
        // https: a CONNECT tunnel, then TLS to the origin, checked as without a proxy.
        let port = https_server("hello");
        let mut req = Request::get(
            &format!("https://localhost:{port}/"),
            Duration::from_secs(5),
        );
        req.proxies = proxies.clone();
        req.tls.ca_path = Some(test_ca());
        let mut out = Vec::new();
        let r = send(&req, &mut out).unwrap();
        assert_eq!((r.status, out.as_slice()), (200, &b"hello"[..]));
        let log = seen.lock().unwrap().clone();
        assert_eq!(
            log,
            vec![
                "GET http://origin.invalid/x?y=1 HTTP/1.1".to_string(),
                format!("CONNECT localhost:{port} HTTP/1.1"),
            ]
        );
        // A tunnel the proxy refuses.
        let mut req = Request::get("https://refuse.invalid/", Duration::from_secs(5));
        req.proxies = proxies;
        let e = send(&req, &mut Vec::new()).unwrap_err().to_string();
        assert_eq!(
            e,
            "Request failed: <urlopen error Tunnel connection failed: 403 Forbidden>"
        );
    }

    #[test]
    fn https_checks_the_certificate_against_ca_path_or_the_system() {
        use crate::testutil::{https_server, test_ca};
        let port = https_server("hello");
        let get = |host: &str, tls: Tls| {
            let mut req = Request::get(&format!("https://{host}:{port}/x"), Duration::from_secs(5));
            req.tls = tls;
            let mut out = Vec::new();
            send(&req, &mut out).map(|r| (r.status, String::from_utf8(out).unwrap()))
        };
        let trusting = Tls {
            validate_certs: true,
            ca_path: Some(test_ca()),
        };
        assert_eq!(
            get("localhost", trusting.clone()).unwrap(),
            (200, "hello".into())
        );
        // The system's CAs do not know the test CA.
        let e = get("localhost", Tls::default()).unwrap_err().to_string();
        assert!(
            e.contains("[SSL: CERTIFICATE_VERIFY_FAILED]") && e.contains("issuer"),
            "{e}"
        );
        // The certificate names localhost, not 127.0.0.1.
        let e = get("127.0.0.1", trusting).unwrap_err().to_string();
        assert!(e.contains("does not name this host"), "{e}");
        // validate_certs: false takes any certificate.
        let any = Tls {
            validate_certs: false,
            ca_path: None,
        };
        assert_eq!(get("127.0.0.1", any).unwrap(), (200, "hello".into()));
        // A ca_path that is not there says so.
        let e = get(
            "localhost",
            Tls {
                validate_certs: true,
                ca_path: Some("/nonexistent/ca.pem".into()),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cannot read CA certificates from /nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn urls_parse_like_urllib() {
        let u = Url::parse("http://bob:s%40cret@example.com:8080/a/b.tgz?x=1#frag").unwrap();
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, 8080);
        assert_eq!(u.target, "/a/b.tgz?x=1");
        assert_eq!(u.userinfo, Some(("bob".into(), "s@cret".into())));
        assert_eq!(u.filename(), "b.tgz");
        assert_eq!(Url::parse("http://h").unwrap().filename(), "index.html");
        assert_eq!(Url::parse("http://[::1]:81/").unwrap().host, "::1");
        let u = Url::parse("https://h/x").unwrap();
        assert_eq!((u.port, u.host_header()), (443, "h".to_string()));
        assert_eq!(
            Url::parse("https://h:8443/").unwrap().as_string(),
            "https://h:8443/"
        );
        assert_eq!(
            Url::parse("ftp://h/x").unwrap_err(),
            "unknown url type: 'ftp'"
        );
        let base = Url::parse("http://h/a/b?q").unwrap();
        assert_eq!(base.join("c").unwrap().target, "/a/c");
        assert_eq!(base.join("/d").unwrap().target, "/d");
        assert_eq!(base.join("http://o:1/e").unwrap().port, 1);
    }

    #[test]
    fn http_dates_are_rfc2822() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn chunked_bodies_redirects_and_basic_auth() {
        let srv = testserver::start(Box::new(|line, headers| {
            let auth = headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Basic dTpw");
            if line.starts_with("GET /old ") {
                b"HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n".to_vec()
            } else if line.starts_with("GET /new ") {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec()
            } else if line.starts_with("GET /secret ") && !auth {
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n".to_vec()
            } else if line.starts_with("GET /secret ") {
                testserver::ok(b"in")
            } else {
                b"HTTP/1.1 404 File not found\r\nContent-Length: 4\r\n\r\nnope".to_vec()
            }
        }));
        let t = Duration::from_secs(5);
        let mut body = Vec::new();
        let r = send(&Request::get(&format!("{}/old", srv.base), t), &mut body).unwrap();
        assert_eq!((r.status, body.as_slice()), (200, &b"hello world"[..]));
        assert!(r.url.ends_with("/new"));
        let mut req = Request::get(&format!("{}/secret", srv.base), t);
        req.auth = Some(("u".into(), "p".into()));
        let mut body = Vec::new();
        assert_eq!(send(&req, &mut body).unwrap().status, 200);
        assert_eq!(body, b"in");
        let r = send(
            &Request::get(&format!("{}/x", srv.base), t),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(http_error_msg(&r), "HTTP Error 404: File not found");
        // The first /secret request carried no credentials.
        let reqs = srv.requests.lock().unwrap();
        let first_secret = reqs
            .iter()
            .find(|(l, _)| l.starts_with("GET /secret"))
            .unwrap();
        assert!(!first_secret.1.iter().any(|(k, _)| k == "authorization"));
    }

    #[test]
    fn refused_connections_read_like_urllib() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = send(
            &Request::get(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2)),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Request failed: <urlopen error [Errno 111] Connection refused>"
        );
    }
}
