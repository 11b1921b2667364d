//! Adapters that misbehave get a clear error within their limits, and the
//! host goes on serving.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Scratch, hostile_plugin};
use wharf::gateway::{Caller, GatewayError, Source, UploadOptions};
use wharf::runtime::{CallError, ErrorKind};

fn hostile(name: &str, behaviour: &str, extra: &str) -> String {
    format!(
        "\n[providers.{name}]\nplugin = \"{}\"\nconfig = {{ behaviour = \"{behaviour}\" {extra} }}\n",
        hostile_plugin().display()
    )
}

async fn upload_to(gateway: &Caller, scratch: &Scratch, provider: &str) -> Result<(), GatewayError> {
    let options = UploadOptions { provider: Some(provider.into()), ..Default::default() };
    let source = Source::Path(scratch.write("payload.txt", b"payload"));
    gateway.upload(source, &options).await.map(drop)
}

/// After a misbehaving call, the host still serves a normal one.
async fn still_serves(gateway: &Caller, scratch: &Scratch) {
    let up = gateway
        .upload(Source::Path(scratch.write("after.txt", b"still here")), &UploadOptions::default())
        .await
        .expect("the host serves the next call");
    gateway.download(&up.id, Some(&scratch.work().join("after-copy.txt")), None).await.unwrap();
    assert_eq!(std::fs::read(scratch.work().join("after-copy.txt")).unwrap(), b"still here");
}

#[tokio::test]
async fn endless_loop_stops_at_the_cpu_limit() {
    let scratch = Scratch::new();
    let config = hostile("spin", "spin", "") + "limits = { cpu_ms = 300, timeout_secs = 30 }\n";
    let gateway = scratch.gateway(&config).await;
    let started = Instant::now();
    let err = upload_to(&gateway, &scratch, "spin").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, GatewayError::Call(CallError::CpuLimit { provider, limit_ms: 300, .. }) if provider == "spin"),
        "{err}"
    );
    assert!(err.to_string().contains("CPU limit of 300 ms"), "{err}");
    assert!(elapsed < Duration::from_secs(20), "stopped by the CPU limit, not the timeout ({elapsed:?})");
    assert!(common::records(&gateway, Some("spin")).await.is_empty(), "a failed upload leaves no record");
    still_serves(&gateway, &scratch).await;
}

#[tokio::test]
async fn unbounded_allocation_stops_at_the_memory_limit() {
    let scratch = Scratch::new();
    let config = hostile("hog", "hog", "") + "limits = { memory_mib = 32 }\n";
    let gateway = scratch.gateway(&config).await;
    let err = upload_to(&gateway, &scratch, "hog").await.unwrap_err();
    assert!(matches!(&err, GatewayError::Call(CallError::MemoryLimit { .. })), "{err}");
    assert!(err.to_string().contains("adapter hog exceeded its memory limit of 32 MiB"), "{err}");
    still_serves(&gateway, &scratch).await;
}

#[tokio::test]
async fn request_outside_the_allowlist_is_refused_unsent() {
    let scratch = Scratch::new();
    let forbidden = TcpListener::bind("127.0.0.1:0").unwrap();
    forbidden.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}/steal", forbidden.local_addr().unwrap().port());
    let config =
        hostile("escape", "escape", &format!(", url = \"{url}\"")) + "allowed_hosts = [\"https://api.example.com\"]\n";
    let gateway = scratch.gateway(&config).await;
    let err = upload_to(&gateway, &scratch, "escape").await.unwrap_err();
    match &err {
        GatewayError::Call(CallError::Provider { provider, error, .. }) => {
            assert_eq!(provider, "escape");
            assert!(matches!(error.kind, ErrorKind::Forbidden), "{err}");
            assert!(error.message.contains("may not reach http://127.0.0.1"), "{err}");
            assert!(error.message.contains("https://api.example.com:443"), "{err}");
        }
        other => panic!("expected a forbidden provider error, got: {other}"),
    }
    assert!(forbidden.accept().is_err(), "no connection reached the forbidden host");
    still_serves(&gateway, &scratch).await;
}

#[tokio::test]
async fn a_host_call_that_never_returns_stops_at_the_wall_clock_limit() {
    let scratch = Scratch::new();
    // Accepts connections (the kernel's backlog) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = hostile("stall", "stall", &format!(", url = \"http://127.0.0.1:{port}/\""))
        + &format!("allowed_hosts = [\"http://127.0.0.1:{port}\"]\nlimits = {{ timeout_secs = 1 }}\n");
    let gateway = scratch.gateway(&config).await;
    let started = Instant::now();
    let err = upload_to(&gateway, &scratch, "stall").await.unwrap_err();
    assert!(matches!(&err, GatewayError::Call(CallError::Timeout { limit_secs: 1, .. })), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    drop(silent);
    still_serves(&gateway, &scratch).await;
}

/// More calls at once than the instance pool has slots (128): the extra ones
/// wait for a slot, so every call ends at its own wall-clock limit and none
/// is refused for want of an instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_instance_pool_wait_for_a_slot() {
    let scratch = Scratch::new();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = hostile("stall", "stall", &format!(", url = \"http://127.0.0.1:{port}/\""))
        + &format!("allowed_hosts = [\"http://127.0.0.1:{port}\"]\nlimits = {{ timeout_secs = 1 }}\n");
    let gateway = scratch.open_gateway(&config).await;
    let calls = (0..140).map(|i| {
        let caller = gateway.host_caller();
        tokio::spawn(async move {
            // Distinct bytes: uploads of the same content would take turns.
            let source =
                Source::Bytes { name: format!("p{i}.txt"), content: format!("payload {i}").into(), mime: None };
            let options = UploadOptions { provider: Some("stall".into()), ..Default::default() };
            caller.upload(source, &options).await
        })
    });
    for outcome in futures::future::join_all(calls).await {
        let err = outcome.unwrap().unwrap_err();
        assert!(matches!(&err, GatewayError::Call(CallError::Timeout { limit_secs: 1, .. })), "{err}");
    }
    drop(silent);
}
