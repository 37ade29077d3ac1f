//! Graph wire models: exactly what Graph sends, every property optional.
//!
//! Graph omits whatever `$select` did not ask for (even `id`), so nothing here is
//! required; unknown properties are ignored. The service layer turns these into the
//! gateway's own types.

use serde::Deserialize;
use serde_json::Value;

/// `microsoft.graph.user` (also the directoryObjects of `manager` / `directReports`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub user_principal_name: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    #[serde(default)]
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub preferred_language: Option<String>,
    pub account_enabled: Option<bool>,
    /// Present only with `$expand=manager`; absent when the user has no manager.
    pub manager: Option<Box<User>>,
}

/// `microsoft.graph.group` (also directoryObjects of `memberOf`, which may be other types).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub mail: Option<String>,
    pub mail_nickname: Option<String>,
    pub mail_enabled: Option<bool>,
    pub security_enabled: Option<bool>,
    #[serde(default)]
    pub group_types: Vec<String>,
    pub visibility: Option<String>,
}

/// A page of a collection.
#[derive(Clone, Debug, Deserialize)]
pub struct Collection<T> {
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.count")]
    pub count: Option<u64>,
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
}

/// The answer to `POST /$batch`.
#[derive(Debug, Deserialize)]
pub struct BatchResponse {
    pub responses: Vec<BatchItemResponse>,
}

#[derive(Debug, Deserialize)]
pub struct BatchItemResponse {
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub body: Option<Value>,
}
