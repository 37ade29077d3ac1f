//! Fault injection: rules that make chosen requests fail the way Graph, Entra or the network
//! in front of them fail (429, 503, 504, slow answers, hangs, dropped connections, broken
//! bodies), for the gateway's resilience tests.
//!
//! This module holds the public rule types and the engine that decides, per request, which
//! rule fires. Rendering the answers lives with each surface: `graph::faults` (direct calls
//! and `$batch` items), `entra::faults` (token endpoint, discovery), and `net` (connection
//! resets and hangs).
//!
//! Decisions are deterministic: a rule's `nth` schedule counts the requests it matched, and a
//! rule's `rate` draws from a PRNG seeded from `EmulatorConfig::seed` and the rule id, so the
//! same sequence of requests against the same seed faults the same requests.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock;

/// How long a `Hang` fault (or a latency fault) may hold a request before the emulator gives
/// up and drops the connection, so a forgotten hang cannot keep a task alive forever.
pub(crate) const HANG_CAP: Duration = Duration::from_secs(10 * 60);

/// One fault rule: which requests it matches, how often it fires, and what it does.
///
/// In JSON (`POST /_emulator/faults`) every field but `fault` may be left out:
///
/// ```json
/// {"route": "GET /users/{id}/manager", "mailbox": "tamsin.greaves@kestrelridge.example",
///  "nth": [1, 3], "fault": {"kind": "throttle", "retry_after": 2.128}}
/// ```
///
/// Rules are checked in id order. Every matching `Latency` rule that fires adds its delay;
/// the first other rule that fires decides the answer, and later rules do not see that
/// request (their counters do not move).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Which requests: a route template as in the `Stats` keys (`"GET /users/{id}/manager"`,
    /// `"POST /$batch"`, `"POST /{tenant}/oauth2/v2.0/token"`), or a prefix of the request
    /// path ending in `*` (`"/v1.0/users/*"`, optionally after a method: `"GET /v1.0/groups/*"`;
    /// batch items match as `/v1.0/` + their relative url). `None`: every Graph request
    /// (`/v1.0/...`, `$batch` envelopes included), no Entra request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only requests addressing this user / mailbox, by object id or UPN (case-insensitive):
    /// the `{id}` of `/users/{id}/...`, or the signed-in user of `/me/...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// Probability (0.0–1.0) that a matching request is faulted, drawn from a PRNG seeded
    /// from `EmulatorConfig::seed` and the rule id (reproducible). Exclusive with `nth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Fault exactly the n-th matching requests (1-based), e.g. `[1, 3]`. Exclusive with
    /// `rate`. Neither `rate` nor `nth`: every matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<Vec<u64>>,
    /// Stop after this many faults (`None`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// What happens to a faulted request.
    pub fault: Fault,
    /// Whether items inside `$batch` envelopes are matched too. Default: `true` for
    /// `Throttle`, `Unavailable` and `GatewayTimeout` (unless `route` is `"POST /$batch"`),
    /// `false` for the other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_batch: Option<bool>,
}

/// What a fault does. JSON: an object tagged by `kind` (snake case), e.g.
/// `{"kind": "throttle", "retry_after": 3}`, `{"kind": "latency", "ms": 300}`,
/// `{"kind": "reset"}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// 429 `TooManyRequests` with Graph's throttling body; `Retry-After` as given (absent
    /// when `None`, as some Graph services do). On the token endpoint: 429 with a plain
    /// `Too Many Requests` body, as Entra answers client-credentials throttling.
    Throttle {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<RetryAfter>,
    },
    /// 503 `serviceNotAvailable`; `Retry-After` as given. On Entra routes: 503
    /// `temporarily_unavailable` AADSTS90033.
    Unavailable {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<RetryAfter>,
    },
    /// 504 with Graph's `UnknownError` body (empty message), as Graph answers when a
    /// workload times out; `Retry-After` only if given. On Entra routes: 504
    /// `temporarily_unavailable` AADSTS90033.
    GatewayTimeout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<RetryAfter>,
    },
    /// Waits `ms` plus a uniformly drawn 0..=`jitter_ms`, then answers normally. Delays
    /// add up across rules; they count against the mailbox concurrency limit while they run.
    Latency {
        ms: u64,
        #[serde(default)]
        jitter_ms: u64,
    },
    /// Never answers: the connection stays open and silent until the client gives up (the
    /// server then drops the request, and any mailbox concurrency slot it held), or at the
    /// latest until 10 minutes pass and the emulator drops the connection.
    Hang,
    /// Drops the TCP connection without an HTTP answer (an abortive close: the client sees
    /// a connection reset). Served by `Emulator::spawn`/`serve`, the connection's stream is
    /// killed (RST); a router embedded in another server unwinds its connection task instead
    /// (`resume_unwind`, no panic message), which also drops the connection unless that server
    /// catches panics.
    Reset,
    /// 200 with a JSON content type and a body that is not JSON: `{"value": [`.
    MalformedJson,
    /// The real answer (status and headers) with its body cut in half; `Content-Length`
    /// matches the cut body, so the HTTP message is complete but the JSON is not.
    TruncatedJson,
    /// 502 with an HTML page, as a proxy in front of Graph answers.
    HtmlError,
}

/// A `Retry-After` value. JSON: `3` (integer seconds), `2.128` (fractional seconds, as in
/// Graph's documented sample), `{"http_date_in": 30}` (an RFC 7231 HTTP date 30 s after the
/// fault), or a string sent verbatim (e.g. a fixed date, or garbage to test parsers).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum RetryAfter {
    Seconds(u64),
    Fractional(f64),
    HttpDate { http_date_in: u64 },
    Raw(String),
}

impl RetryAfter {
    /// The header value, computed now (an HTTP date is relative to the fault).
    pub fn header_value(&self) -> String {
        match self {
            RetryAfter::Seconds(s) => s.to_string(),
            RetryAfter::Fractional(f) => f.to_string(),
            RetryAfter::HttpDate { http_date_in } => {
                let seconds = i64::try_from(*http_date_in).unwrap_or(i64::MAX / 2);
                clock::http_date(clock::now_unix().saturating_add(seconds))
            }
            RetryAfter::Raw(s) => s.clone(),
        }
    }
}

impl FaultRule {
    /// A rule that faults every Graph request with `fault`; narrow it with the builders.
    pub fn new(fault: Fault) -> FaultRule {
        FaultRule {
            route: None,
            mailbox: None,
            rate: None,
            nth: None,
            limit: None,
            fault,
            in_batch: None,
        }
    }

    /// Only this route template or `*`-terminated path prefix.
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Only requests addressing this user (id or UPN).
    pub fn mailbox(mut self, mailbox: impl Into<String>) -> Self {
        self.mailbox = Some(mailbox.into());
        self
    }

    /// Fault each matching request with this probability.
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Fault the n-th matching requests (1-based).
    pub fn nth(mut self, nth: impl IntoIterator<Item = u64>) -> Self {
        self.nth = Some(nth.into_iter().collect());
        self
    }

    /// Stop after this many faults.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Match `$batch` items too (or not).
    pub fn in_batch(mut self, in_batch: bool) -> Self {
        self.in_batch = Some(in_batch);
        self
    }

    /// Checks what serde cannot: `rate` within 0–1 and not together with `nth`, `nth`
    /// 1-based, a `*` only at the end of `route`, a finite non-negative fractional
    /// `Retry-After`.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate.is_some() && self.nth.is_some() {
            return Err("`rate` and `nth` are exclusive".into());
        }
        if let Some(rate) = self.rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err(format!("`rate` must be within 0.0 and 1.0, not {rate}"));
        }
        if self.nth.as_ref().is_some_and(|n| n.contains(&0)) {
            return Err("`nth` counts from 1".into());
        }
        if let Some(route) = &self.route {
            let (_, path) = split_method(route);
            if !path.starts_with('/') {
                return Err(format!(
                    "`route` must be \"METHOD /template\", \"/template\" or \"/path/prefix*\", not {route:?}"
                ));
            }
            if path.trim_end_matches('*').contains('*') {
                return Err(format!("`route` may only end in `*`: {route:?}"));
            }
        }
        if let Some(mailbox) = &self.mailbox
            && mailbox.trim().is_empty()
        {
            return Err("`mailbox` is empty".into());
        }
        if let Fault::Throttle {
            retry_after: Some(RetryAfter::Fractional(f)),
        }
        | Fault::Unavailable {
            retry_after: Some(RetryAfter::Fractional(f)),
        }
        | Fault::GatewayTimeout {
            retry_after: Some(RetryAfter::Fractional(f)),
        } = &self.fault
            && !(f.is_finite() && *f >= 0.0)
        {
            return Err(format!(
                "`retry_after` must be a non-negative number, not {f}"
            ));
        }
        Ok(())
    }

    /// Whether `$batch` items are matched (see `in_batch`).
    fn applies_in_batch(&self) -> bool {
        self.in_batch.unwrap_or_else(|| {
            matches!(
                self.fault,
                Fault::Throttle { .. } | Fault::Unavailable { .. } | Fault::GatewayTimeout { .. }
            ) && !self
                .route
                .as_deref()
                .is_some_and(|r| r.trim().eq_ignore_ascii_case("POST /$batch"))
        })
    }
}

/// A rule as `GET /_emulator/faults` lists it: its id, the rule, how many requests it
/// matched and how many of them it faulted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FaultRuleStatus {
    pub id: u64,
    /// Requests (and batch items) that matched `route`, `mailbox` and `in_batch`.
    pub matched: u64,
    /// Faults injected (at most `limit`).
    pub hits: u64,
    pub rule: FaultRule,
}

/// `"GET /users/*"` → `(Some("GET"), "/users/*")`; `"/users/*"` → `(None, "/users/*")`.
fn split_method(route: &str) -> (Option<&str>, &str) {
    let route = route.trim();
    match route.split_once(' ') {
        Some((method, rest)) if !method.is_empty() && !method.starts_with('/') => {
            (Some(method), rest.trim_start())
        }
        _ => (None, route),
    }
}

/// What the engine knows about one request (or batch item).
pub(crate) struct Target<'a> {
    pub method: &'a str,
    /// The route template: `/users/{id}` for Graph (below `/v1.0`), `(unmatched)` for a path
    /// Graph does not know, `/{tenant}/oauth2/v2.0/token` for Entra.
    pub template: &'a str,
    /// The percent-decoded request path, `/v1.0/...` for Graph requests and batch items.
    pub path: &'a str,
    /// A Graph request (rules without `route` match only these).
    pub graph: bool,
    pub in_batch: bool,
    /// The addressed user, canonical (`canonical_mailbox`), if any.
    pub mailbox: Option<&'a str>,
}

/// What the rules decided for one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    /// Sum of the delays of the `Latency` rules that fired.
    pub latency: Duration,
    /// The first other fault that fired.
    pub fault: Option<Fault>,
    /// How many rules fired (for `Stats::faults_injected`).
    pub fired: u64,
}

struct ActiveRule {
    id: u64,
    rule: FaultRule,
    /// The rule's `mailbox`, resolved to the user's object id when it names a known user.
    mailbox: Option<String>,
    matched: u64,
    hits: u64,
    rng: u64,
}

impl ActiveRule {
    fn matches(&self, target: &Target<'_>) -> bool {
        if target.in_batch && !self.rule.applies_in_batch() {
            return false;
        }
        let route = match self.rule.route.as_deref() {
            None => target.graph,
            Some(pattern) => route_matches(pattern, target),
        };
        route
            && self
                .mailbox
                .as_deref()
                .is_none_or(|m| target.mailbox == Some(m))
    }
}

fn route_matches(pattern: &str, target: &Target<'_>) -> bool {
    let (method, rest) = split_method(pattern);
    if method.is_some_and(|m| m != "*" && !m.eq_ignore_ascii_case(target.method)) {
        return false;
    }
    match rest.strip_suffix('*') {
        Some(prefix) => target
            .path
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
        None => rest.eq_ignore_ascii_case(target.template),
    }
}

/// The rule set of one emulator.
pub(crate) struct FaultSet {
    seed: u64,
    state: Mutex<FaultState>,
}

struct FaultState {
    next_id: u64,
    rules: Vec<ActiveRule>,
}

impl FaultSet {
    pub(crate) fn new(seed: u64) -> FaultSet {
        FaultSet {
            seed,
            state: Mutex::new(FaultState {
                next_id: 1,
                rules: Vec::new(),
            }),
        }
    }

    /// Adds a validated rule; `mailbox` is its canonical form. Ids are never reused.
    pub(crate) fn add(&self, rule: FaultRule, mailbox: Option<String>) -> u64 {
        let mut state = lock(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        // Mix the id in so two rules of one emulator draw different sequences.
        let mut rng = self.seed ^ id.wrapping_mul(0xA24B_AED4_963E_E407);
        splitmix64(&mut rng);
        state.rules.push(ActiveRule {
            id,
            rule,
            mailbox,
            matched: 0,
            hits: 0,
            rng,
        });
        id
    }

    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut state = lock(&self.state);
        let before = state.rules.len();
        state.rules.retain(|r| r.id != id);
        state.rules.len() != before
    }

    pub(crate) fn clear(&self) {
        lock(&self.state).rules.clear();
    }

    pub(crate) fn list(&self) -> Vec<FaultRuleStatus> {
        lock(&self.state)
            .rules
            .iter()
            .map(|r| FaultRuleStatus {
                id: r.id,
                matched: r.matched,
                hits: r.hits,
                rule: r.rule.clone(),
            })
            .collect()
    }

    /// Runs the rules against one request, moving their counters.
    pub(crate) fn decide(&self, target: &Target<'_>) -> Decision {
        let mut decision = Decision::default();
        let mut state = lock(&self.state);
        if state.rules.is_empty() {
            return decision;
        }
        for rule in state.rules.iter_mut() {
            if !rule.matches(target) {
                continue;
            }
            rule.matched += 1;
            if rule.rule.limit.is_some_and(|limit| rule.hits >= limit) {
                continue;
            }
            let fire = match (&rule.rule.nth, rule.rule.rate) {
                (Some(nth), _) => nth.contains(&rule.matched),
                (None, Some(rate)) => unit_f64(&mut rule.rng) < rate,
                (None, None) => true,
            };
            if !fire {
                continue;
            }
            rule.hits += 1;
            decision.fired += 1;
            match &rule.rule.fault {
                Fault::Latency { ms, jitter_ms } => {
                    let jitter = if *jitter_ms == 0 {
                        0
                    } else {
                        splitmix64(&mut rule.rng) % (jitter_ms.saturating_add(1))
                    };
                    decision.latency += Duration::from_millis(ms.saturating_add(jitter));
                }
                other => {
                    decision.fault = Some(other.clone());
                    break;
                }
            }
        }
        decision.latency = decision.latency.min(HANG_CAP);
        decision
    }
}

/// SplitMix64: tiny, fast and good enough to decide which requests fail.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in [0, 1).
fn unit_f64(state: &mut u64) -> f64 {
    (splitmix64(state) >> 11) as f64 / (1u64 << 53) as f64
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph_target<'a>(method: &'a str, template: &'a str, path: &'a str) -> Target<'a> {
        Target {
            method,
            template,
            path,
            graph: true,
            in_batch: false,
            mailbox: None,
        }
    }

    #[test]
    fn every_fault_kind_reads_from_json() {
        for (json, fault) in [
            (
                json!({"kind": "throttle", "retry_after": 3}),
                Fault::Throttle {
                    retry_after: Some(RetryAfter::Seconds(3)),
                },
            ),
            (
                json!({"kind": "throttle", "retry_after": 2.128}),
                Fault::Throttle {
                    retry_after: Some(RetryAfter::Fractional(2.128)),
                },
            ),
            (
                json!({"kind": "unavailable", "retry_after": {"http_date_in": 30}}),
                Fault::Unavailable {
                    retry_after: Some(RetryAfter::HttpDate { http_date_in: 30 }),
                },
            ),
            (
                json!({"kind": "gateway_timeout"}),
                Fault::GatewayTimeout { retry_after: None },
            ),
            (
                json!({"kind": "latency", "ms": 200}),
                Fault::Latency {
                    ms: 200,
                    jitter_ms: 0,
                },
            ),
            (json!({"kind": "hang"}), Fault::Hang),
            (json!({"kind": "reset"}), Fault::Reset),
            (json!({"kind": "malformed_json"}), Fault::MalformedJson),
            (json!({"kind": "truncated_json"}), Fault::TruncatedJson),
            (json!({"kind": "html_error"}), Fault::HtmlError),
        ] {
            let parsed: Fault = serde_json::from_value(json.clone()).expect("fault");
            assert_eq!(parsed, fault, "{json}");
            let round: Fault =
                serde_json::from_value(serde_json::to_value(&parsed).expect("ser")).expect("de");
            assert_eq!(round, fault);
        }
    }

    #[test]
    fn typos_and_impossible_combinations_are_refused() {
        assert!(
            serde_json::from_value::<FaultRule>(json!({"rout": "/x*", "fault": {"kind": "reset"}}))
                .is_err()
        );
        assert!(serde_json::from_value::<Fault>(json!({"kind": "latency", "msec": 3})).is_err());
        for rule in [
            FaultRule::new(Fault::Reset).rate(0.5).nth([1]),
            FaultRule::new(Fault::Reset).rate(1.5),
            FaultRule::new(Fault::Reset).nth([0]),
            FaultRule::new(Fault::Reset).route("users/*"),
            FaultRule::new(Fault::Reset).route("/users/*/manager"),
            FaultRule::new(Fault::Throttle {
                retry_after: Some(RetryAfter::Fractional(f64::NAN)),
            }),
        ] {
            assert!(rule.validate().is_err(), "{rule:?}");
        }
        assert_eq!(
            FaultRule::new(Fault::Reset)
                .route("GET /v1.0/users/*")
                .validate(),
            Ok(())
        );
    }

    #[test]
    fn routes_match_templates_or_path_prefixes() {
        let t = graph_target("GET", "/users/{id}/manager", "/v1.0/users/a@b/manager");
        for (pattern, expected) in [
            ("GET /users/{id}/manager", true),
            ("get /users/{id}/manager", true),
            ("POST /users/{id}/manager", false),
            ("/users/{id}/manager", true),
            ("/users/{id}", false),
            ("/v1.0/users/*", true),
            ("GET /v1.0/USERS/A@B/*", true),
            ("POST /v1.0/users/*", false),
            ("/v1.0/groups/*", false),
            ("* /v1.0/*", true),
        ] {
            assert_eq!(route_matches(pattern, &t), expected, "{pattern}");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let run = |seed: u64| {
            let set = FaultSet::new(seed);
            set.add(FaultRule::new(Fault::Reset).rate(0.5), None);
            let t = graph_target("GET", "/users", "/v1.0/users");
            (0..64)
                .map(|_| set.decide(&t).fault.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        let hits = run(42).iter().filter(|f| **f).count();
        assert!((16..=48).contains(&hits), "{hits}");
    }

    #[test]
    fn latency_rules_add_up_and_the_first_other_rule_wins() {
        let set = FaultSet::new(1);
        set.add(
            FaultRule::new(Fault::Latency {
                ms: 10,
                jitter_ms: 0,
            }),
            None,
        );
        set.add(FaultRule::new(Fault::Hang).nth([2]), None);
        set.add(
            FaultRule::new(Fault::Latency {
                ms: 5,
                jitter_ms: 0,
            }),
            None,
        );
        set.add(FaultRule::new(Fault::Reset), None);
        let t = graph_target("GET", "/users", "/v1.0/users");
        let first = set.decide(&t);
        assert_eq!(first.latency, Duration::from_millis(15));
        assert_eq!(first.fault, Some(Fault::Reset));
        assert_eq!(first.fired, 3);
        let second = set.decide(&t);
        assert_eq!(second.latency, Duration::from_millis(10));
        assert_eq!(second.fault, Some(Fault::Hang));
        let hits: Vec<u64> = set.list().iter().map(|r| r.hits).collect();
        assert_eq!(hits, vec![2, 1, 1, 1]);
    }

    #[test]
    fn only_status_faults_reach_batch_items_by_default() {
        let status = FaultRule::new(Fault::GatewayTimeout { retry_after: None });
        assert!(status.applies_in_batch());
        assert!(!status.clone().route("POST /$batch").applies_in_batch());
        assert!(!FaultRule::new(Fault::Reset).applies_in_batch());
        assert!(
            FaultRule::new(Fault::Reset)
                .in_batch(true)
                .applies_in_batch()
        );
    }
}
