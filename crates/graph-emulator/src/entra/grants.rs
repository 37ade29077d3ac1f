//! The token endpoint's grants: client credentials, on-behalf-of, authorization code (with
//! PKCE) and refresh token; and the user policies they share (consent, Conditional Access).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::clients::{AuthMethod, ClientAuth, authenticate_client};
use super::scopes::{Resource, ScopeRequest, resolve_app_only, resolve_delegated};
use super::sessions::RefreshGrant;
use super::tokens::{self, Session, SignedInUser};
use super::{Authority, EntraError, TokenRequest};
use crate::{CONSENT_USER_UPN, EmulatorState, MFA_POLICY_ID, MFA_USER_UPN, clock};

/// `POST /token` with `grant_type=client_credentials`.
pub(crate) fn client_credentials(req: &TokenRequest<'_>) -> Result<Value, EntraError> {
    if matches!(req.authority, Authority::Common | Authority::Consumers) {
        return Err(EntraError::invalid_request(
            9001023,
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
        ));
    }
    let client = authenticate_client(req, false)?;
    let scope = req
        .form
        .get("scope")
        .ok_or_else(|| EntraError::missing_parameter("scope"))?;
    let token = match resolve_app_only(&req.state.apps, scope)? {
        Resource::Graph => tokens::graph_app_token(req.state, &client.app.reg, client.method)?,
        Resource::Api(api) => tokens::api_token(
            req.state,
            &client.app.reg,
            client.method,
            &api.reg,
            None,
            "",
        )?,
    };
    let lifetime = req.state.config.token_lifetime.as_secs();
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
}

/// The Conditional Access challenge for `MFA_USER_UPN`, as the `claims` of
/// `interaction_required` (a JSON string, graph-protocol.md §1.3).
pub(crate) fn mfa_claims_challenge() -> String {
    json!({"access_token": {"capolids": {"essential": true, "values": [MFA_POLICY_ID]}}})
        .to_string()
}

/// Whether a `claims` request (sent back to `/authorize` after a challenge) answers the
/// MFA policy: it names `MFA_POLICY_ID` under `capolids` or `polids`.
pub(crate) fn answers_mfa_challenge(claims: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(claims) else {
        return false;
    };
    ["capolids", "polids"].iter().any(|key| {
        value["access_token"][key]["values"]
            .as_array()
            .is_some_and(|v| v.iter().any(|p| p.as_str() == Some(MFA_POLICY_ID)))
    })
}

/// What stands between a signed-in user and a token for `resource` issued to `client`:
/// a disabled account, missing consent (`CONSENT_USER_UPN`), or Conditional Access
/// requiring MFA for Microsoft Graph (`MFA_USER_UPN`, unless the sign-in had MFA).
pub(crate) fn check_user(
    client: &crate::AppRegistration,
    session: &Session,
    resource: &Resource,
) -> Result<(), EntraError> {
    let user = &session.user;
    if !user.enabled {
        return Err(EntraError::invalid_grant(
            50057,
            "The user account is disabled.",
        ));
    }
    if user.upn.eq_ignore_ascii_case(CONSENT_USER_UPN) {
        return Err(EntraError::invalid_grant(
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.",
                client.client_id, client.display_name
            ),
        )
        .with_suberror("consent_required"));
    }
    if user.upn.eq_ignore_ascii_case(MFA_USER_UPN)
        && matches!(resource, Resource::Graph)
        && !session.mfa
    {
        return Err(EntraError::new(
            "interaction_required",
            50079,
            format!(
                "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multifactor authentication to access '{}'.",
                resource.app_id()
            ),
        )
        .with_claims(mfa_claims_challenge()));
    }
    Ok(())
}

/// The success body of the delegated grants: an access token for the requested resource,
/// and a refresh token (`offline_access`) and an ID token (`openid`) when asked for.
fn delegated_response(
    req: &TokenRequest<'_>,
    client: &ClientAuth,
    request: &ScopeRequest,
    session: &Session,
    nonce: Option<&str>,
) -> Result<Value, EntraError> {
    let state = req.state;
    let access_token = match &request.resource {
        Resource::Graph => tokens::graph_user_token(
            state,
            &client.app.reg,
            client.method,
            session,
            &request.scp(),
        )?,
        Resource::Api(api) => tokens::api_token(
            state,
            &client.app.reg,
            client.method,
            &api.reg,
            Some(session),
            &request.scp(),
        )?,
    };
    let lifetime = state.config.token_lifetime.as_secs();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": request.response_scope(),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    if request.has("offline_access") {
        let now = clock::now_unix();
        let scope = request.response_scope();
        let refresh = state.sessions.issue_refresh(RefreshGrant {
            client_id: client.app.client_id().to_string(),
            user_id: session.user.oid.clone(),
            scope,
            mfa: session.mfa,
            issued_at: now,
            last_used: now,
            revoked: false,
        });
        body["refresh_token"] = Value::from(refresh);
    }
    if request.has("openid") {
        let id_token =
            tokens::id_token(state, &client.app.reg, session, nonce, request.has("email"))?;
        body["id_token"] = Value::from(id_token);
    }
    if req.form.get("client_info") == Some("1") {
        let info = json!({"uid": session.user.oid, "utid": state.config.tenant_id});
        body["client_info"] = Value::from(URL_SAFE_NO_PAD.encode(info.to_string()));
    }
    Ok(body)
}

fn user_of(state: &EmulatorState, oid: &str) -> Result<SignedInUser, EntraError> {
    SignedInUser::find(state, oid).ok_or_else(|| {
        EntraError::invalid_grant(
            50034,
            format!(
                "The user account {oid} does not exist in the '{}' directory.",
                state.config.tenant_id
            ),
        )
    })
}

/// `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and
/// `requested_token_use=on_behalf_of` (v2-oauth2-on-behalf-of-flow.md).
pub(crate) fn on_behalf_of(req: &TokenRequest<'_>) -> Result<Value, EntraError> {
    let state = req.state;
    let client = authenticate_client(req, false)?;
    match req.form.get("requested_token_use") {
        Some("on_behalf_of") => {}
        None => return Err(EntraError::missing_parameter("requested_token_use")),
        Some(other) => {
            return Err(EntraError::new(
                "unsupported_grant_type",
                70003,
                format!(
                    "The app requested an unsupported grant type 'urn:ietf:params:oauth:grant-type:jwt-bearer' with requested_token_use '{other}'."
                ),
            ));
        }
    }
    let assertion = req
        .form
        .get("assertion")
        .ok_or_else(|| EntraError::missing_parameter("assertion"))?;
    let scope = req
        .form
        .get("scope")
        .ok_or_else(|| EntraError::missing_parameter("scope"))?;

    let claims = tokens::verify_assertion(state, assertion)?;
    let aud = claims["aud"].as_str().unwrap_or_default();
    if !client.app.is_audience(aud) {
        return Err(EntraError::invalid_grant(
            500131,
            format!(
                "Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '{aud}' and the expected audience is '{}' or one of the Application Uris of this application with App ID '{}'({}). The downstream client must request a token for the expected audience (the application that made the OBO request) and this application should use that token as the assertion.",
                client.app.client_id(),
                client.app.client_id(),
                client.app.reg.display_name
            ),
        ));
    }
    // "The flow only works for user principals": a delegated token has `scp`.
    let is_user = claims["scp"].is_string() && claims["idtyp"].as_str() != Some("app");
    let oid = claims["oid"].as_str().unwrap_or_default();
    if !is_user {
        return Err(EntraError::invalid_grant(
            50013,
            "Assertion is not a user token: the on-behalf-of flow only works for user principals, and this assertion was issued to an application.",
        ));
    }
    let user = user_of(state, oid)?;
    let mfa = claims["aio"].as_str().is_some_and(tokens::aio_says_mfa)
        || claims["amr"]
            .as_array()
            .is_some_and(|a| a.iter().any(|m| m.as_str() == Some("mfa")));
    let session = Session { user, mfa };
    let request = resolve_delegated(&state.apps, scope)?;
    check_user(&client.app.reg, &session, &request.resource)?;
    delegated_response(req, &client, &request, &session, None)
}

/// RFC 7636 §4.6.
fn pkce_matches(method: &str, challenge: &str, verifier: &str) -> bool {
    let computed = if method.eq_ignore_ascii_case("S256") {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    } else {
        verifier.to_string()
    };
    super::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// `POST /token` with `grant_type=authorization_code`.
pub(crate) fn authorization_code(req: &TokenRequest<'_>) -> Result<Value, EntraError> {
    let state = req.state;
    let client = authenticate_client(req, true)?;
    let code = req
        .form
        .get("code")
        .ok_or_else(|| EntraError::missing_parameter("code"))?;
    let redirect_uri = req.form.get("redirect_uri");
    let verifier = req.form.get("code_verifier");
    let now = clock::now_unix();
    let grant = state.sessions.redeem_code(code, now, |grant| {
        if !grant.client_id.eq_ignore_ascii_case(client.app.client_id()) {
            return Err(EntraError::invalid_grant(
                70000,
                "The provided value for the 'code' parameter is not valid. The code was issued to another application.",
            ));
        }
        match redirect_uri {
            None => return Err(EntraError::missing_parameter("redirect_uri")),
            Some(uri) if uri != grant.redirect_uri => {
                return Err(EntraError::invalid_grant(
                    500112,
                    format!(
                        "The reply address '{uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                        grant.redirect_uri
                    ),
                ));
            }
            Some(_) => {}
        }
        if let Some((method, challenge)) = &grant.challenge {
            let verifier = verifier.ok_or_else(|| EntraError::missing_parameter("code_verifier"))?;
            if !pkce_matches(method, challenge, verifier) {
                return Err(EntraError::invalid_grant(
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                ));
            }
        } else if client.method == AuthMethod::Public {
            return Err(EntraError::invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request: public clients must use PKCE.",
            ));
        }
        Ok(())
    })?;
    let request = resolve_delegated(&state.apps, &grant.scope)?;
    let session = Session {
        user: user_of(state, &grant.user_id)?,
        mfa: grant.mfa,
    };
    check_user(&client.app.reg, &session, &request.resource)?;
    delegated_response(req, &client, &request, &session, grant.nonce.as_deref())
}

/// `POST /token` with `grant_type=refresh_token`. Refresh tokens are multi-resource: a
/// `scope` for another resource the user consented to is honoured; without `scope`, the
/// original scopes. A new refresh token is always returned; the old one stays valid.
pub(crate) fn refresh_token(req: &TokenRequest<'_>) -> Result<Value, EntraError> {
    let state = req.state;
    let client = authenticate_client(req, true)?;
    let token = req
        .form
        .get("refresh_token")
        .ok_or_else(|| EntraError::missing_parameter("refresh_token"))?;
    let now = clock::now_unix();
    let grant = state.sessions.use_refresh(token, now, |grant| {
        if grant.client_id.eq_ignore_ascii_case(client.app.client_id()) {
            Ok(())
        } else {
            Err(EntraError::invalid_grant(
                70000,
                "Provided grant is invalid or malformed. The refresh token was issued to another application.",
            ))
        }
    })?;
    let scope = req.form.get("scope").unwrap_or(&grant.scope);
    let mut request = resolve_delegated(&state.apps, scope)?;
    // A refresh token comes back whenever one was redeemed.
    if !request.has("offline_access") {
        request.oidc.push("offline_access");
    }
    let session = Session {
        user: user_of(state, &grant.user_id)?,
        mfa: grant.mfa,
    };
    check_user(&client.app.reg, &session, &request.resource)?;
    delegated_response(req, &client, &request, &session, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_is_base64url_sha256_of_the_verifier() {
        // Computed independently: base64url(sha256(verifier)) without padding.
        let verifier = "dBjftJeZ4CVP-mJ92K9qyUAhXgG7xPBpc85d7bz7mPQ";
        let challenge = "o3sh4q66dIGr4ROMkvthCiWkuESBorYb1t85dKLQRTc";
        assert!(pkce_matches("S256", challenge, verifier));
        assert!(!pkce_matches("S256", challenge, "x"));
        assert!(pkce_matches("plain", "abc", "abc"));
    }

    #[test]
    fn the_mfa_challenge_is_answered_by_its_own_claims() {
        let challenge = mfa_claims_challenge();
        assert!(answers_mfa_challenge(&challenge));
        assert!(answers_mfa_challenge(
            &challenge.replace("capolids", "polids")
        ));
        assert!(!answers_mfa_challenge("{\"access_token\":{}}"));
        assert!(!answers_mfa_challenge("nope"));
    }
}
