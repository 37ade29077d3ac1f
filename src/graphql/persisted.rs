//! Persisted operations: a manifest of trusted documents (`sha256 → document`) loaded at
//! start, and Automatic Persisted Queries (a client sends a document's hash; the full text
//! only the first time).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistedError {
    /// Apollo clients look for this exact message and code, then resend with the text.
    #[error("PersistedQueryNotFound")]
    NotFound,
    #[error("PersistedQueryNotSupported")]
    NotSupported,
    #[error("the document's SHA-256 does not match the hash sent with it")]
    HashMismatch,
    #[error("this caller may run only the persisted operations of the gateway's manifest")]
    Required,
    #[error("{0}")]
    BadInput(String),
}

impl PersistedError {
    pub fn code(&self) -> &'static str {
        match self {
            PersistedError::NotFound => "PERSISTED_QUERY_NOT_FOUND",
            PersistedError::NotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            PersistedError::Required => "PERSISTED_QUERY_REQUIRED",
            PersistedError::HashMismatch | PersistedError::BadInput(_) => "BAD_USER_INPUT",
        }
    }
}

pub struct PersistedOperations {
    manifest: HashMap<String, Arc<str>>,
    /// Documents clients registered through APQ; `None` when APQ is off. Bounded by bytes.
    apq: Option<moka::sync::Cache<String, Arc<str>>>,
}

/// Largest total size of APQ-registered documents kept.
const APQ_CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl PersistedOperations {
    pub fn new(manifest: HashMap<String, Arc<str>>, apq: bool) -> PersistedOperations {
        let apq = apq.then(|| {
            moka::sync::Cache::builder()
                .weigher(|k: &String, v: &Arc<str>| {
                    u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(APQ_CACHE_BYTES)
                .build()
        });
        PersistedOperations { manifest, apq }
    }

    /// Reads a manifest: `{ "<sha256>": "<document>" }`, or Apollo's
    /// `{ "format": "apollo-persisted-query-manifest", "operations": [{ "id", "body" }] }`.
    /// Every hash is checked against its document, so a wrong entry fails the start.
    pub fn load_manifest(path: &Path) -> anyhow::Result<HashMap<String, Arc<str>>> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Manifest {
            Apollo { operations: Vec<ApolloOperation> },
            Map(HashMap<String, String>),
        }
        #[derive(Deserialize)]
        struct ApolloOperation {
            id: String,
            body: String,
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("graphql.persisted_operations: {}: {e}", path.display())
        })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "graphql.persisted_operations: {} is not a manifest ({e})",
                path.display()
            )
        })?;
        let entries: Vec<(String, String)> = match manifest {
            Manifest::Apollo { operations } => {
                operations.into_iter().map(|o| (o.id, o.body)).collect()
            }
            Manifest::Map(map) => map.into_iter().collect(),
        };
        let mut out = HashMap::new();
        for (hash, document) in entries {
            let hash = hash.to_ascii_lowercase();
            if sha256_hex(&document) != hash {
                anyhow::bail!(
                    "graphql.persisted_operations: the entry {hash} is not the SHA-256 of its document"
                );
            }
            out.insert(hash, Arc::from(document));
        }
        Ok(out)
    }

    /// The document to run. `hash` from `extensions.persistedQuery.sha256Hash` or
    /// `documentId`; `query` as sent. `persisted_only` callers get manifest documents only.
    pub fn resolve(
        &self,
        hash: Option<&str>,
        query: Option<String>,
        persisted_only: bool,
    ) -> Result<Arc<str>, PersistedError> {
        let Some(hash) = hash else {
            let query = query.ok_or_else(|| {
                PersistedError::BadInput("the request has no `query` string".into())
            })?;
            // A trusted client may still send the full text of a manifest document.
            if persisted_only {
                return match self.manifest.get(&sha256_hex(&query)) {
                    Some(document) => Ok(document.clone()),
                    None => Err(PersistedError::Required),
                };
            }
            return Ok(Arc::from(query));
        };
        let hash = hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PersistedError::BadInput(
                "a persisted query hash is 64 hexadecimal digits (SHA-256)".into(),
            ));
        }
        if let Some(document) = self.manifest.get(&hash) {
            if query.as_deref().is_some_and(|q| q != &**document) {
                return Err(PersistedError::HashMismatch);
            }
            return Ok(document.clone());
        }
        if persisted_only {
            return Err(PersistedError::Required);
        }
        let Some(apq) = &self.apq else {
            return match query {
                Some(query) if sha256_hex(&query) == hash => Ok(Arc::from(query)),
                Some(_) => Err(PersistedError::HashMismatch),
                None => Err(PersistedError::NotSupported),
            };
        };
        match query {
            Some(query) => {
                if sha256_hex(&query) != hash {
                    return Err(PersistedError::HashMismatch);
                }
                let document: Arc<str> = Arc::from(query);
                apq.insert(hash, document.clone());
                Ok(document)
            }
            None => apq.get(&hash).ok_or(PersistedError::NotFound),
        }
    }
}

pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "{ me { displayName } }";

    fn with_manifest(apq: bool) -> PersistedOperations {
        let manifest = HashMap::from([(sha256_hex(DOC), Arc::from(DOC))]);
        PersistedOperations::new(manifest, apq)
    }

    #[test]
    fn a_manifest_hash_runs_its_document_for_anyone() {
        let ops = with_manifest(true);
        let doc = ops.resolve(Some(&sha256_hex(DOC)), None, true).unwrap();
        assert_eq!(&*doc, DOC);
    }

    #[test]
    fn apq_asks_for_the_text_once_then_runs_by_hash() {
        let ops = with_manifest(true);
        let other = "{ me { id } }";
        let hash = sha256_hex(other);
        assert_eq!(
            ops.resolve(Some(&hash), None, false),
            Err(PersistedError::NotFound)
        );
        ops.resolve(Some(&hash), Some(other.into()), false).unwrap();
        let doc = ops.resolve(Some(&hash), None, false).unwrap();
        assert_eq!(&*doc, other);
    }

    #[test]
    fn a_hash_that_is_not_the_documents_is_refused() {
        let ops = with_manifest(true);
        let wrong = sha256_hex("{ __typename }");
        assert_eq!(
            ops.resolve(Some(&wrong), Some("{ me { id } }".into()), false),
            Err(PersistedError::HashMismatch)
        );
    }

    #[test]
    fn persisted_only_callers_cannot_run_or_register_other_documents() {
        let ops = with_manifest(true);
        let other = "{ me { id } }";
        assert_eq!(
            ops.resolve(None, Some(other.into()), true),
            Err(PersistedError::Required)
        );
        assert_eq!(
            ops.resolve(Some(&sha256_hex(other)), Some(other.into()), true),
            Err(PersistedError::Required)
        );
        assert!(ops.resolve(None, Some(DOC.into()), true).is_ok());
    }

    #[test]
    fn without_apq_a_bare_unknown_hash_is_not_supported() {
        let ops = with_manifest(false);
        assert_eq!(
            ops.resolve(Some(&sha256_hex("{ x }")), None, false),
            Err(PersistedError::NotSupported)
        );
    }
}
