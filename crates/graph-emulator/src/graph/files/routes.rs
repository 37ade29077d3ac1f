//! Drive, driveItem and site paths. Path-based addressing (`root:/a/b.txt:/content`) does not
//! split on `/`, so these paths are parsed from the whole (percent-decoded) path rather than
//! segment by segment: names cannot hold `/` or `:`, which makes the colons unambiguous.

use axum::http::Method;
use percent_encoding::percent_decode_str;

use super::super::errors::GraphError;

/// How a path names a site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SiteRef {
    /// `/sites/root`.
    Root,
    /// `/sites/{hostname}`, `/sites/{hostname},{collection},{web}`.
    Id(String),
    /// `/sites/{hostname}:/{server-relative path}[:]`.
    Path { host: String, path: String },
}

/// Whose drive a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DriveBase {
    /// `/me/drive`.
    Me,
    /// `/users/{id | UPN}/drive`.
    User(String),
    /// `/drives/{drive-id}`.
    Drive(String),
    /// `/sites/{site}/drive`: the default document library.
    SiteDefault(SiteRef),
    /// `/sites/{site}/drives/{drive-id}`.
    SiteDrive(SiteRef, String),
}

/// Whose drive collection (`…/drives`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DrivesOf {
    Me,
    User(String),
    Site(SiteRef),
}

/// How a path names an item within a drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ItemRef {
    Root,
    Id(String),
    /// `root:/a/b:` (names, decoded).
    RootPath(Vec<String>),
    /// `items/{id}:/a/b:`.
    IdPath(String, Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemTail {
    None,
    Children,
    Content,
    CreateUploadSession,
    Copy,
    Delta,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FilesRoute {
    /// `/sites` (`?search=`).
    Sites,
    Site(SiteRef),
    Drives(DrivesOf),
    Drive(DriveBase),
    Item {
        base: DriveBase,
        item: ItemRef,
        tail: ItemTail,
        /// `delta(token='…')`.
        delta_token: Option<String>,
    },
}

fn site_template(site: &SiteRef) -> &'static str {
    match site {
        SiteRef::Root => "/sites/root",
        _ => "/sites/{id}",
    }
}

fn base_template(base: &DriveBase) -> String {
    match base {
        DriveBase::Me => "/me/drive".into(),
        DriveBase::User(_) => "/users/{id}/drive".into(),
        DriveBase::Drive(_) => "/drives/{id}".into(),
        DriveBase::SiteDefault(s) => format!("{}/drive", site_template(s)),
        DriveBase::SiteDrive(s, _) => format!("{}/drives/{{id}}", site_template(s)),
    }
}

impl FilesRoute {
    /// The stats key template, e.g. `/me/drive/root:/{path}:/children`.
    pub fn template(&self) -> String {
        match self {
            FilesRoute::Sites => "/sites".into(),
            FilesRoute::Site(s) => site_template(s).into(),
            FilesRoute::Drives(DrivesOf::Me) => "/me/drives".into(),
            FilesRoute::Drives(DrivesOf::User(_)) => "/users/{id}/drives".into(),
            FilesRoute::Drives(DrivesOf::Site(s)) => format!("{}/drives", site_template(s)),
            FilesRoute::Drive(base) => base_template(base),
            FilesRoute::Item {
                base, item, tail, ..
            } => {
                let item = match item {
                    ItemRef::Root => "/root",
                    ItemRef::Id(_) => "/items/{id}",
                    ItemRef::RootPath(_) => "/root:/{path}:",
                    ItemRef::IdPath(..) => "/items/{id}:/{path}:",
                };
                let tail = match tail {
                    ItemTail::None => "",
                    ItemTail::Children => "/children",
                    ItemTail::Content => "/content",
                    ItemTail::CreateUploadSession => "/createUploadSession",
                    ItemTail::Copy => "/copy",
                    ItemTail::Delta => "/delta",
                };
                format!("{}{item}{tail}", base_template(base))
            }
        }
    }

    pub fn check_method(&self, method: &Method) -> Result<(), GraphError> {
        let m = |allowed: &[Method]| allowed.contains(method);
        let ok = match self {
            FilesRoute::Sites
            | FilesRoute::Site(_)
            | FilesRoute::Drives(_)
            | FilesRoute::Drive(_) => m(&[Method::GET]),
            FilesRoute::Item { tail, .. } => match tail {
                ItemTail::None => m(&[Method::GET, Method::PATCH, Method::DELETE]),
                ItemTail::Children => m(&[Method::GET, Method::POST]),
                ItemTail::Content => m(&[Method::GET, Method::PUT]),
                ItemTail::CreateUploadSession | ItemTail::Copy => m(&[Method::POST]),
                ItemTail::Delta => m(&[Method::GET]),
            },
        };
        if ok {
            Ok(())
        } else {
            Err(GraphError::method_not_allowed())
        }
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `("a", "b/c")` from `"a/b/c"`; `("a", "")` from `"a"`.
fn split_seg(s: &str) -> (&str, &str) {
    s.split_once('/').unwrap_or((s, ""))
}

/// Whether a (decoded) path below `/v1.0` is a files path, and if so its route.
pub(crate) fn resolve(raw: &str) -> Option<Result<FilesRoute, GraphError>> {
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    let mut p = decoded.strip_prefix('/').unwrap_or(&decoded);
    if p.len() > 1 {
        p = p.strip_suffix('/').unwrap_or(p);
    }
    let (head, rest) = split_seg(p);
    if eq(head, "drives") {
        let (id, rest) = split_seg(rest);
        if id.is_empty() {
            return Some(Err(GraphError::bad_request(
                "Listing /drives is not supported: address a drive by id, /me/drive, /users/{id}/drive or /sites/{id}/drive.",
            )));
        }
        return Some(drive_tail(DriveBase::Drive(id.to_string()), rest));
    }
    if eq(head, "sites") {
        return Some(site_route(rest));
    }
    let (owner, rest) = if eq(head, "me") {
        (None, rest)
    } else if eq(head, "users") {
        let (user, rest) = split_seg(rest);
        if user.is_empty() {
            return None;
        }
        (Some(user.to_string()), rest)
    } else {
        return None;
    };
    let (segment, rest) = split_seg(rest);
    if eq(segment, "drive") {
        let base = owner.map_or(DriveBase::Me, DriveBase::User);
        Some(drive_tail(base, rest))
    } else if eq(segment, "drives") {
        if !rest.is_empty() {
            let (first, _) = split_seg(rest);
            return Some(Err(GraphError::segment_not_found(first)));
        }
        Some(Ok(FilesRoute::Drives(
            owner.map_or(DrivesOf::Me, DrivesOf::User),
        )))
    } else {
        None
    }
}

fn site_route(rest: &str) -> Result<FilesRoute, GraphError> {
    if rest.is_empty() {
        return Ok(FilesRoute::Sites);
    }
    let (first, after) = split_seg(rest);
    let (site, tail) = if let Some((host, path_and_tail)) =
        first.contains(':').then(|| rest.split_once(':')).flatten()
    {
        // `{host}:/sites/finance:/drives` or `{host}:/sites/finance`.
        let (path, tail) = match path_and_tail.find(':') {
            Some(i) => (&path_and_tail[..i], &path_and_tail[i + 1..]),
            None => (path_and_tail, ""),
        };
        let path = if path.is_empty() { "/" } else { path };
        (
            SiteRef::Path {
                host: host.to_string(),
                path: path.to_string(),
            },
            tail.strip_prefix('/').unwrap_or(tail),
        )
    } else if eq(first, "root") {
        (SiteRef::Root, after)
    } else {
        (SiteRef::Id(first.to_string()), after)
    };
    if tail.is_empty() {
        return Ok(FilesRoute::Site(site));
    }
    let (segment, rest) = split_seg(tail);
    if eq(segment, "drive") {
        return drive_tail(DriveBase::SiteDefault(site), rest);
    }
    if eq(segment, "drives") {
        if rest.is_empty() {
            return Ok(FilesRoute::Drives(DrivesOf::Site(site)));
        }
        let (id, rest) = split_seg(rest);
        return drive_tail(DriveBase::SiteDrive(site, id.to_string()), rest);
    }
    Err(GraphError::segment_not_found(segment))
}

/// `root`, `root:/a/b:`, `items/{id}`, `items/{id}:/a:`, then an optional tail.
fn drive_tail(base: DriveBase, rest: &str) -> Result<FilesRoute, GraphError> {
    if rest.is_empty() {
        return Ok(FilesRoute::Drive(base));
    }
    let keyword_end = rest.find(['/', ':']).unwrap_or(rest.len());
    let keyword = &rest[..keyword_end];
    let after = &rest[keyword_end..];
    let (item, tail) = if eq(keyword, "root") {
        item_address(ItemRef::Root, after, ItemRef::RootPath)?
    } else if eq(keyword, "items") {
        let Some(r) = after.strip_prefix('/') else {
            return Err(GraphError::segment_not_found(keyword));
        };
        let end = r.find(['/', ':']).unwrap_or(r.len());
        let id = r[..end].to_string();
        if id.is_empty() {
            return Err(GraphError::bad_request("The item id is empty."));
        }
        let id2 = id.clone();
        item_address(ItemRef::Id(id), &r[end..], move |path| {
            ItemRef::IdPath(id2.clone(), path)
        })?
    } else {
        return Err(GraphError::segment_not_found(keyword));
    };
    let (tail, delta_token) = parse_tail(tail)?;
    Ok(FilesRoute::Item {
        base,
        item,
        tail,
        delta_token,
    })
}

/// After `root` or `items/{id}`: `""`, `/tail`, or `:/a/b[:[/tail]]`.
fn item_address(
    plain: ItemRef,
    after: &str,
    with_path: impl Fn(Vec<String>) -> ItemRef,
) -> Result<(ItemRef, &str), GraphError> {
    if after.is_empty() {
        return Ok((plain, ""));
    }
    if let Some(tail) = after.strip_prefix('/') {
        return Ok((plain, tail));
    }
    let r = after.strip_prefix(':').unwrap_or(after);
    let (path, tail) = match r.find(':') {
        Some(i) => (&r[..i], &r[i + 1..]),
        None => (r, ""),
    };
    let names: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let tail = tail.strip_prefix('/').unwrap_or(tail);
    if names.is_empty() {
        return Ok((plain, tail));
    }
    Ok((with_path(names), tail))
}

fn parse_tail(tail: &str) -> Result<(ItemTail, Option<String>), GraphError> {
    if tail.is_empty() {
        return Ok((ItemTail::None, None));
    }
    let (segment, rest) = split_seg(tail);
    if !rest.is_empty() {
        let (next, _) = split_seg(rest);
        return Err(GraphError::segment_not_found(next));
    }
    let name = segment.strip_prefix("microsoft.graph.").unwrap_or(segment);
    let simple = match name.to_ascii_lowercase().as_str() {
        "children" => Some(ItemTail::Children),
        "content" => Some(ItemTail::Content),
        "createuploadsession" => Some(ItemTail::CreateUploadSession),
        "copy" => Some(ItemTail::Copy),
        "delta" | "delta()" => Some(ItemTail::Delta),
        _ => None,
    };
    if let Some(t) = simple {
        return Ok((t, None));
    }
    // `delta(token='…')` (also unquoted, as one documented nextLink shows).
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("delta(") && name.ends_with(')') {
        let inner = &name["delta(".len()..name.len() - 1];
        let value = inner
            .split_once('=')
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("token"))
            .map(|(_, v)| v.trim().trim_matches('\'').to_string())
            .ok_or_else(|| {
                GraphError::bad_request(format!("Invalid function parameters in '{name}'."))
            })?;
        return Ok((ItemTail::Delta, Some(value)));
    }
    Err(GraphError::segment_not_found(segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(path: &str) -> String {
        match resolve(path) {
            Some(Ok(r)) => r.template(),
            Some(Err(e)) => format!("error: {}", e.message),
            None => "none".into(),
        }
    }

    #[test]
    fn drive_paths_resolve_to_templates() {
        for (path, expected) in [
            ("/me/drive", "/me/drive"),
            ("/me/drives", "/me/drives"),
            ("/users/a%40b.example/drive", "/users/{id}/drive"),
            ("/users/a@b.example/drives", "/users/{id}/drives"),
            ("/drives/b!abc", "/drives/{id}"),
            ("/drives/b!abc/root", "/drives/{id}/root"),
            ("/drives/b!abc/root/children", "/drives/{id}/root/children"),
            ("/me/drive/root:/Reports", "/me/drive/root:/{path}:"),
            ("/me/drive/root:/Reports:", "/me/drive/root:/{path}:"),
            (
                "/me/drive/root:/Budget%202026.xlsx:/content",
                "/me/drive/root:/{path}:/content",
            ),
            (
                "/me/drive/root:/A/B:/children",
                "/me/drive/root:/{path}:/children",
            ),
            ("/me/drive/items/01ABC", "/me/drive/items/{id}"),
            (
                "/me/drive/items/01ABC/children",
                "/me/drive/items/{id}/children",
            ),
            (
                "/me/drive/items/01ABC:/x.txt:/content",
                "/me/drive/items/{id}:/{path}:/content",
            ),
            (
                "/me/drive/items/01ABC:/x.txt:/createUploadSession",
                "/me/drive/items/{id}:/{path}:/createUploadSession",
            ),
            ("/me/drive/items/01ABC/copy", "/me/drive/items/{id}/copy"),
            ("/me/drive/root/delta", "/me/drive/root/delta"),
            ("/me/drive/root/delta(token='abc')", "/me/drive/root/delta"),
            ("/sites", "/sites"),
            ("/sites/root", "/sites/root"),
            (
                "/sites/root/drive/root/children",
                "/sites/root/drive/root/children",
            ),
            ("/sites/kestrelridge.sharepoint.com", "/sites/{id}"),
            (
                "/sites/kestrelridge.sharepoint.com:/sites/finance",
                "/sites/{id}",
            ),
            (
                "/sites/kestrelridge.sharepoint.com:/sites/finance:",
                "/sites/{id}",
            ),
            (
                "/sites/kestrelridge.sharepoint.com:/sites/finance:/drives",
                "/sites/{id}/drives",
            ),
            ("/sites/h,a,b/drive", "/sites/{id}/drive"),
            (
                "/sites/h,a,b/drives/b!x/root:/Signed:/children",
                "/sites/{id}/drives/{id}/root:/{path}:/children",
            ),
            ("/users/x/messages", "none"),
            ("/users/x", "none"),
            ("/me", "none"),
        ] {
            assert_eq!(template(path), expected, "{path}");
        }
    }

    #[test]
    fn paths_keep_their_names_decoded() {
        let Some(Ok(FilesRoute::Item { item, tail, .. })) =
            resolve("/me/drive/root:/Folder%20A/My%20File%2B1.txt:/content")
        else {
            panic!("route");
        };
        assert_eq!(
            item,
            ItemRef::RootPath(vec!["Folder A".into(), "My File+1.txt".into()])
        );
        assert_eq!(tail, ItemTail::Content);
        let Some(Ok(FilesRoute::Item { delta_token, .. })) =
            resolve("/drives/b!x/root/delta(token='YWJj')")
        else {
            panic!("delta");
        };
        assert_eq!(delta_token.as_deref(), Some("YWJj"));
        assert!(matches!(
            resolve("/sites/kestrelridge.sharepoint.com:/sites/finance:/drives"),
            Some(Ok(FilesRoute::Drives(DrivesOf::Site(SiteRef::Path { .. }))))
        ));
    }
}
