//! Being a good Graph citizen: which failures are retried, how long to wait, and when to
//! stop (retry budget, circuit breaker, the caller's deadline).
//!
//! Written here rather than with a generic retry crate because the decisions are Graph's:
//! `Retry-After` in three formats, per-item retries inside `$batch`, and failing fast when
//! the wait would outlast the caller's deadline.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::Idempotency;
use super::error::GraphError;

/// Settings of the retry policy: `graph.retry` of the configuration.
pub use crate::config::RetryConfig as RetrySettings;

/// How long a sliding window of the retry budget is.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// Whether a failed attempt may be tried again, and after how long.
pub fn retry_delay(
    error: &GraphError,
    attempt: u32,
    settings: &RetrySettings,
    idempotency: Idempotency,
) -> Option<Duration> {
    if idempotency == Idempotency::Once {
        // Only answers that say Graph did not act (throttled, unavailable) and
        // connections that never opened; a 504, a timeout or a reset may hide a done deed.
        return match error {
            GraphError::Api {
                status: 429 | 503,
                retry_after,
                ..
            } => Some(match retry_after {
                Some(after) => *after,
                None => backoff(attempt, settings.base_backoff),
            }),
            GraphError::Unreachable(_) => Some(backoff(attempt, settings.base_backoff)),
            _ => None,
        };
    }
    match error {
        GraphError::Api {
            status: 429 | 503 | 504,
            retry_after,
            ..
        } => Some(match retry_after {
            Some(after) => *after,
            None => backoff(attempt, settings.base_backoff),
        }),
        // No answer: the connection was refused, or reset before Graph answered. Only
        // idempotent calls come through here, so sending again cannot do anything twice.
        GraphError::Unreachable(_) | GraphError::Interrupted(_) => {
            Some(backoff(attempt, settings.base_backoff))
        }
        _ => None,
    }
}

/// Exponential backoff with full jitter: uniform in `[0, base × 2^attempt]`.
fn backoff(attempt: u32, base: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(10));
    ceiling.mul_f64(fastrand::f64())
}

/// Retries ≤ ratio × requests + floor over a sliding window: when Graph is down, the
/// gateway adds at most a fifth to the load instead of multiplying it.
pub struct RetryBudget {
    ratio: f64,
    floor: u32,
    events: Mutex<VecDeque<(Instant, bool)>>,
}

impl RetryBudget {
    pub fn new(ratio: f64, floor: u32) -> Self {
        Self {
            ratio,
            floor,
            events: Mutex::new(VecDeque::new()),
        }
    }

    pub fn record_request(&self) {
        self.push(false);
    }

    /// Takes a retry from the budget, or says there is none left.
    pub fn try_retry(&self) -> bool {
        let mut events = self.events.lock().expect("budget lock");
        let now = Instant::now();
        while events
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > BUDGET_WINDOW)
        {
            events.pop_front();
        }
        let retries = events.iter().filter(|(_, retry)| *retry).count() as f64;
        let requests = events.len() as f64 - retries;
        if retries < requests * self.ratio + f64::from(self.floor) {
            events.push_back((now, true));
            true
        } else {
            false
        }
    }

    fn push(&self, retry: bool) {
        let mut events = self.events.lock().expect("budget lock");
        let now = Instant::now();
        while events
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > BUDGET_WINDOW)
        {
            events.pop_front();
        }
        events.push_back((now, retry));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// For the `graph_breaker_state` gauge, which `Breaker::record` keeps current.
    pub fn as_number(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// A circuit breaker for the Graph host: after `failures` consecutive failures it fails
/// every call fast for `open_for`, then lets a single probe decide.
pub struct Breaker {
    failures: u32,
    open_for: Duration,
    state: Mutex<Inner>,
}

struct Inner {
    consecutive: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Self {
            failures: failures.max(1),
            open_for,
            state: Mutex::new(Inner {
                consecutive: 0,
                opened_at: None,
                probing: false,
            }),
        }
    }

    pub fn state(&self) -> BreakerState {
        let inner = self.state.lock().expect("breaker lock");
        match inner.opened_at {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() < self.open_for => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// `Err(wait)` while open; `Ok(is_probe)` when a call may go (`true` for the one probe
    /// let through when half open).
    pub fn admit(&self) -> Result<bool, Duration> {
        let mut inner = self.state.lock().expect("breaker lock");
        match inner.opened_at {
            None => Ok(false),
            Some(at) if at.elapsed() < self.open_for => Err(self.open_for - at.elapsed()),
            Some(_) if inner.probing => Err(Duration::from_secs(1)),
            Some(_) => {
                inner.probing = true;
                Ok(true)
            }
        }
    }

    /// Lets another call probe when the probe ended without an outcome.
    pub fn release_probe(&self) {
        self.state.lock().expect("breaker lock").probing = false;
    }

    pub fn record(&self, failed: bool) {
        let mut inner = self.state.lock().expect("breaker lock");
        if failed {
            inner.consecutive += 1;
            if inner.probing || inner.consecutive >= self.failures {
                if inner.opened_at.is_none() || inner.probing {
                    tracing::warn!(failures = inner.consecutive, "Graph circuit breaker opened");
                }
                inner.opened_at = Some(Instant::now());
            }
        } else {
            if inner.opened_at.is_some() {
                tracing::info!("Graph circuit breaker closed");
            }
            inner.consecutive = 0;
            inner.opened_at = None;
        }
        inner.probing = false;
        let state = match inner.opened_at {
            None => BreakerState::Closed,
            Some(_) => BreakerState::Open,
        };
        metrics::gauge!("graph_breaker_state").set(state.as_number());
    }
}

/// Concurrency limits: Outlook serves at most a few requests per mailbox at once (4 per
/// app and mailbox), and the gateway as a whole keeps a ceiling too, so one slow or hung
/// mailbox holds at most its own few slots and never the whole gateway.
pub struct Bulkheads {
    per_mailbox: usize,
    mailboxes: moka::future::Cache<String, std::sync::Arc<tokio::sync::Semaphore>>,
    app: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Permits held for one Graph call.
pub struct Permits {
    _mailbox: Option<tokio::sync::OwnedSemaphorePermit>,
    _app: tokio::sync::OwnedSemaphorePermit,
}

impl Bulkheads {
    pub fn new(per_mailbox: usize, per_app: usize) -> Self {
        Self {
            per_mailbox: per_mailbox.max(1),
            mailboxes: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            app: std::sync::Arc::new(tokio::sync::Semaphore::new(per_app.max(1))),
        }
    }

    /// Waits for the slots a call to `url` needs, but not past `deadline`.
    pub async fn enter(&self, url: &str, deadline: Instant) -> Result<Permits, GraphError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let busy = || GraphError::Saturated;
        let mailbox = match outlook_mailbox(url) {
            Some(mailbox) => {
                let semaphore = self
                    .mailboxes
                    .get_with(mailbox, async {
                        std::sync::Arc::new(tokio::sync::Semaphore::new(self.per_mailbox))
                    })
                    .await;
                Some(
                    tokio::time::timeout(wait, semaphore.acquire_owned())
                        .await
                        .map_err(|_| busy())?
                        .map_err(|_| busy())?,
                )
            }
            None => None,
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        let app = tokio::time::timeout(wait, self.app.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        Ok(Permits {
            _mailbox: mailbox,
            _app: app,
        })
    }
}

/// The mailbox an Outlook call addresses (`/users/{id}/messages…` → `id`), lower-case;
/// `None` for directory and other non-Outlook calls, which Outlook's limit does not cover.
pub fn outlook_mailbox(url: &str) -> Option<String> {
    const OUTLOOK: &[&str] = &[
        "messages",
        "mailFolders",
        "events",
        "calendar",
        "calendars",
        "calendarView",
        "calendarGroups",
        "contacts",
        "contactFolders",
        "mailboxSettings",
        "sendMail",
    ];
    let path = url.split('?').next()?;
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    if segments.next()? != "users" {
        return None;
    }
    let mailbox = segments.next()?;
    let area = segments.next()?;
    OUTLOOK
        .contains(&area)
        .then(|| mailbox.to_ascii_lowercase())
}

/// Whether an outcome counts against the Graph host's health (throttling does not:
/// Graph is answering, just asking us to slow down).
pub fn is_host_failure(error: &GraphError) -> bool {
    matches!(
        error,
        GraphError::Api {
            status: 500..=599,
            ..
        } | GraphError::Timeout
            | GraphError::Unreachable(_)
            | GraphError::Interrupted(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, retry_after: Option<Duration>) -> GraphError {
        GraphError::Api {
            status,
            code: String::new(),
            message: String::new(),
            request_id: None,
            retry_after,
        }
    }

    #[test]
    fn throttling_and_unavailability_are_retried_after_graphs_own_delay() {
        const I: Idempotency = Idempotency::Idempotent;
        let s = RetrySettings::default();
        assert_eq!(
            retry_delay(&api(429, Some(Duration::from_millis(2128))), 0, &s, I),
            Some(Duration::from_millis(2128))
        );
        assert!(retry_delay(&api(503, None), 0, &s, I).unwrap() <= s.base_backoff);
        assert!(retry_delay(&api(504, None), 2, &s, I).unwrap() <= s.base_backoff * 4);
        for status in [400, 401, 403, 404, 409, 500, 502] {
            assert_eq!(retry_delay(&api(status, None), 0, &s, I), None, "{status}");
        }
        assert_eq!(retry_delay(&GraphError::Timeout, 0, &s, I), None);
        assert_eq!(
            retry_delay(&GraphError::BadResponse("x".into()), 0, &s, I),
            None
        );
    }

    #[test]
    fn a_call_that_may_act_once_is_retried_only_when_graph_certainly_did_not_act() {
        let s = RetrySettings::default();
        let once = |e: &GraphError| retry_delay(e, 0, &s, Idempotency::Once);
        assert!(once(&api(429, None)).is_some());
        assert!(once(&api(503, None)).is_some());
        assert!(once(&GraphError::Unreachable("refused".into())).is_some());
        assert_eq!(once(&api(504, None)), None);
        assert_eq!(once(&GraphError::Timeout), None);
        assert_eq!(once(&GraphError::Interrupted("reset".into())), None);
    }

    #[test]
    fn the_budget_allows_a_fifth_of_the_traffic_plus_a_floor() {
        let budget = RetryBudget::new(0.2, 2);
        for _ in 0..50 {
            budget.record_request();
        }
        let granted = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 12);
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_a_probe_closes_it() {
        let breaker = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            breaker.record(true);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.admit().is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(breaker.admit(), Ok(true));
        assert!(breaker.admit().is_err(), "only one probe at a time");
        breaker.record(false);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.admit(), Ok(false));
    }

    #[test]
    fn only_outlook_calls_are_counted_per_mailbox() {
        assert_eq!(
            outlook_mailbox("/users/Ann@Contoso.com/messages?$top=5"),
            Some("ann@contoso.com".into())
        );
        assert_eq!(
            outlook_mailbox("/users/abc/calendarView?startDateTime=x"),
            Some("abc".into())
        );
        assert_eq!(outlook_mailbox("/users/abc/manager"), None);
        assert_eq!(outlook_mailbox("/users?$top=5"), None);
        assert_eq!(outlook_mailbox("/groups/g/members"), None);
    }

    #[tokio::test]
    async fn a_full_mailbox_makes_its_callers_wait_but_not_others() {
        let bulkheads = Bulkheads::new(2, 10);
        let soon = || Instant::now() + Duration::from_millis(50);
        let a1 = bulkheads.enter("/users/a/messages", soon()).await.unwrap();
        let a2 = bulkheads.enter("/users/a/messages", soon()).await.unwrap();
        assert!(
            bulkheads.enter("/users/a/events", soon()).await.is_err(),
            "a third call to mailbox a"
        );
        assert!(
            bulkheads.enter("/users/b/messages", soon()).await.is_ok(),
            "mailbox b is free"
        );
        assert!(
            bulkheads.enter("/users/a/manager", soon()).await.is_ok(),
            "directory calls are not Outlook's"
        );
        drop((a1, a2));
        assert!(bulkheads.enter("/users/a/messages", soon()).await.is_ok());
    }

    #[test]
    fn a_probe_that_ends_without_an_outcome_lets_the_next_call_probe() {
        let breaker = Breaker::new(1, Duration::from_millis(20));
        breaker.record(true);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(breaker.admit(), Ok(true));
        breaker.release_probe();
        assert_eq!(breaker.admit(), Ok(true), "stuck half-open");
    }

    #[test]
    fn a_failed_probe_opens_the_breaker_again() {
        let breaker = Breaker::new(1, Duration::from_millis(20));
        breaker.record(true);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(breaker.admit(), Ok(true));
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Open);
    }
}
