//! A fault-injecting HTTP/1.1 proxy on loopback, between Wharf and a test
//! server (SeaweedFS, the Supabase, Kimi and GLM fakes).
//!
//! Point a provider's endpoint and `allowed_hosts` at [`FaultProxy::url`].
//! Each request is read whole, forwarded upstream with its `Host` header
//! unchanged (SigV4 signs it), and the upstream answer read whole; then the
//! answer is written back, damaged by the fault scripted for that request, if
//! any. Faults are scripted per request: [`FaultProxy::once`] damages the next
//! request that matches, once. Every connection carries one exchange
//! (`connection: close`), so a damaged connection never poisons a pool.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What goes wrong with one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The answer comes this much later.
    Latency(Duration),
    /// 429 with `Retry-After: 1`; the request never reaches the server.
    TooManyRequests,
    /// 500; the request never reaches the server.
    InternalError,
    /// 503; the request never reaches the server.
    Unavailable,
    /// The server handles the request; the connection is reset before any
    /// byte of the answer.
    ResetBeforeHeaders,
    /// The headers and half the body arrive, then the connection is reset.
    ResetMidBody,
    /// The connection closes cleanly after half the body its Content-Length
    /// announced.
    ShortBody,
    /// One bit of the body is flipped (the middle byte).
    FlippedBit,
    /// The answer arrives at 1 KiB/s.
    Drip,
    /// The status line (and half the body, if there is one) arrives, then
    /// nothing more, ever.
    NeverEnds,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::Latency(Duration::from_millis(300)),
        Fault::TooManyRequests,
        Fault::InternalError,
        Fault::Unavailable,
        Fault::ResetBeforeHeaders,
        Fault::ResetMidBody,
        Fault::ShortBody,
        Fault::FlippedBit,
        Fault::Drip,
        Fault::NeverEnds,
    ];

    /// A short name, for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Fault::Latency(_) => "latency",
            Fault::TooManyRequests => "429",
            Fault::InternalError => "500",
            Fault::Unavailable => "503",
            Fault::ResetBeforeHeaders => "reset-hdr",
            Fault::ResetMidBody => "reset-body",
            Fault::ShortBody => "short",
            Fault::FlippedBit => "flip",
            Fault::Drip => "drip",
            Fault::NeverEnds => "never-ends",
        }
    }
}

/// Which requests a scripted fault applies to.
#[derive(Debug, Clone)]
struct Rule {
    method: String,
    /// A substring of the request target (path and query).
    target: String,
    fault: Fault,
}

#[derive(Default)]
struct Script {
    rules: Vec<Rule>,
    /// `METHOD target -> status` of every exchange, and the fault it got.
    log: Vec<String>,
}

pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    script: Arc<Mutex<Script>>,
}

const DRIP_CHUNK: usize = 1024;

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`) on a thread of its
    /// own, so that it outlives the runtime of the test that started it.
    pub fn start(upstream: &str) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fault proxy");
        std_listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", std_listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script::default()));
        let (upstream, shared) = (upstream.trim_end_matches('/').to_string(), script.clone());
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("building the fault proxy's runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).unwrap();
                    let _ = rustls::crypto::ring::default_provider().install_default();
                    let client = reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .expect("building the fault proxy's client");
                    loop {
                        let Ok((socket, _)) = listener.accept().await else { continue };
                        let (client, upstream, script) = (client.clone(), upstream.clone(), shared.clone());
                        tokio::spawn(async move {
                            let _ = exchange(socket, &client, &upstream, &script).await;
                        });
                    }
                });
            })
            .expect("starting the fault proxy thread");
        Self { url, script }
    }

    /// Damages the next request whose method is `method` and whose target
    /// (path and query) contains `target`, once.
    pub fn once(&self, method: &str, target: &str, fault: Fault) {
        let rule = Rule { method: method.to_string(), target: target.to_string(), fault };
        self.script.lock().unwrap().rules.push(rule);
    }

    /// Scripted faults that no request has met yet.
    pub fn unused(&self) -> Vec<String> {
        let script = self.script.lock().unwrap();
        script.rules.iter().map(|r| format!("{} {} {:?}", r.method, r.target, r.fault)).collect()
    }

    /// Forgets scripted faults no request met, and the log.
    pub fn reset(&self) {
        let mut script = self.script.lock().unwrap();
        script.rules.clear();
        script.log.clear();
    }

    /// The exchanges so far: `METHOD target [range=…] -> status [fault]`.
    pub fn log(&self) -> Vec<String> {
        self.script.lock().unwrap().log.clone()
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(std::io::Error::other(format!("bad request line {line:?}")));
    };
    let (method, target) = (method.to_string(), target.to_string());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| std::io::Error::other(format!("bad chunk size: {e}")))?;
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await?;
            let mut crlf = String::new();
            reader.read_line(&mut crlf).await?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().map_err(|e| std::io::Error::other(format!("bad length: {e}")))?;
        body.resize(length, 0);
        reader.read_exact(&mut body).await?;
    }
    Ok(Some(Request { method, target, headers, body }))
}

/// Ends a connection with a TCP reset instead of a clean close.
fn reset(socket: TcpStream) {
    let _ = socket.set_zero_linger();
    drop(socket);
}

async fn exchange(
    socket: TcpStream,
    client: &reqwest::Client,
    upstream: &str,
    script: &Mutex<Script>,
) -> std::io::Result<()> {
    let proxy_url = format!("http://{}", socket.local_addr()?);
    let mut reader = BufReader::new(socket);
    let Some(request) = read_request(&mut reader).await? else { return Ok(()) };
    let fault = {
        let mut script = script.lock().unwrap();
        let matched =
            script.rules.iter().position(|r| r.method == request.method && request.target.contains(&r.target));
        matched.map(|i| script.rules.remove(i).fault)
    };
    let mut socket = reader.into_inner();

    let refused = match fault {
        Some(Fault::TooManyRequests) => Some((429, "Too Many Requests")),
        Some(Fault::InternalError) => Some((500, "Internal Server Error")),
        Some(Fault::Unavailable) => Some((503, "Service Unavailable")),
        _ => None,
    };
    let (status, reason, headers, body) = match refused {
        Some((status, reason)) => {
            let body = format!("injected fault: HTTP {status}").into_bytes();
            let headers = vec![("retry-after".to_string(), "1".to_string())];
            (status, reason.to_string(), headers, body)
        }
        None => forward(client, upstream, &request).await?,
    };
    let range = request.headers.iter().find(|(name, _)| name == "range").map(|(_, value)| format!(" range={value}"));
    script.lock().unwrap().log.push(format!(
        "{} {}{} -> {status}{}",
        request.method,
        request.target,
        range.unwrap_or_default(),
        fault.map(|f| format!(" [{}]", f.label())).unwrap_or_default()
    ));

    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    let is_head = request.method == "HEAD";
    for (name, value) in &headers {
        // Absolute locations (a TUS upload's URL) point back through the proxy.
        let proxied = (name == "location").then(|| value.replace(upstream, &proxy_url));
        let value = proxied.as_ref().unwrap_or(value);
        // A HEAD answer keeps the length of the body it does not carry.
        if name == "transfer-encoding" || name == "connection" || (name == "content-length" && !is_head) {
            continue;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !is_head {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    let half = body.len() / 2;

    match fault {
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body).await?;
        }
        Some(Fault::ResetBeforeHeaders) => {
            reset(socket);
            return Ok(());
        }
        Some(Fault::ResetMidBody) => {
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body[..half]).await?;
            socket.flush().await?;
            // Let the bytes leave before the reset discards what is unsent.
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset(socket);
            return Ok(());
        }
        Some(Fault::ShortBody) => {
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body[..half]).await?;
        }
        Some(Fault::FlippedBit) => {
            let mut body = body;
            if let Some(byte) = body.get_mut(half) {
                *byte ^= 0x01;
            }
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body).await?;
        }
        Some(Fault::Drip) => {
            let mut whole = head.into_bytes();
            whole.extend_from_slice(&body);
            for chunk in whole.chunks(DRIP_CHUNK) {
                socket.write_all(chunk).await?;
                socket.flush().await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Some(Fault::NeverEnds) => {
            match body.is_empty() {
                true => socket.write_all(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes()).await?,
                false => {
                    socket.write_all(head.as_bytes()).await?;
                    socket.write_all(&body[..half]).await?;
                }
            }
            socket.flush().await?;
            // Hold the connection open until the client gives up on it.
            let mut sink = [0u8; 1024];
            while socket.read(&mut sink).await? > 0 {}
            return Ok(());
        }
        _ => {
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body).await?;
        }
    }
    socket.flush().await?;
    socket.shutdown().await
}

type Answer = (u16, String, Vec<(String, String)>, Vec<u8>);

async fn forward(client: &reqwest::Client, upstream: &str, request: &Request) -> std::io::Result<Answer> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(std::io::Error::other)?;
    let mut outgoing = client.request(method, format!("{upstream}{}", request.target)).body(request.body.clone());
    for (name, value) in &request.headers {
        if !matches!(name.as_str(), "connection" | "content-length" | "transfer-encoding") {
            outgoing = outgoing.header(name, value);
        }
    }
    let response = outgoing.send().await.map_err(std::io::Error::other)?;
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.bytes().await.map_err(std::io::Error::other)?.to_vec();
    Ok((status.as_u16(), status.canonical_reason().unwrap_or("").to_string(), headers, body))
}
