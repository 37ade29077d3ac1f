//! The connect flow of `connected` callers: a user grants the gateway delegated access to
//! their own mailbox once (authorization code + PKCE); the refresh token is stored
//! encrypted, and the caller then acts as that user.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use url::Url;

use super::policy::Decision;
use super::{ServiceError, Services};
use crate::auth::Caller;
use crate::config::is_guid;
use crate::identity::{ConnectedUser, IdentityError, graph_scope_string};
use crate::store::{ConnectedAccountInfo, PendingConnect, StoreError};

/// How long a started connect flow may take before its state expires.
pub const CONNECT_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The browser link that starts (or restarts) the connect flow for a caller.
pub fn connect_url(public_url: &Url, caller: &str, login_hint: Option<&str>) -> String {
    let mut url = public_url.clone();
    url.set_path("/auth/connect");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("caller", caller);
        if let Some(hint) = login_hint {
            query.append_pair("login_hint", hint);
        }
    }
    url.to_string()
}

/// Where Entra ID sends the browser back.
pub fn callback_url(public_url: &Url) -> String {
    let mut url = public_url.clone();
    url.set_path("/auth/callback");
    url.set_query(None);
    url.to_string()
}

fn store_error(e: StoreError) -> ServiceError {
    tracing::error!(error = %e, "store failure");
    ServiceError::Unavailable("the gateway's store is unavailable; retry later".into())
}

/// The store, which every step of the connect flow needs.
fn store(services: &Services) -> Result<&crate::store::Store, ServiceError> {
    services
        .store
        .as_ref()
        .ok_or_else(|| ServiceError::Unavailable("connected callers need the store".into()))
}

fn random_token() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ServiceError::Internal)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The connected user a `connected` caller names (object id or UPN), after the policy
/// check. A user who never connected (or was revoked) gets `RECONNECT_REQUIRED`.
pub async fn connected_user_id(
    services: &Services,
    caller: &Caller,
    named: &str,
) -> Result<String, ServiceError> {
    let reconnect = || ServiceError::ReconnectRequired {
        connect_url: connect_url(&services.public_url, &caller.name, Some(named)),
    };
    let named = match services
        .policy
        .check(&caller.name, &caller.resources, named)
    {
        Decision::Allowed(id) => id,
        Decision::Denied => {
            return Err(ServiceError::Forbidden(format!(
                "caller '{}' may not act as user '{named}'",
                caller.name
            )));
        }
        Decision::NotReady => {
            return Err(ServiceError::Unavailable(
                "the caller's policy is not resolved yet; retry shortly".into(),
            ));
        }
    };
    let accounts = list(services, &caller.name).await?;
    let found = accounts.iter().find(|a| {
        !a.revoked
            && (if is_guid(&named) {
                a.user_id.eq_ignore_ascii_case(&named)
            } else {
                a.user_principal_name.eq_ignore_ascii_case(&named)
            })
    });
    found.map(|a| a.user_id.clone()).ok_or_else(reconnect)
}

/// Starts the flow: remembers the PKCE verifier under a fresh `state` and returns the
/// Entra ID authorize URL to send the browser to.
pub async fn start(
    services: &Services,
    caller: &str,
    scopes: &[String],
    login_hint: Option<String>,
) -> Result<(String, String), ServiceError> {
    let store = store(services)?;
    let state = random_token()?;
    let verifier = random_token()?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect_uri = callback_url(&services.public_url);
    store
        .put_pending_connect(&PendingConnect {
            state: state.clone(),
            caller: caller.to_owned(),
            code_verifier: verifier,
            redirect_uri: redirect_uri.clone(),
            return_to: None,
            login_hint: login_hint.clone(),
            expires_at: time::OffsetDateTime::now_utc() + CONNECT_LIFETIME,
        })
        .await
        .map_err(store_error)?;
    let app = services.graph.tokens().app();
    let mut url = app
        .authorize_endpoint()
        .map_err(|_| ServiceError::Internal)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("client_id", &app.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair(
                "scope",
                &format!(
                    "openid profile offline_access {}",
                    graph_scope_string(scopes)
                ),
            )
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = &login_hint {
            query.append_pair("login_hint", hint);
        }
    }
    Ok((url.to_string(), state))
}

/// Finishes the flow: the state is used up, the code redeemed, the grant stored.
/// `lookup` gives the configured caller (mode check, scopes, resources) by name.
pub async fn finish(
    services: &Services,
    state: &str,
    code: &str,
    lookup: impl Fn(&str) -> Option<Caller>,
) -> Result<(String, ConnectedUser), ServiceError> {
    let store = store(services)?;
    let pending = store
        .take_pending_connect(state)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ServiceError::BadInput(
                "this connect link was already used or has expired; start again".into(),
            )
        })?;
    let caller = lookup(&pending.caller).ok_or_else(|| {
        ServiceError::BadInput(format!(
            "caller '{}' no longer accepts connections",
            pending.caller
        ))
    })?;
    let user = services
        .graph
        .tokens()
        .redeem_connect_code(
            &caller.name,
            code,
            &pending.code_verifier,
            &pending.redirect_uri,
            &caller.scopes,
        )
        .await
        .map_err(|e| match e {
            IdentityError::ConsentRequired => ServiceError::ConsentRequired {
                consent_url: services.graph.tokens().app().admin_consent_url(),
            },
            IdentityError::Refused { error, description } => {
                tracing::info!(%error, %description, "connect code refused");
                ServiceError::BadInput("Microsoft Entra ID refused the sign-in; start again".into())
            }
            other => {
                tracing::warn!(error = %other, "connect flow failed");
                ServiceError::Upstream
            }
        })?;
    // The person who signed in must be someone the caller may act as; otherwise the
    // grant is dropped at once.
    if let Decision::Denied | Decision::NotReady =
        services
            .policy
            .check(&caller.name, &caller.resources, &user.user_id)
    {
        let _ = store
            .revoke_connected_account(&caller.name, &user.user_id)
            .await;
        return Err(ServiceError::Forbidden(format!(
            "caller '{}' may not act as this user",
            caller.name
        )));
    }
    Ok((caller.name, user))
}

/// The caller's connected users (no secrets).
pub async fn list(
    services: &Services,
    caller: &str,
) -> Result<Vec<ConnectedAccountInfo>, ServiceError> {
    store(services)?
        .list_connected_accounts(caller)
        .await
        .map_err(store_error)
}

/// Revokes a connected user's grant and forgets their cached tokens.
pub async fn revoke(services: &Services, caller: &str, user: &str) -> Result<bool, ServiceError> {
    let accounts = list(services, caller).await?;
    let Some(account) = accounts.iter().find(|a| {
        a.user_id.eq_ignore_ascii_case(user) || a.user_principal_name.eq_ignore_ascii_case(user)
    }) else {
        return Ok(false);
    };
    let revoked = store(services)?
        .revoke_connected_account(caller, &account.user_id)
        .await
        .map_err(store_error)?;
    services
        .graph
        .tokens()
        .invalidate_connected(caller, &account.user_id);
    Ok(revoked)
}
