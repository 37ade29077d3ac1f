//! Graph wire models: exactly what Graph sends, every property optional.
//!
//! Graph omits whatever `$select` did not ask for (even `id`), so nothing here is
//! required; unknown properties are ignored. The service layer turns these into the
//! gateway's own types.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A boolean Graph (or its documentation) may also write as the string `"true"`.
fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    })
}

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

/// `microsoft.graph.emailAddress`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    pub name: Option<String>,
    pub address: Option<String>,
}

/// `microsoft.graph.recipient`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: Option<EmailAddress>,
}

/// `microsoft.graph.itemBody`; `contentType` is `html` or `text` (any case on input).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    pub content_type: Option<String>,
    pub content: Option<String>,
}

/// `microsoft.graph.dateTimeTimeZone`: `dateTime` has no offset and up to 7 fractional
/// digits; `timeZone` names the zone it is in.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    pub date_time: Option<String>,
    pub time_zone: Option<String>,
}

/// `microsoft.graph.followupFlag`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowupFlag {
    pub flag_status: Option<String>,
    pub due_date_time: Option<DateTimeTimeZone>,
    pub start_date_time: Option<DateTimeTimeZone>,
    pub completed_date_time: Option<DateTimeTimeZone>,
}

/// `@removed` on a delta item.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Removed {
    pub reason: Option<String>,
}

/// `microsoft.graph.message`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: Option<String>,
    pub subject: Option<String>,
    pub body_preview: Option<String>,
    pub body: Option<ItemBody>,
    pub from: Option<Recipient>,
    pub sender: Option<Recipient>,
    #[serde(default)]
    pub to_recipients: Option<Vec<Recipient>>,
    #[serde(default)]
    pub cc_recipients: Option<Vec<Recipient>>,
    #[serde(default)]
    pub bcc_recipients: Option<Vec<Recipient>>,
    #[serde(default)]
    pub reply_to: Option<Vec<Recipient>>,
    pub received_date_time: Option<String>,
    pub sent_date_time: Option<String>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_read: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_draft: Option<bool>,
    pub importance: Option<String>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    pub flag: Option<FollowupFlag>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub has_attachments: Option<bool>,
    /// Present with `$expand=attachments`.
    pub attachments: Option<Vec<Attachment>>,
    pub conversation_id: Option<String>,
    pub parent_folder_id: Option<String>,
    pub web_link: Option<String>,
    pub internet_message_id: Option<String>,
    pub change_key: Option<String>,
    #[serde(rename = "@removed")]
    pub removed: Option<Removed>,
}

/// `microsoft.graph.mailFolder`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub parent_folder_id: Option<String>,
    pub child_folder_count: Option<u32>,
    pub unread_item_count: Option<u32>,
    pub total_item_count: Option<u32>,
    pub size_in_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_hidden: Option<bool>,
}

/// `microsoft.graph.attachment` (file, item or reference attachment).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_inline: Option<bool>,
    pub content_id: Option<String>,
    pub last_modified_date_time: Option<String>,
}

/// `microsoft.graph.uploadSession`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSession {
    pub upload_url: Option<String>,
    pub expiration_date_time: Option<String>,
    #[serde(default)]
    pub next_expected_ranges: Vec<String>,
}

/// A page of a delta query: items, then either a nextLink or a deltaLink.
#[derive(Clone, Debug, Deserialize)]
pub struct DeltaPage<T> {
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
}

/// `microsoft.graph.calendar`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Calendar {
    pub id: Option<String>,
    pub name: Option<String>,
    pub color: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_default_calendar: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub can_edit: Option<bool>,
    pub owner: Option<EmailAddress>,
}

/// `microsoft.graph.location`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub display_name: Option<String>,
    pub location_type: Option<String>,
    pub location_uri: Option<String>,
}

/// `microsoft.graph.responseStatus`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseStatus {
    pub response: Option<String>,
    pub time: Option<String>,
}

/// `microsoft.graph.attendee`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub status: Option<ResponseStatus>,
    pub email_address: Option<EmailAddress>,
}

/// `microsoft.graph.onlineMeetingInfo`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnlineMeeting {
    pub join_url: Option<String>,
}

/// `microsoft.graph.event`. `recurrence` stays JSON: the gateway passes it through.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: Option<String>,
    pub subject: Option<String>,
    pub body: Option<ItemBody>,
    pub body_preview: Option<String>,
    pub start: Option<DateTimeTimeZone>,
    pub end: Option<DateTimeTimeZone>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_all_day: Option<bool>,
    pub location: Option<Location>,
    #[serde(default)]
    pub locations: Option<Vec<Location>>,
    #[serde(default)]
    pub attendees: Option<Vec<Attendee>>,
    pub organizer: Option<Recipient>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_online_meeting: Option<bool>,
    pub online_meeting: Option<OnlineMeeting>,
    pub recurrence: Option<Value>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub series_master_id: Option<String>,
    pub show_as: Option<String>,
    pub sensitivity: Option<String>,
    pub importance: Option<String>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_cancelled: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_organizer: Option<bool>,
    pub response_status: Option<ResponseStatus>,
    pub web_link: Option<String>,
    #[serde(rename = "iCalUId")]
    pub ical_uid: Option<String>,
    pub transaction_id: Option<String>,
    pub reminder_minutes_before_start: Option<i64>,
}

/// `microsoft.graph.physicalAddress`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalAddress {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country_or_region: Option<String>,
    pub postal_code: Option<String>,
}

/// `microsoft.graph.contact`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    #[serde(default)]
    pub email_addresses: Option<Vec<EmailAddress>>,
    #[serde(default)]
    pub business_phones: Option<Vec<String>>,
    pub mobile_phone: Option<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub business_address: Option<PhysicalAddress>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    pub parent_folder_id: Option<String>,
}

/// `microsoft.graph.contactFolder`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactFolder {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub parent_folder_id: Option<String>,
}

/// One person's answer in `getSchedule`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleInformation {
    pub schedule_id: Option<String>,
    pub availability_view: Option<String>,
    #[serde(default)]
    pub schedule_items: Option<Vec<ScheduleItem>>,
    pub working_hours: Option<WorkingHours>,
    pub error: Option<FreeBusyError>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleItem {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_private: Option<bool>,
    pub status: Option<String>,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub start: Option<DateTimeTimeZone>,
    pub end: Option<DateTimeTimeZone>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkingHours {
    #[serde(default)]
    pub days_of_week: Vec<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub time_zone: Option<TimeZoneBase>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeZoneBase {
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FreeBusyError {
    pub message: Option<String>,
    pub response_code: Option<String>,
}

/// `microsoft.graph.identity` (a user, application or device in an identity set).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// `microsoft.graph.identitySet`: who did something (`createdBy`, `lastModifiedBy`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySet {
    pub user: Option<Identity>,
    pub application: Option<Identity>,
    pub device: Option<Identity>,
}

/// `microsoft.graph.quota` of a drive.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    pub total: Option<i64>,
    pub used: Option<i64>,
    pub remaining: Option<i64>,
    pub deleted: Option<i64>,
    pub state: Option<String>,
}

/// `microsoft.graph.drive`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drive {
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub drive_type: Option<String>,
    pub web_url: Option<String>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
    pub owner: Option<IdentitySet>,
    pub quota: Option<Quota>,
}

/// `microsoft.graph.itemReference`: where an item lives.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemReference {
    pub drive_id: Option<String>,
    pub drive_type: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub path: Option<String>,
    pub site_id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hashes {
    pub quick_xor_hash: Option<String>,
    pub sha1_hash: Option<String>,
    pub sha256_hash: Option<String>,
    pub crc32_hash: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileFacet {
    pub mime_type: Option<String>,
    pub hashes: Option<Hashes>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderFacet {
    pub child_count: Option<u64>,
}

/// `microsoft.graph.driveItem` (a file or a folder).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveItem {
    pub id: Option<String>,
    pub name: Option<String>,
    pub size: Option<i64>,
    pub e_tag: Option<String>,
    pub c_tag: Option<String>,
    pub web_url: Option<String>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
    pub created_by: Option<IdentitySet>,
    pub last_modified_by: Option<IdentitySet>,
    pub parent_reference: Option<ItemReference>,
    pub file: Option<FileFacet>,
    pub folder: Option<FolderFacet>,
    /// Present (empty) on a drive's root folder.
    pub root: Option<Value>,
    /// Present in delta answers for items deleted since the token.
    pub deleted: Option<Value>,
    /// A pre-authenticated, short-lived URL: a credential. Never handed to callers.
    #[serde(rename = "@microsoft.graph.downloadUrl")]
    pub download_url: Option<String>,
}

/// `microsoft.graph.site`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    pub id: Option<String>,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub web_url: Option<String>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
}

/// The status a long-running action's monitor URL reports (`copy`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncJobStatus {
    pub status: Option<String>,
    pub percentage_complete: Option<f64>,
    pub resource_id: Option<String>,
    pub error: Option<Value>,
}
