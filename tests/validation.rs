//! Upload validation through the real host and the real local adapter:
//! `[host.validation]`, `[providers.NAME.validation]` and its per-purpose
//! tables (size, types judged from magic bytes, names against content),
//! malware scanning by a real clamd, and name sanitising. Every refusal is
//! checked to have sent nothing: no record, no bytes at the provider.
//!
//! The clamd tests run Debian's clamd (`clamav-daemon`; scripts/test installs
//! it) with a signature database this file writes: the MD5 of the EICAR test
//! file, since signature downloads are not possible here. One clamd serves
//! the whole test binary.

mod common;
#[path = "support/serve.rs"]
mod serve;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{Scratch, records};
use reqwest::StatusCode;
use wharf::gateway::FileUpdate;
use wharf::gateway::{Caller, GatewayError, Source, UploadOptions};
use wharf::sandbox::Sandbox;
use wharf::validation::Refusal;

/// A PNG's signature and header chunk: all `infer` needs to call it image/png.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

/// The EICAR anti-virus test file, in two halves so that this source file is
/// not itself reported by a scanner on a developer's machine.
fn eicar() -> Vec<u8> {
    [br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR".as_slice(), b"-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"].concat()
}

/// The signature database line for it (`sigtool --md5` of the file): MD5, size, name.
const EICAR_HDB: &str = "44d88612fea8a8f36de82e1278abb02f:68:eicar.txt\n";
/// What clamd calls a match of that line (unofficial: not from ClamAV's own databases).
const EICAR_SIGNATURE: &str = "eicar.txt.UNOFFICIAL";

async fn upload_bytes(gateway: &Caller, name: &str, content: &[u8]) -> Result<wharf::gateway::Uploaded, GatewayError> {
    upload_with(gateway, name, content, None).await
}

async fn upload_with(
    gateway: &Caller,
    name: &str,
    content: &[u8],
    purpose: Option<&str>,
) -> Result<wharf::gateway::Uploaded, GatewayError> {
    let source = Source::Bytes { name: name.into(), content: content.to_vec().into(), mime: None };
    let options = UploadOptions { purpose: purpose.map(str::to_string), ..UploadOptions::default() };
    gateway.upload(source, &options).await
}

/// The refusal inside an upload's error; panics on any other outcome.
fn refusal(outcome: Result<wharf::gateway::Uploaded, GatewayError>) -> Box<Refusal> {
    match outcome {
        Err(GatewayError::Refused(refusal)) => refusal,
        Err(other) => panic!("expected a refusal, got: {other}"),
        Ok(up) => panic!("expected a refusal, but {} was uploaded as {}", up.name, up.id),
    }
}

/// Files the local provider holds.
fn stored_files(scratch: &Scratch) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { walk(&path, out) } else { out.push(path) }
        }
    }
    let mut files = Vec::new();
    walk(&scratch.data().join("local"), &mut files);
    files
}

/// Nothing was recorded and nothing reached the provider.
async fn assert_nothing_sent(scratch: &Scratch, gateway: &Caller) {
    assert!(records(gateway, None).await.is_empty(), "a record was made");
    assert_eq!(stored_files(scratch), Vec::<PathBuf>::new(), "bytes reached the provider");
}

// ---- types ----

#[tokio::test]
async fn a_png_named_pdf_is_refused_under_strict_types() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("[host.validation]\nstrict_types = true\n").await;
    let path = scratch.write("report.pdf", PNG);
    let refused = refusal(gateway.upload(Source::Path(path), &UploadOptions::default()).await);
    assert!(matches!(*refused, Refusal::NameContradicts { .. }), "{refused}");
    assert_eq!(
        refused.to_string(),
        "report.pdf: content is image/png but the name says application/pdf (strict_types in [host.validation])"
    );
    // Text named .pdf: a PDF would start with %PDF.
    let refused = refusal(upload_bytes(&gateway, "fake.pdf", b"just some text").await);
    assert!(refused.to_string().contains("content is text/plain but the name says application/pdf"), "{refused}");
    assert_nothing_sent(&scratch, &gateway).await;

    // Names that agree with their content pass.
    assert_eq!(upload_bytes(&gateway, "photo.png", PNG).await.unwrap().mime, "image/png");
    assert_eq!(upload_bytes(&gateway, "paper.pdf", PDF).await.unwrap().mime, "application/pdf");
    assert_eq!(upload_bytes(&gateway, "table.csv", b"a,b\n1,2\n").await.unwrap().mime, "text/csv");
    assert_eq!(upload_bytes(&gateway, "no-extension", PNG).await.unwrap().mime, "image/png");
}

#[tokio::test]
async fn without_strict_types_the_sniffed_type_is_recorded() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("[host.validation]\nmax_size = 1000000\n").await;
    let up = upload_bytes(&gateway, "report.pdf", PNG).await.unwrap();
    assert_eq!(up.mime, "image/png", "the content's type, not the name's");
    assert_eq!(gateway.info(&up.id).await.unwrap().object.mime, "image/png");
    // A type the sender declares is overruled by the content too.
    let source = Source::Bytes { name: "doc".into(), content: PDF.to_vec().into(), mime: Some("image/gif".into()) };
    assert_eq!(gateway.upload(source, &UploadOptions::default()).await.unwrap().mime, "application/pdf");
}

#[tokio::test]
async fn allowed_types_refuse_other_content() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("[host.validation]\nallowed_types = [\"image/*\", \"application/pdf\"]\n").await;
    let refused = refusal(upload_bytes(&gateway, "notes.txt", b"plain words").await);
    assert!(matches!(*refused, Refusal::TypeNotAllowed { .. }), "{refused}");
    assert_eq!(
        refused.to_string(),
        "notes.txt: content is text/plain, not one of allowed_types in [host.validation] (image/*, application/pdf)"
    );
    // The name cannot smuggle it in: the content is judged.
    let refused = refusal(upload_bytes(&gateway, "notes.pdf", b"plain words").await);
    assert!(refused.to_string().contains("content is text/plain"), "{refused}");
    assert_nothing_sent(&scratch, &gateway).await;

    assert_eq!(upload_bytes(&gateway, "a.pdf", PDF).await.unwrap().mime, "application/pdf");
    assert_eq!(upload_bytes(&gateway, "b.png", PNG).await.unwrap().mime, "image/png");
}

#[tokio::test]
async fn the_most_specific_table_wins_key_by_key() {
    let scratch = Scratch::new();
    let config = r#"
[host.validation]
max_size = 1000
allowed_types = ["text/*"]

[providers.local.validation]
max_size = 20

[providers.local.validation.purpose.images]
max_size = 100000
allowed_types = ["image/*"]
"#;
    let gateway = scratch.gateway(config).await;
    let text = b"forty bytes of plain text, more or less.";
    // No purpose: the provider's max_size, the host's allowed_types.
    let refused = refusal(upload_with(&gateway, "t.txt", text, None).await);
    assert!(matches!(*refused, Refusal::TooLarge { .. }), "{refused}");
    assert_eq!(refused.to_string(), "t.txt is 40 bytes; max_size in [providers.local.validation] is 20 bytes");
    // A purpose without a table of its own: the provider's rules.
    let refused = refusal(upload_with(&gateway, "p.png", PNG, Some("other")).await);
    assert!(refused.to_string().contains("max_size in [providers.local.validation]"), "{refused}");
    // The purpose's table: a larger size, and images only.
    let refused = refusal(upload_with(&gateway, "t.txt", text, Some("images")).await);
    assert!(
        refused.to_string().contains("not one of allowed_types in [providers.local.validation.purpose.images]"),
        "{refused}"
    );
    assert_nothing_sent(&scratch, &gateway).await;

    let up = upload_with(&gateway, "p.png", PNG, Some("images")).await.unwrap();
    assert_eq!(up.mime, "image/png");
    assert_eq!(upload_with(&gateway, "s.txt", b"short", None).await.unwrap().mime, "text/plain");
}

#[tokio::test]
async fn a_dedup_hit_is_validated_again() {
    let scratch = Scratch::new();
    {
        let open = scratch.gateway("").await;
        let up = upload_bytes(&open, "report.pdf", PNG).await.unwrap();
        assert_eq!(up.mime, "application/pdf", "without rules the name's type is kept and nothing is read");
    }
    // The rules changed: the same bytes, already at the provider, are refused.
    let strict = scratch.gateway("[host.validation]\nstrict_types = true\n").await;
    let refused = refusal(upload_bytes(&strict, "report.pdf", PNG).await);
    assert!(matches!(*refused, Refusal::NameContradicts { .. }), "{refused}");
    assert_eq!(records(&strict, None).await.len(), 1, "only the first upload's record");
}

// ---- names ----

#[tokio::test]
async fn names_are_sanitised_before_they_are_recorded_and_written() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    let long = format!("{}.txt", "n".repeat(296));
    assert_eq!(long.len(), 300);
    let cases: [(&str, &[u8], String); 5] = [
        (&long, b"long", format!("{}.txt", "n".repeat(251))),
        ("../../etc/passwd", b"climb", "etc_passwd".into()),
        ("reports/q1.csv", b"sep", "reports_q1.csv".into()),
        ("a\0b.txt", b"nul", "a_b.txt".into()),
        ("invoice\u{202E}fdp.exe", b"rlo", "invoicefdp.exe".into()),
    ];
    let out = scratch.work().join("out");
    std::fs::create_dir(&out).unwrap();
    for (name, content, safe) in cases {
        let up = upload_bytes(&gateway, name, content).await.unwrap();
        assert_eq!(up.name, safe, "{name:?}");
        assert!(up.name.len() <= 255);
        assert_eq!(gateway.info(&up.id).await.unwrap().object.name, safe);
        // Downloaded into a directory: written under the safe name, inside it.
        let down = gateway.download(&up.id, Some(&out), None).await.unwrap();
        assert_eq!(down.path, out.join(&safe), "{name:?}");
        assert_eq!(std::fs::read(&down.path).unwrap(), content);
    }
    assert!(!scratch.dir.path().join("etc").exists() && !scratch.work().join("etc").exists());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 5);
}

#[tokio::test]
async fn a_destination_name_is_sanitised_too() {
    let scratch = Scratch::new();
    let root = scratch.work();
    let sandbox = Sandbox::open(std::slice::from_ref(&root), Some(&root)).unwrap();
    // Records made before names were sanitised may hold anything.
    let target = sandbox.destination(Some(&root), "../../x\u{202E}txt.exe").unwrap();
    assert_eq!(target.display, root.join("xtxt.exe"));
}

#[tokio::test]
async fn an_unsafe_rename_is_refused() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    let up = upload_bytes(&gateway, "a.txt", b"a").await.unwrap();
    for bad in ["../b.txt", "b\u{202E}.txt", "NUL.txt", "", "b\0.txt"] {
        let update = FileUpdate { name: Some(bad.into()), ..FileUpdate::default() };
        let err = gateway.update(&up.id, update).await.unwrap_err();
        assert!(
            matches!(&err, GatewayError::InvalidRequest(m) if m.contains("not a safe file name")),
            "{bad:?}: {err}"
        );
    }
    let update = FileUpdate { name: Some("b.txt".into()), ..FileUpdate::default() };
    assert_eq!(gateway.update(&up.id, update).await.unwrap().name, "b.txt");
}

// ---- malware scanning ----

/// clamd's `StreamMaxLength` here: small, so that a test can pass it cheaply.
const CLAMD_STREAM_MAX: usize = 1 << 20;

/// One clamd for the test binary: listening on a Unix socket and on a
/// loopback port, loaded with the EICAR signature only.
struct Clamd {
    socket: PathBuf,
    tcp: String,
    /// Its supervisor stops clamd and removes the directory when this
    /// process exits: the pipe to it closes then.
    _supervisor: Mutex<Child>,
}

const SUPERVISOR: &str = r#"
dir=$1; clamd=$2
"$clamd" -c "$dir/clamd.conf" >"$dir/clamd.out" 2>&1 &
read _closed
kill "$!" 2>/dev/null
wait
rm -rf "$dir"
"#;

fn clamd() -> &'static Clamd {
    static CLAMD: OnceLock<Clamd> = OnceLock::new();
    CLAMD.get_or_init(start_clamd)
}

fn start_clamd() -> Clamd {
    // Debian puts clamd in /usr/sbin, which a non-root PATH may lack.
    let program = ["clamd", "/usr/sbin/clamd"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("clamd is not installed: run scripts/test (it installs Debian's clamav-daemon)");
    let dir = tempfile::Builder::new().prefix("wharf-clamd-").tempdir().unwrap().keep();
    std::fs::create_dir(dir.join("db")).unwrap();
    std::fs::write(dir.join("db/test.hdb"), EICAR_HDB).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let socket = dir.join("clamd.sock");
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 { "User root\n" } else { "" };
    let conf = format!(
        "DatabaseDirectory {db}\nLocalSocket {socket}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nForeground true\n\
         PidFile {dir}/clamd.pid\nLogFile {dir}/clamd.log\nStreamMaxLength {CLAMD_STREAM_MAX}\n{user}",
        db = dir.join("db").display(),
        socket = socket.display(),
        dir = dir.display(),
    );
    std::fs::write(dir.join("clamd.conf"), conf).unwrap();
    let supervisor = Command::new("sh")
        .args(["-c", SUPERVISOR, "wharf-clamd-supervisor"])
        .arg(&dir)
        .arg(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting sh to supervise clamd");
    let tcp = format!("127.0.0.1:{port}");
    // Ready when both listeners answer PING; with one signature, well under a second.
    let started = Instant::now();
    while !(ping(UnixStream::connect(&socket)) && ping(std::net::TcpStream::connect(&tcp))) {
        if started.elapsed() > Duration::from_secs(60) {
            panic!(
                "clamd did not answer PING within 60 s.\nlog:\n{}\noutput:\n{}",
                std::fs::read_to_string(dir.join("clamd.log")).unwrap_or_default(),
                std::fs::read_to_string(dir.join("clamd.out")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Clamd { socket, tcp, _supervisor: Mutex::new(supervisor) }
}

/// Whether a fresh connection to clamd answers PING.
fn ping<S: std::io::Read + std::io::Write>(connection: std::io::Result<S>) -> bool {
    let Ok(mut stream) = connection else { return false };
    if stream.write_all(b"zPING\0").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut byte = [0u8];
    while !reply.ends_with(b"\0") && reply.len() < 64 && matches!(stream.read(&mut byte), Ok(1)) {
        reply.push(byte[0]);
    }
    reply == b"PONG\0"
}

fn scan_config(address: &str, extra: &str) -> String {
    format!("[host.validation]\nscan = \"clamd\"\nclamd = \"{address}\"\n{extra}")
}

#[tokio::test]
async fn an_infected_upload_is_refused_naming_the_signature() {
    let clamd = clamd();
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&scan_config(&clamd.socket.display().to_string(), "")).await;
    let path = scratch.write("eicar.com", &eicar());
    let refused = refusal(gateway.upload(Source::Path(path), &UploadOptions::default()).await);
    assert!(matches!(&*refused, Refusal::Infected { signature, .. } if signature == EICAR_SIGNATURE), "{refused}");
    assert_eq!(
        refused.to_string(),
        format!("eicar.com: malware found by clamd: {EICAR_SIGNATURE} ([host.validation] scan)")
    );
    assert_nothing_sent(&scratch, &gateway).await;

    // Clean content of several chunks passes, over the Unix socket and over TCP.
    let clean = common::pattern(3 * 256 * 1024 + 7);
    let up = gateway.upload(Source::Path(scratch.write("clean.bin", &clean)), &UploadOptions::default()).await.unwrap();
    assert_eq!(up.size, clean.len() as u64);
    let over_tcp = Scratch::new();
    let gateway = over_tcp.gateway(&scan_config(&clamd.tcp, "")).await;
    assert_eq!(upload_bytes(&gateway, "notes.txt", b"harmless").await.unwrap().mime, "text/plain");
    let refused = refusal(upload_bytes(&gateway, "eicar.txt", &eicar()).await);
    assert!(refused.to_string().contains(EICAR_SIGNATURE), "{refused}");
}

#[tokio::test]
async fn content_over_clamds_stream_limit_fails_closed_with_its_reason() {
    let clamd = clamd();
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&scan_config(&clamd.socket.display().to_string(), "")).await;
    let big = common::pattern(2 * CLAMD_STREAM_MAX);
    let path = scratch.write("big.bin", &big);
    let refused = refusal(gateway.upload(Source::Path(path), &UploadOptions::default()).await);
    assert!(matches!(*refused, Refusal::ScanFailed { .. }), "{refused}");
    // clamd's own answer, not a broken pipe.
    assert!(refused.to_string().contains("size limit exceeded"), "{refused}");
    assert_nothing_sent(&scratch, &gateway).await;
}

#[tokio::test]
async fn an_unreachable_scanner_fails_closed_unless_scanning_is_optional() {
    let scratch = Scratch::new();
    let missing = scratch.dir.path().join("no-clamd.sock");
    let gateway = scratch.gateway(&scan_config(&missing.display().to_string(), "")).await;
    let refused = refusal(upload_bytes(&gateway, "a.txt", b"unscanned").await);
    assert!(matches!(*refused, Refusal::ScanFailed { .. }), "{refused}");
    let message = refused.to_string();
    assert!(message.starts_with("a.txt: not scanned for malware: clamd at "), "{message}");
    assert!(message.contains("cannot connect") && message.contains("scan_required = true"), "{message}");
    assert_nothing_sent(&scratch, &gateway).await;

    let lenient = Scratch::new();
    let gateway = lenient.gateway(&scan_config(&missing.display().to_string(), "scan_required = false\n")).await;
    let up = upload_bytes(&gateway, "a.txt", b"unscanned").await.unwrap();
    assert_eq!(records(&gateway, None).await.len(), 1);
    assert_eq!(up.mime, "text/plain");
}

// ---- HTTP ----

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).expect("a JSON body")
}

#[tokio::test(flavor = "multi_thread")]
async fn http_refusals_say_which_rule() {
    let scratch = Scratch::new();
    let config = "[server]\nauth = \"none\"\n\n[host.validation]\nstrict_types = true\nmax_size = 100\n";
    let server = tokio::task::block_in_place(|| serve::ServeProcess::start(&scratch, config));
    let http = serve::client();
    let post = |name: &str, body: Vec<u8>| {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/files", server.base_url), [("name", name)]).unwrap();
        http.post(url).body(body).send()
    };
    let response = post("report.pdf", PNG.to_vec()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: serde_json::Value = json(response).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("the name says application/pdf (strict_types in [host.validation])"), "{problem}");

    let response = post("big.txt", vec![b'a'; 101]).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let problem: serde_json::Value = json(response).await;
    assert!(problem["detail"].as_str().unwrap().contains("max_size in [host.validation] is 100 bytes"), "{problem}");
    assert_eq!(stored_files(&scratch), Vec::<PathBuf>::new());

    let response = post("photo.png", PNG.to_vec()).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let up: serde_json::Value = json(response).await;
    assert_eq!(up["files"][0]["mime"], "image/png", "{up}");
}
