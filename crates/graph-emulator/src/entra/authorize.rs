//! `GET /{tenant}/oauth2/v2.0/authorize`: the authorization endpoint, without a UI. It signs
//! in the `login_hint` user (default `DEMO_USER_UPN`), takes their (pre-granted) consent and
//! redirects with a code, or with an error where Entra would stop at a prompt.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::grants::{answers_mfa_challenge, check_user};
use super::scopes::resolve_delegated;
use super::sessions::AuthCode;
use super::tokens::{Session, SignedInUser};
use super::{Authority, EntraError, Form, resolve_authority};
use crate::{DEMO_USER_UPN, Emulator, EmulatorState, clock};

const AUTHORIZE_ROUTE: &str = "GET /{tenant}/oauth2/v2.0/authorize";

/// Where and how the answer goes back to the client.
struct Reply {
    redirect_uri: String,
    mode: Mode,
    state: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Query,
    Fragment,
    FormPost,
}

impl Reply {
    fn send(&self, mut params: Vec<(&'static str, String)>) -> Response {
        if let Some(state) = &self.state {
            params.push(("state", state.clone()));
        }
        match self.mode {
            Mode::FormPost => {
                let escape = |s: &str| {
                    s.replace('&', "&amp;")
                        .replace('"', "&quot;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                };
                let inputs: String = params
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "<input type=\"hidden\" name=\"{k}\" value=\"{}\" />",
                            escape(v)
                        )
                    })
                    .collect();
                let html = format!(
                    "<html><head><title>Working...</title></head><body><form method=\"POST\" name=\"hiddenform\" action=\"{}\">{inputs}<noscript><p>Script is disabled. Click Submit to continue.</p><input type=\"submit\" value=\"Submit\" /></noscript></form><script language=\"javascript\">document.forms[0].submit();</script></body></html>",
                    escape(&self.redirect_uri)
                );
                let mut response = (StatusCode::OK, html).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
            Mode::Query | Mode::Fragment => {
                let location = match url::Url::parse(&self.redirect_uri) {
                    Ok(mut url) => {
                        if self.mode == Mode::Query {
                            url.query_pairs_mut().extend_pairs(params.iter());
                        } else {
                            let fragment = url::form_urlencoded::Serializer::new(String::new())
                                .extend_pairs(params.iter())
                                .finish();
                            url.set_fragment(Some(&fragment));
                        }
                        url.to_string()
                    }
                    Err(_) => self.redirect_uri.clone(),
                };
                let mut response = StatusCode::FOUND.into_response();
                if let Ok(v) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, v);
                }
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store, no-cache"),
                );
                response
            }
        }
    }

    fn error(&self, err: &EntraError, headers: &HeaderMap) -> Response {
        self.send(err.redirect_params(headers))
    }
}

/// Loopback hosts, whose port Entra ignores when matching redirect URIs.
fn is_loopback(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Exact match, except that an `http` loopback registration matches any loopback host and
/// port with the same path and query.
pub(crate) fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(r), Ok(q)) = (url::Url::parse(registered), url::Url::parse(requested)) else {
        return false;
    };
    r.scheme() == "http"
        && q.scheme() == "http"
        && is_loopback(r.host())
        && is_loopback(q.host())
        && r.path() == q.path()
        && r.query() == q.query()
        && q.fragment().is_none()
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(crate) async fn authorize(
    State(emulator): State<Emulator>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let state = emulator.state();
    state.recorder.other_request(AUTHORIZE_ROUTE);
    let query = Form::parse(uri.query().unwrap_or_default().as_bytes());
    match authorize_inner(state, &tenant, &query, &headers) {
        Ok(response) => response,
        Err(page) => page.into_page(&headers),
    }
}

/// `Err` is an error Entra shows on its own page instead of redirecting.
fn authorize_inner(
    state: &EmulatorState,
    tenant: &str,
    query: &Form,
    headers: &HeaderMap,
) -> Result<Response, EntraError> {
    let authority = resolve_authority(state, tenant)?;
    if authority == Authority::Consumers {
        return Err(EntraError::invalid_request(
            50020,
            "User account from identity provider 'live.com' does not exist in tenant and cannot access the application in that tenant.",
        ));
    }
    let client_id = query
        .get("client_id")
        .ok_or_else(|| EntraError::missing_parameter("client_id"))?;
    let app = state.apps.get(client_id).ok_or_else(|| {
        EntraError::new(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                crate::tenant::COMPANY_NAME
            ),
        )
    })?;
    let redirect_uri = match query.get("redirect_uri") {
        Some(uri) => {
            if !app
                .reg
                .redirect_uris
                .iter()
                .any(|r| redirect_uri_matches(r, uri))
            {
                return Err(EntraError::invalid_request(
                    50011,
                    format!(
                        "The redirect URI '{uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
                        app.client_id()
                    ),
                ));
            }
            uri.to_string()
        }
        None => app.reg.redirect_uris.first().cloned().ok_or_else(|| {
            EntraError::invalid_request(
                500113,
                "No reply address is registered for the application.",
            )
        })?,
    };
    let mode = match query.get("response_mode") {
        None | Some("query") => Mode::Query,
        Some("fragment") => Mode::Fragment,
        Some("form_post") => Mode::FormPost,
        Some(other) => {
            return Err(EntraError::invalid_request(
                900144,
                format!("The response_mode '{other}' is not supported."),
            ));
        }
    };
    let reply = Reply {
        redirect_uri: redirect_uri.clone(),
        mode,
        state: query.get("state").map(str::to_string),
    };
    // From here on, errors go back to the client.
    Ok(match grant_code(state, query, &app.reg, &redirect_uri) {
        Ok(code) => reply.send(vec![("code", code)]),
        Err(err) => reply.error(&err, headers),
    })
}

fn grant_code(
    state: &EmulatorState,
    query: &Form,
    app: &crate::AppRegistration,
    redirect_uri: &str,
) -> Result<String, EntraError> {
    match query.get("response_type") {
        Some("code") => {}
        None => return Err(EntraError::missing_parameter("response_type")),
        Some(other) => {
            return Err(EntraError::new(
                "unsupported_response_type",
                700054,
                format!("response_type '{other}' is not enabled for the application."),
            ));
        }
    }
    let scope = query
        .get("scope")
        .ok_or_else(|| EntraError::missing_parameter("scope"))?;
    let request = resolve_delegated(&state.apps, scope)?;

    let challenge = match (
        query.get("code_challenge"),
        query.get("code_challenge_method"),
    ) {
        (None, None) => None,
        (None, Some(_)) => return Err(EntraError::missing_parameter("code_challenge")),
        (Some(challenge), method) => {
            let method = match method {
                None | Some("plain") => "plain",
                Some(m) if m.eq_ignore_ascii_case("S256") => "S256",
                Some(other) => {
                    return Err(EntraError::invalid_request(
                        501492,
                        format!(
                            "The code_challenge_method '{other}' is not supported. Use 'S256' or 'plain'."
                        ),
                    ));
                }
            };
            if !(43..=128).contains(&challenge.len()) {
                return Err(EntraError::invalid_request(
                    501491,
                    "Invalid size of Code_Challenge parameter.",
                ));
            }
            Some((method.to_string(), challenge.to_string()))
        }
    };
    if app.public_client && challenge.is_none() {
        return Err(EntraError::invalid_request(
            9002325,
            "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
        ));
    }

    // No UI: the `login_hint` user (or the demo user, or the first user) signs in.
    let hint = query.get("login_hint").unwrap_or(DEMO_USER_UPN);
    let user = match SignedInUser::find(state, hint) {
        Some(u) => u,
        None if query.get("login_hint").is_none() => {
            let first = {
                let tenant = state.tenant.read().unwrap_or_else(|p| p.into_inner());
                tenant.users.first().map(|u| u.id.clone())
            };
            first
                .and_then(|id| SignedInUser::find(state, &id))
                .ok_or_else(|| no_such_user(state, hint))?
        }
        None => return Err(no_such_user(state, hint)),
    };
    if !user.enabled {
        return Err(EntraError::new(
            "access_denied",
            50057,
            "The user account is disabled.",
        ));
    }
    // A client that got a claims challenge sends it back here; so answered, or with
    // `amr_values=mfa`, the (simulated) sign-in includes MFA.
    let mfa = query.get("claims").is_some_and(answers_mfa_challenge)
        || query
            .get("amr_values")
            .is_some_and(|v| v.split_whitespace().any(|a| a.eq_ignore_ascii_case("mfa")));
    let session = Session { user, mfa };
    check_user(app, &session, &request.resource).map_err(|err| match err.code {
        // Where Entra would prompt, the redirect says which prompt (OIDC §3.1.2.6).
        65001 => EntraError::new("consent_required", 65001, without_code(&err)),
        50079 => EntraError::new("interaction_required", 50079, without_code(&err)),
        50057 => EntraError::new("access_denied", 50057, without_code(&err)),
        _ => err,
    })?;
    Ok(state.sessions.issue_code(AuthCode {
        client_id: app.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        scope: scope.to_string(),
        challenge,
        user_id: session.user.oid.clone(),
        nonce: query.get("nonce").map(str::to_string),
        mfa,
        issued_at: clock::now_unix(),
        redeemed: false,
    }))
}

fn without_code(err: &EntraError) -> String {
    err.message().to_string()
}

fn no_such_user(state: &EmulatorState, hint: &str) -> EntraError {
    EntraError::invalid_request(
        50034,
        format!(
            "The user account {hint} does not exist in the '{}' directory. To sign into this application, the account must be added to the directory.",
            state.config.tenant_id
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirect_uris_match_on_any_port_and_loopback_host() {
        let registered = "http://127.0.0.1/auth/callback";
        for ok in [
            "http://127.0.0.1/auth/callback",
            "http://127.0.0.1:53120/auth/callback",
            "http://localhost:8080/auth/callback",
            "http://[::1]:9/auth/callback",
        ] {
            assert!(redirect_uri_matches(registered, ok), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:53120/other",
            "https://127.0.0.1/auth/callback",
            "http://evil.example/auth/callback",
            "http://127.0.0.1/auth/callback?x=1",
            "not a url",
        ] {
            assert!(!redirect_uri_matches(registered, bad), "{bad}");
        }
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example:444/cb"
        ));
    }
}
