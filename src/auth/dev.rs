//! Development tokens for HS256 issuers (the embedded default's `dev` issuer).

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::config::{Config, IssuerKey};

/// Mints a token for a configured caller, as its issuer would. Only HS256 issuers can be
/// minted for: the gateway never holds the private keys of a JWKS issuer.
pub fn mint_dev_token(
    config: &Config,
    caller_name: &str,
    user: Option<&str>,
    ttl: Duration,
) -> Result<String, String> {
    let caller = config.callers.get(caller_name).ok_or_else(|| {
        format!(
            "no caller named '{caller_name}' (known: {})",
            config
                .callers
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let issuer = config.issuers.get(&caller.issuer).ok_or_else(|| {
        format!(
            "caller '{caller_name}' names unknown issuer '{}'",
            caller.issuer
        )
    })?;
    let IssuerKey::Hs256 { secret } = &issuer.key else {
        return Err(format!(
            "issuer '{}' verifies with a JWKS; only HS256 issuers can mint dev tokens",
            caller.issuer
        ));
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "iss": issuer.issuer,
        "aud": issuer.audiences.first().cloned().unwrap_or_default(),
        "sub": user.unwrap_or(caller_name),
        issuer.client_claim.clone(): caller.client_id,
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs() as i64,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    if let (Some(user), Some(claim)) = (user, &caller.user_claim) {
        claims[claim.as_str()] = json!(user);
    }
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}
