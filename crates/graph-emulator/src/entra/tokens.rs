//! The tokens the emulator signs: v1.0 access tokens for Graph (app-only and delegated),
//! v2.0 access tokens for APIs registered here, v2.0 ID tokens, and the verification of its
//! own tokens when they come back as on-behalf-of assertions.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::clients::AuthMethod;
use super::{EntraError, GRAPH_AUDIENCE};
use crate::{AppRegistration, EmulatorState, clock};

/// Claims of the v1.0 access tokens Graph receives. Optional ones differ between app-only
/// tokens (`roles`, `idtyp: app`) and delegated ones (`scp`, `upn`, `name`, ...).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct AccessTokenClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    pub aio: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    pub app_displayname: String,
    pub appid: String,
    pub appidacr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    pub idp: String,
    pub idtyp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub oid: String,
    pub rh: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    pub sub: String,
    pub tid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    pub uti: String,
    pub ver: String,
}

/// Claims of a v2.0 access token for an API registered here (`aud` = its client id).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct V2AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub aio: String,
    pub azp: String,
    pub azpacr: String,
    /// The `idtyp` optional claim (`user` or `app`), as APIs commonly configure it.
    pub idtyp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub oid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    pub rh: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    pub sub: String,
    pub tid: String,
    pub uti: String,
    pub ver: String,
}

/// Claims of a v2.0 ID token (`aud` = the client).
#[derive(Serialize, Debug, Clone)]
struct IdTokenClaims {
    aud: String,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    aio: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    oid: String,
    preferred_username: String,
    rh: String,
    sub: String,
    tid: String,
    uti: String,
    ver: String,
}

/// The signed-in user a delegated token is about.
#[derive(Clone, Debug)]
pub(crate) struct SignedInUser {
    pub oid: String,
    pub upn: String,
    pub name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub mail: Option<String>,
    pub enabled: bool,
}

impl SignedInUser {
    /// By UPN or object id.
    pub(crate) fn find(state: &EmulatorState, key: &str) -> Option<SignedInUser> {
        let tenant = state.tenant.read().unwrap_or_else(|p| p.into_inner());
        let u = &tenant.users[tenant.find_user(key)?];
        Some(SignedInUser {
            oid: u.id.clone(),
            upn: u.user_principal_name.clone(),
            name: u.display_name.clone(),
            given_name: u.given_name.clone(),
            family_name: u.surname.clone(),
            mail: u.mail.clone(),
            enabled: u.account_enabled,
        })
    }
}

/// A user's sign-in: who, and whether it included MFA.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub user: SignedInUser,
    pub mfa: bool,
}

impl Session {
    fn amr(&self) -> Vec<String> {
        if self.mfa {
            vec!["pwd".into(), "mfa".into()]
        } else {
            vec!["pwd".into()]
        }
    }
}

/// The v2.0 issuer, spelled as Entra spells it, so APIs configured for production accept it.
pub(crate) fn v2_issuer(tid: &str) -> String {
    format!("https://login.microsoftonline.com/{tid}/v2.0")
}

pub(crate) fn v1_issuer(tid: &str) -> String {
    format!("https://sts.windows.net/{tid}/")
}

/// The object id of an app's service principal in this tenant: stable for a client id.
pub(crate) fn service_principal_id(tenant_id: &str, client_id: &str) -> String {
    let digest = Sha256::digest(format!("sp:{tenant_id}:{}", client_id.to_ascii_lowercase()));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(n + 16);
    while buf.len() < n {
        buf.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    buf.truncate(n);
    buf
}

fn random_b64(bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

/// `aio` is "an internal claim used by Microsoft Entra ID to record data for token reuse";
/// the emulator records in its first byte whether the sign-in included MFA, which is how an
/// on-behalf-of assertion carries that fact.
fn aio(mfa: bool) -> String {
    let mut bytes = random_bytes(42);
    bytes[0] = (bytes[0] & 0xFE) | u8::from(mfa);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn aio_says_mfa(aio: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(aio)
        .ok()
        .and_then(|b| b.first().copied())
        .is_some_and(|b| b & 1 == 1)
}

/// `sub` is pairwise: unique per user *and* app.
fn pairwise_sub(oid: &str, app_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!(
        "{oid}:{}",
        app_id.to_ascii_lowercase()
    )))
}

struct Times {
    iat: i64,
    exp: i64,
}

fn times(state: &EmulatorState) -> Times {
    let now = clock::now_unix();
    let lifetime = i64::try_from(state.config.token_lifetime.as_secs()).unwrap_or(i64::MAX / 2);
    Times {
        iat: now,
        exp: now.saturating_add(lifetime),
    }
}

fn sign_v1(state: &EmulatorState, claims: &AccessTokenClaims) -> Result<String, EntraError> {
    state
        .keys
        .active()
        .sign_v1(claims)
        .map_err(|e| EntraError::signing_failed(&e))
}

fn sign_v2<T: Serialize>(state: &EmulatorState, claims: &T) -> Result<String, EntraError> {
    state
        .keys
        .active()
        .sign_v2(claims)
        .map_err(|e| EntraError::signing_failed(&e))
}

/// An app-only v1.0 Graph token: `roles` = the app's application permissions.
pub(crate) fn graph_app_claims(
    state: &EmulatorState,
    app: &AppRegistration,
    method: AuthMethod,
) -> AccessTokenClaims {
    let tid = state.config.tenant_id.clone();
    let t = times(state);
    let oid = service_principal_id(&tid, &app.client_id);
    AccessTokenClaims {
        aud: GRAPH_AUDIENCE.to_string(),
        iss: v1_issuer(&tid),
        iat: t.iat,
        nbf: t.iat,
        exp: t.exp,
        acr: None,
        aio: random_b64(42),
        amr: None,
        app_displayname: app.display_name.clone(),
        appid: app.client_id.clone(),
        appidacr: method.acr().to_string(),
        family_name: None,
        given_name: None,
        idp: v1_issuer(&tid),
        idtyp: "app".to_string(),
        name: None,
        sub: oid.clone(),
        oid,
        rh: format!("0.A{}AA.", random_b64(33)),
        roles: Some(app.roles.clone()),
        scp: None,
        tid,
        unique_name: None,
        upn: None,
        uti: random_b64(16),
        ver: "1.0".to_string(),
    }
}

pub(crate) fn graph_app_token(
    state: &EmulatorState,
    app: &AppRegistration,
    method: AuthMethod,
) -> Result<String, EntraError> {
    sign_v1(state, &graph_app_claims(state, app, method))
}

/// A delegated v1.0 Graph token for `session`'s user, issued to `client`.
pub(crate) fn graph_user_token(
    state: &EmulatorState,
    client: &AppRegistration,
    method: AuthMethod,
    session: &Session,
    scp: &str,
) -> Result<String, EntraError> {
    let u = &session.user;
    let mut claims = graph_app_claims(state, client, method);
    claims.acr = Some("1".to_string());
    claims.aio = aio(session.mfa);
    claims.amr = Some(session.amr());
    claims.idtyp = "user".to_string();
    claims.roles = None;
    claims.scp = Some(scp.to_string());
    claims.oid = u.oid.clone();
    claims.sub = pairwise_sub(&u.oid, &client.client_id);
    claims.upn = Some(u.upn.clone());
    claims.unique_name = Some(u.upn.clone());
    claims.name = Some(u.name.clone());
    claims.given_name = u.given_name.clone();
    claims.family_name = u.family_name.clone();
    sign_v1(state, &claims)
}

/// A v2.0 access token for `api`: delegated when `session` is given (`scp`), app-only
/// otherwise (`roles` omitted: the emulator models no app roles on registered APIs).
pub(crate) fn api_token(
    state: &EmulatorState,
    client: &AppRegistration,
    method: AuthMethod,
    api: &AppRegistration,
    session: Option<&Session>,
    scp: &str,
) -> Result<String, EntraError> {
    let tid = state.config.tenant_id.clone();
    let t = times(state);
    let claims = match session {
        Some(session) => {
            let u = &session.user;
            V2AccessClaims {
                aud: api.client_id.clone(),
                iss: v2_issuer(&tid),
                iat: t.iat,
                nbf: t.iat,
                exp: t.exp,
                aio: aio(session.mfa),
                azp: client.client_id.clone(),
                azpacr: method.acr().to_string(),
                idtyp: "user".to_string(),
                name: Some(u.name.clone()),
                oid: u.oid.clone(),
                preferred_username: Some(u.upn.clone()),
                rh: format!("1.A{}AA.", random_b64(33)),
                roles: None,
                scp: Some(scp.to_string()),
                sub: pairwise_sub(&u.oid, &api.client_id),
                tid,
                uti: random_b64(16),
                ver: "2.0".to_string(),
            }
        }
        None => {
            let oid = service_principal_id(&tid, &client.client_id);
            V2AccessClaims {
                aud: api.client_id.clone(),
                iss: v2_issuer(&tid),
                iat: t.iat,
                nbf: t.iat,
                exp: t.exp,
                aio: aio(false),
                azp: client.client_id.clone(),
                azpacr: method.acr().to_string(),
                idtyp: "app".to_string(),
                name: None,
                sub: oid.clone(),
                oid,
                preferred_username: None,
                rh: format!("1.A{}AA.", random_b64(33)),
                roles: None,
                scp: None,
                tid,
                uti: random_b64(16),
                ver: "2.0".to_string(),
            }
        }
    };
    sign_v2(state, &claims)
}

/// A v2.0 ID token for `client`.
pub(crate) fn id_token(
    state: &EmulatorState,
    client: &AppRegistration,
    session: &Session,
    nonce: Option<&str>,
    with_email: bool,
) -> Result<String, EntraError> {
    let tid = state.config.tenant_id.clone();
    let t = times(state);
    let u = &session.user;
    let claims = IdTokenClaims {
        aud: client.client_id.clone(),
        iss: v2_issuer(&tid),
        iat: t.iat,
        nbf: t.iat,
        exp: t.exp,
        aio: aio(session.mfa),
        email: if with_email { u.mail.clone() } else { None },
        name: u.name.clone(),
        nonce: nonce.map(str::to_string),
        oid: u.oid.clone(),
        preferred_username: u.upn.clone(),
        rh: format!("1.A{}AA.", random_b64(33)),
        sub: pairwise_sub(&u.oid, &client.client_id),
        tid,
        uti: random_b64(16),
        ver: "2.0".to_string(),
    };
    sign_v2(state, &claims)
}

/// Verifies a token this emulator issued, presented as an on-behalf-of `assertion`:
/// signature by a published key, an Entra issuer of this tenant, and its time range.
/// Returns its claims.
pub(crate) fn verify_assertion(state: &EmulatorState, token: &str) -> Result<Value, EntraError> {
    let invalid = |reason: &str| {
        EntraError::invalid_grant(
            50013,
            format!("Assertion failed signature validation. [Reason - {reason}]"),
        )
    };
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| EntraError::invalid_grant(50013, "Assertion is malformed."))?;
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| state.keys.find(kid))
        .ok_or_else(|| {
            invalid(&format!(
                "The key was not found., Thumbprint of key used by client: '{}'",
                header.kid.clone().unwrap_or_default()
            ))
        })?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(token, key.decoding(), &validation)
        .map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                invalid("The provided signature value did not match the expected signature value.")
            }
            _ => EntraError::invalid_grant(50013, "Assertion is malformed."),
        })?
        .claims;
    let tid = &state.config.tenant_id;
    let issuer = claims["iss"].as_str().unwrap_or_default();
    if issuer != v1_issuer(tid) && issuer != v2_issuer(tid) {
        return Err(EntraError::invalid_grant(
            50013,
            format!("Assertion contains an invalid issuer '{issuer}'."),
        ));
    }
    let now = clock::now_unix();
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let nbf = claims["nbf"].as_i64().unwrap_or(0);
    if now >= exp || now < nbf {
        let iso = |t: i64| clock::format_utc_seconds(t);
        return Err(EntraError::invalid_grant(
            500133,
            format!(
                "Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token. Current time: {}, expiry time of assertion {}.",
                iso(now),
                iso(exp)
            ),
        ));
    }
    Ok(claims)
}

/// `Emulator::issue_delegated_token`.
pub(crate) fn issue_delegated_token(
    state: &EmulatorState,
    client_id: &str,
    user: &str,
    scopes: &[&str],
) -> Option<String> {
    let app = state.apps.get(client_id)?;
    let user = SignedInUser::find(state, user)?;
    let session = Session { user, mfa: false };
    graph_user_token(
        state,
        &app.reg,
        AuthMethod::Secret,
        &session,
        &scopes.join(" "),
    )
    .ok()
}

/// `Emulator::issue_user_token`.
pub(crate) fn issue_user_token(
    state: &EmulatorState,
    client_id: &str,
    upn: &str,
    audience_app: &str,
    scopes: &[&str],
) -> Option<String> {
    let client = state.apps.get(client_id)?;
    let api = state
        .apps
        .get(audience_app)
        .or_else(|| state.apps.api(audience_app))?;
    let user = SignedInUser::find(state, upn)?;
    let scp: Vec<&str> = scopes
        .iter()
        .map(|s| s.rsplit_once('/').map_or(*s, |(_, name)| name))
        .collect();
    let method = if client.reg.public_client {
        AuthMethod::Public
    } else {
        AuthMethod::Secret
    };
    let session = Session { user, mfa: false };
    api_token(
        state,
        &client.reg,
        method,
        &api.reg,
        Some(&session),
        &scp.join(" "),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aio_carries_the_mfa_bit() {
        for mfa in [true, false] {
            for _ in 0..20 {
                assert_eq!(aio_says_mfa(&aio(mfa)), mfa);
            }
        }
        assert!(!aio_says_mfa("not base64 !"));
    }
}
