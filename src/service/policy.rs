//! Resolves each caller's resource list to the object ids it covers, through the
//! directory, ahead of time.
//!
//! A request is then checked against this index with no Graph call: an identifier is
//! allowed only when it is exactly (ignoring ASCII case) an object id, user principal
//! name, mail address or proxy address of an allowed user. Everything else — look-alike
//! Unicode, `users('…')` key syntax, trailing dots or spaces, unknown aliases — is simply
//! not in the index and is denied, so a denied request costs zero Graph calls. The Graph
//! call that follows an allowed check uses the canonical object id, never the caller's
//! spelling.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use crate::auth::Resources;
use crate::config::is_guid;
use crate::graph::models::Collection;
use crate::graph::{GraphClient, GraphError, GraphGet, GraphUrl, odata_string};
use crate::identity::Access;

const SELECT: &[&str] = &["id", "userPrincipalName", "mail", "proxyAddresses"];
/// Deadline of one directory call made while resolving policies.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Upper bound of pages read for one group (999 users each).
const MAX_GROUP_PAGES: usize = 200;

/// The outcome of checking an identifier against a caller's resources.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the canonical object id to use upstream.
    Allowed(String),
    Denied,
    /// The caller's list has not been resolved yet (start-up, directory unreachable).
    NotReady,
}

#[derive(Debug, Default)]
struct Resolved {
    ids: HashSet<String>,
    /// Lower-case UPN / mail / proxy address → object id.
    names: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectoryUser {
    id: Option<String>,
    user_principal_name: Option<String>,
    mail: Option<String>,
    #[serde(default)]
    proxy_addresses: Vec<String>,
}

impl Resolved {
    fn add(&mut self, user: DirectoryUser) {
        let Some(id) = user.id.map(|id| id.to_ascii_lowercase()) else {
            return;
        };
        let mut names: Vec<String> = user
            .proxy_addresses
            .iter()
            .filter_map(|p| {
                let (kind, address) = p.split_once(':')?;
                kind.eq_ignore_ascii_case("smtp")
                    .then(|| address.to_owned())
            })
            .collect();
        names.extend(user.user_principal_name);
        names.extend(user.mail);
        for name in names {
            self.names.insert(name.to_ascii_lowercase(), id.clone());
        }
        self.ids.insert(id);
    }
}

pub struct PolicyResolver {
    graph: GraphClient,
    /// The gateway's app identity: policy is resolved by the gateway, not by the caller.
    access: Access,
    index: RwLock<HashMap<String, Arc<Resolved>>>,
}

impl PolicyResolver {
    pub fn new(graph: GraphClient) -> Self {
        let access = Access::new(graph.tokens().app_identity(), None, 0);
        Self {
            graph,
            access,
            index: RwLock::new(HashMap::new()),
        }
    }

    /// Checks `identifier` (object id, UPN or address) for `caller`.
    pub fn check(&self, caller: &str, resources: &Resources, identifier: &str) -> Decision {
        if resources.is_all() {
            return Decision::Allowed(identifier.to_owned());
        }
        let index = self.index.read().expect("policy lock");
        let Some(resolved) = index.get(caller) else {
            return Decision::NotReady;
        };
        if identifier.is_empty()
            || !identifier.is_ascii()
            || identifier
                .chars()
                .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Decision::Denied;
        }
        let key = identifier.to_ascii_lowercase();
        if is_guid(&key) {
            return if resolved.ids.contains(&key) {
                Decision::Allowed(key)
            } else {
                Decision::Denied
            };
        }
        match resolved.names.get(&key) {
            Some(id) => Decision::Allowed(id.clone()),
            None => Decision::Denied,
        }
    }

    /// Resolves every caller's list and swaps the whole index at once. Callers whose list
    /// fails to resolve keep no entry, so they are refused (`NotReady`) rather than
    /// guessed; callers removed from the configuration disappear.
    pub async fn refresh(&self, callers: &[(String, Arc<Resources>)]) {
        let mut fresh = HashMap::new();
        for (name, resources) in callers {
            let Resources::Listed { ids, names, groups } = resources.as_ref() else {
                continue;
            };
            match self.resolve(ids, names, groups).await {
                Ok(resolved) => {
                    tracing::debug!(caller = %name, users = resolved.ids.len(), "policy resolved");
                    fresh.insert(name.clone(), Arc::new(resolved));
                }
                Err(e) => {
                    tracing::warn!(caller = %name, error = %e, "cannot resolve the caller's resources; its requests are refused until it can");
                    // Keep the last good resolution rather than locking the caller out
                    // because the directory hiccuped.
                    if let Some(previous) = self.index.read().expect("policy lock").get(name) {
                        fresh.insert(name.clone(), previous.clone());
                    }
                }
            }
        }
        *self.index.write().expect("policy lock") = fresh;
    }

    /// Forgets every resolution (a new configuration arrived; resolve again before use).
    pub fn clear(&self) {
        self.index.write().expect("policy lock").clear();
    }

    async fn resolve(
        &self,
        ids: &[String],
        names: &[String],
        groups: &[String],
    ) -> Result<Resolved, GraphError> {
        let mut resolved = Resolved::default();
        for key in ids.iter().chain(names) {
            match self.user(key).await {
                Ok(Some(user)) => resolved.add(user),
                Ok(None) => {
                    tracing::warn!(resource = %key, "a policy resource names no user; ignored")
                }
                Err(e) => return Err(e),
            }
        }
        for group in groups {
            let url = GraphUrl::root("groups")
                .id(group)
                .map_err(|e| GraphError::Refused(e.0))?
                .then("transitiveMembers")
                .then("microsoft.graph.user")
                .select(SELECT)
                .top(999);
            let mut next = Some(url.to_string());
            let mut pages = 0;
            while let Some(url) = next.take() {
                pages += 1;
                if pages > MAX_GROUP_PAGES {
                    return Err(GraphError::BadResponse("group has too many pages".into()));
                }
                let page: Collection<DirectoryUser> = match self.get(GraphGet::new(&url)).await {
                    Err(e) if e.is_not_found() => {
                        tracing::warn!(group = %group, "a policy group does not exist; ignored");
                        break;
                    }
                    other => other?,
                };
                for user in page.value {
                    resolved.add(user);
                }
                next = page
                    .next_link
                    .map(|l| self.graph.relative_link(&l))
                    .transpose()?;
            }
        }
        Ok(resolved)
    }

    /// A user by id or UPN; for a mail address that is not a UPN, by mail or proxy address.
    async fn user(&self, key: &str) -> Result<Option<DirectoryUser>, GraphError> {
        let url = GraphUrl::root("users")
            .id(key)
            .map_err(|e| GraphError::Refused(e.0))?
            .select(SELECT);
        match self.get(GraphGet::new(url)).await {
            Ok(user) => return Ok(Some(user)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        if is_guid(key) {
            return Ok(None);
        }
        let literal = odata_string(key).map_err(|e| GraphError::Refused(e.0))?;
        let smtp = odata_string(&format!("smtp:{key}")).map_err(|e| GraphError::Refused(e.0))?;
        let url = GraphUrl::root("users")
            .filter(&format!(
                "mail eq {literal} or proxyAddresses/any(p:p eq {smtp})"
            ))
            .select(SELECT);
        let page: Collection<DirectoryUser> = self.get(GraphGet::new(url)).await?;
        Ok(page.value.into_iter().next())
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        request: GraphGet,
    ) -> Result<T, GraphError> {
        let deadline = std::time::Instant::now() + RESOLVE_TIMEOUT;
        let body = self.graph.get(&self.access, &request, deadline).await?;
        serde_json::from_slice(&body).map_err(|e| GraphError::BadResponse(e.to_string()))
    }
}
