//! Identifiers shaped like Exchange's: message, folder and attachment ids are long URL-safe
//! base64 strings with `=` padding (`AAMkAD…AAA=`, `AQMkAD…==`), so they hold `-`, `_` and
//! `=` and must be percent-encoded with care; change keys are standard base64.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

/// The 16 bytes that identify a mailbox inside its ids (the owner's object id).
pub(crate) fn mailbox_key(user_id: &str) -> [u8; 16] {
    match uuid::Uuid::parse_str(user_id) {
        Ok(u) => *u.as_bytes(),
        Err(_) => {
            let mut out = [0u8; 16];
            let h = fnv(user_id.as_bytes());
            out[..8].copy_from_slice(&h.to_le_bytes());
            out[8..].copy_from_slice(&h.rotate_left(29).to_le_bytes());
            out
        }
    }
}

/// FNV-1a: a stable hash for seeding (never `std`'s randomised hasher).
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `AAMkAD…`: a message id, unique per (mailbox, ordinal).
pub(crate) fn message_id(key: &[u8; 16], ordinal: u64, salt: u64) -> String {
    let mut b = Vec::with_capacity(62);
    b.extend_from_slice(&[0x00, 0x03, 0x24, 0x00, 0x30 | (key[0] & 0x0f)]);
    b.extend_from_slice(&key[1..]);
    b.extend_from_slice(&[0x00, 0x46, 0x00, 0x00, 0x00, 0x00]);
    b.extend_from_slice(&key[..]);
    b.extend_from_slice(&[0x07, 0x00]);
    b.extend_from_slice(&salt.to_be_bytes());
    b.extend_from_slice(&ordinal.to_be_bytes());
    b.extend_from_slice(&[0x00, 0x00]);
    URL_SAFE.encode(b)
}

/// `AQMkAD…==`: a folder id, unique per (mailbox, number).
pub(crate) fn folder_id(key: &[u8; 16], number: u16) -> String {
    let mut b = Vec::with_capacity(40);
    b.extend_from_slice(&[0x01, 0x03, 0x24, 0x00, 0x30 | (key[0] & 0x0f)]);
    b.extend_from_slice(&key[1..]);
    b.extend_from_slice(&[0x00, 0x2e, 0x00, 0x00, 0x03]);
    b.extend_from_slice(&key[..8]);
    b.extend_from_slice(&[0x01, 0x00]);
    b.extend_from_slice(&number.to_be_bytes());
    b.extend_from_slice(&[0x00, 0x00, 0x00]);
    URL_SAFE.encode(b)
}

/// An attachment id: the message's id bytes plus an attachment part.
pub(crate) fn attachment_id(message_id: &str, salt: u64, n: u32) -> String {
    let mut b = URL_SAFE.decode(message_id).unwrap_or_default();
    b.extend_from_slice(&[0x00, 0x01, 0x12, 0x00, 0x10, 0x00]);
    b.extend_from_slice(&salt.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    URL_SAFE.encode(b)
}

/// `AAQkAD…`: a conversation id.
pub(crate) fn conversation_id(key: &[u8; 16], a: u64, b: u64) -> String {
    let mut bytes = Vec::with_capacity(41);
    bytes.extend_from_slice(&[0x00, 0x04, 0x24, 0x00, 0x30 | (key[0] & 0x0f)]);
    bytes.extend_from_slice(&key[1..]);
    bytes.extend_from_slice(&[0x00, 0x10, 0x00]);
    bytes.extend_from_slice(&a.to_be_bytes());
    bytes.extend_from_slice(&b.to_be_bytes());
    bytes.extend_from_slice(&[0x00, 0x00]);
    URL_SAFE.encode(bytes)
}

/// The 22-byte header of a `conversationIndex` (a reserved byte, 5 bytes of time, a GUID).
pub(crate) fn conversation_index_header(unix: i64, a: u64, b: u64) -> Vec<u8> {
    let mut out = vec![0x01];
    let ticks = (unix.max(0) as u64).wrapping_mul(10_000_000) >> 16;
    out.extend_from_slice(&ticks.to_be_bytes()[3..]);
    out.extend_from_slice(&a.to_be_bytes());
    out.extend_from_slice(&b.to_be_bytes());
    out
}

/// A reply's 5-byte child block of a `conversationIndex`.
pub(crate) fn conversation_index_child(salt: u64) -> [u8; 5] {
    let b = salt.to_be_bytes();
    [b[0] & 0x7f, b[1], b[2], b[3], b[4]]
}

/// `changeKey` (and the `@odata.etag` around it): unique per item, new with every version.
pub(crate) fn change_key(key: &[u8; 16], ordinal: u64, version: u64) -> String {
    let mut b = Vec::with_capacity(30);
    b.extend_from_slice(&[0x09, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00]);
    b.extend_from_slice(&key[..12]);
    b.extend_from_slice(&(ordinal as u32).to_be_bytes());
    b.extend_from_slice(&[0x00, 0x00]);
    b.extend_from_slice(&(version as u32).to_be_bytes());
    STANDARD.encode(b)
}

/// `<…@host>`: an RFC 5322 Message-ID.
pub(crate) fn internet_message_id(a: u64, b: u64, host: &str) -> String {
    format!("<{a:016X}{b:08X}@{host}>", b = b as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_outlooks() {
        let key = mailbox_key("8a4f2c6e-1d3b-4f5a-9e7c-2b6d8f0a4c1e");
        let m = message_id(&key, 7, 0xdead_beef);
        assert!(m.starts_with("AAMkAD"), "{m}");
        assert!(m.ends_with("AA=") && !m.ends_with("=="), "{m}");
        let f = folder_id(&key, 3);
        assert!(f.starts_with("AQMkAD") && f.ends_with("=="), "{f}");
        assert_ne!(folder_id(&key, 4), f);
        let a = attachment_id(&m, 1, 0);
        assert!(a.starts_with(&m[..40]) && a.ends_with('='), "{a}");
        let c = conversation_id(&key, 1, 2);
        assert!(c.starts_with("AAQkAD") && c.ends_with('='), "{c}");
        assert_eq!(change_key(&key, 1, 1).len(), 40);
        assert_ne!(change_key(&key, 1, 1), change_key(&key, 1, 2));
        assert_ne!(change_key(&key, 1, 1), change_key(&key, 2, 1));
        assert_eq!(conversation_index_header(1_700_000_000, 1, 2).len(), 22);
    }
}
