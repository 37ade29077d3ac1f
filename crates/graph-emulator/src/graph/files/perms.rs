//! Who may read and write which drive (graph-protocol.md; Graph's permission reference for
//! driveItem and site):
//!
//! - App-only tokens: reading needs `Files.Read.All`, `Files.ReadWrite.All`, `Sites.Read.All`
//!   or `Sites.ReadWrite.All`; writing `Files.ReadWrite.All` or `Sites.ReadWrite.All`.
//!   `Sites.Selected` reaches only the sites (and their libraries) granted to the app
//!   (`POST /_emulator/sites/{id}/permissions`), never a user's OneDrive.
//! - Delegated tokens: `Files.Read`/`Files.ReadWrite` reach one's own OneDrive only,
//!   `Files.Read.All`/`Files.ReadWrite.All` every drive, `Sites.Read.All`/`Sites.ReadWrite.All`
//!   the site libraries (and sites).
//!
//! Missing: 403 `accessDenied`.

use super::super::auth::Principal;
use super::super::errors::GraphError;
use super::access_denied;
use crate::files::{DriveOwner, FileStore, Site};
use crate::tenant::Tenant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

const APP_READ: &[&str] = &[
    "Files.Read.All",
    "Files.ReadWrite.All",
    "Sites.Read.All",
    "Sites.ReadWrite.All",
];
const APP_WRITE: &[&str] = &["Files.ReadWrite.All", "Sites.ReadWrite.All"];
const SITES_SELECTED: &str = "Sites.Selected";

const OWN_READ: &[&str] = &[
    "Files.Read",
    "Files.ReadWrite",
    "Files.Read.All",
    "Files.ReadWrite.All",
];
const OWN_WRITE: &[&str] = &["Files.ReadWrite", "Files.ReadWrite.All"];
const ANY_READ: &[&str] = &["Files.Read.All", "Files.ReadWrite.All"];
const ANY_WRITE: &[&str] = &["Files.ReadWrite.All"];
const SITE_READ: &[&str] = &[
    "Sites.Read.All",
    "Sites.ReadWrite.All",
    "Files.Read.All",
    "Files.ReadWrite.All",
];
const SITE_WRITE: &[&str] = &["Sites.ReadWrite.All", "Files.ReadWrite.All"];

fn holds(granted: &[String], accepted: &[&str]) -> bool {
    granted
        .iter()
        .any(|g| accepted.iter().any(|a| a.eq_ignore_ascii_case(g)))
}

/// Whether the token holds any permission a files or sites route could accept: without
/// one, every such route is 403 before anything is looked up.
pub(crate) fn any(principal: &Principal) -> bool {
    match principal {
        Principal::App { roles, .. } => holds(roles, APP_READ) || holds(roles, &[SITES_SELECTED]),
        Principal::User { scopes, .. } => holds(scopes, OWN_READ) || holds(scopes, SITE_READ),
    }
}

/// Whether the caller may read the site's metadata (and list it in searches).
pub(crate) fn may_read_site(principal: &Principal, site: &Site) -> bool {
    match principal {
        Principal::App { app_id, roles } => {
            holds(roles, APP_READ)
                || (holds(roles, &[SITES_SELECTED]) && site.grant_of(app_id).is_some())
        }
        Principal::User { scopes, .. } => holds(scopes, SITE_READ),
    }
}

/// Whether `GET /sites` is open to the caller at all (`Sites.Selected` lists only the
/// granted sites; a delegated token without a site scope is refused).
pub(crate) fn may_list_sites(principal: &Principal) -> bool {
    match principal {
        Principal::App { roles, .. } => holds(roles, APP_READ) || holds(roles, &[SITES_SELECTED]),
        Principal::User { scopes, .. } => holds(scopes, SITE_READ),
    }
}

/// Checks the caller's access to drive `d`.
pub(crate) fn check(
    principal: &Principal,
    tenant: &Tenant,
    store: &FileStore,
    d: usize,
    access: Access,
) -> Result<(), GraphError> {
    let drive = &store.drives[d];
    let allowed = match principal {
        Principal::App { app_id, roles } => {
            let needed = if access == Access::Read {
                APP_READ
            } else {
                APP_WRITE
            };
            holds(roles, needed)
                || match drive.owner {
                    DriveOwner::Site(s) if holds(roles, &[SITES_SELECTED]) => {
                        match store.sites[s].grant_of(app_id) {
                            Some(write) => access == Access::Read || write,
                            None => false,
                        }
                    }
                    _ => false,
                }
        }
        Principal::User {
            user_id, scopes, ..
        } => {
            let needed = match drive.owner {
                DriveOwner::User(u) if tenant.users[u].id.eq_ignore_ascii_case(user_id) => {
                    if access == Access::Read {
                        OWN_READ
                    } else {
                        OWN_WRITE
                    }
                }
                DriveOwner::User(_) => {
                    if access == Access::Read {
                        ANY_READ
                    } else {
                        ANY_WRITE
                    }
                }
                DriveOwner::Site(_) => {
                    if access == Access::Read {
                        SITE_READ
                    } else {
                        SITE_WRITE
                    }
                }
            };
            holds(scopes, needed)
        }
    };
    if allowed {
        Ok(())
    } else {
        tracing::debug!(app_id = principal.app_id(), drive = %drive.id, ?access, "files access denied");
        Err(access_denied())
    }
}
