//! Scopes: which resource a request is for (Microsoft Graph or an API registered here),
//! which of its permissions, and the OpenID Connect scopes alongside.

use std::sync::Arc;

use super::clients::{AppDirectory, RegisteredApp};
use super::{EntraError, GRAPH_APP_ID, GRAPH_AUDIENCE};

/// Every delegated Graph permission the emulator knows, canonically spelled. Requesting
/// `https://graph.microsoft.com/.default` grants all of them (every user consented to
/// everything, `CONSENT_USER_UPN` aside).
pub(crate) const GRAPH_DELEGATED_SCOPES: &[&str] = &[
    "User.Read",
    "User.ReadWrite",
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "User.RevokeSessions.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "GroupMember.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Directory.AccessAsUser.All",
    "RoleManagement.Read.Directory",
    "Mail.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "Mail.Read.Shared",
    "Mail.ReadWrite.Shared",
    "Mail.Send.Shared",
    "Calendars.ReadBasic",
    "Calendars.Read",
    "Calendars.ReadWrite",
    "Calendars.Read.Shared",
    "Calendars.ReadWrite.Shared",
    "Contacts.Read",
    "Contacts.ReadWrite",
    "Contacts.Read.Shared",
    "Contacts.ReadWrite.Shared",
    "MailboxSettings.Read",
    "MailboxSettings.ReadWrite",
    "Files.Read",
    "Files.ReadWrite",
    "Files.Read.All",
    "Files.ReadWrite.All",
    "Sites.Read.All",
    "Sites.ReadWrite.All",
    "People.Read",
];

/// The OpenID Connect scopes, which name no resource.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The resource a token is for.
#[derive(Clone)]
pub(crate) enum Resource {
    Graph,
    Api(Arc<RegisteredApp>),
}

impl Resource {
    /// The resource's application id, as Entra names it in messages.
    pub fn app_id(&self) -> &str {
        match self {
            Resource::Graph => GRAPH_APP_ID,
            Resource::Api(app) => app.client_id(),
        }
    }

    fn prefix(&self) -> &str {
        match self {
            Resource::Graph => GRAPH_AUDIENCE,
            Resource::Api(app) => app.scope_prefix(),
        }
    }

    fn same(&self, other: &Resource) -> bool {
        match (self, other) {
            (Resource::Graph, Resource::Graph) => true,
            (Resource::Api(a), Resource::Api(b)) => a.client_id() == b.client_id(),
            _ => false,
        }
    }
}

/// A resolved delegated scope request.
#[derive(Clone)]
pub(crate) struct ScopeRequest {
    pub resource: Resource,
    /// The resource's permissions, canonically spelled and without prefix (`User.Read`).
    pub scopes: Vec<String>,
    /// The OpenID Connect scopes asked for, lower-case, in request order.
    pub oidc: Vec<&'static str>,
}

impl ScopeRequest {
    pub fn has(&self, oidc: &str) -> bool {
        self.oidc.contains(&oidc)
    }

    /// The `scp` claim.
    pub fn scp(&self) -> String {
        self.scopes.join(" ")
    }

    /// The `scope` of a token response: the granted permissions with their resource prefix,
    /// then the OpenID Connect scopes.
    pub fn response_scope(&self) -> String {
        let prefix = self.resource.prefix();
        self.scopes
            .iter()
            .map(|s| format!("{prefix}/{s}"))
            .chain(self.oidc.iter().map(|s| s.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn invalid_scope(scope: &str) -> EntraError {
    EntraError::new(
        "invalid_scope",
        70011,
        format!(
            "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
        ),
    )
}

fn resource_not_found(resource: &str) -> EntraError {
    EntraError::new(
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
            crate::tenant::COMPANY_NAME
        ),
    )
}

fn is_graph(prefix: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    p.eq_ignore_ascii_case(GRAPH_AUDIENCE) || p.eq_ignore_ascii_case(GRAPH_APP_ID)
}

/// Resolves the `scope` of a delegated request (authorize, code, refresh, on-behalf-of).
/// Scopes without a resource prefix are Graph's, as in Entra. Only OpenID Connect scopes:
/// a Graph token with `User.Read`.
pub(crate) fn resolve_delegated(
    apps: &AppDirectory,
    raw: &str,
) -> Result<ScopeRequest, EntraError> {
    let mut oidc: Vec<&'static str> = Vec::new();
    let mut resource: Option<Resource> = None;
    let mut scopes: Vec<String> = Vec::new();
    let mut default_requested = false;
    let words: Vec<&str> = raw.split_whitespace().collect();
    if words.is_empty() {
        return Err(EntraError::missing_parameter("scope"));
    }
    for &word in &words {
        if let Some(&o) = OIDC_SCOPES.iter().find(|o| o.eq_ignore_ascii_case(word)) {
            if !oidc.contains(&o) {
                oidc.push(o);
            }
            continue;
        }
        let (this, name) = match word.rsplit_once('/') {
            Some((prefix, name)) if is_graph(prefix) => (Resource::Graph, name),
            Some((prefix, name)) => match apps.api(prefix) {
                Some(app) => (Resource::Api(app), name),
                None => return Err(resource_not_found(prefix)),
            },
            None => (Resource::Graph, word),
        };
        if let Some(existing) = &resource
            && !existing.same(&this)
        {
            return Err(EntraError::new(
                "invalid_scope",
                28000,
                format!(
                    "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {raw} is not valid."
                ),
            ));
        }
        let known: Vec<String> = match &this {
            Resource::Graph => GRAPH_DELEGATED_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Resource::Api(app) => app.reg.exposed_scopes.clone(),
        };
        if name == ".default" {
            default_requested = true;
            scopes = known;
        } else if default_requested {
            // `.default` cannot be combined with other scopes of its resource.
            return Err(invalid_scope(raw));
        } else {
            let canonical = known
                .iter()
                .find(|k| k.eq_ignore_ascii_case(name))
                .ok_or_else(|| invalid_scope(word))?;
            if !scopes.contains(canonical) {
                scopes.push(canonical.clone());
            }
        }
        resource = Some(this);
    }
    let resource = resource.unwrap_or(Resource::Graph);
    if scopes.is_empty() && matches!(resource, Resource::Graph) {
        scopes.push("User.Read".to_string());
    }
    Ok(ScopeRequest {
        resource,
        scopes,
        oidc,
    })
}

/// App-only tokens need exactly one `{resource}/.default` scope: Graph, or an API
/// registered here.
pub(crate) fn resolve_app_only(apps: &AppDirectory, scope: &str) -> Result<Resource, EntraError> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if let [single] = scopes.as_slice() {
        let (prefix, name) = single.rsplit_once('/').unwrap_or(("", single));
        let resource = if is_graph(prefix) {
            Some(Resource::Graph)
        } else {
            apps.api(prefix).map(Resource::Api)
        };
        if let Some(resource) = resource {
            if name == ".default" {
                return Ok(resource);
            }
            return Err(EntraError::new(
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {single} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
    }
    Err(invalid_scope(scope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppRegistration;

    fn apps() -> AppDirectory {
        AppDirectory::new(&[AppRegistration::default_gateway_app()])
    }

    #[test]
    fn graph_scopes_are_canonicalised_and_oidc_scopes_set_apart() {
        let r = resolve_delegated(
            &apps(),
            "https://graph.microsoft.com/user.read mail.read offline_access openid",
        )
        .expect("resolve");
        assert!(matches!(r.resource, Resource::Graph));
        assert_eq!(r.scp(), "User.Read Mail.Read");
        assert!(r.has("offline_access") && r.has("openid"));
        assert_eq!(
            r.response_scope(),
            "https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read offline_access openid"
        );
    }

    #[test]
    fn api_scopes_resolve_by_identifier_uri_or_client_id() {
        for raw in [
            "api://m365-gateway/access_as_user",
            "8a4f2c6e-1d3b-4f5a-9e7c-2b6d8f0a4c1e/access_as_user",
            "api://m365-gateway/.default",
        ] {
            let r = resolve_delegated(&apps(), raw).expect(raw);
            assert!(matches!(r.resource, Resource::Api(_)), "{raw}");
            assert_eq!(r.scp(), "access_as_user");
        }
    }

    #[test]
    fn two_resources_unknown_resources_and_unknown_scopes_are_errors() {
        let two = resolve_delegated(&apps(), "User.Read api://m365-gateway/access_as_user");
        assert_eq!(two.err().map(|e| e.code), Some(28000));
        let unknown = resolve_delegated(&apps(), "api://nope/x");
        assert_eq!(unknown.err().map(|e| e.code), Some(500011));
        let bad = resolve_delegated(&apps(), "https://graph.microsoft.com/Nope.Nope");
        assert_eq!(bad.err().map(|e| e.code), Some(70011));
        let default_plus =
            resolve_delegated(&apps(), "https://graph.microsoft.com/.default User.Read");
        assert_eq!(default_plus.err().map(|e| e.code), Some(70011));
    }

    #[test]
    fn the_shared_mail_scopes_can_be_requested() {
        let r = resolve_delegated(&apps(), "mail.read.shared Mail.Send.Shared offline_access")
            .expect("resolve");
        assert_eq!(r.scp(), "Mail.Read.Shared Mail.Send.Shared");
    }

    #[test]
    fn graph_default_means_every_known_delegated_scope() {
        let r = resolve_delegated(&apps(), "https://graph.microsoft.com/.default").expect("ok");
        assert_eq!(r.scopes.len(), GRAPH_DELEGATED_SCOPES.len());
        let only_oidc = resolve_delegated(&apps(), "openid profile").expect("ok");
        assert_eq!(only_oidc.scp(), "User.Read");
    }
}
