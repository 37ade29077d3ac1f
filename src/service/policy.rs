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

use crate::auth::{Resources, SiteResources};
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

/// The sites and drives a caller limited in users or sites may address.
#[derive(Debug, Default)]
struct FileScope {
    /// Lower-case site id or `host:/path` as configured → canonical site id.
    sites: HashMap<String, String>,
    /// Lower-case ids of the drives of the allowed users and sites.
    drives: HashSet<String>,
}

/// Most users whose OneDrive ids are resolved for one caller (one `$batch` item each).
const MAX_USER_DRIVES: usize = 5000;

pub struct PolicyResolver {
    graph: GraphClient,
    /// The gateway's app identity: policy is resolved by the gateway, not by the caller.
    access: Access,
    index: RwLock<HashMap<String, Arc<Resolved>>>,
    files: RwLock<HashMap<String, Arc<FileScope>>>,
}

impl PolicyResolver {
    pub fn new(graph: GraphClient) -> Self {
        let access = Access::new(graph.tokens().app_identity(), None, 0);
        Self {
            graph,
            access,
            index: RwLock::new(HashMap::new()),
            files: RwLock::new(HashMap::new()),
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

    /// Checks a site reference (site id or `host:/path`) for `caller`; the canonical site
    /// id to use upstream when the caller's sites are listed.
    pub fn check_site(&self, caller: &str, sites: &SiteResources, site: &str) -> Decision {
        if sites.is_all() {
            return Decision::Allowed(site.to_owned());
        }
        let files = self.files.read().expect("policy lock");
        let Some(scope) = files.get(caller) else {
            return Decision::NotReady;
        };
        let key = site.trim_end_matches('/').to_ascii_lowercase();
        match scope.sites.get(&key) {
            Some(id) => Decision::Allowed(id.clone()),
            None => Decision::Denied,
        }
    }

    /// Checks a drive addressed by its Graph id. Callers limited in users or sites may
    /// address by id only the drives of the users and sites in their lists.
    pub fn check_drive(
        &self,
        caller: &str,
        resources: &Resources,
        sites: &SiteResources,
        drive: &str,
    ) -> Decision {
        if resources.is_all() && sites.is_all() {
            return Decision::Allowed(drive.to_owned());
        }
        let files = self.files.read().expect("policy lock");
        let Some(scope) = files.get(caller) else {
            return Decision::NotReady;
        };
        if scope.drives.contains(&drive.to_ascii_lowercase()) {
            Decision::Allowed(drive.to_owned())
        } else {
            Decision::Denied
        }
    }

    /// Resolves the sites and drives of every caller limited in users or sites (after
    /// [`refresh`](Self::refresh), whose user resolution it uses) and swaps them in.
    pub async fn refresh_files(&self, callers: &[(String, Arc<Resources>, Arc<SiteResources>)]) {
        let mut fresh = HashMap::new();
        for (name, resources, sites) in callers {
            if resources.is_all() && sites.is_all() {
                continue;
            }
            let users: Vec<String> = match self.index.read().expect("policy lock").get(name) {
                Some(resolved) => resolved.ids.iter().cloned().collect(),
                None if resources.is_all() => Vec::new(),
                None => continue,
            };
            match self.resolve_files(&users, sites).await {
                Ok(scope) => {
                    fresh.insert(name.clone(), Arc::new(scope));
                }
                Err(e) => {
                    tracing::warn!(caller = %name, error = %e, "cannot resolve the caller's sites and drives; keeping the last resolution");
                    if let Some(previous) = self.files.read().expect("policy lock").get(name) {
                        fresh.insert(name.clone(), previous.clone());
                    }
                }
            }
        }
        *self.files.write().expect("policy lock") = fresh;
    }

    async fn resolve_files(
        &self,
        users: &[String],
        sites: &SiteResources,
    ) -> Result<FileScope, GraphError> {
        #[derive(Deserialize)]
        struct WithId {
            id: Option<String>,
        }
        let mut scope = FileScope::default();
        if let SiteResources::Listed(entries) = sites {
            for entry in entries {
                let url = site_url(entry)
                    .map_err(|e| GraphError::Refused(e.0))?
                    .select(&["id"]);
                let site: WithId = match self.get(GraphGet::new(url)).await {
                    Err(e) if e.is_not_found() => {
                        tracing::warn!(site = %entry, "a policy site does not exist; ignored");
                        continue;
                    }
                    other => other?,
                };
                let Some(id) = site.id else { continue };
                let drives = GraphUrl::root("sites")
                    .id(&id)
                    .map_err(|e| GraphError::Refused(e.0))?
                    .then("drives")
                    .select(&["id"]);
                let drives: Collection<WithId> = self.get(GraphGet::new(drives)).await?;
                scope.drives.extend(
                    drives
                        .value
                        .into_iter()
                        .filter_map(|d| d.id)
                        .map(|d| d.to_ascii_lowercase()),
                );
                scope.sites.insert(entry.clone(), id.clone());
                scope.sites.insert(id.to_ascii_lowercase(), id);
            }
        }
        if users.len() > MAX_USER_DRIVES {
            tracing::warn!(
                users = users.len(),
                "too many users to resolve their OneDrive ids; only the first {MAX_USER_DRIVES} may be addressed by drive id"
            );
        }
        let requests: Vec<GraphGet> = users
            .iter()
            .take(MAX_USER_DRIVES)
            .filter_map(|user| {
                let url = GraphUrl::root("users")
                    .id(user)
                    .ok()?
                    .then("drive")
                    .select(&["id"]);
                Some(GraphGet::new(url))
            })
            .collect();
        let deadline = std::time::Instant::now() + RESOLVE_TIMEOUT;
        for answer in self.graph.get_many(&self.access, &requests, deadline).await {
            match answer {
                Ok(body) => {
                    if let Ok(WithId { id: Some(id) }) = serde_json::from_slice(&body) {
                        scope.drives.insert(id.to_ascii_lowercase());
                    }
                }
                // A user without a OneDrive (a shared mailbox, a guest) has no drive.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(scope)
    }

    /// Forgets every resolution (a new configuration arrived; resolve again before use).
    pub fn clear(&self) {
        self.index.write().expect("policy lock").clear();
        self.files.write().expect("policy lock").clear();
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

/// The Graph URL of a site by id (`host,guid,guid`) or `host:/path` (`/sites/host:/path:`).
pub(crate) fn site_url(site: &str) -> Result<GraphUrl, crate::graph::UrlError> {
    match site.split_once(":/") {
        Some((host, path)) => {
            let segments: Vec<&str> = path
                .trim_end_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            GraphUrl::root("sites").item_path(host, &segments)
        }
        None => GraphUrl::root("sites").id(site),
    }
}
