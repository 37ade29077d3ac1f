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
