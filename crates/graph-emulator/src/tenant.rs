//! The seeded, fictional tenant: users in a management tree, groups and directory roles.
//!
//! Everything here is derived from `(users, seed)` through one small PRNG, so the same
//! seed gives byte-identical data on every machine and every version of our dependencies
//! (which is why we do not use `rand`'s `StdRng`: its algorithm may change between releases).

use std::collections::HashMap;

use crate::{CONSENT_USER_UPN, DEMO_USER_UPN, MFA_USER_UPN, SHARED_MAILBOX_UPN, TENANT_DOMAIN};

/// The company every seed invents. Not a real company.
pub(crate) const COMPANY_NAME: &str = "Kestrel Ridge Outfitters";

/// A licence every enabled member holds, so `assignedLicenses/any(...)` filters have data.
/// (The SKU id of Microsoft 365 E3 is a public constant.)
pub(crate) const E3_SKU_ID: &str = "05e9a617-0261-4cee-bb44-138d3ef5d965";

/// The demo user's fixed name parts (see `DEMO_USER_UPN`).
const DEMO_GIVEN: &str = "Tamsin";
const DEMO_SURNAME: &str = "Greaves";
/// A fixed apostrophe name, so clients must escape quotes in OData literals.
const APOSTROPHE_GIVEN: &str = "Siobhan";
const APOSTROPHE_SURNAME: &str = "O'Brien";
/// The external (B2B guest) user every tenant of 10 or more users has.
const GUEST_GIVEN: &str = "Jordan";
const GUEST_SURNAME: &str = "Pike";
const GUEST_HOME_DOMAIN: &str = "cascadefreight.example";
/// The fixed user Conditional Access requires MFA of (see `MFA_USER_UPN`). Neither name part
/// is in the random name lists, so no generated person can take the address.
const MFA_GIVEN: &str = "Marguerite";
const MFA_SURNAME: &str = "Fenwick";
/// The fixed user who has consented to no application (see `CONSENT_USER_UPN`).
const CONSENT_GIVEN: &str = "Dashiell";
const CONSENT_SURNAME: &str = "Okafor";
/// The shared mailbox's display name (see `SHARED_MAILBOX_UPN`).
pub(crate) const SHARED_MAILBOX_NAME: &str = "Orders";
/// Where the personal addresses of `otherMails` live (reserved `.example` domain).
const PERSONAL_MAIL_DOMAIN: &str = "trailpost.example";

/// Anything that can appear in a directoryObject collection (memberOf, members, directReports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DirObj {
    User(usize),
    Group(usize),
    Role(usize),
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub id: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub mail_nickname: String,
    pub user_principal_name: String,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub preferred_language: Option<String>,
    pub account_enabled: bool,
    pub user_type: &'static str,
    pub company_name: Option<String>,
    pub employee_id: Option<String>,
    pub street_address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub usage_location: Option<String>,
    pub created_date_time: String,
    pub other_mails: Vec<String>,
    /// `SMTP:primary` first, then lower-case `smtp:` aliases (Exchange's convention).
    pub proxy_addresses: Vec<String>,
    /// Refresh tokens and session cookies issued before this instant are revoked.
    pub sign_in_sessions_valid_from: String,
    pub creation_type: Option<&'static str>,
    pub manager: Option<usize>,
    pub direct_reports: Vec<usize>,
    /// Direct memberships (groups first, then directory roles), in a stable order.
    pub member_of: Vec<DirObj>,
}

#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub mail: Option<String>,
    pub mail_nickname: String,
    pub mail_enabled: bool,
    pub security_enabled: bool,
    /// `["Unified"]` for Microsoft 365 groups, empty for security groups.
    pub group_types: Vec<&'static str>,
    pub visibility: Option<&'static str>,
    pub created_date_time: String,
    pub members: Vec<DirObj>,
}

#[derive(Clone, Debug)]
pub(crate) struct DirectoryRole {
    pub id: String,
    pub display_name: &'static str,
    pub description: &'static str,
    pub role_template_id: &'static str,
    pub members: Vec<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct Tenant {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub roles: Vec<DirectoryRole>,
    user_by_id: HashMap<String, usize>,
    user_by_upn: HashMap<String, usize>,
    /// Every `mail` and `proxyAddresses` address (lower-case, without `smtp:`), for mail routing.
    user_by_address: HashMap<String, usize>,
    group_by_id: HashMap<String, usize>,
    role_by_id: HashMap<String, usize>,
    /// For each group, the groups it is a direct member of.
    group_parents: Vec<Vec<usize>>,
}

impl Tenant {
    /// Looks a user up by object id or userPrincipalName, both case-insensitively, as Graph does.
    pub fn find_user(&self, key: &str) -> Option<usize> {
        let key = key.to_ascii_lowercase();
        self.user_by_id
            .get(&key)
            .or_else(|| self.user_by_upn.get(&key))
            .copied()
    }

    /// `find_user`, then any SMTP address of a user (`mail` or a `proxyAddresses` alias),
    /// case-insensitively: how Exchange resolves `/users/{address}` and mail recipients.
    pub fn find_user_or_address(&self, key: &str) -> Option<usize> {
        self.find_user(key).or_else(|| {
            self.user_by_address
                .get(&key.trim().to_ascii_lowercase())
                .copied()
        })
    }

    pub fn find_group(&self, id: &str) -> Option<usize> {
        self.group_by_id.get(&id.to_ascii_lowercase()).copied()
    }

    /// Directory roles are addressable by object id or by role template id.
    pub fn find_role(&self, id: &str) -> Option<usize> {
        let id = id.to_ascii_lowercase();
        self.role_by_id.get(&id).copied().or_else(|| {
            self.roles
                .iter()
                .position(|r| r.role_template_id.eq_ignore_ascii_case(&id))
        })
    }

    /// Builds the tenant for `(size, seed)`. Linear in `size`: 10,000 users take milliseconds.
    pub fn generate(size: usize, seed: u64) -> Tenant {
        let mut rng = SplitMix64::new(seed);
        let mut tenant = Tenant::default();
        if size == 0 {
            return tenant;
        }
        let plan = OrgPlan::new(size);
        let mut upns = UpnAllocator::default();
        // The fixed people claim their addresses first so random names never take them.
        upns.reserve(DEMO_USER_UPN);

        // CEO.
        let ceo = tenant.push_person(
            &mut rng,
            &mut upns,
            Person {
                department: None,
                job_title: "Chief Executive Officer".into(),
                manager: None,
                building: 1,
                fixed_name: None,
            },
        );

        // One VP per department, reporting to the CEO.
        let mut vps = Vec::with_capacity(plan.departments.len());
        for (d, dept) in plan.departments.iter().enumerate() {
            let vp = tenant.push_person(
                &mut rng,
                &mut upns,
                Person {
                    department: Some(dept.name),
                    job_title: dept.vp_title.into(),
                    manager: Some(ceo),
                    building: 10 + d as u32,
                    fixed_name: None,
                },
            );
            vps.push(vp);
        }

        // Everyone else: per department, a complete k-ary tree under the VP in breadth-first
        // order, so the first members are managers and the last ones individual contributors.
        // The fan-out grows with the department so a 10,000-user tenant stays a few levels deep.
        let mut demo_user = None;
        let mut apostrophe_user = None;
        for (d, dept) in plan.departments.iter().enumerate() {
            let headcount = plan.headcounts[d];
            let fan_out = fan_out_for(headcount);
            let mut members = Vec::with_capacity(headcount); // position j-1 holds member j
            for j in 1..=headcount {
                let parent_pos = (j - 1) / fan_out; // 0 = the VP
                let manager = if parent_pos == 0 {
                    vps[d]
                } else {
                    members[parent_pos - 1]
                };
                // Member j's first report would be member j * fan_out + 1.
                let has_reports = j * fan_out < headcount;
                let depth = depth_of(j, fan_out);
                let job_title = if has_reports && depth == 1 {
                    dept.manager_title.to_string()
                } else if has_reports {
                    format!("{} Team Lead", dept.short)
                } else {
                    dept.ic_titles[rng.below(dept.ic_titles.len())].to_string()
                };
                // The demo user and the O'Brien are fixed people in the first department.
                let fixed_name = match (d, j) {
                    (0, 1) if plan.has_fixed_people => Some((DEMO_GIVEN, DEMO_SURNAME)),
                    (0, 2) if plan.has_fixed_people => Some((APOSTROPHE_GIVEN, APOSTROPHE_SURNAME)),
                    _ => None,
                };
                let idx = tenant.push_person(
                    &mut rng,
                    &mut upns,
                    Person {
                        department: Some(dept.name),
                        job_title,
                        manager: Some(manager),
                        building: 10 + d as u32,
                        fixed_name,
                    },
                );
                match (d, j) {
                    (0, 1) if plan.has_fixed_people => demo_user = Some(idx),
                    (0, 2) if plan.has_fixed_people => apostrophe_user = Some(idx),
                    _ => {}
                }
                members.push(idx);
            }
        }

        // Two more fixed people, for the identity flows: the last member of the first department
        // (Conditional Access requires MFA of them) and the last member of the second (they have
        // consented to nothing). Renamed after the fact so every other draw stays as it was.
        let mut mfa_user = None;
        let mut consent_user = None;
        if plan.has_fixed_people {
            let first_dept_end = 1 + plan.departments.len() + plan.headcounts[0];
            let second_dept_end = first_dept_end + plan.headcounts[1];
            let mfa = first_dept_end - 1;
            let consent = second_dept_end - 1;
            tenant.rename(mfa, MFA_GIVEN, MFA_SURNAME, MFA_USER_UPN);
            tenant.rename(consent, CONSENT_GIVEN, CONSENT_SURNAME, CONSENT_USER_UPN);
            mfa_user = Some(mfa);
            consent_user = Some(consent);
        }

        // A B2B guest, sponsored by (reporting to) a VP so the tree keeps exactly one root.
        if plan.has_fixed_people {
            let sponsor = vps[1.min(vps.len() - 1)];
            tenant.push_guest(&mut rng, sponsor);
        }

        // A few disabled accounts among individual contributors (never the fixed people).
        let mut disabled_any = false;
        for i in 0..tenant.users.len() {
            let user = &tenant.users[i];
            let fixed =
                Some(i) == demo_user || Some(i) == apostrophe_user || user.user_type == "Guest";
            let is_ic = user.direct_reports.is_empty() && user.manager.is_some();
            // The identity fixtures are drawn for too (the stream stays as before), never disabled.
            let identity_fixture = Some(i) == mfa_user || Some(i) == consent_user;
            if is_ic && !fixed && rng.below(23) == 0 && !identity_fixture {
                tenant.users[i].account_enabled = false;
                disabled_any = true;
            }
        }
        if !disabled_any && plan.has_fixed_people {
            // Guarantee at least one, deterministically: the last member IC.
            if let Some(i) = (0..tenant.users.len()).rev().find(|&i| {
                let u = &tenant.users[i];
                u.direct_reports.is_empty()
                    && u.user_type == "Member"
                    && Some(i) != demo_user
                    && Some(i) != apostrophe_user
                    && Some(i) != mfa_user
                    && Some(i) != consent_user
                    && u.manager.is_some()
            }) {
                tenant.users[i].account_enabled = false;
            }
        }

        // The shared mailbox replaces the second-to-last member of the last department (an
        // individual contributor, never a fixed person), after every draw that person took part
        // in, so the rest of the tenant stays as it was and the size stays as configured.
        let mut shared = None;
        if plan.has_fixed_people {
            let last_dept_end = 1 + plan.departments.len() + plan.headcounts.iter().sum::<usize>();
            let idx = last_dept_end - 2;
            tenant.make_shared_mailbox(idx);
            shared = Some(idx);
        }

        tenant.build_groups(&mut rng, &plan, ceo, &vps, demo_user, shared);
        tenant.build_roles(&mut rng, &plan, ceo, &vps, demo_user);
        tenant.assign_addresses(demo_user, shared);
        tenant.index();
        tenant
    }

    /// Gives a generated person one of the fixed identities (name, UPN, mail).
    fn rename(&mut self, idx: usize, given: &str, surname: &str, upn: &str) {
        let local = upn.split('@').next().unwrap_or(upn).to_string();
        let u = &mut self.users[idx];
        u.display_name = format!("{given} {surname}");
        u.given_name = Some(given.to_string());
        u.surname = Some(surname.to_string());
        u.mail = Some(upn.to_string());
        u.mail_nickname = local;
        u.user_principal_name = upn.to_string();
    }

    /// Turns a generated person into the shared mailbox `SHARED_MAILBOX_UPN`: no manager, no
    /// job, sign-in disabled (as Exchange creates shared mailboxes), a plain `Member`.
    fn make_shared_mailbox(&mut self, idx: usize) {
        if let Some(m) = self.users[idx].manager.take() {
            self.users[m].direct_reports.retain(|&r| r != idx);
        }
        let local = SHARED_MAILBOX_UPN
            .split('@')
            .next()
            .unwrap_or(SHARED_MAILBOX_UPN);
        let u = &mut self.users[idx];
        u.display_name = SHARED_MAILBOX_NAME.to_string();
        u.given_name = None;
        u.surname = None;
        u.mail = Some(SHARED_MAILBOX_UPN.to_string());
        u.mail_nickname = local.to_string();
        u.user_principal_name = SHARED_MAILBOX_UPN.to_string();
        u.job_title = None;
        u.department = None;
        u.office_location = None;
        u.business_phones = Vec::new();
        u.mobile_phone = None;
        u.employee_id = None;
        u.account_enabled = false;
    }

    /// Proxy addresses and personal `otherMails`, derived from the names (no random draws, so
    /// the rest of the data is unchanged): every third member, and the demo user, also has a
    /// short alias such as `smtp:tgreaves@kestrelridge.example`; aliases are unique, as
    /// Exchange requires. Every seventh member and the demo user list a personal address
    /// (the shared mailbox never does).
    fn assign_addresses(&mut self, demo_user: Option<usize>, shared: Option<usize>) {
        let mut taken: std::collections::HashSet<String> = self
            .users
            .iter()
            .filter_map(|u| u.mail.as_deref().map(str::to_ascii_lowercase))
            .collect();
        for i in 0..self.users.len() {
            let u = &self.users[i];
            let mut proxies: Vec<String> = u.mail.iter().map(|m| format!("SMTP:{m}")).collect();
            let member = u.user_type == "Member";
            if member && (i % 3 == 0 || Some(i) == demo_user) {
                let clean = |s: &str| -> String {
                    s.chars()
                        .filter(|c| c.is_ascii_alphanumeric())
                        .map(|c| c.to_ascii_lowercase())
                        .collect()
                };
                let given = clean(u.given_name.as_deref().unwrap_or_default());
                let surname = clean(u.surname.as_deref().unwrap_or_default());
                if let Some(initial) = given.chars().next() {
                    let alias = format!("{initial}{surname}@{TENANT_DOMAIN}");
                    if taken.insert(alias.clone()) {
                        proxies.push(format!("smtp:{alias}"));
                    }
                }
            }
            let personal = ((member && i % 7 == 3) || Some(i) == demo_user) && Some(i) != shared;
            let local = u.mail_nickname.clone();
            let created = u.created_date_time.clone();
            let u = &mut self.users[i];
            u.proxy_addresses = proxies;
            u.sign_in_sessions_valid_from = created;
            if personal {
                u.other_mails
                    .push(format!("{local}@{PERSONAL_MAIL_DOMAIN}"));
            }
        }
    }

    /// Users reachable from group `g` through nested groups, and the nested groups
    /// themselves, each once, breadth-first in membership order.
    pub fn transitive_members(&self, g: usize) -> Vec<DirObj> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([g]);
        let mut visited_groups = std::collections::HashSet::from([g]);
        while let Some(group) = queue.pop_front() {
            for &m in &self.groups[group].members {
                if let DirObj::Group(inner) = m
                    && visited_groups.insert(inner)
                {
                    queue.push_back(inner);
                }
                if seen.insert(m) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// The groups a user belongs to directly or through nested groups (each once), followed
    /// by the directory roles they hold.
    pub fn transitive_member_of(&self, u: usize) -> Vec<DirObj> {
        let direct = &self.users[u].member_of;
        let mut seen = std::collections::HashSet::new();
        let mut queue: std::collections::VecDeque<usize> = direct
            .iter()
            .filter_map(|o| match o {
                DirObj::Group(g) => Some(*g),
                _ => None,
            })
            .collect();
        let mut groups = Vec::new();
        while let Some(g) = queue.pop_front() {
            if !seen.insert(g) {
                continue;
            }
            groups.push(DirObj::Group(g));
            if let Some(parents) = self.group_parents.get(g) {
                queue.extend(parents.iter().copied());
            }
        }
        groups.extend(
            direct
                .iter()
                .filter(|o| matches!(o, DirObj::Role(_)))
                .copied(),
        );
        groups
    }

    /// Marks a user's sessions revoked now (`signInSessionsValidFromDateTime`).
    pub fn revoke_sessions(&mut self, u: usize, unix: i64) {
        self.users[u].sign_in_sessions_valid_from = crate::clock::format_utc_seconds(unix);
    }

    fn push_person(&mut self, rng: &mut SplitMix64, upns: &mut UpnAllocator, p: Person) -> usize {
        let idx = self.users.len();
        let (given, surname) = match p.fixed_name {
            Some((g, s)) => (g.to_string(), s.to_string()),
            None => (
                GIVEN_NAMES[rng.below(GIVEN_NAMES.len())].to_string(),
                SURNAMES[rng.below(SURNAMES.len())].to_string(),
            ),
        };
        let local = if p.fixed_name.is_some()
            && (given.as_str(), surname.as_str()) == (DEMO_GIVEN, DEMO_SURNAME)
        {
            // Reserved up front, so it is taken verbatim.
            local_part(&given, &surname)
        } else {
            upns.allocate(&local_part(&given, &surname))
        };
        let upn = format!("{local}@{TENANT_DOMAIN}");
        let id = rng.guid();
        let (city, state, postal, street) = OFFICES[(p.building as usize) % OFFICES.len()];
        let floor = 1 + rng.below(4);
        let room = 100 + rng.below(60);
        let created = rng.timestamp();
        let language = match rng.below(20) {
            0 => "es-MX",
            1 => "fr-CA",
            _ => "en-US",
        };
        let mobile = if rng.below(10) < 7 {
            Some(format!("+1 971 555 {:04}", 100 + rng.below(100)))
        } else {
            None
        };
        self.users.push(User {
            id,
            display_name: format!("{given} {surname}"),
            given_name: Some(given),
            surname: Some(surname),
            mail: Some(upn.clone()),
            mail_nickname: local,
            user_principal_name: upn,
            job_title: Some(p.job_title),
            department: p.department.map(str::to_string),
            office_location: Some(format!("{}/{}{:02}", p.building, floor, room - 100)),
            business_phones: vec![format!("+1 503 555 {:04}", 100 + idx % 100)],
            mobile_phone: mobile,
            preferred_language: Some(language.to_string()),
            account_enabled: true,
            user_type: "Member",
            company_name: Some(COMPANY_NAME.to_string()),
            employee_id: Some(format!("KR{:05}", idx + 1)),
            street_address: Some(street.to_string()),
            city: Some(city.to_string()),
            state: Some(state.to_string()),
            postal_code: Some(postal.to_string()),
            country: Some("United States".to_string()),
            usage_location: Some("US".to_string()),
            created_date_time: created,
            other_mails: Vec::new(),
            proxy_addresses: Vec::new(),
            sign_in_sessions_valid_from: String::new(),
            creation_type: None,
            manager: p.manager,
            direct_reports: Vec::new(),
            member_of: Vec::new(),
        });
        if let Some(m) = p.manager {
            self.users[m].direct_reports.push(idx);
        }
        idx
    }

    fn push_guest(&mut self, rng: &mut SplitMix64, sponsor: usize) {
        let idx = self.users.len();
        let home_mail = format!(
            "{}.{}@{GUEST_HOME_DOMAIN}",
            GUEST_GIVEN.to_ascii_lowercase(),
            GUEST_SURNAME.to_ascii_lowercase()
        );
        // Entra's B2B convention: the home address with '@' replaced by '_', then #EXT#.
        let nickname = format!("{}#EXT#", home_mail.replace('@', "_"));
        let upn = format!("{nickname}@{TENANT_DOMAIN}");
        let id = rng.guid();
        let created = rng.timestamp();
        self.users.push(User {
            id,
            display_name: format!("{GUEST_GIVEN} {GUEST_SURNAME}"),
            given_name: Some(GUEST_GIVEN.to_string()),
            surname: Some(GUEST_SURNAME.to_string()),
            mail: Some(home_mail.clone()),
            mail_nickname: nickname,
            user_principal_name: upn,
            job_title: None,
            department: None,
            office_location: None,
            business_phones: Vec::new(),
            mobile_phone: None,
            preferred_language: None,
            account_enabled: true,
            user_type: "Guest",
            company_name: None,
            employee_id: None,
            street_address: None,
            city: None,
            state: None,
            postal_code: None,
            country: None,
            usage_location: None,
            created_date_time: created,
            other_mails: vec![home_mail],
            proxy_addresses: Vec::new(),
            sign_in_sessions_valid_from: String::new(),
            creation_type: Some("Invitation"),
            manager: Some(sponsor),
            direct_reports: Vec::new(),
            member_of: Vec::new(),
        });
        self.users[sponsor].direct_reports.push(idx);
    }

    fn push_group(&mut self, rng: &mut SplitMix64, spec: GroupSpec, members: Vec<DirObj>) -> usize {
        let idx = self.groups.len();
        let id = rng.guid();
        let created = rng.timestamp();
        let unified = spec.unified;
        self.groups.push(Group {
            id,
            display_name: spec.name,
            description: Some(spec.description),
            mail: if unified {
                Some(format!("{}@{TENANT_DOMAIN}", spec.nickname))
            } else {
                None
            },
            mail_nickname: spec.nickname,
            mail_enabled: unified,
            security_enabled: !unified,
            group_types: if unified { vec!["Unified"] } else { Vec::new() },
            visibility: spec.visibility,
            created_date_time: created,
            members: Vec::new(),
        });
        for m in members {
            self.add_member(idx, m);
        }
        idx
    }

    fn add_member(&mut self, group: usize, member: DirObj) {
        self.groups[group].members.push(member);
        if let DirObj::User(u) = member {
            self.users[u].member_of.push(DirObj::Group(group));
        }
    }

    fn build_groups(
        &mut self,
        rng: &mut SplitMix64,
        plan: &OrgPlan,
        ceo: usize,
        vps: &[usize],
        demo_user: Option<usize>,
        shared: Option<usize>,
    ) {
        let everyone: Vec<DirObj> = (0..self.users.len()).map(DirObj::User).collect();
        self.push_group(
            rng,
            GroupSpec::unified(
                "All Staff",
                "allstaff",
                "Everyone at Kestrel Ridge Outfitters",
                Some("Public"),
            ),
            everyone,
        );

        for dept in &plan.departments {
            let members: Vec<DirObj> = (0..self.users.len())
                .filter(|&u| self.users[u].department.as_deref() == Some(dept.name))
                .map(DirObj::User)
                .collect();
            self.push_group(
                rng,
                GroupSpec::security(
                    &format!("{} Department", dept.name),
                    &format!("dept-{}", dept.slug),
                    &format!("Security group for everyone in {}", dept.name),
                ),
                members,
            );
        }

        let managers: Vec<DirObj> = (0..self.users.len())
            .filter(|&u| !self.users[u].direct_reports.is_empty())
            .map(DirObj::User)
            .collect();
        let people_managers = self.push_group(
            rng,
            GroupSpec::security(
                "People Managers",
                "people-managers",
                "Everyone with direct reports",
            ),
            managers,
        );

        // A group whose members include another group (nested membership).
        let mut leadership: Vec<DirObj> = vec![DirObj::User(ceo)];
        leadership.extend(vps.iter().map(|&v| DirObj::User(v)));
        leadership.push(DirObj::Group(people_managers));
        self.push_group(
            rng,
            GroupSpec::security(
                "Extended Leadership",
                "extended-leadership",
                "The executive team plus every people manager",
            ),
            leadership,
        );

        // Microsoft 365 groups with pseudo-random membership; the demo user joins the first two.
        for (n, &(name, nickname, description, visibility)) in UNIFIED_GROUPS.iter().enumerate() {
            let mut members = Vec::new();
            for u in 0..self.users.len() {
                let pick = rng.below(100) < 15 || (n < 2 && Some(u) == demo_user);
                // The shared mailbox draws like everyone (the stream stays as before), joins none.
                if pick && Some(u) != shared {
                    members.push(DirObj::User(u));
                }
            }
            if members.is_empty() {
                members.push(DirObj::User(ceo));
            }
            self.push_group(
                rng,
                GroupSpec::unified(name, nickname, description, Some(visibility)),
                members,
            );
        }
    }

    fn build_roles(
        &mut self,
        rng: &mut SplitMix64,
        plan: &OrgPlan,
        ceo: usize,
        vps: &[usize],
        demo_user: Option<usize>,
    ) {
        let first_vp = vps.first().copied().unwrap_or(ceo);
        let hr_vp = plan
            .departments
            .iter()
            .position(|d| d.slug == "hr")
            .map(|d| vps[d])
            .unwrap_or(ceo);
        let mut helpdesk = vec![];
        if let Some(d) = demo_user {
            helpdesk.push(d);
        }
        for (template, name, description, members) in [
            (
                "62e90394-69f5-4237-9190-012177145e10",
                "Global Administrator",
                "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft Entra identities.",
                vec![first_vp],
            ),
            (
                "fe930be7-5e62-47db-91af-98c3a49a38b1",
                "User Administrator",
                "Can manage all aspects of users and groups, including resetting passwords for limited admins.",
                vec![hr_vp],
            ),
            (
                "729827e3-9c14-49f7-bb1b-9608f156bbb8",
                "Helpdesk Administrator",
                "Can reset passwords for non-administrators and Helpdesk Administrators.",
                helpdesk,
            ),
        ] {
            let idx = self.roles.len();
            let id = rng.guid();
            for &m in &members {
                self.users[m].member_of.push(DirObj::Role(idx));
            }
            self.roles.push(DirectoryRole {
                id,
                display_name: name,
                description,
                role_template_id: template,
                members,
            });
        }
    }

    fn index(&mut self) {
        for (i, u) in self.users.iter().enumerate() {
            self.user_by_id.insert(u.id.to_ascii_lowercase(), i);
            self.user_by_upn
                .insert(u.user_principal_name.to_ascii_lowercase(), i);
            let proxies = u.proxy_addresses.iter().filter_map(|p| {
                p.split_once(':')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("smtp"))
                    .map(|(_, address)| address)
            });
            for address in u.mail.iter().map(String::as_str).chain(proxies) {
                self.user_by_address
                    .entry(address.to_ascii_lowercase())
                    .or_insert(i);
            }
        }
        self.group_parents = vec![Vec::new(); self.groups.len()];
        for (i, g) in self.groups.iter().enumerate() {
            self.group_by_id.insert(g.id.to_ascii_lowercase(), i);
            for m in &g.members {
                if let DirObj::Group(child) = m {
                    self.group_parents[*child].push(i);
                }
            }
        }
        for (i, r) in self.roles.iter().enumerate() {
            self.role_by_id.insert(r.id.to_ascii_lowercase(), i);
        }
    }
}

struct Person {
    department: Option<&'static str>,
    job_title: String,
    manager: Option<usize>,
    building: u32,
    fixed_name: Option<(&'static str, &'static str)>,
}

struct GroupSpec {
    name: String,
    nickname: String,
    description: String,
    unified: bool,
    visibility: Option<&'static str>,
}

impl GroupSpec {
    fn unified(
        name: &str,
        nickname: &str,
        description: &str,
        visibility: Option<&'static str>,
    ) -> Self {
        GroupSpec {
            name: name.into(),
            nickname: nickname.into(),
            description: description.into(),
            unified: true,
            visibility,
        }
    }
    fn security(name: &str, nickname: &str, description: &str) -> Self {
        GroupSpec {
            name: name.into(),
            nickname: nickname.into(),
            description: description.into(),
            unified: false,
            visibility: None,
        }
    }
}

/// How many departments and how many people each has below its VP.
struct OrgPlan {
    departments: Vec<&'static Department>,
    headcounts: Vec<usize>,
    /// The demo user, the O'Brien and the guest exist from 10 users up.
    has_fixed_people: bool,
}

impl OrgPlan {
    fn new(size: usize) -> OrgPlan {
        let has_fixed_people = size >= 10;
        let department_count = if has_fixed_people {
            (size / 12).clamp(2, DEPARTMENTS.len())
        } else {
            (size - 1).min(1)
        };
        let departments: Vec<&'static Department> =
            DEPARTMENTS[..department_count].iter().collect();
        let guest = usize::from(has_fixed_people);
        let below_vps = size - 1 - department_count - guest;
        let headcounts = (0..department_count)
            .map(|d| below_vps / department_count + usize::from(d < below_vps % department_count))
            .collect();
        OrgPlan {
            departments,
            headcounts,
            has_fixed_people,
        }
    }
}

/// Fan-out of a department's tree: about the square root of its size, between 2 and 7,
/// which keeps every tree at least two levels below the VP (manager, contributor).
fn fan_out_for(headcount: usize) -> usize {
    let mut k = 2;
    while k * k < headcount && k < 7 {
        k += 1;
    }
    k
}

/// Depth below the VP of member `j` (1-based, breadth-first) of a complete `k`-ary tree.
fn depth_of(j: usize, k: usize) -> usize {
    let mut depth = 1;
    let mut pos = j;
    while pos > k {
        pos = (pos - 1) / k;
        depth += 1;
    }
    depth
}

/// Hands out unique local parts: "given.surname", then "given.surname2", "given.surname3", ...
#[derive(Default)]
struct UpnAllocator {
    taken: HashMap<String, u32>,
}

impl UpnAllocator {
    fn reserve(&mut self, upn: &str) {
        let local = upn.split('@').next().unwrap_or(upn);
        self.taken.insert(local.to_ascii_lowercase(), 1);
    }

    fn allocate(&mut self, base: &str) -> String {
        let mut n = self.taken.get(base).copied().unwrap_or(0);
        loop {
            n += 1;
            let candidate = if n == 1 {
                base.to_string()
            } else {
                format!("{base}{n}")
            };
            if n == 1 || !self.taken.contains_key(&candidate) {
                self.taken.insert(base.to_string(), n);
                self.taken.entry(candidate.clone()).or_insert(1);
                return candidate;
            }
        }
    }
}

/// "Siobhan", "O'Brien" → "siobhan.obrien": mail addresses drop the punctuation.
fn local_part(given: &str, surname: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    format!("{}.{}", clean(given), clean(surname))
}

/// SplitMix64: tiny, fast and stable forever, so seeds reproduce across releases.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0). The modulo bias is irrelevant for seed data.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A version-4-shaped GUID from the stream.
    pub(crate) fn guid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// A creation timestamp between 2019 and 2024, in Graph's `2021-03-14T09:27:31Z` form.
    fn timestamp(&mut self) -> String {
        let start = 1_546_300_800i64; // 2019-01-01T00:00:00Z
        let offset = (self.next_u64() % (6 * 365 * 86_400)) as i64;
        crate::clock::format_utc_seconds(start + offset)
    }
}

struct Department {
    name: &'static str,
    short: &'static str,
    slug: &'static str,
    vp_title: &'static str,
    manager_title: &'static str,
    ic_titles: &'static [&'static str],
}

const DEPARTMENTS: [Department; 10] = [
    Department {
        name: "Engineering",
        short: "Engineering",
        slug: "engineering",
        vp_title: "VP of Engineering",
        manager_title: "Engineering Manager",
        ic_titles: &[
            "Software Engineer",
            "Senior Software Engineer",
            "Site Reliability Engineer",
            "QA Engineer",
        ],
    },
    Department {
        name: "Sales",
        short: "Sales",
        slug: "sales",
        vp_title: "VP of Sales",
        manager_title: "Regional Sales Manager",
        ic_titles: &[
            "Account Executive",
            "Sales Development Representative",
            "Account Manager",
        ],
    },
    Department {
        name: "Marketing",
        short: "Marketing",
        slug: "marketing",
        vp_title: "VP of Marketing",
        manager_title: "Marketing Manager",
        ic_titles: &[
            "Content Strategist",
            "Marketing Specialist",
            "Brand Designer",
        ],
    },
    Department {
        name: "Finance",
        short: "Finance",
        slug: "finance",
        vp_title: "VP of Finance",
        manager_title: "Finance Manager",
        ic_titles: &["Financial Analyst", "Accountant", "Payroll Specialist"],
    },
    Department {
        name: "Human Resources",
        short: "HR",
        slug: "hr",
        vp_title: "VP of People",
        manager_title: "HR Manager",
        ic_titles: &["HR Generalist", "Recruiter", "People Operations Specialist"],
    },
    Department {
        name: "Operations",
        short: "Operations",
        slug: "operations",
        vp_title: "VP of Operations",
        manager_title: "Operations Manager",
        ic_titles: &[
            "Logistics Coordinator",
            "Operations Analyst",
            "Warehouse Associate",
        ],
    },
    Department {
        name: "Customer Support",
        short: "Support",
        slug: "support",
        vp_title: "VP of Customer Experience",
        manager_title: "Support Manager",
        ic_titles: &[
            "Support Specialist",
            "Customer Success Associate",
            "Technical Support Engineer",
        ],
    },
    Department {
        name: "Product",
        short: "Product",
        slug: "product",
        vp_title: "VP of Product",
        manager_title: "Group Product Lead",
        ic_titles: &["Product Manager", "UX Designer", "UX Researcher"],
    },
    Department {
        name: "Legal",
        short: "Legal",
        slug: "legal",
        vp_title: "General Counsel",
        manager_title: "Legal Manager",
        ic_titles: &["Paralegal", "Contracts Specialist", "Compliance Analyst"],
    },
    Department {
        name: "Information Technology",
        short: "IT",
        slug: "it",
        vp_title: "VP of IT",
        manager_title: "IT Manager",
        ic_titles: &[
            "Systems Administrator",
            "IT Support Technician",
            "Security Analyst",
        ],
    },
];

/// (city, state, postal code, street) per building; `building % len` picks one.
const OFFICES: [(&str, &str, &str, &str); 4] = [
    ("Portland", "OR", "97204", "1200 SW Alder St"),
    ("Bend", "OR", "97701", "45 NW Riverside Blvd"),
    ("Boise", "ID", "83702", "300 W Idaho St"),
    ("Spokane", "WA", "99201", "820 W Sprague Ave"),
];

const UNIFIED_GROUPS: [(&str, &str, &str, &str); 5] = [
    (
        "Trailhead Launch Crew",
        "trailhead-launch",
        "Cross-team crew shipping the Trailhead product line",
        "Private",
    ),
    (
        "Social Committee",
        "social-committee",
        "Potlucks, hikes and the winter party",
        "Public",
    ),
    (
        "Sustainability Circle",
        "sustainability",
        "Reducing our footprint, one shipment at a time",
        "Public",
    ),
    (
        "Quarterly Planning",
        "quarterly-planning",
        "Planning documents and reviews",
        "Private",
    ),
    (
        "Field Testing",
        "field-testing",
        "Gear field tests and trip reports",
        "Public",
    ),
];

// Invented for this emulator; any resemblance to a real person is accidental.
const GIVEN_NAMES: [&str; 64] = [
    "Aiden", "Amara", "Anika", "Arlo", "Beatrix", "Bodhi", "Calla", "Cormac", "Dalia", "Dario",
    "Delphine", "Emeka", "Esme", "Ezra", "Farah", "Felix", "Greta", "Hamish", "Hana", "Idris",
    "Ilse", "Imogen", "Jasper", "Joaquin", "Kaia", "Keanu", "Leandra", "Linus", "Lucia", "Mads",
    "Marisol", "Mateo", "Milo", "Nell", "Niamh", "Odile", "Orrin", "Priya", "Quentin", "Rafferty",
    "Renata", "Rohan", "Rosalind", "Saoirse", "Selim", "Sunniva", "Tariq", "Thea", "Tobias",
    "Ulla", "Valentin", "Vesna", "Wren", "Xavi", "Yara", "Yusuf", "Zadie", "Zoltan", "Ines",
    "Bram", "Cleo", "Dov", "Elio", "Fenna",
];

const SURNAMES: [&str; 64] = [
    "Abernethy",
    "Achterberg",
    "Baptiste",
    "Bellweather",
    "Castellanos",
    "Chaudhry",
    "Dunmore",
    "Eklund",
    "Fairbanks",
    "Falkner",
    "Galloway",
    "Grimaldi",
    "Halvorsen",
    "Hightower",
    "Ibarra",
    "Jablonski",
    "Kastner",
    "Kowalczyk",
    "Lindqvist",
    "Lockhart",
    "Mabry",
    "Marchetti",
    "Nakashima",
    "Northcott",
    "Okonkwo",
    "Oyelaran",
    "Pemberton",
    "Quintero",
    "Rasmussen",
    "Redfern",
    "Saltonstall",
    "Sandoval",
    "Takahara",
    "Thorvald",
    "Underhill",
    "Valtonen",
    "Vasquez",
    "Wakefield",
    "Whitlock",
    "Yilmaz",
    "Zamora",
    "Zielinski",
    "Ashdown",
    "Brannigan",
    "Corrigan",
    "Delacroix",
    "Easterbrook",
    "Ferreira",
    "Gustafsson",
    "Holloway",
    "Iwasaki",
    "Juarez",
    "Kinsella",
    "Larkspur",
    "Moreau",
    "Nystrom",
    "Ostrowski",
    "Prescott",
    "Rutherford",
    "Sorensen",
    "Tremblay",
    "Umberger",
    "Voss",
    "Winslow",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_users_generate_in_well_under_a_second() {
        let started = std::time::Instant::now();
        let t = Tenant::generate(10_000, 7);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(t.users.len(), 10_000);
        // The CEO, and the shared mailbox (not a person).
        assert_eq!(t.users.iter().filter(|u| u.manager.is_none()).count(), 2);
    }

    #[test]
    fn the_tree_is_at_least_four_levels_deep_with_one_ceo() {
        for size in [10, 11, 25, 60, 500] {
            let t = Tenant::generate(size, 1);
            assert_eq!(t.users.len(), size);
            let people_without_manager = t
                .users
                .iter()
                .filter(|u| u.manager.is_none() && u.user_principal_name != SHARED_MAILBOX_UPN)
                .count();
            assert_eq!(people_without_manager, 1, "size {size}");
            let depth = |mut i: usize| {
                let mut d = 1;
                while let Some(m) = t.users[i].manager {
                    i = m;
                    d += 1;
                }
                d
            };
            let max_depth = (0..t.users.len()).map(depth).max().unwrap_or(0);
            assert!(max_depth >= 4, "size {size}: depth {max_depth}");
        }
    }

    #[test]
    fn the_demo_user_is_a_manager_with_a_manager_reports_and_groups_for_every_seed() {
        for seed in [0, 1, 42, 9999] {
            for size in [10, 60, 1000] {
                let t = Tenant::generate(size, seed);
                let i = t.find_user(DEMO_USER_UPN).expect("demo user");
                let u = &t.users[i];
                assert!(u.manager.is_some());
                assert!(!u.direct_reports.is_empty(), "size {size}");
                assert!(
                    u.member_of
                        .iter()
                        .filter(|m| matches!(m, DirObj::Group(_)))
                        .count()
                        >= 2
                );
                assert!(u.member_of.iter().any(|m| matches!(m, DirObj::Role(_))));
            }
        }
    }

    #[test]
    fn user_principal_names_are_unique() {
        let t = Tenant::generate(5000, 3);
        let mut seen = std::collections::HashSet::new();
        for u in &t.users {
            assert!(
                seen.insert(u.user_principal_name.to_ascii_lowercase()),
                "{}",
                u.user_principal_name
            );
        }
    }

    #[test]
    fn tiny_tenants_do_not_panic() {
        for size in 0..10 {
            let t = Tenant::generate(size, 5);
            assert_eq!(t.users.len(), size);
        }
    }

    #[test]
    fn the_identity_fixture_users_exist_enabled_for_every_seed_and_size() {
        for seed in [0, 1, 42, 9999] {
            for size in [10, 11, 25, 60, 1000] {
                let t = Tenant::generate(size, seed);
                let demo = t.find_user(DEMO_USER_UPN).expect("demo");
                let mfa = t.find_user(MFA_USER_UPN).expect("mfa user");
                let consent = t.find_user(CONSENT_USER_UPN).expect("consent user");
                assert!(demo != mfa && mfa != consent && demo != consent);
                for i in [mfa, consent] {
                    let u = &t.users[i];
                    assert!(u.account_enabled, "size {size} seed {seed}");
                    assert_eq!(u.user_type, "Member");
                    assert!(u.manager.is_some());
                }
                assert_eq!(t.users[mfa].display_name, "Marguerite Fenwick");
                assert_eq!(t.users.len(), size);
            }
        }
    }

    #[test]
    fn the_shared_mailbox_replaces_one_person_and_leaves_the_fixed_people_alone() {
        for seed in [0, 1, 42, 9999] {
            for size in [10, 11, 25, 60, 1000] {
                let t = Tenant::generate(size, seed);
                assert_eq!(t.users.len(), size);
                let i = t.find_user(SHARED_MAILBOX_UPN).expect("shared mailbox");
                let u = &t.users[i];
                assert_eq!(u.display_name, SHARED_MAILBOX_NAME);
                assert!(u.manager.is_none() && u.direct_reports.is_empty());
                assert!(!u.account_enabled);
                assert_eq!(u.user_type, "Member");
                assert!(u.other_mails.is_empty());
                for upn in [DEMO_USER_UPN, MFA_USER_UPN, CONSENT_USER_UPN] {
                    let f = t.find_user(upn).expect("fixed user");
                    assert_ne!(f, i);
                    assert!(!t.users[f].direct_reports.contains(&i));
                }
                for m in &u.member_of {
                    let DirObj::Group(g) = m else {
                        panic!("the shared mailbox holds no role")
                    };
                    assert_eq!(t.groups[*g].display_name, "All Staff");
                }
            }
        }
        // Nothing below 10 users.
        assert!(
            Tenant::generate(9, 1)
                .find_user(SHARED_MAILBOX_UPN)
                .is_none()
        );
    }

    #[test]
    fn users_are_found_by_any_smtp_address() {
        let t = Tenant::generate(60, 42);
        let demo = t.find_user(DEMO_USER_UPN).expect("demo");
        assert_eq!(
            t.find_user_or_address(&format!("TGreaves@{TENANT_DOMAIN}")),
            Some(demo)
        );
        assert_eq!(
            t.find_user_or_address(&DEMO_USER_UPN.to_uppercase()),
            Some(demo)
        );
        assert_eq!(t.find_user_or_address("nobody@kestrelridge.example"), None);
    }

    #[test]
    fn proxy_addresses_are_unique_and_the_demo_user_has_an_alias() {
        let t = Tenant::generate(2000, 11);
        let mut seen = std::collections::HashSet::new();
        for u in &t.users {
            assert!(u.proxy_addresses[0].starts_with("SMTP:"));
            for p in &u.proxy_addresses {
                let address = p.split_once(':').map(|(_, a)| a.to_ascii_lowercase());
                assert!(seen.insert(address.clone()), "{p} twice");
            }
        }
        let demo = &t.users[t.find_user(DEMO_USER_UPN).expect("demo")];
        assert_eq!(
            demo.proxy_addresses,
            vec![
                format!("SMTP:{DEMO_USER_UPN}"),
                format!("smtp:tgreaves@{TENANT_DOMAIN}")
            ]
        );
        assert_eq!(demo.other_mails.len(), 1);
    }

    #[test]
    fn transitive_members_follow_nested_groups_once() {
        let t = Tenant::generate(60, 42);
        let leadership = t
            .groups
            .iter()
            .position(|g| g.display_name == "Extended Leadership")
            .expect("group");
        let managers = t
            .groups
            .iter()
            .position(|g| g.display_name == "People Managers")
            .expect("group");
        let all = t.transitive_members(leadership);
        assert!(all.contains(&DirObj::Group(managers)));
        for m in &t.groups[managers].members {
            assert!(all.contains(m));
        }
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        // A people manager is in Extended Leadership only through the nested group.
        let demo = t.find_user(DEMO_USER_UPN).expect("demo");
        let of = t.transitive_member_of(demo);
        assert!(of.contains(&DirObj::Group(leadership)));
        assert!(!t.users[demo].member_of.contains(&DirObj::Group(leadership)));
    }
}
