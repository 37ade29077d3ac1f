//! Contacts use-cases: a mailbox's contacts and contact folders, search, create, update,
//! delete.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::mail::{Recipient, message_search};
use super::paging::check_first;
use super::{Page, ServiceError, Session};
use crate::graph::{GraphGet, GraphWrite, models};

const CONTACT_FIELDS: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "emailAddresses",
    "businessPhones",
    "mobilePhone",
    "companyName",
    "jobTitle",
    "department",
    "businessAddress",
    "categories",
    "parentFolderId",
];

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country_or_region: Option<String>,
    pub postal_code: Option<String>,
}

/// A personal contact.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Contact {
    pub id: String,
    pub mailbox: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email_addresses: Vec<Recipient>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub business_address: Option<Address>,
    pub categories: Vec<String>,
    pub parent_folder_id: Option<String>,
}

impl Contact {
    fn from_graph(c: models::Contact, mailbox: &str) -> Result<Self, ServiceError> {
        Ok(Contact {
            id: c.id.ok_or(ServiceError::UpstreamBadResponse)?,
            mailbox: mailbox.to_owned(),
            display_name: c.display_name,
            given_name: c.given_name,
            surname: c.surname,
            email_addresses: c
                .email_addresses
                .unwrap_or_default()
                .into_iter()
                .map(|e| Recipient {
                    name: e.name,
                    address: e.address,
                })
                .collect(),
            business_phones: c.business_phones.unwrap_or_default(),
            mobile_phone: c.mobile_phone,
            company_name: c.company_name,
            job_title: c.job_title,
            department: c.department,
            business_address: c.business_address.map(|a| Address {
                street: a.street,
                city: a.city,
                state: a.state,
                country_or_region: a.country_or_region,
                postal_code: a.postal_code,
            }),
            categories: c.categories.unwrap_or_default(),
            parent_folder_id: c.parent_folder_id,
        })
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ContactFolder {
    pub id: String,
    pub display_name: Option<String>,
    pub parent_folder_id: Option<String>,
}

/// A new contact, or the changes to one (only the fields given change).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email_addresses: Option<Vec<String>>,
    pub business_phones: Option<Vec<String>>,
    pub mobile_phone: Option<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub business_address: Option<Address>,
    pub categories: Option<Vec<String>>,
}

impl ContactInput {
    fn graph_json(&self) -> Result<Value, ServiceError> {
        let mut c = serde_json::Map::new();
        let texts = [
            ("displayName", &self.display_name),
            ("givenName", &self.given_name),
            ("surname", &self.surname),
            ("mobilePhone", &self.mobile_phone),
            ("companyName", &self.company_name),
            ("jobTitle", &self.job_title),
            ("department", &self.department),
        ];
        for (key, value) in texts {
            if let Some(v) = value {
                if v.len() > 255 || v.chars().any(char::is_control) {
                    return Err(ServiceError::BadInput(format!(
                        "{key} must be at most 255 characters without control characters"
                    )));
                }
                c.insert(key.to_owned(), json!(v));
            }
        }
        if let Some(list) = &self.email_addresses {
            if list.len() > 3 {
                return Err(ServiceError::BadInput(
                    "emailAddresses: a contact has at most 3".into(),
                ));
            }
            for a in list {
                if !super::mail_send::is_address(a) {
                    return Err(ServiceError::BadInput(format!(
                        "emailAddresses: '{a}' is not a valid mail address"
                    )));
                }
            }
            c.insert(
                "emailAddresses".into(),
                Value::Array(list.iter().map(|a| json!({ "address": a })).collect()),
            );
        }
        if let Some(p) = &self.business_phones {
            c.insert("businessPhones".into(), json!(p));
        }
        if let Some(a) = &self.business_address {
            c.insert(
                "businessAddress".into(),
                json!({
                    "street": a.street, "city": a.city, "state": a.state,
                    "countryOrRegion": a.country_or_region, "postalCode": a.postal_code,
                }),
            );
        }
        if let Some(cats) = &self.categories {
            c.insert("categories".into(), json!(cats));
        }
        Ok(Value::Object(c))
    }
}

impl Session {
    /// A page of contacts (of one folder, or the default folder), optionally searched.
    pub async fn contacts(
        &self,
        mailbox: &str,
        folder: Option<&str>,
        search: Option<&str>,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<Contact>, ServiceError> {
        self.require("contacts.read")?;
        let top = check_first(first)?;
        let search = search.map(message_search).transpose()?;
        let (user, key) = self.mailbox(mailbox)?;
        let base = match folder {
            Some(f) => user.then("contactFolders").id(f)?.then("contacts"),
            None => user.then("contacts"),
        };
        let path = base.path().to_owned();
        let mut url = base.select(CONTACT_FIELDS).top(top);
        if let Some(search) = &search {
            url = url.search(search);
        }
        self.page::<models::Contact>(GraphGet::new(url), &path, first, after, "contacts")
            .await?
            .map(|c| Contact::from_graph(c, &key))
    }

    /// One contact.
    pub async fn contact(&self, mailbox: &str, id: &str) -> Result<Contact, ServiceError> {
        self.require("contacts.read")?;
        let (user, key) = self.mailbox(mailbox)?;
        let url = user.then("contacts").id(id)?.select(CONTACT_FIELDS);
        let found: models::Contact = self
            .get_json(GraphGet::new(url))
            .await
            .map_err(|e| self.upstream(e, &format!("contact '{id}'")))?;
        Contact::from_graph(found, &key)
    }

    /// The contact folders of a mailbox.
    pub async fn contact_folders(
        &self,
        mailbox: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<ContactFolder>, ServiceError> {
        self.require("contacts.read")?;
        let top = check_first(first)?;
        let (user, _) = self.mailbox(mailbox)?;
        let base = user.then("contactFolders");
        let path = base.path().to_owned();
        let url = base
            .select(&["id", "displayName", "parentFolderId"])
            .top(top);
        self.page::<models::ContactFolder>(
            GraphGet::new(url),
            &path,
            first,
            after,
            "contact folders",
        )
        .await?
        .map(|f| {
            Ok(ContactFolder {
                id: f.id.ok_or(ServiceError::UpstreamBadResponse)?,
                display_name: f.display_name,
                parent_folder_id: f.parent_folder_id,
            })
        })
    }

    fn contact_reply(&self, body: &[u8], key: &str) -> Result<Contact, ServiceError> {
        let contact: models::Contact =
            serde_json::from_slice(body).map_err(|_| ServiceError::UpstreamBadResponse)?;
        Contact::from_graph(contact, key)
    }

    /// Creates a contact (in `folder`, or the default contacts folder).
    pub async fn create_contact(
        &self,
        mailbox: &str,
        folder: Option<&str>,
        input: &ContactInput,
    ) -> Result<Contact, ServiceError> {
        self.require("contacts.write")?;
        let body = input.graph_json()?;
        if input.display_name.is_none()
            && input.given_name.is_none()
            && input.surname.is_none()
            && input.email_addresses.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(ServiceError::BadInput(
                "a contact needs a name or a mail address".into(),
            ));
        }
        let (user, key) = self.mailbox(mailbox)?;
        let url = match folder {
            Some(f) => user.then("contactFolders").id(f)?.then("contacts"),
            None => user.then("contacts"),
        };
        let reply = self
            .write_mailbox(&key, GraphWrite::post(url, body), "the contact")
            .await;
        self.contact_reply(&reply?.body, &key)
    }

    /// Changes a contact; only the fields given change.
    pub async fn update_contact(
        &self,
        mailbox: &str,
        id: &str,
        input: &ContactInput,
    ) -> Result<Contact, ServiceError> {
        self.require("contacts.write")?;
        let body = input.graph_json()?;
        if body.as_object().is_none_or(|o| o.is_empty()) {
            return Err(ServiceError::BadInput("nothing to update".into()));
        }
        let (user, key) = self.mailbox(mailbox)?;
        let reply = self
            .write_mailbox(
                &key,
                GraphWrite::patch(user.then("contacts").id(id)?, body),
                &format!("contact '{id}'"),
            )
            .await;
        self.contact_reply(&reply?.body, &key)
    }

    /// Deletes a contact.
    pub async fn delete_contact(&self, mailbox: &str, id: &str) -> Result<(), ServiceError> {
        self.require("contacts.write")?;
        let (user, key) = self.mailbox(mailbox)?;
        let result = self
            .write_mailbox(
                &key,
                GraphWrite::delete(user.then("contacts").id(id)?),
                &format!("contact '{id}'"),
            )
            .await;
        result.map(|_| ())
    }
}
