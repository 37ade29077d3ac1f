//! Order monitor: a consumer of the gateway's signed webhooks that turns mail arriving in a
//! shared mailbox into order records.
//!
//! It watches the mailbox's Inbox (`POST /api/v1/subscriptions`), registers its own URL for
//! the watch's events (`POST /api/v1/subscriptions/{id}/webhooks`, which shows the signing
//! secret once), and then serves that URL: every delivery's Standard Webhooks signature is
//! verified (5 minute window), repeats are dropped by `webhook-id`, and for each `created`
//! event the message is fetched (`GET /api/v1/users/{mailbox}/messages/{id}`), its order
//! number (`Order #12345` or `PO-12345`), total (`Total: 99.50 EUR`) and customer (the
//! sender) are printed as one JSON line, and the message is acknowledged by marking it read
//! (`PATCH /api/v1/users/{mailbox}/messages/{id}` with `{"is_read": true}`).
//!
//! A delivery is answered 200 only once it is processed; a failure answers 500, so the
//! gateway retries it (same `webhook-id`) with backoff and finally dead-letters it.
//!
//! Ctrl-C deletes the watch (and with it the webhook) so demo runs do not pile up. A real
//! consumer keeps its watch across restarts instead: events wait in the gateway and are
//! retried until it is back.
//!
//! Against the built-in emulator (its shared mailbox is `orders@kestrelridge.example`):
//!
//! ```text
//! # 1. The gateway, allowed to call this monitor (it prints a dev token):
//! M365GW_NOTIFICATIONS__WEBHOOKS__ALLOWED_URL_PREFIXES='["http://127.0.0.1:9100/"]' cargo run
//! # 2. The monitor:
//! cargo run --example order_monitor -- --gateway http://127.0.0.1:8080 --token <dev token> \
//!     --mailbox orders@kestrelridge.example --listen 127.0.0.1:9100
//! # 3. An order, sent by the demo user through the gateway:
//! curl -H "Authorization: Bearer <dev token>" -H 'Content-Type: application/json' \
//!     -d '{"message":{"to":["orders@kestrelridge.example"],"subject":"Order #12345","body":"Total: 99.50 EUR"}}' \
//!     http://127.0.0.1:8080/api/v1/users/me/send-mail
//! ```
//!
//! The de-duplication set lives in memory; a real consumer keeps it (or its own idempotent
//! writes) in its database, since a delivery may arrive again after a restart.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Parser;
use m365_gateway::webhooks::outbound::{ID_HEADER, decode_secret, verify_headers};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// A bearer token of a caller allowed `subscriptions.manage`, `mail.read`, `mail.write`.
    #[arg(long)]
    token: String,
    /// The (shared) mailbox to watch.
    #[arg(long)]
    mailbox: String,
    /// Where this monitor listens for deliveries.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
}

/// Shared by the delivery handler.
struct Monitor {
    gateway: String,
    token: String,
    mailbox: String,
    secret: Vec<u8>,
    http: reqwest::Client,
    /// `webhook-id`s already processed.
    seen: Mutex<HashSet<String>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    // Bound first: deliveries that arrive while registering wait in the accept queue.
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let webhook_url = format!("http://{}/webhook", listener.local_addr()?);
    let api = format!("{}/api/v1", args.gateway.trim_end_matches('/'));

    let watch = call(
        http.post(format!("{api}/subscriptions")).json(&json!({
            "resource": { "mailbox": args.mailbox, "folder": "inbox" },
            "change_types": ["created"],
        })),
        &args.token,
    )
    .await
    .context("creating the subscription")?;
    let watch_id = watch["id"].as_str().context("subscription without id")?;
    let webhook = call(
        http.post(format!("{api}/subscriptions/{watch_id}/webhooks"))
            .json(&json!({ "url": webhook_url })),
        &args.token,
    )
    .await
    .context("registering the webhook")?;
    let secret = webhook["secret"]
        .as_str()
        .and_then(decode_secret)
        .context("webhook without a usable secret")?;
    eprintln!(
        "watching {} (subscription {watch_id}); deliveries to {webhook_url}",
        args.mailbox
    );

    let watch_url = format!("{api}/subscriptions/{watch_id}");
    let monitor = Arc::new(Monitor {
        gateway: api,
        token: args.token,
        mailbox: args.mailbox,
        secret,
        http,
        seen: Mutex::default(),
    });
    let app = axum::Router::new()
        .route("/webhook", axum::routing::post(deliver))
        .with_state(monitor.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    call(monitor.http.delete(&watch_url), &monitor.token)
        .await
        .context("deleting the subscription")?;
    eprintln!("stopped; subscription {watch_id} deleted");
    Ok(())
}

/// One delivery: verify, de-duplicate, process, acknowledge.
async fn deliver(State(m): State<Arc<Monitor>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = time::OffsetDateTime::now_utc();
    if let Err(e) = verify_headers(&m.secret, &headers, &body, now, Duration::from_secs(300)) {
        eprintln!("refused a delivery: {e}");
        return StatusCode::UNAUTHORIZED;
    }
    // Verified, so the header is present.
    let id = headers[ID_HEADER].to_str().unwrap_or_default().to_owned();
    if !m.seen.lock().unwrap().insert(id.clone()) {
        return StatusCode::OK; // a retry or replay of an event already handled
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    let result = match (event["change_type"].as_str(), event["resource_id"].as_str()) {
        (Some("created"), Some(message_id)) => handle_message(&m, message_id).await,
        _ => Ok(()),
    };
    match result {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            eprintln!("event {id} failed, the gateway will retry: {e:#}");
            m.seen.lock().unwrap().remove(&id);
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

async fn handle_message(m: &Monitor, message_id: &str) -> anyhow::Result<()> {
    let url = format!(
        "{}/users/{}/messages/{}",
        m.gateway,
        utf8_percent_encode(&m.mailbox, NON_ALPHANUMERIC),
        utf8_percent_encode(message_id, NON_ALPHANUMERIC)
    );
    let message = call(m.http.get(format!("{url}?body_format=text")), &m.token).await?;
    let subject = message["subject"].as_str().unwrap_or_default();
    let body = message["body"]["content"].as_str().unwrap_or_default();
    let Some(order) = order_number(subject).or_else(|| order_number(body)) else {
        eprintln!("not an order, left unread: {subject:?}");
        return Ok(());
    };
    let (total, currency) = total(body).unzip();
    let currency = currency.flatten();
    let record = json!({
        "order": order,
        "total": total,
        "currency": currency,
        "customer": { "name": message["from"]["name"], "address": message["from"]["address"] },
        "receivedAt": message["received_date_time"],
        "messageId": message_id,
    });
    println!("{record}");
    call(
        m.http.patch(url).json(&json!({ "is_read": true })),
        &m.token,
    )
    .await?;
    Ok(())
}

/// The digits after `Order #` or `PO-`: "Order #12345" → "12345".
fn order_number(text: &str) -> Option<String> {
    ["Order #", "order #", "PO-"].iter().find_map(|marker| {
        let start = text.find(marker)? + marker.len();
        let digits: String = text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (!digits.is_empty()).then_some(digits)
    })
}

/// "Total: 99.50 EUR" → ("99.50", "EUR"); "Total: 1,249.00 EUR" and "Total: 1.249,00 EUR"
/// → ("1249.00", "EUR").
///
/// The currency is the ISO code after the amount, when there is one.
fn total(text: &str) -> Option<(String, Option<String>)> {
    let start = text.find("Total:")? + "Total:".len();
    let mut words = text[start..].split_whitespace();
    let amount = plain_amount(words.next()?.trim_end_matches([',', '.', ';']))?;
    let currency = words
        .next()
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphabetic()))
        .filter(|w| w.len() == 3 && w.chars().all(|c| c.is_ascii_uppercase()))
        .map(str::to_owned);
    Some((amount, currency))
}

/// An amount in either convention (`1,249.00`, `1.249,00`, `99,50`, `1249`) as plain
/// `1249.00`: a last `.` or `,` followed by one or two digits is the decimal separator;
/// the others group thousands and must have three digits after them.
fn plain_amount(word: &str) -> Option<String> {
    if !word.starts_with(|c: char| c.is_ascii_digit())
        || !word
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return None;
    }
    let (whole, fraction) = match word.rfind(['.', ',']) {
        Some(i) if (1..=2).contains(&(word.len() - i - 1)) => (&word[..i], &word[i + 1..]),
        _ => (word, ""),
    };
    let mut groups = whole.split(['.', ',']);
    let mut digits = groups.next()?.to_owned();
    for group in groups {
        if group.len() != 3 {
            return None;
        }
        digits.push_str(group);
    }
    Some(if fraction.is_empty() {
        digits
    } else {
        format!("{digits}.{fraction}")
    })
}

/// Sends an authenticated request; the JSON answer (null when empty), or the gateway's
/// error code and message.
async fn call(request: reqwest::RequestBuilder, token: &str) -> anyhow::Result<Value> {
    let response = request.bearer_auth(token).send().await?;
    let status = response.status();
    let text = response.text().await?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{status}: {} {}",
            body["error"]["code"].as_str().unwrap_or(""),
            body["error"]["message"].as_str().unwrap_or(&text)
        );
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_found_after_their_markers() {
        assert_eq!(order_number("Order #12345").as_deref(), Some("12345"));
        assert_eq!(order_number("Re: PO-778 received").as_deref(), Some("778"));
        assert_eq!(order_number("Order # pending"), None);
        assert_eq!(order_number("Lunch on Friday?"), None);
    }

    #[test]
    fn totals_are_read_in_either_separator_convention() {
        let t = |text: &str| total(text).map(|(a, c)| format!("{a} {}", c.unwrap_or_default()));
        assert_eq!(t("Total: 99.50 EUR").as_deref(), Some("99.50 EUR"));
        assert_eq!(t("Total: 99,50 EUR").as_deref(), Some("99.50 EUR"));
        assert_eq!(t("Total: 1,249.00 EUR").as_deref(), Some("1249.00 EUR"));
        assert_eq!(t("Total: 1.249,00 EUR.").as_deref(), Some("1249.00 EUR"));
        assert_eq!(t("Total: 12,000 USD").as_deref(), Some("12000 USD"));
        assert_eq!(t("Total: 1249, thanks").as_deref(), Some("1249 "));
        assert_eq!(t("Total: 1,2,3 EUR"), None);
        assert_eq!(t("Total: unknown"), None);
        assert_eq!(t("No total here"), None);
    }
}
