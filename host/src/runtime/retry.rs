//! The host's one retry policy for every adapter: rate-limited and
//! unavailable failures are retried with exponential backoff and jitter,
//! honouring the provider's `retry-after`; nothing else is retried.

use std::future::Future;
use std::time::Duration;

use super::{CallError, ErrorKind};
use crate::config::RetryPolicy;

/// How long to wait before retry number `retry` (1-based) of `error`, or
/// `None` when the error is final.
pub fn wait_before(policy: &RetryPolicy, retry: u32, error: &CallError) -> Option<Duration> {
    if retry > policy.max_retries {
        return None;
    }
    let asked = match error.kind()? {
        ErrorKind::RateLimited(asked) => asked.map(Duration::from_millis),
        ErrorKind::Unavailable => None,
        _ => return None,
    };
    if let Some(asked) = asked.filter(|a| *a <= policy.max_retry_after) {
        return Some(asked);
    }
    backoff(policy, retry)
}

/// Exponential backoff with jitter before retry number `retry` (1-based), or
/// `None` when the retries have run out.
pub fn backoff(policy: &RetryPolicy, retry: u32) -> Option<Duration> {
    if retry > policy.max_retries {
        return None;
    }
    let exponential = policy.base_delay.saturating_mul(1 << (retry - 1).min(16)).min(policy.max_delay);
    // Jitter in [half, full] keeps clients that failed together from retrying together.
    let half = exponential / 2;
    Some(half + half.mul_f64(rand::random::<f64>()))
}

/// Runs `attempt` until it succeeds, fails for good, or the retries run out.
/// Every retry is logged with the provider, operation, attempt and wait.
pub async fn retrying<R, Fut>(
    policy: &RetryPolicy,
    provider: &str,
    operation: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<R, CallError>
where
    Fut: Future<Output = Result<R, CallError>>,
{
    let mut retries = 0;
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        retries += 1;
        let Some(wait) = wait_before(policy, retries, &error) else {
            return Err(error);
        };
        let kind = error.kind().map_or("other", |kind| kind.label());
        metrics::counter!("wharf_retries_total", "provider" => provider.to_string(), "kind" => kind).increment(1);
        tracing::warn!(
            provider,
            operation,
            attempt = retries,
            wait_ms = wait.as_millis() as u64,
            "retrying after: {error}"
        );
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ProviderError;

    fn failure(kind: ErrorKind) -> CallError {
        CallError::Provider {
            provider: "p".into(),
            operation: "upload",
            error: ProviderError { kind, status: None, code: None, message: "m".into() },
        }
    }

    #[test]
    fn honours_retry_after_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let asked = failure(ErrorKind::RateLimited(Some(1_500)));
        assert_eq!(wait_before(&policy, 1, &asked), Some(Duration::from_millis(1_500)));
        // Longer than the cap: exponential backoff instead (first step: 250–500 ms).
        let too_long = failure(ErrorKind::RateLimited(Some(3_600_000)));
        let wait = wait_before(&policy, 1, &too_long).unwrap();
        assert!(wait >= Duration::from_millis(250) && wait <= Duration::from_millis(500), "{wait:?}");
    }

    #[test]
    fn backs_off_exponentially_up_to_the_maximum() {
        let policy = RetryPolicy { max_retries: 10, ..RetryPolicy::default() };
        let unavailable = failure(ErrorKind::Unavailable);
        let third = wait_before(&policy, 3, &unavailable).unwrap();
        assert!(third >= Duration::from_secs(1) && third <= Duration::from_secs(2), "{third:?}");
        let tenth = wait_before(&policy, 10, &unavailable).unwrap();
        assert!(tenth <= policy.max_delay, "{tenth:?}");
        assert_eq!(wait_before(&policy, 11, &unavailable), None, "retries run out");
    }

    #[test]
    fn final_failures_are_not_retried() {
        let policy = RetryPolicy::default();
        for kind in [
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::QuotaExceeded,
            ErrorKind::InvalidRequest,
            ErrorKind::TooLarge,
            ErrorKind::NotFound,
        ] {
            assert_eq!(wait_before(&policy, 1, &failure(kind)), None);
        }
        let trap = CallError::Timeout { provider: "p".into(), operation: "upload", limit_secs: 1 };
        assert_eq!(wait_before(&policy, 1, &trap), None);
    }
}
