//! Mail paths below `/users/{id}` and `/me`: `messages`, `mailFolders`, `sendMail`.

use axum::http::Method;

use super::super::auth::{self, Permission};
use super::super::errors::GraphError;

/// `mailFolders/{a}/childFolders/{b}/…`: the folder is the last id (ids and well-known names
/// are unique within a mailbox); the chain only shapes the route template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FolderPath {
    pub ids: Vec<String>,
}

impl FolderPath {
    pub fn id(&self) -> &str {
        self.ids.last().map(String::as_str).unwrap_or_default()
    }

    fn template(&self) -> String {
        let mut t = "/mailFolders/{id}".to_string();
        for _ in 1..self.ids.len() {
            t.push_str("/childFolders/{id}");
        }
        t
    }
}

/// The message actions (`POST …/messages/{id}/{action}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Move,
    Copy,
    Send,
    Reply,
    ReplyAll,
    Forward,
    CreateReply,
    CreateReplyAll,
    CreateForward,
}

impl Action {
    const ALL: [Action; 9] = [
        Action::Move,
        Action::Copy,
        Action::Send,
        Action::Reply,
        Action::ReplyAll,
        Action::Forward,
        Action::CreateReply,
        Action::CreateReplyAll,
        Action::CreateForward,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Move => "move",
            Action::Copy => "copy",
            Action::Send => "send",
            Action::Reply => "reply",
            Action::ReplyAll => "replyAll",
            Action::Forward => "forward",
            Action::CreateReply => "createReply",
            Action::CreateReplyAll => "createReplyAll",
            Action::CreateForward => "createForward",
        }
    }

    fn parse(segment: &str) -> Option<Action> {
        let name = segment.strip_prefix("microsoft.graph.").unwrap_or(segment);
        Action::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Sending needs `Mail.Send`; the others write to the mailbox.
    pub fn sends(self) -> bool {
        matches!(
            self,
            Action::Send | Action::Reply | Action::ReplyAll | Action::Forward
        )
    }
}

/// What follows `messages/{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MessageTail {
    None,
    /// `$value`: the MIME content.
    Value,
    Attachments,
    CreateUploadSession,
    Attachment(String),
    AttachmentValue(String),
    Action(Action),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MailRoute {
    /// `messages` or `mailFolders/{id}/messages`.
    Messages {
        folder: Option<FolderPath>,
    },
    Message {
        folder: Option<FolderPath>,
        id: String,
        tail: MessageTail,
    },
    /// `mailFolders/{id}/messages/delta`.
    Delta {
        folder: FolderPath,
    },
    /// `mailFolders`.
    Folders,
    Folder(FolderPath),
    ChildFolders(FolderPath),
    SendMail,
}

/// How a route treats the mailbox, for permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    Send,
}

fn is(segment: &str, name: &str) -> bool {
    segment.eq_ignore_ascii_case(name)
}

/// Whether a segment after `/users/{id}` or `/me` starts a mail route.
pub(crate) fn is_mail_segment(segment: &str) -> bool {
    is(segment, "messages") || is(segment, "mailFolders") || is(segment, "sendMail")
}

/// Resolves `rest` = the segments after `/users/{id}` or `/me`, starting with a mail segment.
pub(crate) fn resolve(rest: &[&str]) -> Result<MailRoute, GraphError> {
    match rest {
        [s] if is(s, "sendMail") => Ok(MailRoute::SendMail),
        [s, other, ..] if is(s, "sendMail") => Err(GraphError::segment_not_found(other)),
        [m, tail @ ..] if is(m, "messages") => messages(None, tail),
        [f] if is(f, "mailFolders") => Ok(MailRoute::Folders),
        [f, first, tail @ ..] if is(f, "mailFolders") => {
            let mut ids = vec![(*first).to_string()];
            let mut tail = tail;
            while let [c, id, more @ ..] = tail {
                if !is(c, "childFolders") {
                    break;
                }
                ids.push((*id).to_string());
                tail = more;
            }
            let folder = FolderPath { ids };
            match tail {
                [] => Ok(MailRoute::Folder(folder)),
                [c] if is(c, "childFolders") => Ok(MailRoute::ChildFolders(folder)),
                [d, delta] if is(d, "messages") && (is(delta, "delta") || is(delta, "delta()")) => {
                    Ok(MailRoute::Delta { folder })
                }
                [m, rest @ ..] if is(m, "messages") => messages(Some(folder), rest),
                [other, ..] => Err(GraphError::segment_not_found(other)),
            }
        }
        [other, ..] => Err(GraphError::segment_not_found(other)),
        [] => Err(GraphError::segment_not_found("")),
    }
}

fn messages(folder: Option<FolderPath>, rest: &[&str]) -> Result<MailRoute, GraphError> {
    let message = |id: &str, tail: MessageTail| {
        Ok(MailRoute::Message {
            folder: folder.clone(),
            id: id.to_string(),
            tail,
        })
    };
    match rest {
        [] => Ok(MailRoute::Messages {
            folder: folder.clone(),
        }),
        [d] if folder.is_none() && (is(d, "delta") || is(d, "delta()")) => {
            Err(GraphError::bad_request(
                "Change tracking is not supported against 'microsoft.graph.message' outside a folder: use /mailFolders/{id}/messages/delta.",
            ))
        }
        [id] => message(id, MessageTail::None),
        [id, v] if *v == "$value" => message(id, MessageTail::Value),
        [id, a] if is(a, "attachments") => message(id, MessageTail::Attachments),
        [id, a, s] if is(a, "attachments") && is(s, "createUploadSession") => {
            message(id, MessageTail::CreateUploadSession)
        }
        [id, a, aid] if is(a, "attachments") => {
            message(id, MessageTail::Attachment(aid.to_string()))
        }
        [id, a, aid, v] if is(a, "attachments") && *v == "$value" => {
            message(id, MessageTail::AttachmentValue(aid.to_string()))
        }
        [id, action] => match Action::parse(action) {
            Some(action) => message(id, MessageTail::Action(action)),
            None => Err(GraphError::segment_not_found(action)),
        },
        [_, a, _, other, ..] if is(a, "attachments") => Err(GraphError::segment_not_found(other)),
        [_, _, other, ..] => Err(GraphError::segment_not_found(other)),
    }
}

impl MailRoute {
    /// The template after `/users/{id}` or `/me`, e.g. `/messages/{id}/attachments/{id}/$value`.
    pub fn template(&self) -> String {
        let folder_prefix = |f: &Option<FolderPath>| f.as_ref().map(FolderPath::template);
        match self {
            MailRoute::Messages { folder } => {
                format!("{}/messages", folder_prefix(folder).unwrap_or_default())
            }
            MailRoute::Message { folder, tail, .. } => {
                let tail = match tail {
                    MessageTail::None => String::new(),
                    MessageTail::Value => "/$value".into(),
                    MessageTail::Attachments => "/attachments".into(),
                    MessageTail::CreateUploadSession => "/attachments/createUploadSession".into(),
                    MessageTail::Attachment(_) => "/attachments/{id}".into(),
                    MessageTail::AttachmentValue(_) => "/attachments/{id}/$value".into(),
                    MessageTail::Action(a) => format!("/{}", a.name()),
                };
                format!(
                    "{}/messages/{{id}}{tail}",
                    folder_prefix(folder).unwrap_or_default()
                )
            }
            MailRoute::Delta { folder } => format!("{}/messages/delta", folder.template()),
            MailRoute::Folders => "/mailFolders".into(),
            MailRoute::Folder(f) => f.template(),
            MailRoute::ChildFolders(f) => format!("{}/childFolders", f.template()),
            MailRoute::SendMail => "/sendMail".into(),
        }
    }

    pub fn check_method(&self, method: &Method) -> Result<(), GraphError> {
        let (get, post, patch, delete) = (
            method == Method::GET,
            method == Method::POST,
            method == Method::PATCH,
            method == Method::DELETE,
        );
        let allowed = match self {
            MailRoute::Messages { .. } | MailRoute::Folders | MailRoute::ChildFolders(_) => {
                get || post
            }
            MailRoute::Message { tail, .. } => match tail {
                MessageTail::None => get || patch || delete,
                MessageTail::Value | MessageTail::AttachmentValue(_) => get,
                MessageTail::Attachments => get || post,
                MessageTail::Attachment(_) => get || delete,
                MessageTail::CreateUploadSession | MessageTail::Action(_) => post,
            },
            MailRoute::Delta { .. } | MailRoute::Folder(_) => get,
            MailRoute::SendMail => post,
        };
        if allowed {
            Ok(())
        } else {
            Err(GraphError::method_not_allowed())
        }
    }

    fn access(&self, method: &Method) -> Access {
        match self {
            MailRoute::SendMail => Access::Send,
            MailRoute::Message {
                tail: MessageTail::Action(a),
                ..
            } if a.sends() => Access::Send,
            _ if method == Method::GET => Access::Read,
            _ => Access::Write,
        }
    }

    /// The permission for this route and method, on one's own mailbox (`/me`) or another's.
    pub fn permission(&self, method: &Method, own: bool) -> &'static Permission {
        match (self.access(method), own) {
            (Access::Read, true) => &auth::MAIL_READ,
            (Access::Read, false) => &auth::MAIL_READ_SHARED,
            (Access::Write, true) => &auth::MAIL_WRITE,
            (Access::Write, false) => &auth::MAIL_WRITE_SHARED,
            (Access::Send, true) => &auth::MAIL_SEND,
            (Access::Send, false) => &auth::MAIL_SEND_SHARED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        resolve(&segments).map(|r| r.template()).unwrap_or_default()
    }

    #[test]
    fn mail_paths_resolve_to_templates() {
        for (path, expected) in [
            ("messages", "/messages"),
            ("Messages/AAMk=", "/messages/{id}"),
            ("messages/x/$value", "/messages/{id}/$value"),
            ("messages/x/attachments", "/messages/{id}/attachments"),
            (
                "messages/x/attachments/y",
                "/messages/{id}/attachments/{id}",
            ),
            (
                "messages/x/attachments/y/$value",
                "/messages/{id}/attachments/{id}/$value",
            ),
            (
                "messages/x/attachments/createUploadSession",
                "/messages/{id}/attachments/createUploadSession",
            ),
            ("messages/x/move", "/messages/{id}/move"),
            ("messages/x/replyall", "/messages/{id}/replyAll"),
            (
                "messages/x/microsoft.graph.forward",
                "/messages/{id}/forward",
            ),
            ("mailFolders", "/mailFolders"),
            ("mailFolders/inbox", "/mailFolders/{id}"),
            (
                "mailFolders/inbox/childFolders",
                "/mailFolders/{id}/childFolders",
            ),
            ("mailFolders/inbox/messages", "/mailFolders/{id}/messages"),
            (
                "mailFolders/inbox/childFolders/a/messages",
                "/mailFolders/{id}/childFolders/{id}/messages",
            ),
            (
                "mailFolders/inbox/messages/delta",
                "/mailFolders/{id}/messages/delta",
            ),
            (
                "mailFolders/inbox/messages/x",
                "/mailFolders/{id}/messages/{id}",
            ),
            ("sendMail", "/sendMail"),
        ] {
            assert_eq!(template(path), expected, "{path}");
        }
        assert!(resolve(&["messages", "x", "bogus"]).is_err());
        assert!(resolve(&["messages", "delta"]).is_err());
    }
}
