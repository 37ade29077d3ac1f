//! Seeded mail history, generated when a mailbox is first touched: a pure function of the
//! tenant seed, the owner and the anchor day (see `MailStore::anchor`).
//!
//! - `DEMO_USER_UPN`: Inbox 64 (52 from colleagues, 12 external), Inbox/Orders 4,
//!   Inbox/Invoices 3, Projects 2, Sent Items 6, Drafts 3, Deleted Items 2, Archive 2,
//!   Junk Email 1. Threads, attachments, categories, flags, importance, unread mail.
//! - `SHARED_MAILBOX_UPN`: Inbox 30 and Inbox/Orders 8 order and invoice messages from
//!   external senders, each with an attachment.
//! - Everyone else: 5–15 Inbox messages and 1–2 in Sent Items.

use serde_json::{Value, json};

use super::text::escape_html;
use super::{Attachment, Body, Mailbox, Message, Recipient, ids};
use crate::tenant::{SplitMix64, Tenant};
use crate::{DEMO_USER_UPN, SHARED_MAILBOX_UPN, TENANT_DOMAIN};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// Counts of the demo user's seeded folders (documented in the crate docs).
pub(crate) const DEMO_INBOX_FROM_COLLEAGUES: usize = 52;
pub(crate) const DEMO_INBOX_EXTERNAL: usize = 12;

/// (subject, sentence) of mail between colleagues. Some carry an apostrophe or non-ASCII
/// characters on purpose: clients must quote and encode them.
const INTERNAL_TOPICS: [(&str, &str); 28] = [
    (
        "Q3 trail gear forecast",
        "Attached is the draft forecast for the Ridgeline and Summit lines; the Boise numbers are still rough.",
    ),
    (
        "Warehouse inventory count",
        "The Spokane warehouse count is scheduled for Thursday night. Please close your team's reservations by 5pm.",
    ),
    (
        "Team offsite in Bend",
        "We have the lodge booked for the 14th and 15th. Let me know about dietary needs by Friday.",
    ),
    (
        "Expense report reminder",
        "Expense reports for last month are due Monday. Receipts over $75 need an itemised copy.",
    ),
    (
        "Security awareness training due",
        "The annual security awareness module is due by the end of the month. It takes about 25 minutes.",
    ),
    (
        "Customer escalation: Cascade Freight",
        "Cascade Freight reports two late pallets from the Portland dock. Can we get a root cause by tomorrow?",
    ),
    (
        "Field test results: Ridgeline 2 tent",
        "The Ridgeline 2 held up in 40 mph gusts at Smith Rock. Seam tape needs another look.",
    ),
    (
        "Updated PTO calendar",
        "I've updated the shared PTO calendar for the holidays. Please double-check your dates.",
    ),
    (
        "Let's review the O'Brien account",
        "Siobhan asked for a quick review of the O'Brien account renewal before we send the quote.",
    ),
    (
        "Café order for Friday — 12 people",
        "Ordering from the café for Friday's review: 12 people, two vegetarian, one gluten-free.",
    ),
    (
        "Interview loop for Senior Software Engineer",
        "Could you take the system design slot on Wednesday at 2pm? Feedback is due the same day.",
    ),
    (
        "1:1 agenda",
        "For our 1:1: hiring plan, the Q3 roadmap, and your conference proposal.",
    ),
    (
        "Budget variance for the Portland store",
        "Portland is 6% over on seasonal staffing. I'd like to understand the drivers before the review.",
    ),
    (
        "Release notes: inventory service 4.2",
        "Inventory service 4.2 ships on Tuesday with faster stock lookups and the new reservation API.",
    ),
    (
        "Holiday hours update",
        "Stores close at 3pm on the 24th and stay closed on the 25th. Support runs a skeleton crew.",
    ),
    (
        "Parking garage closure",
        "The Alder St garage is closed for resurfacing next week; use the 4th Ave lot instead.",
    ),
    (
        "Quarterly planning notes",
        "Notes from quarterly planning are in the shared folder. Action items are at the end.",
    ),
    (
        "Re-org FAQ draft",
        "Here's the draft FAQ for the support re-org. Comments welcome before Thursday.",
    ),
    (
        "Vendor onboarding checklist",
        "The vendor onboarding checklist now includes the security questionnaire step.",
    ),
    (
        "Bike-to-work week",
        "Sustainability Circle is running bike-to-work week; sign up for the team challenge.",
    ),
    (
        "Return policy change",
        "Starting next month, returns without a receipt get store credit only.",
    ),
    (
        "Dashboard access request",
        "Could you grant me access to the sales dashboard? I need it for the regional review.",
    ),
    (
        "Trailhead launch: photo shoot",
        "The photo shoot for the Trailhead launch is set for Mount Hood on the 9th.",
    ),
    (
        "On-call handover",
        "Handing over on-call: two open incidents, both low severity, notes in the runbook.",
    ),
    (
        "Welcome our new hires",
        "Please welcome three new hires joining Operations this week.",
    ),
    (
        "Supplier audit results",
        "The supplier audit came back clean apart from two documentation gaps.",
    ),
    (
        "Laptop refresh schedule",
        "IT will refresh laptops older than four years starting next Monday.",
    ),
    (
        "Re: Weekly sync moved",
        "The weekly sync moves to Tuesdays at 10am from next week.",
    ),
];

/// External correspondents (reserved `.example` domains).
const EXTERNAL: [(&str, &str); 7] = [
    (
        "Priya Natarajan",
        "priya.natarajan@contoso-partners.example",
    ),
    ("Contoso Partners Orders", "orders@contoso-partners.example"),
    ("Fabrikam Billing", "billing@fabrikam.example"),
    ("Lars Øverby", "lars.overby@fabrikam.example"),
    ("Adatum Events", "events@adatum.example"),
    ("Northwind Traders Sales", "sales@northwind-traders.example"),
    ("Wide World Importers", "hello@wideworldimporters.example"),
];

const CLOSINGS: [&str; 4] = ["Thanks", "Best", "Cheers", "Regards"];

/// A seeded message before it gets its ids.
struct Item {
    folder: String,
    received: i64,
    from: Recipient,
    to: Vec<Recipient>,
    cc: Vec<Recipient>,
    reply_to: Vec<Recipient>,
    subject: String,
    body: Body,
    attachments: Vec<(String, &'static str, Vec<u8>)>,
    categories: Vec<String>,
    flag: Value,
    importance: &'static str,
    is_read: bool,
    is_draft: bool,
    inference: &'static str,
    conversation: (String, Vec<u8>),
    internet_message_id: String,
}

struct Gen<'a> {
    rng: SplitMix64,
    tenant: &'a Tenant,
    key: [u8; 16],
    owner: usize,
    me: Recipient,
    anchor: i64,
    items: Vec<Item>,
}

pub(super) fn seed(mailbox: &mut Mailbox, tenant: &Tenant, seed: u64, anchor: i64) {
    let user = &tenant.users[mailbox.owner];
    let mut g = Gen {
        rng: SplitMix64::new(seed ^ ids::fnv(user.id.as_bytes()) ^ 0x5eed_6d61_696c_0001),
        tenant,
        key: mailbox.key,
        owner: mailbox.owner,
        me: mailbox.owner_recipient(),
        anchor,
        items: Vec::new(),
    };
    if user.user_principal_name.eq_ignore_ascii_case(DEMO_USER_UPN) {
        demo(&mut g, mailbox);
    } else if user
        .user_principal_name
        .eq_ignore_ascii_case(SHARED_MAILBOX_UPN)
    {
        shared(&mut g, mailbox);
    } else {
        ordinary(&mut g, mailbox);
    }
    let mut items = std::mem::take(&mut g.items);
    items.sort_by_key(|i| i.received);
    for item in items {
        let received = item.received;
        let mut m = Message::blank(&item.folder, received);
        m.created = received - 3;
        m.sent = received - 30 - (received.rem_euclid(90));
        m.modified = if item.is_read {
            received + 120
        } else {
            received
        };
        m.received = received;
        m.internet_message_id = item.internet_message_id;
        m.subject = item.subject;
        m.body = item.body;
        m.importance = item.importance;
        m.categories = item.categories;
        m.flag = item.flag;
        m.is_read = item.is_read;
        m.is_draft = item.is_draft;
        m.conversation_id = item.conversation.0;
        m.conversation_index = item.conversation.1;
        m.sender = Some(item.from.clone());
        m.from = Some(item.from);
        m.to = item.to;
        m.cc = item.cc;
        m.reply_to = item.reply_to;
        m.inference = item.inference;
        m.attachments = item
            .attachments
            .into_iter()
            .map(|(name, content_type, bytes)| Attachment {
                id: String::new(),
                name,
                content_type: content_type.to_string(),
                bytes: bytes.into(),
                is_inline: false,
                content_id: None,
                modified: received,
            })
            .collect();
        mailbox.insert(m);
    }
}

fn first_name(r: &Recipient) -> &str {
    r.name.split_whitespace().next().unwrap_or(&r.name)
}

fn html_body(greeting: &str, lines: &[&str], closing: &str, signature: &str) -> Body {
    let mut content = String::from(
        "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n",
    );
    content.push_str(&format!("<p>Hi {},</p>\r\n", escape_html(greeting)));
    for line in lines {
        content.push_str(&format!("<p>{}</p>\r\n", escape_html(line)));
    }
    content.push_str(&format!(
        "<p>{},<br>\r\n{}</p>\r\n</body>\r\n</html>\r\n",
        escape_html(closing),
        escape_html(signature)
    ));
    Body {
        html: true,
        content,
    }
}

fn text_body(greeting: &str, lines: &[&str], closing: &str, signature: &str) -> Body {
    let mut content = format!("Hi {greeting},\r\n\r\n");
    for line in lines {
        content.push_str(line);
        content.push_str("\r\n\r\n");
    }
    content.push_str(&format!("{closing},\r\n{signature}\r\n"));
    Body {
        html: false,
        content,
    }
}

fn pdf(title: &str) -> Vec<u8> {
    let mut b = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    b.extend_from_slice(
        format!(
            "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n% {title}\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
        )
        .as_bytes(),
    );
    b
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn date_time_time_zone(unix: i64) -> Value {
    let s = crate::clock::format_utc_seconds(unix);
    json!({"dateTime": format!("{}.0000000", s.trim_end_matches('Z')), "timeZone": "UTC"})
}

impl Gen<'_> {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    fn person(&self, u: usize) -> Recipient {
        let user = &self.tenant.users[u];
        Recipient::new(
            user.display_name.clone(),
            user.mail
                .clone()
                .unwrap_or_else(|| user.user_principal_name.clone()),
        )
    }

    fn external(&self, i: usize) -> Recipient {
        let (name, address) = EXTERNAL[i % EXTERNAL.len()];
        Recipient::new(name, address)
    }

    /// Members with a mailbox other than the owner, in a shuffled but seeded order.
    fn colleagues(&mut self) -> Vec<usize> {
        let n = self.tenant.users.len();
        let mut out: Vec<usize> = (0..n)
            .filter(|&u| u != self.owner && super::has_mailbox(self.tenant, u))
            .collect();
        // Fisher-Yates with the seeded stream.
        for i in (1..out.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            out.swap(i, j);
        }
        out
    }

    fn conversation(&mut self, start: i64) -> (String, Vec<u8>) {
        let (a, b) = (self.rng.next_u64(), self.rng.next_u64());
        (
            ids::conversation_id(&self.key, a, b),
            ids::conversation_index_header(start, a, b),
        )
    }

    fn reply_index(&mut self, parent: &[u8]) -> Vec<u8> {
        let mut index = parent.to_vec();
        index.extend_from_slice(&ids::conversation_index_child(self.rng.next_u64()));
        index
    }

    fn message_id_for(&mut self, from: &Recipient) -> String {
        let (a, b) = (self.rng.next_u64(), self.rng.next_u64());
        let domain = from.address.rsplit('@').next().unwrap_or(TENANT_DOMAIN);
        let host = if domain.eq_ignore_ascii_case(TENANT_DOMAIN) {
            format!("KR1PR08MB{:04}.namprd08.prod.outlook.com", b % 10_000)
        } else {
            format!("mail.{domain}")
        };
        ids::internet_message_id(a, b, &host)
    }

    /// A time between `min_days` and `max_days` before the anchor.
    fn days_ago(&mut self, min_days: i64, max_days: i64) -> i64 {
        let span = ((max_days - min_days) * DAY).max(1) as u64;
        self.anchor - min_days * DAY - self.below(span) as i64
    }

    #[allow(clippy::too_many_arguments)]
    fn item(
        &mut self,
        folder: &str,
        received: i64,
        from: Recipient,
        to: Vec<Recipient>,
        subject: String,
        body: Body,
        conversation: (String, Vec<u8>),
    ) -> Item {
        let internet_message_id = self.message_id_for(&from);
        Item {
            folder: folder.to_string(),
            received,
            from,
            to,
            cc: Vec::new(),
            reply_to: Vec::new(),
            subject,
            body,
            attachments: Vec::new(),
            categories: Vec::new(),
            flag: json!({"flagStatus": "notFlagged"}),
            importance: "normal",
            is_read: true,
            is_draft: false,
            inference: "focused",
            conversation,
            internet_message_id,
        }
    }

    fn attachment_for(&self, subject: &str, kind: usize) -> (String, &'static str, Vec<u8>) {
        let base = slug(subject);
        match kind % 3 {
            0 => (format!("{base}.pdf"), "application/pdf", pdf(subject)),
            1 => (
                format!("{base}-notes.txt"),
                "text/plain",
                format!("Notes: {subject}\r\n\r\n- owner: {}\r\n- status: open\r\n", self.me.name)
                    .into_bytes(),
            ),
            _ => (
                format!("{base}.csv"),
                "text/csv",
                b"store,units,revenue\r\nPortland,1200,84000\r\nBend,640,44800\r\nBoise,410,28700\r\nSpokane,530,37100\r\n".to_vec(),
            ),
        }
    }

    /// A colleague's message to the owner about topic `t`.
    fn internal(&mut self, folder: &str, received: i64, from: Recipient, t: usize) -> Item {
        let (subject, line) = INTERNAL_TOPICS[t % INTERNAL_TOPICS.len()];
        let closing = CLOSINGS[t % CLOSINGS.len()];
        let body = if t % 4 == 3 {
            text_body(first_name(&self.me), &[line], closing, first_name(&from))
        } else {
            html_body(first_name(&self.me), &[line], closing, first_name(&from))
        };
        let conversation = self.conversation(received);
        let to = vec![self.me.clone()];
        self.item(
            folder,
            received,
            from,
            to,
            subject.to_string(),
            body,
            conversation,
        )
    }

    /// A reply in the thread of `parent` (subject "RE: …", same conversation).
    fn reply(
        &mut self,
        parent: &Item,
        folder: &str,
        from: Recipient,
        to: Vec<Recipient>,
        line: &str,
    ) -> Item {
        let received =
            (parent.received + HOUR + self.below(20 * HOUR as u64) as i64).min(self.anchor - 60);
        let subject = if parent.subject.starts_with("RE: ") {
            parent.subject.clone()
        } else {
            format!("RE: {}", parent.subject)
        };
        let greeting = to.first().map(first_name).unwrap_or("all").to_string();
        let body = html_body(&greeting, &[line], "Thanks", first_name(&from));
        let conversation = (
            parent.conversation.0.clone(),
            self.reply_index(&parent.conversation.1),
        );
        self.item(folder, received, from, to, subject, body, conversation)
    }

    fn flagged(&mut self, received: i64) -> Value {
        json!({
            "flagStatus": "flagged",
            "startDateTime": date_time_time_zone(received - received.rem_euclid(DAY)),
            "dueDateTime": date_time_time_zone(received - received.rem_euclid(DAY) + 7 * DAY),
        })
    }

    fn completed(&mut self, received: i64) -> Value {
        json!({
            "flagStatus": "complete",
            "completedDateTime": date_time_time_zone(received + DAY),
        })
    }
}

/// The demo user's mailbox: see the module docs for the counts.
fn demo(g: &mut Gen<'_>, mailbox: &mut Mailbox) {
    let inbox = mailbox.well_known("inbox");
    let sent = mailbox.well_known("sentitems");
    let drafts = mailbox.well_known("drafts");
    let deleted = mailbox.well_known("deleteditems");
    let archive = mailbox.well_known("archive");
    let junk = mailbox.well_known("junkemail");
    let root = mailbox.root_id();
    let orders = mailbox.add_folder(&inbox, "Orders").unwrap_or_default();
    let invoices = mailbox.add_folder(&inbox, "Invoices").unwrap_or_default();
    let projects = mailbox.add_folder(&root, "Projects").unwrap_or_default();

    // Senders: the demo user's reports (one shared manager), their peers (another), their
    // manager, the people without a manager (the CEO, the shared mailbox), then everyone
    // else, each once before anyone repeats.
    let tenant = g.tenant;
    let me = &tenant.users[g.owner];
    let mut senders: Vec<usize> = me.direct_reports.clone();
    if let Some(m) = me.manager {
        senders.extend(
            tenant.users[m]
                .direct_reports
                .iter()
                .copied()
                .filter(|&p| p != g.owner),
        );
        senders.push(m);
    }
    senders.extend(
        (0..tenant.users.len()).filter(|&u| u != g.owner && tenant.users[u].manager.is_none()),
    );
    for c in g.colleagues() {
        if !senders.contains(&c) {
            senders.push(c);
        }
    }
    senders.retain(|&u| super::has_mailbox(tenant, u));
    if senders.is_empty() {
        return ordinary(g, mailbox);
    }
    let sender = |i: usize| senders[i % senders.len()];

    // 44 conversation starters from colleagues.
    let starters = DEMO_INBOX_FROM_COLLEAGUES - 8;
    let mut firsts: Vec<Item> = Vec::new();
    for i in 0..starters {
        let from = g.person(sender(i));
        let received = g.days_ago(2, 60);
        let mut item = g.internal(&inbox, received, from, i);
        if i % 5 == 1 {
            let subject = item.subject.clone();
            item.attachments.push(g.attachment_for(&subject, i / 5));
        }
        if i % 6 == 2 {
            item.categories.push("Red category".into());
        }
        if i % 9 == 4 {
            item.categories
                .extend(["Blue category".into(), "Follow up".into()]);
        }
        if i % 8 == 3 {
            item.flag = g.flagged(received);
        } else if i % 11 == 5 {
            item.flag = g.completed(received);
        }
        item.importance = match (i % 7, i % 13) {
            (0, _) => "high",
            (_, 6) => "low",
            _ => "normal",
        };
        item.is_read = g.below(3) != 0;
        if i % 10 == 7 {
            item.inference = "other";
        }
        if i % 5 == 2 {
            let cc = g.person(sender(i + 7));
            item.cc.push(cc);
        }
        if i % 6 == 5 {
            // A group conversation: replyAll has people to add.
            let a = g.person(sender(i + 3));
            let b = g.person(sender(i + 5));
            item.to.extend([a, b]);
        }
        if i % 12 == 9 {
            // The demo user only in copy.
            let to = g.person(sender(i + 1));
            item.cc.push(g.me.clone());
            item.to = vec![to];
        }
        firsts.push(item);
    }

    // Threads: four where the demo user replied and the sender answered, two where a third
    // colleague joined in and the sender followed up.
    let mut replies = Vec::new();
    for k in 0..6 {
        let parent = &firsts[k * 3];
        let original_sender = parent.from.clone();
        if k < 4 {
            let mine = g.reply(
                parent,
                &sent,
                g.me.clone(),
                vec![original_sender.clone()],
                "Thanks, looks good to me. One question inline below.",
            );
            let theirs = g.reply(
                &mine,
                &inbox,
                original_sender,
                vec![g.me.clone()],
                "Good question: I'll follow up with the numbers by Friday.",
            );
            replies.push(mine);
            replies.push(theirs);
        } else {
            let third = g.person(sender(k * 3 + 20));
            let mut joined = g.reply(
                parent,
                &inbox,
                third,
                vec![original_sender.clone(), g.me.clone()],
                "Adding my notes from the last review.",
            );
            joined.is_read = false;
            let follow = g.reply(
                &joined,
                &inbox,
                original_sender,
                vec![g.me.clone()],
                "Thanks both, I'll merge the notes.",
            );
            replies.push(joined);
            replies.push(follow);
        }
    }
    g.items.append(&mut firsts);
    g.items.append(&mut replies);

    // Two more in Sent Items: mail the demo user started.
    for (n, (subject, line)) in [
        (
            "Team update: sprint review",
            "Sprint review is on Thursday; demos from each squad, 10 minutes each.",
        ),
        (
            "Lunch on Thursday?",
            "Anyone up for lunch at the food carts on Thursday?",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let received = g.days_ago(3, 40);
        let to: Vec<Recipient> = (0..3).map(|j| g.person(sender(n * 3 + j))).collect();
        let body = html_body("team", &[line], "Thanks", first_name(&g.me));
        let conversation = g.conversation(received);
        let from = g.me.clone();
        let item = g.item(
            &sent,
            received,
            from,
            to,
            subject.to_string(),
            body,
            conversation,
        );
        g.items.push(item);
    }

    // External mail in the Inbox.
    for i in 0..DEMO_INBOX_EXTERNAL {
        let received = g.days_ago(1, 59);
        let from = g.external(i);
        let (subject, line, attach): (String, String, bool) = match i % 6 {
            0 => (
                format!("Invoice INV-{} from Fabrikam", 2040 + i),
                "Please find attached our invoice for last month's deliveries.".into(),
                true,
            ),
            1 => (
                format!("Your order PO-{} has shipped", 58_200 + i * 7),
                "Your order left our warehouse today; tracking details are below.".into(),
                false,
            ),
            2 => (
                "Partnership proposal: trail maintenance sponsorship".into(),
                "We would love to co-sponsor trail maintenance days with Kestrel Ridge.".into(),
                false,
            ),
            3 => (
                "Webinar: supply chain resilience".into(),
                "Join our webinar on supply chain resilience next Wednesday.".into(),
                false,
            ),
            4 => (
                "Price list 2025".into(),
                "Attached is our updated wholesale price list.".into(),
                true,
            ),
            _ => (
                format!("Quote request #{}", 700 + i),
                "Could you send a quote for 40 Ridgeline 2 tents?".into(),
                false,
            ),
        };
        let from_first = first_name(&from).to_string();
        let body = if i % 2 == 0 {
            html_body(first_name(&g.me), &[&line], "Kind regards", &from_first)
        } else {
            text_body(first_name(&g.me), &[&line], "Kind regards", &from_first)
        };
        let conversation = g.conversation(received);
        let to = vec![g.me.clone()];
        let mut item = g.item(&inbox, received, from, to, subject, body, conversation);
        if attach {
            let subject = item.subject.clone();
            item.attachments
                .push(g.attachment_for(&subject, if i % 6 == 0 { 0 } else { 2 }));
        }
        if i % 6 == 3 {
            item.reply_to = vec![Recipient::new(
                "Adatum (no reply)",
                "noreply@adatum.example",
            )];
            item.inference = "other";
        }
        if i % 6 == 0 {
            item.categories.push("Orders".into());
        }
        item.is_read = i % 3 != 0;
        g.items.push(item);
    }

    // Inbox/Orders, Inbox/Invoices, Projects.
    for i in 0..4 {
        let received = g.days_ago(5, 50);
        let from = g.external(1);
        let subject = format!("Order PO-{} confirmation", 61_000 + i * 13);
        let body = html_body(
            first_name(&g.me),
            &["Thank you for your order. The confirmation is attached."],
            "Kind regards",
            "Contoso Partners",
        );
        let conversation = g.conversation(received);
        let to = vec![g.me.clone()];
        let mut item = g.item(&orders, received, from, to, subject, body, conversation);
        let s = item.subject.clone();
        item.attachments.push(g.attachment_for(&s, 0));
        item.categories.push("Orders".into());
        g.items.push(item);
    }
    for i in 0..3 {
        let received = g.days_ago(5, 50);
        let from = g.external(2);
        let subject = format!("Invoice INV-{}", 3100 + i * 4);
        let body = text_body(
            first_name(&g.me),
            &["Our invoice is attached. Payment terms: net 30."],
            "Kind regards",
            "Fabrikam Billing",
        );
        let conversation = g.conversation(received);
        let to = vec![g.me.clone()];
        let mut item = g.item(&invoices, received, from, to, subject, body, conversation);
        let s = item.subject.clone();
        item.attachments.push(g.attachment_for(&s, 0));
        item.is_read = i != 0;
        g.items.push(item);
    }
    for (i, subject) in [
        "Trailhead launch checklist",
        "Trailhead launch: vendor list",
    ]
    .into_iter()
    .enumerate()
    {
        let received = g.days_ago(4, 30);
        let from = g.person(sender(i + 2));
        let from_first = first_name(&from).to_string();
        let body = html_body(
            first_name(&g.me),
            &["Sharing the latest version for the Trailhead launch."],
            "Thanks",
            &from_first,
        );
        let conversation = g.conversation(received);
        let to = vec![g.me.clone()];
        let mut item = g.item(
            &projects,
            received,
            from,
            to,
            subject.to_string(),
            body,
            conversation,
        );
        item.categories.push("Green category".into());
        g.items.push(item);
    }

    // Drafts: one with recipients, one without, one with an attachment.
    for i in 0..3 {
        let received = g.days_ago(0, 5);
        let (subject, line) = [
            (
                "Draft: hiring plan",
                "Proposed headcount for next quarter: two engineers, one QA.",
            ),
            (
                "Notes for the all-hands",
                "Topics: launch dates, the new return policy.",
            ),
            (
                "Draft: offsite agenda",
                "Day one: strategy; day two: hiking and team time.",
            ),
        ][i];
        let to = if i == 1 {
            Vec::new()
        } else {
            vec![g.person(sender(i))]
        };
        let body = html_body("team", &[line], "Thanks", first_name(&g.me));
        let conversation = g.conversation(received);
        let from = g.me.clone();
        let mut item = g.item(
            &drafts,
            received,
            from,
            to,
            subject.to_string(),
            body,
            conversation,
        );
        item.is_draft = true;
        if i == 2 {
            item.attachments.push(g.attachment_for(subject, 1));
        }
        g.items.push(item);
    }

    // Deleted Items, Archive, Junk Email.
    for i in 0..2 {
        let received = g.days_ago(20, 60);
        let from = g.external(4);
        let to = vec![g.me.clone()];
        let body = html_body(
            first_name(&g.me),
            &["Last chance to register for our spring events."],
            "Regards",
            "Adatum Events",
        );
        let conversation = g.conversation(received);
        let item = g.item(
            &deleted,
            received,
            from,
            to,
            format!("Spring events newsletter #{}", i + 1),
            body,
            conversation,
        );
        g.items.push(item);
    }
    for i in 0..2 {
        let received = g.days_ago(30, 60);
        let from = g.person(sender(i + 11));
        let item = g.internal(&archive, received, from, 16 + i);
        g.items.push(item);
    }
    {
        let received = g.days_ago(1, 10);
        let from = Recipient::new("Prize Desk", "prizes@win-big.example");
        let to = vec![g.me.clone()];
        let body = html_body(
            first_name(&g.me),
            &["You've won a free tent! Click here to claim it."],
            "Regards",
            "Prize Desk",
        );
        let conversation = g.conversation(received);
        let mut item = g.item(
            &junk,
            received,
            from,
            to,
            "You've won a free tent!".into(),
            body,
            conversation,
        );
        item.is_read = false;
        item.inference = "other";
        g.items.push(item);
    }
}

/// The shared mailbox: orders and invoices from customers and suppliers.
fn shared(g: &mut Gen<'_>, mailbox: &mut Mailbox) {
    let inbox = mailbox.well_known("inbox");
    let orders = mailbox.add_folder(&inbox, "Orders").unwrap_or_default();
    for i in 0..38 {
        let folder = if i < 30 { &inbox } else { &orders };
        let received = g.days_ago(0, 60);
        let from = g.external(if i % 3 == 0 { 2 } else { [0, 1, 5, 6][i % 4] });
        let (subject, line, kind) = match i % 5 {
            0 => (
                format!("Invoice INV-{}", 5000 + i * 3),
                "Our invoice is attached. Payment terms: net 30.",
                0,
            ),
            1 => (
                format!("Purchase order PO-{}", 70_000 + i * 11),
                "Please find our purchase order attached.",
                0,
            ),
            2 => (
                format!("Order PO-{} confirmation", 70_000 + i * 11),
                "We confirm the order below; the line items are attached.",
                2,
            ),
            3 => (
                format!("Remittance advice for INV-{}", 5000 + i * 3),
                "Payment was sent today; remittance details attached.",
                2,
            ),
            _ => (
                format!("Question about order PO-{}", 70_000 + i * 11),
                "Can you confirm the delivery window for this order? Details attached.",
                1,
            ),
        };
        let from_first = first_name(&from).to_string();
        let body = if i % 2 == 0 {
            html_body("Orders team", &[line], "Kind regards", &from_first)
        } else {
            text_body("Orders team", &[line], "Kind regards", &from_first)
        };
        let conversation = g.conversation(received);
        let to = vec![g.me.clone()];
        let mut item = g.item(folder, received, from, to, subject, body, conversation);
        let s = item.subject.clone();
        item.attachments.push(g.attachment_for(&s, kind));
        if i % 2 == 0 {
            item.categories.push("Orders".into());
        }
        if i % 7 == 3 {
            item.flag = g.flagged(received);
            item.importance = "high";
        }
        item.is_read = i % 2 == 1;
        g.items.push(item);
    }
}

/// Anyone else: 5–15 messages in the Inbox, 1–2 in Sent Items.
fn ordinary(g: &mut Gen<'_>, mailbox: &mut Mailbox) {
    let inbox = mailbox.well_known("inbox");
    let sent = mailbox.well_known("sentitems");
    let colleagues = g.colleagues();
    let n = 5 + g.below(11) as usize;
    for i in 0..n {
        let received = g.days_ago(1, 60);
        let from = if colleagues.is_empty() || i % 4 == 3 {
            g.external(i)
        } else {
            g.person(colleagues[i % colleagues.len()])
        };
        let t = g.below(INTERNAL_TOPICS.len() as u64) as usize;
        let mut item = g.internal(&inbox, received, from, t);
        item.is_read = g.below(3) != 0;
        if i % 4 == 1 {
            let s = item.subject.clone();
            item.attachments.push(g.attachment_for(&s, i));
        }
        if i % 5 == 2 {
            item.importance = "high";
        }
        g.items.push(item);
    }
    let sent_count = 1 + g.below(2) as usize;
    for i in 0..sent_count {
        let received = g.days_ago(1, 50);
        let to = match colleagues.get(i) {
            Some(&c) => vec![g.person(c)],
            None => vec![g.external(i)],
        };
        let t = g.below(INTERNAL_TOPICS.len() as u64) as usize;
        let (subject, line) = INTERNAL_TOPICS[t];
        let greeting = first_name(&to[0]).to_string();
        let body = html_body(&greeting, &[line], "Thanks", first_name(&g.me));
        let conversation = g.conversation(received);
        let from = g.me.clone();
        let item = g.item(
            &sent,
            received,
            from,
            to,
            subject.to_string(),
            body,
            conversation,
        );
        g.items.push(item);
    }
}
