//! A finished generation ceremony on the host with its holders' cards, and recoveries through
//! it to a finished recovery folder (the fixtures tests/recovery_flow.rs builds, shared).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ceremony::card::{DEFAULT_USER_PIN, LocationCard, SoftwareCard, SoftwarePersonalCard};
use ceremony::ceremony::paths as gen_paths;
use ceremony::keys::RootKey;
use ceremony::openpgp::Cert;
use ceremony::openpgp::parse::Parse;
use ceremony::pinfile::PinFile;
use ceremony::record::Fields;
use ceremony::recovery::{ApprovalFile, PinnedRoot};
use ceremony::recovery_flow::{
    Collecting, Finished, FlowError, HolderFault, HolderInput, Progress, Requested, paths,
};
use ceremony::secret::Pin;
use ceremony::storage::{self, DirVolume, OutputFile};
use ceremony::transcript::Transcript;

use super::{Fixture, PLAN_TIME, decryptor_of, file, fixture_with, run, user_pin};

/// After the plan time (2026-11-24T09:00:00Z) and in the past.
pub const REQUEST_TIME: &str = "2026-11-25T10:00:00Z";

/// [`REQUEST_TIME`] in Unix seconds: every signature of a recovery is dated so.
pub const REQUEST_UNIX: u32 = PLAN_TIME + 25 * 3600;

/// A finished generation ceremony on the host.
pub struct Generation {
    pub fixture: Fixture,
    pub files: Vec<OutputFile>,
    /// Each holder's (only) location card.
    pub cards: Vec<SoftwareCard>,
}

/// A 2-of-3 generation ceremony, one card per holder.
pub fn generation(id: &str, seed: u8) -> Generation {
    generation_of(fixture_with(id, 3, 2, &[1, 1, 1]), seed)
}

/// The generation ceremony of `fixture` (one card per holder).
pub fn generation_of(fixture: Fixture, seed: u8) -> Generation {
    let done = run(&fixture, seed);
    Generation {
        fixture,
        cards: done.cards.into_iter().map(|mut c| c.remove(0)).collect(),
        files: done.files,
    }
}

pub fn default_pin() -> Pin {
    Pin::from_string(DEFAULT_USER_PIN.to_string())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Generation {
    pub fn pinned(&self) -> PinnedRoot {
        let map: HashMap<String, Vec<u8>> = self
            .files
            .iter()
            .map(|f| (f.path.clone(), f.bytes.clone()))
            .collect();
        PinnedRoot::from_generation(&move |p: &str| {
            map.get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "missing"))
        })
        .expect("the generation folder verifies")
    }

    pub fn root_cert(&self) -> Cert {
        Cert::from_bytes(file(&self.files, gen_paths::ROOT_CERT)).unwrap()
    }

    pub fn root_fpr(&self) -> String {
        self.root_cert().fingerprint().to_hex()
    }

    pub fn ceremony_id(&self) -> String {
        self.pinned().ceremony_id().to_string()
    }

    /// Holder `index`'s personal card (1-based).
    pub fn personal(&self, index: u8) -> SoftwarePersonalCard {
        let i = usize::from(index) - 1;
        SoftwarePersonalCard::new(&format!("0006:{index:08}"), &self.fixture.personal[i])
            .expect("a personal key")
    }

    pub fn pin_file(&self, index: u8) -> Vec<u8> {
        file(&self.files, &gen_paths::pin_file(index)).to_vec()
    }

    /// A request for this ceremony's root at [`REQUEST_TIME`], with the operation's table.
    pub fn request_text(&self, operation: &str) -> String {
        format!(
            "format = \"sherd-request/1\"\nceremony_id = \"{}\"\nroot_fingerprint = \"{}\"\n\
             time = {REQUEST_TIME}\n\n{operation}",
            self.ceremony_id(),
            self.root_fpr()
        )
    }

    /// Writes the generation folder as `parent/name`; returns its path.
    pub fn write(&self, parent: &Path, name: &str) -> PathBuf {
        let mut vol = DirVolume::new(parent);
        storage::write_all(&mut [&mut vol], name, &self.files).expect("written");
        parent.join(name)
    }

    /// The root key itself, recombined from holders 1 and 2's shares with their cards (the
    /// test plays the holders): to sign what a test forges.
    pub fn root_key(&mut self) -> RootKey {
        let pinned = self.pinned();
        let root = self.root_cert();
        let mut envelopes = Vec::new();
        for index in [1u8, 2] {
            let pin = user_pin(&self.fixture, &self.files, &root, index);
            envelopes.push(
                pinned
                    .open_share(index, &mut self.cards[usize::from(index) - 1], &pin)
                    .expect("the share opens"),
            );
        }
        let refs: Vec<_> = envelopes.iter().collect();
        pinned.recombine(&refs).expect("recombined").root
    }
}

/// Holder `index` brings their own personal card and their location card.
pub fn bring(c: &mut Collecting, g: &mut Generation, index: u8) -> Result<Progress, FlowError> {
    let pin_file = g.pin_file(index);
    let mut personal = g.personal(index);
    let input = HolderInput {
        index,
        pin_file: &pin_file,
        sealed_share: None,
    };
    c.accept_holder(
        &input,
        &mut personal,
        &default_pin(),
        &mut g.cards[usize::from(index) - 1],
    )
}

/// A whole recovery of `request` with `approvals`: the witnesses confirm the hash, `holders`
/// bring their shares in that order, the operation reads `stick` (file name -> bytes).
pub fn recover(
    g: &mut Generation,
    request: &str,
    approvals: &[ApprovalFile],
    holders: &[u8],
    stick: &HashMap<String, Vec<u8>>,
) -> Finished {
    let requested = Requested::start(g.pinned(), request.as_bytes(), approvals).expect("request");
    let hash = requested.request().hash();
    let mut c = requested.confirm(&hash).expect("confirmed");
    for &h in holders {
        bring(&mut c, g, h).expect("the holder's share");
    }
    c.recombine()
        .expect("recombination")
        .perform(&|name| {
            stick
                .get(name)
                .cloned()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "missing"))
        })
        .expect("performed")
}

/// Writes a finished recovery folder as `parent/name`; returns its path.
pub fn write_recovery(finished: &Finished, parent: &Path, name: &str) -> PathBuf {
    let mut vol = DirVolume::new(parent);
    finished.write(&mut [&mut vol], name).expect("written");
    parent.join(name)
}

/// Starts a recovery of `request` from `pinned` and confirms its hash.
pub fn collecting(pinned: PinnedRoot, request: &str) -> Collecting {
    let requested = Requested::start(pinned, request.as_bytes(), &[]).expect("request");
    let hash = requested.request().hash();
    requested.confirm(&hash).expect("confirmed")
}

/// Holder `index` with `personal` (their personal card), `pin_file` and `card`.
pub fn bring_with(
    c: &mut Collecting,
    index: u8,
    mut personal: SoftwarePersonalCard,
    pin_file: &[u8],
    card: &mut dyn LocationCard,
) -> Result<Progress, FlowError> {
    c.accept_holder(
        &HolderInput {
            index,
            pin_file,
            sealed_share: None,
        },
        &mut personal,
        &default_pin(),
        card,
    )
}

pub fn holder_fault(r: Result<Progress, FlowError>) -> HolderFault {
    match r {
        Err(FlowError::Holder { fault, .. }) => fault,
        other => panic!("expected a holder refusal, got {other:?}"),
    }
}

/// Each new card's own PIN, from the new PIN file by its serial.
pub fn new_pin_for(card: &mut SoftwareCard, pin_file: &[u8], personal: &Cert, root: &Cert) -> Pin {
    let serial = card.serial().unwrap();
    let mut kp = decryptor_of(personal);
    let pins = PinFile::open(pin_file, &mut kp, root).unwrap();
    let entry = pins.cards.iter().find(|e| e.serial == serial).unwrap();
    Pin::from_string(entry.pins.user.expose_secret().to_string())
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Rewrites the transcript of `dir`: `edit` on its records (kind, value), the `output.file`
/// record of each file in `files` set to its new bytes (written), chained anew and signed by
/// the real root key.
pub fn forge(
    dir: &Path,
    root: &RootKey,
    files: &[(String, Vec<u8>)],
    edit: impl FnOnce(&mut Vec<(String, String)>),
) {
    let text = std::fs::read_to_string(dir.join(paths::TRANSCRIPT)).unwrap();
    let t = Transcript::parse(text.as_bytes()).unwrap();
    let header = text.lines().next().unwrap().to_string();
    let mut recs: Vec<(String, String)> = t
        .records()
        .iter()
        .map(|r| (r.kind.clone(), r.value.clone()))
        .collect();
    for (path, bytes) in files {
        std::fs::write(dir.join(path), bytes).unwrap();
        let at = recs
            .iter()
            .position(|(k, v)| k == "output.file" && v.contains(&format!("path={path} ")))
            .unwrap_or_else(|| panic!("no output.file for {path}"));
        recs[at].1 = format!(
            "path={path} size={} sha256={}",
            bytes.len(),
            sha256_hex(bytes)
        );
    }
    edit(&mut recs);
    let mut out = format!("{header}\n");
    let mut prev = sha256_hex(header.as_bytes());
    for (i, (kind, value)) in recs.iter().enumerate() {
        let line = format!("{} {prev} {kind} {value}", i + 1);
        prev = sha256_hex(line.as_bytes());
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(dir.join(paths::TRANSCRIPT), &out).unwrap();
    let t = Transcript::parse(out.as_bytes()).unwrap();
    std::fs::write(
        dir.join(paths::TRANSCRIPT_SIG),
        t.sign(root, REQUEST_UNIX).unwrap(),
    )
    .unwrap();
}

/// Sets field `key` of the first record of `kind` to `new`.
pub fn set(records: &mut [(String, String)], kind: &str, key: &str, new: &str) {
    let (k, v) = records
        .iter_mut()
        .find(|(k, _)| k == kind)
        .unwrap_or_else(|| panic!("no {kind}"));
    let fields = Fields::parse(k, v).unwrap();
    assert!(fields.get(key).is_some(), "{kind} has no {key}");
    let mut out = Fields::new();
    for (f, value) in fields.pairs() {
        out = out.with(f, if f == key { new } else { value.as_str() });
    }
    *v = out.encode();
}

/// A `[reshare]` table (for [`Generation::request_text`]): threshold `threshold`, one holder
/// per `(name, backup, personal certificate, cards)`, one witness.
pub fn reshare_table(threshold: u8, holders: &[(String, String, &Cert, u8)]) -> String {
    let mut text = format!("[reshare]\nthreshold = {threshold}\n\n");
    for (name, backup, cert, cards) in holders {
        text.push_str(&format!(
            "[[reshare.holder]]\nname = \"{name}\"\nbackup = \"{backup}\"\ncards = {cards}\ncerts = ['''\n{}''']\n\n",
            super::armored_public(cert)
        ));
    }
    text.push_str("[[reshare.witness]]\nname = \"Wendy Witness\"\n");
    text
}
