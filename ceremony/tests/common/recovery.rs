//! A finished generation ceremony on the host with its holders' cards, and recoveries through
//! it to a finished recovery folder (the fixtures tests/recovery_flow.rs builds, shared).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ceremony::card::{DEFAULT_USER_PIN, SoftwareCard, SoftwarePersonalCard};
use ceremony::ceremony::paths as gen_paths;
use ceremony::keys::RootKey;
use ceremony::openpgp::Cert;
use ceremony::openpgp::parse::Parse;
use ceremony::recovery::{ApprovalFile, PinnedRoot};
use ceremony::recovery_flow::{Collecting, Finished, FlowError, HolderInput, Progress, Requested};
use ceremony::secret::Pin;
use ceremony::storage::{self, DirVolume, OutputFile};

use super::{Fixture, file, fixture_with, run, user_pin};

/// After the plan time (2026-11-24T09:00:00Z) and in the past.
pub const REQUEST_TIME: &str = "2026-11-25T10:00:00Z";

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
