//! What a caller may address, as configured. Resolution to object ids (through the
//! directory) lives in `service::policy`; this is only the parsed configuration.

use crate::config::is_guid;

/// The users whose data a caller may address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resources {
    /// `"*"`: every user of the tenant.
    All,
    /// Only these; empty means nobody (deny by default).
    Listed {
        /// Object ids, lower-case.
        ids: Vec<String>,
        /// User principal names or mail addresses, lower-case.
        names: Vec<String>,
        /// Group object ids whose transitive user members are allowed.
        groups: Vec<String>,
    },
}

impl Resources {
    pub fn parse(entries: &[String]) -> Self {
        if entries.iter().any(|e| e == "*") {
            return Resources::All;
        }
        let (mut ids, mut names, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        for entry in entries {
            let entry = entry.to_ascii_lowercase();
            if let Some(group) = entry.strip_prefix("group:") {
                groups.push(group.to_owned());
            } else if is_guid(&entry) {
                ids.push(entry);
            } else {
                names.push(entry);
            }
        }
        Resources::Listed { ids, names, groups }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Resources::All)
    }
}

/// The SharePoint sites whose document libraries a caller may address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteResources {
    /// `"*"`: every site.
    All,
    /// Only these, lower-case: site ids (`host,guid,guid`) or `host:/path`. Empty: none.
    Listed(Vec<String>),
}

impl SiteResources {
    pub fn parse(entries: &[String]) -> Self {
        if entries.iter().any(|e| e == "*") {
            return SiteResources::All;
        }
        SiteResources::Listed(
            entries
                .iter()
                .map(|e| e.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        )
    }

    pub fn is_all(&self) -> bool {
        matches!(self, SiteResources::All)
    }

    /// A reference to one site (not `"*"`): a site id or `host:/path`.
    pub fn is_site_ref(site: &str) -> bool {
        site != "*" && Self::check(site).is_ok()
    }

    /// Configuration check of one entry: `"*"`, a site id or `host:/path`.
    pub fn check(entry: &str) -> Result<(), &'static str> {
        if entry == "*" || is_site_id(entry) {
            return Ok(());
        }
        match entry.split_once(":/") {
            Some((host, path)) if is_hostname(host) && is_site_path(path) => Ok(()),
            _ => Err(
                "must be \"*\", a site id (host,site-collection-id,web-id) or host:/server-relative-path",
            ),
        }
    }
}

/// A SharePoint host name: DNS labels only (no port, no credentials, no path).
pub fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `host,site-collection-guid,web-guid`, the form of every SharePoint site id.
pub fn is_site_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split(',').collect();
    parts.len() == 3 && is_hostname(parts[0]) && is_guid(parts[1]) && is_guid(parts[2])
}

/// A server-relative site path without its leading slash (`sites/finance`); empty is the
/// root site. Plain segments only: no dot segments, no encoded or reserved characters.
pub fn is_site_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path.is_empty()
        || path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}
