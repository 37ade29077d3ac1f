//! Bearer-token checks and permissions, as Graph applies them to every request.

use axum::http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};

use super::errors::GraphError;
use crate::EmulatorState;
use crate::entra::{AccessTokenClaims, GRAPH_APP_ID, GRAPH_AUDIENCE};

/// Who is calling, from the validated token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Principal {
    /// App-only token: application permissions in `roles`.
    App { app_id: String, roles: Vec<String> },
    /// Delegated token: a signed-in user (`oid`) with the scopes in `scp`.
    User {
        app_id: String,
        user_id: String,
        scopes: Vec<String>,
    },
}

/// The permissions that grant a route, as Graph documents them: any one suffices.
#[derive(Debug)]
pub(crate) struct Permission {
    pub application: &'static [&'static str],
    pub delegated: &'static [&'static str],
}

/// No permission needed (the `$batch` envelope; each item is checked on its own).
pub(crate) const NO_PERMISSION: Permission = Permission {
    application: &[],
    delegated: &[],
};

pub(crate) const READ_USERS: Permission = Permission {
    application: &[
        "User.Read.All",
        "User.ReadWrite.All",
        "User.ReadBasic.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
    delegated: &[
        "User.ReadBasic.All",
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Directory.AccessAsUser.All",
    ],
};

/// `/me` and its relationships: the signed-in user may always read themself with `User.Read`.
pub(crate) const READ_ME: Permission = Permission {
    application: READ_USERS.application,
    delegated: &[
        "User.Read",
        "User.ReadWrite",
        "User.ReadBasic.All",
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Directory.AccessAsUser.All",
    ],
};

pub(crate) const READ_GROUPS: Permission = Permission {
    application: &[
        "Group.Read.All",
        "Group.ReadWrite.All",
        "GroupMember.Read.All",
        "GroupMember.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
    delegated: &[
        "GroupMember.Read.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "GroupMember.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Directory.AccessAsUser.All",
    ],
};

/// A user's `memberOf`: reading the user or reading group memberships both grant it.
pub(crate) const READ_MEMBERSHIPS: Permission = Permission {
    application: &[
        "User.Read.All",
        "User.ReadWrite.All",
        "GroupMember.Read.All",
        "Group.Read.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
    delegated: &[
        "User.ReadBasic.All",
        "User.Read.All",
        "GroupMember.Read.All",
        "Group.Read.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Directory.AccessAsUser.All",
    ],
};

/// `/me/memberOf`.
pub(crate) const READ_MY_MEMBERSHIPS: Permission = Permission {
    application: READ_MEMBERSHIPS.application,
    delegated: &[
        "User.Read",
        "User.ReadBasic.All",
        "User.Read.All",
        "GroupMember.Read.All",
        "Group.Read.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Directory.AccessAsUser.All",
    ],
};

pub(crate) const READ_ROLES: Permission = Permission {
    application: &[
        "RoleManagement.Read.Directory",
        "RoleManagement.ReadWrite.Directory",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
    delegated: &[
        "RoleManagement.Read.Directory",
        "RoleManagement.ReadWrite.Directory",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Directory.AccessAsUser.All",
    ],
};

/// `revokeSignInSessions` (user-revokesigninsessions.md).
pub(crate) const REVOKE_SESSIONS: Permission = Permission {
    application: &[
        "User.RevokeSessions.All",
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
    delegated: &[
        "User.RevokeSessions.All",
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
};

/// Reading one's own mail (`/me/messages`, `/me/mailFolders`, ...). Mail.ReadBasic is not
/// emulated: it would hide bodies and attachments.
pub(crate) const MAIL_READ: Permission = Permission {
    application: &["Mail.Read", "Mail.ReadWrite"],
    delegated: &["Mail.Read", "Mail.ReadWrite"],
};

/// Reading another user's mailbox with a delegated token needs the `.Shared` scopes.
pub(crate) const MAIL_READ_SHARED: Permission = Permission {
    application: MAIL_READ.application,
    delegated: &["Mail.Read.Shared", "Mail.ReadWrite.Shared"],
};

/// Drafts, updates, moves, deletes, attachments, folders.
pub(crate) const MAIL_WRITE: Permission = Permission {
    application: &["Mail.ReadWrite"],
    delegated: &["Mail.ReadWrite"],
};

pub(crate) const MAIL_WRITE_SHARED: Permission = Permission {
    application: MAIL_WRITE.application,
    delegated: &["Mail.ReadWrite.Shared"],
};

/// `sendMail`, `send`, `reply`, `replyAll`, `forward`.
pub(crate) const MAIL_SEND: Permission = Permission {
    application: &["Mail.Send"],
    delegated: &["Mail.Send"],
};

/// Sending as (or on behalf of) another mailbox with a delegated token.
pub(crate) const MAIL_SEND_SHARED: Permission = Permission {
    application: MAIL_SEND.application,
    delegated: &["Mail.Send.Shared"],
};

/// Reading one's own calendars and events.
pub(crate) const CALENDARS_READ: Permission = Permission {
    application: &["Calendars.Read", "Calendars.ReadWrite"],
    delegated: &["Calendars.Read", "Calendars.ReadWrite"],
};

/// Another user's calendars with a delegated token need the `.Shared` scopes.
pub(crate) const CALENDARS_READ_SHARED: Permission = Permission {
    application: CALENDARS_READ.application,
    delegated: &["Calendars.Read.Shared", "Calendars.ReadWrite.Shared"],
};

/// Creating, updating, deleting, responding to and cancelling events.
pub(crate) const CALENDARS_WRITE: Permission = Permission {
    application: &["Calendars.ReadWrite"],
    delegated: &["Calendars.ReadWrite"],
};

pub(crate) const CALENDARS_WRITE_SHARED: Permission = Permission {
    application: CALENDARS_WRITE.application,
    delegated: &["Calendars.ReadWrite.Shared"],
};

/// `calendar/getSchedule` (free/busy of anyone, whoever's path it is called on).
pub(crate) const CALENDARS_SCHEDULE: Permission = Permission {
    application: &[
        "Calendars.ReadBasic",
        "Calendars.Read",
        "Calendars.ReadWrite",
    ],
    delegated: &[
        "Calendars.ReadBasic",
        "Calendars.Read",
        "Calendars.ReadWrite",
        "Calendars.Read.Shared",
        "Calendars.ReadWrite.Shared",
    ],
};

pub(crate) const CONTACTS_READ: Permission = Permission {
    application: &["Contacts.Read", "Contacts.ReadWrite"],
    delegated: &["Contacts.Read", "Contacts.ReadWrite"],
};

pub(crate) const CONTACTS_READ_SHARED: Permission = Permission {
    application: CONTACTS_READ.application,
    delegated: &["Contacts.Read.Shared", "Contacts.ReadWrite.Shared"],
};

pub(crate) const CONTACTS_WRITE: Permission = Permission {
    application: &["Contacts.ReadWrite"],
    delegated: &["Contacts.ReadWrite"],
};

pub(crate) const CONTACTS_WRITE_SHARED: Permission = Permission {
    application: CONTACTS_WRITE.application,
    delegated: &["Contacts.ReadWrite.Shared"],
};

/// `GET /mailboxSettings`.
pub(crate) const MAILBOX_SETTINGS_READ: Permission = Permission {
    application: &["MailboxSettings.Read", "MailboxSettings.ReadWrite"],
    delegated: &["MailboxSettings.Read", "MailboxSettings.ReadWrite"],
};

impl Principal {
    /// The calling application's client id.
    pub fn app_id(&self) -> &str {
        match self {
            Principal::App { app_id, .. } | Principal::User { app_id, .. } => app_id,
        }
    }

    pub fn allows(&self, permission: &Permission) -> bool {
        let (granted, accepted) = match self {
            Principal::App { roles, .. } => (roles, permission.application),
            Principal::User { scopes, .. } => (scopes, permission.delegated),
        };
        if accepted.is_empty() {
            return true;
        }
        granted
            .iter()
            .any(|g| accepted.iter().any(|a| a.eq_ignore_ascii_case(g)))
    }
}

/// Validates `Authorization: Bearer <token>` the way Graph does: a token this emulator
/// signed, for Graph's audience, from this tenant, within its lifetime.
pub(crate) fn authenticate(
    state: &EmulatorState,
    headers: &HeaderMap,
) -> Result<Principal, GraphError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| GraphError::invalid_token("Access token is empty."))?;

    let compact_parse_failure =
        || GraphError::invalid_token("CompactToken parsing failed with error code: 80049217");
    let validation_failure = || GraphError::invalid_token("Access token validation failure.");

    let header = jsonwebtoken::decode_header(token).map_err(|_| compact_parse_failure())?;
    // Any published key; a retired (or foreign) key's tokens are refused.
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| state.keys.find(kid))
        .ok_or_else(validation_failure)?;

    let tid = &state.config.tenant_id;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.set_audience(&[GRAPH_AUDIENCE, "https://graph.microsoft.com/", GRAPH_APP_ID]);
    validation.set_issuer(&[format!("https://sts.windows.net/{tid}/")]);
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
    validation.validate_nbf = true;

    let data = jsonwebtoken::decode::<AccessTokenClaims>(token, key.decoding(), &validation)
        .map_err(|err| match err.kind() {
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => {
                GraphError::invalid_token("Access token has expired or is not yet valid.")
            }
            ErrorKind::InvalidAudience => {
                GraphError::invalid_token("Access token validation failure. Invalid audience.")
            }
            ErrorKind::InvalidIssuer => {
                GraphError::invalid_token("Access token validation failure. Invalid issuer.")
            }
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => compact_parse_failure(),
            _ => validation_failure(),
        })?;
    let claims = data.claims;
    if !claims.tid.eq_ignore_ascii_case(tid) {
        return Err(validation_failure());
    }
    match (&claims.scp, claims.idtyp.as_str()) {
        (Some(scp), _) if claims.idtyp != "app" => Ok(Principal::User {
            app_id: claims.appid,
            user_id: claims.oid,
            scopes: scp.split_whitespace().map(str::to_string).collect(),
        }),
        _ => Ok(Principal::App {
            app_id: claims.appid,
            roles: claims.roles.unwrap_or_default(),
        }),
    }
}
