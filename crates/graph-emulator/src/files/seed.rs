//! Seeded drives and sites. Every value is drawn from hashes of the tenant seed and a label
//! (never from the directory's, mail's or calendar's streams), so adding files changed no
//! other seeded data.
//!
//! - Sites on `SHAREPOINT_HOSTNAME`: the root site and four team sites, each with a
//!   "Documents" library (Finance also "Invoices") holding a few files.
//! - The demo user's OneDrive: `Documents` (4 files), `Reports` (100 generated PDFs by 25
//!   distinct colleagues, and `Archive` with 3 files) and one file at the root.
//! - Everyone else's OneDrive: `Documents` with two small files.

use super::{
    Blob, CONTRACTS_SITE_PATH, DEFAULT_DRIVE_QUOTA, DEMO_REPORT_AUTHORS, DEMO_REPORT_COUNT,
    DEMO_REPORTS_FOLDER, Drive, DriveOwner, ENGINEERING_SITE_PATH, FINANCE_SITE_PATH, FileData,
    FileStore, Hasher, Identity, Item, ItemKind, MARKETING_SITE_PATH, ROOT_SITE_PATH, Site, Style,
    digest, drive_id, guess_mime, guid, has_drive, item_id, personal_web_url, user_drive_id,
};
use crate::DEMO_USER_UPN;
use crate::tenant::{SplitMix64, Tenant};

/// 2026-01-05T00:00:00Z: seeded timestamps are fixed, not relative to today.
const BASE: i64 = 1_767_571_200;
const DAY: i64 = 86_400;

fn stream(seed: u64, label: &[&str]) -> SplitMix64 {
    let d = digest(seed, label);
    SplitMix64::new(u64::from_le_bytes(d[..8].try_into().unwrap_or_default()))
}

fn below(rng: &mut SplitMix64, n: u64) -> u64 {
    if n == 0 { 0 } else { rng.next_u64() % n }
}

/// Bytes for a seeded file: deterministic for `(source, style, size)`.
pub(crate) fn content(source: u64, style: Style, size: usize) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "trail",
        "ridge",
        "kestrel",
        "summit",
        "pack",
        "tent",
        "lantern",
        "boots",
        "compass",
        "harness",
        "quarterly",
        "forecast",
        "inventory",
        "supplier",
        "shipment",
        "review",
        "budget",
        "season",
        "catalogue",
        "warranty",
        "outfitters",
        "alpine",
        "river",
        "camp",
    ];
    let mut rng = SplitMix64::new(source);
    let mut out: Vec<u8> = Vec::with_capacity(size);
    match style {
        Style::Pdf => out.extend_from_slice(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n"),
        Style::Office => out.extend_from_slice(b"PK\x03\x04\x14\x00\x06\x00"),
        Style::Png => out.extend_from_slice(b"\x89PNG\r\n\x1a\n"),
        Style::Text | Style::Binary => {}
    }
    let text = matches!(style, Style::Text | Style::Pdf);
    let mut line = 1u64;
    while out.len() < size {
        if text {
            out.extend_from_slice(format!("Kestrel Ridge Outfitters, line {line}:").as_bytes());
            for _ in 0..(6 + below(&mut rng, 8)) {
                out.push(b' ');
                out.extend_from_slice(
                    WORDS[below(&mut rng, WORDS.len() as u64) as usize].as_bytes(),
                );
            }
            out.push(b'\n');
            line += 1;
        } else {
            out.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
    }
    out.truncate(size);
    if style == Style::Pdf && size >= 24 {
        let tail = b"\n%%EOF\n";
        let at = size - tail.len();
        out[at..].copy_from_slice(tail);
    }
    out
}

fn style_of(name: &str) -> Style {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "csv" | "md" => Style::Text,
        "pdf" => Style::Pdf,
        "docx" | "xlsx" | "pptx" => Style::Office,
        "png" => Style::Png,
        _ => Style::Binary,
    }
}

/// Builds seeded items into one drive: ids and tag GUIDs are hashes of the drive id and
/// the item's path, so they do not depend on creation order.
struct Builder<'a> {
    seed: u64,
    drive: &'a mut Drive,
}

impl Builder<'_> {
    fn path_key(&self, parent: &str, name: &str) -> String {
        let mut names = self.drive.path_names(parent);
        names.push(name.to_string());
        names.join("/")
    }

    fn blank(&self, parent: &str, name: &str, kind: ItemKind, stamp: &Stamp) -> Item {
        let key = self.path_key(parent, name);
        let id_bytes = digest(self.seed, &[&self.drive.id, "item", &key]);
        let guid_bytes = digest(self.seed, &[&self.drive.id, "guid", &key]);
        Item {
            id: item_id(&id_bytes),
            name: name.to_string(),
            parent: Some(parent.to_string()),
            created: stamp.created,
            modified: stamp.modified,
            created_by: stamp.created_by.clone(),
            modified_by: stamp.modified_by.clone(),
            guid: guid(&guid_bytes).to_ascii_uppercase(),
            version: 1,
            content_version: 1,
            seq: 0,
            ord: 0,
            size: 0,
            kind,
        }
    }

    fn folder(&mut self, parent: &str, name: &str, stamp: &Stamp) -> String {
        if let Some(existing) = self.drive.child_named(parent, name) {
            return existing.to_string();
        }
        let item = self.blank(
            parent,
            name,
            ItemKind::Folder {
                children: Vec::new(),
            },
            stamp,
        );
        self.drive.insert(item)
    }

    fn file(&mut self, parent: &str, name: &str, size: usize, stamp: &Stamp) -> String {
        let key = self.path_key(parent, name);
        let source_bytes = digest(self.seed, &[&self.drive.id, "content", &key]);
        let source = u64::from_le_bytes(source_bytes[..8].try_into().unwrap_or_default());
        let style = style_of(name);
        let bytes = content(source, style, size);
        let data = FileData {
            mime: guess_mime(name).to_string(),
            hashes: Hasher::of(&bytes),
            blob: Blob::Seeded { source, style },
        };
        let mut item = self.blank(parent, name, ItemKind::File(data), stamp);
        item.size = size as u64;
        self.drive.insert(item)
    }

    /// A file at `a/b/name`, creating the folders on the way.
    fn file_at(&mut self, path: &str, size: usize, stamp: &Stamp) -> String {
        let mut parent = self.drive.root.clone();
        let parts: Vec<&str> = path.split('/').collect();
        let (name, folders) = parts.split_last().unwrap_or((&"", &[]));
        for f in folders {
            parent = self.folder(&parent, f, stamp);
        }
        self.file(&parent, name, size, stamp)
    }
}

struct Stamp {
    created: i64,
    modified: i64,
    created_by: Identity,
    modified_by: Identity,
}

impl Stamp {
    fn by(who: &Identity, created: i64, modified: i64) -> Stamp {
        Stamp {
            created,
            modified,
            created_by: who.clone(),
            modified_by: who.clone(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn empty_drive(
    store: &FileStore,
    id: String,
    owner: DriveOwner,
    name: &str,
    description: &str,
    web_url: String,
    created: i64,
    created_by: Identity,
    owner_identity: Identity,
) -> Drive {
    let root_id = item_id(&digest(store.seed(), &[&id, "root"]));
    let root = Item {
        id: root_id.clone(),
        name: "root".to_string(),
        parent: None,
        created,
        modified: created,
        created_by: created_by.clone(),
        modified_by: created_by.clone(),
        guid: guid(&digest(store.seed(), &[&id, "root-guid"])).to_ascii_uppercase(),
        version: 1,
        content_version: 1,
        // The root is the drive's first change and comes first in delta.
        seq: 1,
        ord: 1,
        size: 0,
        kind: ItemKind::Folder {
            children: Vec::new(),
        },
    };
    let mut items = std::collections::HashMap::new();
    items.insert(root_id.clone(), root);
    Drive {
        id,
        owner,
        name: name.to_string(),
        description: description.to_string(),
        web_url,
        created,
        created_by,
        quota_total: DEFAULT_DRIVE_QUOTA,
        used: 0,
        root: root_id,
        items,
        next_seq: 1,
        next_ord: 1,
        tombstones: Vec::new(),
        owner_identity,
    }
}

/// Tenant members, in tenant order.
fn members(tenant: &Tenant) -> Vec<usize> {
    (0..tenant.users.len())
        .filter(|&u| has_drive(tenant, u))
        .collect()
}

fn pick(rng: &mut SplitMix64, tenant: &Tenant, members: &[usize]) -> Identity {
    if members.is_empty() {
        return Identity::System;
    }
    let u = members[below(rng, members.len() as u64) as usize];
    Identity::of_user(tenant, u)
}

/// The user's OneDrive, seeded.
pub(crate) fn personal_drive(store: &mut FileStore, tenant: &Tenant, u: usize) -> usize {
    let seed = store.seed();
    let user = &tenant.users[u];
    let id = user_drive_id(seed, &user.id);
    let owner = Identity::of_user(tenant, u);
    let mut rng = stream(seed, &["personal", &user.id]);
    let created = BASE - 400 * DAY + below(&mut rng, 100) as i64 * DAY;
    let mut drive = empty_drive(
        store,
        id,
        DriveOwner::User(u),
        "OneDrive",
        "",
        personal_web_url(&user.user_principal_name),
        created,
        owner.clone(),
        owner.clone(),
    );
    {
        let mut b = Builder {
            seed,
            drive: &mut drive,
        };
        let mut at = |rng: &mut SplitMix64| {
            let c = BASE + below(rng, 200) as i64 * DAY + below(rng, DAY as u64) as i64;
            (
                c,
                c + below(rng, 60) as i64 * DAY + below(rng, DAY as u64) as i64,
            )
        };
        if user.user_principal_name.eq_ignore_ascii_case(DEMO_USER_UPN) {
            demo_contents(&mut b, tenant, u, &owner, &mut rng, &mut at);
        } else {
            for (name, size) in [
                ("Notes.txt", 600 + below(&mut rng, 1400)),
                ("Plan.docx", 2_000 + below(&mut rng, 6_000)),
            ] {
                let (c, m) = at(&mut rng);
                b.file_at(
                    &format!("Documents/{name}"),
                    size as usize,
                    &Stamp::by(&owner, c, m),
                );
            }
        }
    }
    store.add_drive(drive)
}

fn demo_contents(
    b: &mut Builder<'_>,
    tenant: &Tenant,
    owner_index: usize,
    owner: &Identity,
    rng: &mut SplitMix64,
    at: &mut dyn FnMut(&mut SplitMix64) -> (i64, i64),
) {
    let (c, m) = at(rng);
    b.file_at(
        "Getting started with OneDrive.pdf",
        9_000 + below(rng, 3_000) as usize,
        &Stamp::by(owner, c, m),
    );
    for (name, size) in [
        ("Welcome.docx", 12_000),
        ("Budget 2026.xlsx", 18_000),
        ("Notes.txt", 1_200),
        ("Trailhead launch plan.pdf", 24_000),
    ] {
        let (c, m) = at(rng);
        b.file_at(
            &format!("Documents/{name}"),
            size + below(rng, 4_000) as usize,
            &Stamp::by(owner, c, m),
        );
    }

    // 25 distinct colleagues (the demo user among them), each the last modifier of at
    // least one report.
    let mut pool: Vec<usize> = members(tenant);
    for i in 0..pool.len() {
        let j = i + below(rng, (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.retain(|&u| u != owner_index);
    pool.truncate(DEMO_REPORT_AUTHORS.saturating_sub(1));
    pool.insert(0, owner_index);
    let authors: Vec<Identity> = pool.iter().map(|&u| Identity::of_user(tenant, u)).collect();
    let mut modifiers: Vec<usize> = (0..authors.len()).collect();
    while modifiers.len() < DEMO_REPORT_COUNT {
        modifiers.push(below(rng, authors.len() as u64) as usize);
    }
    for i in (1..modifiers.len()).rev() {
        let j = below(rng, (i + 1) as u64) as usize;
        modifiers.swap(i, j);
    }
    let folder_stamp = Stamp::by(owner, BASE, BASE + 30 * DAY);
    let reports = b.folder(&b.drive.root.clone(), DEMO_REPORTS_FOLDER, &folder_stamp);
    for (i, &m) in modifiers.iter().enumerate() {
        let creator = if below(rng, 4) == 0 {
            below(rng, authors.len() as u64) as usize
        } else {
            m
        };
        let (c, modified) = at(rng);
        let stamp = Stamp {
            created: c,
            modified,
            created_by: authors[creator].clone(),
            modified_by: authors[m].clone(),
        };
        b.file(
            &reports,
            &format!("report-{:03}.pdf", i + 1),
            8_000 + below(rng, 40_000) as usize,
            &stamp,
        );
    }
    let archive = b.folder(&reports, "Archive", &folder_stamp);
    for name in ["report-2025-q3.pdf", "report-2025-q4.pdf", "README.txt"] {
        let (c, m) = at(rng);
        b.file(
            &archive,
            name,
            3_000 + below(rng, 9_000) as usize,
            &Stamp::by(owner, c, m),
        );
    }
}

/// (path, name, display name, description, libraries: (name, url segment, files)).
type SiteSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, &'static [&'static str])],
);

const SITES: &[SiteSpec] = &[
    (
        ROOT_SITE_PATH,
        "Kestrel Ridge Intranet",
        "Kestrel Ridge Intranet",
        "News, policies and handbooks for everyone at Kestrel Ridge Outfitters",
        &[(
            "Documents",
            "Shared%20Documents",
            &[
                "Company Handbook.pdf",
                "Brand Guidelines.pdf",
                "Policies/Travel Policy.docx",
                "Policies/Expense Policy.docx",
            ],
        )],
    ),
    (
        FINANCE_SITE_PATH,
        "finance",
        "Finance",
        "Budgets, forecasts and statements",
        &[
            (
                "Documents",
                "Shared%20Documents",
                &[
                    "FY2026 Budget.xlsx",
                    "Q3 Forecast.xlsx",
                    "Statements/Balance Sheet 2025.pdf",
                    "Statements/Cash Flow 2025.pdf",
                ],
            ),
            (
                "Invoices",
                "Invoices",
                &[
                    "INV-1001.pdf",
                    "INV-1002.pdf",
                    "INV-1003.pdf",
                    "INV-1004.pdf",
                    "INV-1005.pdf",
                ],
            ),
        ],
    ),
    (
        CONTRACTS_SITE_PATH,
        "contracts",
        "Contracts",
        "Customer and supplier contracts",
        &[(
            "Documents",
            "Shared%20Documents",
            &[
                "Signed/Northwind Traders MSA.pdf",
                "Signed/Wide World Importers NDA.pdf",
                "Drafts/Contoso Partnership Draft.docx",
            ],
        )],
    ),
    (
        ENGINEERING_SITE_PATH,
        "engineering",
        "Engineering",
        "Specifications, designs and release notes",
        &[(
            "Documents",
            "Shared%20Documents",
            &[
                "Architecture Overview.docx",
                "Release Checklist.txt",
                "Specs/Trail Sensor Spec.pdf",
                "Specs/Firmware Notes.txt",
            ],
        )],
    ),
    (
        MARKETING_SITE_PATH,
        "marketing",
        "Marketing",
        "Campaigns, brand assets and product photography",
        &[(
            "Documents",
            "Shared%20Documents",
            &[
                "Campaign Calendar.xlsx",
                "Logo.png",
                "Assets/Banner.png",
                "Assets/Product Photo.png",
            ],
        )],
    ),
];

/// The sites and their libraries.
pub(crate) fn sites(store: &mut FileStore, tenant: &Tenant) {
    let seed = store.seed();
    let people = members(tenant);
    for (path, name, display_name, description, libraries) in SITES {
        let mut rng = stream(seed, &["site", path]);
        let created = BASE - 700 * DAY + below(&mut rng, 300) as i64 * DAY;
        let site_index = store.sites.len();
        let site = Site {
            path: (*path).to_string(),
            name: (*name).to_string(),
            display_name: (*display_name).to_string(),
            description: (*description).to_string(),
            collection_guid: guid(&digest(seed, &["site-collection", path])),
            web_guid: guid(&digest(seed, &["site-web", path])),
            created,
            modified: BASE + below(&mut rng, 250) as i64 * DAY,
            drives: Vec::new(),
            grants: Vec::new(),
        };
        let site_url = site.web_url();
        store.sites.push(site);
        for (library, segment, files) in *libraries {
            let id = drive_id(seed, &["library", path, library]);
            let mut drive = empty_drive(
                store,
                id,
                DriveOwner::Site(site_index),
                library,
                "",
                format!("{site_url}/{segment}"),
                created,
                Identity::System,
                Identity::System,
            );
            {
                let mut b = Builder {
                    seed,
                    drive: &mut drive,
                };
                for file in *files {
                    let c = BASE
                        + below(&mut rng, 200) as i64 * DAY
                        + below(&mut rng, DAY as u64) as i64;
                    let m = c + below(&mut rng, 40) as i64 * DAY;
                    let stamp = Stamp {
                        created: c,
                        modified: m,
                        created_by: pick(&mut rng, tenant, &people),
                        modified_by: pick(&mut rng, tenant, &people),
                    };
                    b.file_at(file, 2_000 + below(&mut rng, 30_000) as usize, &stamp);
                }
            }
            let d = store.add_drive(drive);
            store.sites[site_index].drives.push(d);
        }
    }
}
