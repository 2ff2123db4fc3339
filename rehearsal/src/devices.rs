//! The rehearsal's devices: virtual cards inserted and removed with keys, the plan from a
//! file, a folder as the data stick.

use cards::OpenPgpCard;
use ceremony::card::{LocationCard, PersonalCard};
use ceremony::storage::{DirVolume, OutputFile, WriteReport, write_all};
use ceremony_tui::ceremony::screens::{Attestation, IsoCheck, PcrLine};
use ceremony_tui::ceremony::{CardPoll, Devices, Gathered, PlanPoll};
use ceremony_tui::entropy_check::EntropyView;
use ceremony_tui::entropy_run;
use ceremony_tui::keys::Key;
use std::path::PathBuf;
use std::sync::Arc;
use vscard_bridge::VirtualCard;
use vscard_bridge::direct::Direct;

pub(crate) fn open(card: &Arc<VirtualCard>) -> cards::Result<OpenPgpCard> {
    OpenPgpCard::open(Direct::new(Arc::clone(card)))
}

pub struct Rehearsal {
    plan: PathBuf,
    out: PathBuf,
    /// The box of blank virtual cards; `inserted` indexes it.
    cards: Vec<Arc<VirtualCard>>,
    inserted: Option<usize>,
    next: usize,
    /// What the card in the reader was read as, so it is read once per insertion.
    seen: Option<(usize, CardPoll)>,
    /// `I` goes round the box (a recovery's cards are used again) instead of stopping.
    cycle: bool,
    /// What each card of the box is, for the `I` key's hint.
    labels: Vec<String>,
}

impl Rehearsal {
    /// `plan`: the plan file; `out`: the folder standing in for the data stick.
    pub fn new(plan: PathBuf, out: PathBuf, cards: usize) -> Self {
        Rehearsal {
            plan,
            out,
            cards: (0..cards)
                .map(|i| Arc::new(VirtualCard::new(0x5245_0001 + i as u32)))
                .collect(),
            inserted: None,
            next: 0,
            seen: None,
            cycle: false,
            labels: (0..cards)
                .map(|i| format!("virtual card {}", i + 1))
                .collect(),
        }
    }

    /// Puts the next blank virtual card in the reader (what the `I` key does).
    pub fn insert_next(&mut self) -> bool {
        if self.cycle && self.next >= self.cards.len() {
            self.next = 0;
        }
        if self.inserted.is_some() || self.next >= self.cards.len() {
            return false;
        }
        self.inserted = Some(self.next);
        self.next += 1;
        true
    }

    /// Takes the card out of the reader (what the `O` key does).
    pub fn take_out(&mut self) -> bool {
        self.inserted.take().is_some()
    }

    /// Puts card `i` back (a card pulled and re-inserted).
    pub fn reinsert(&mut self, i: usize) {
        self.inserted = Some(i);
    }

    /// The folder standing in for the data stick.
    pub fn out(&self) -> &std::path::Path {
        &self.out
    }

    /// The card in the reader, by its number in the box.
    pub fn in_reader(&self) -> Option<usize> {
        self.inserted
    }

    pub(crate) fn card(&self, i: usize) -> Arc<VirtualCard> {
        Arc::clone(&self.cards[i])
    }

    /// The card in the reader is about to change: read it again at the next look.
    pub(crate) fn forget_seen(&mut self) {
        self.seen = None;
    }

    /// After a generation, for a recovery with the same box: `I` starts again from the first
    /// card and goes round the box (each holder's location card, then the personal cards).
    pub fn from_the_first_card(&mut self) {
        self.inserted = None;
        self.seen = None;
        self.next = 0;
        self.cycle = true;
        // Name each card by its serial, as the recovery's pages name a holder's cards.
        for (i, card) in self.cards.iter().enumerate() {
            if self.labels[i].starts_with("virtual card")
                && let Ok(id) = open(card).and_then(|mut c| c.identity())
            {
                self.labels[i] = format!("card {}", id.ident);
            }
        }
    }
}

impl Rehearsal {
    /// Adds a virtual personal card to the box, holding the signing key of `cert` (which must
    /// have its secret: a rehearsal's throwaway witness key) under the factory PINs; returns its
    /// number, to put it in the reader with [`Rehearsal::reinsert`] (the `I` key reaches it too,
    /// after the blank cards).
    pub fn add_personal_card(
        &mut self,
        cert: &ceremony::openpgp::Cert,
    ) -> Result<usize, RehearsalError> {
        self.add_personal_card_named(cert, "a personal card")
    }

    /// As [`Rehearsal::add_personal_card`], with the certificate's encryption subkey (if it
    /// has one with its secret) as the card's decryption key too, so that a holder's virtual
    /// card opens their PIN file at a recovery; `label` names it in the `I` key's hint.
    pub fn add_personal_card_named(
        &mut self,
        cert: &ceremony::openpgp::Cert,
        label: &str,
    ) -> Result<usize, RehearsalError> {
        let policy = ceremony::openpgp::policy::StandardPolicy::new();
        let key = cert
            .keys()
            .secret()
            .with_policy(&policy, None)
            .for_signing()
            .next()
            .ok_or(RehearsalError::NoSigningKey)?
            .key()
            .clone()
            .role_into_unspecified();
        let decryption = cert
            .keys()
            .secret()
            .with_policy(&policy, None)
            .for_transport_encryption()
            .next()
            .map(|k| k.key().clone().role_into_unspecified());
        let i = self.cards.len();
        let card = Arc::new(VirtualCard::new(0x5750_0001 + i as u32));
        let mut c = open(&card)?;
        c.factory_reset()?;
        c.import_keys(
            &cards::Pin::default_admin(),
            Some(&key),
            decryption.as_ref(),
        )?;
        self.cards.push(card);
        self.labels.push(label.to_owned());
        Ok(i)
    }

    /// Opens the card in the reader as a witness's personal card, for the step where each
    /// witness's own card signs the transcript: hand it to
    /// `ceremony::witness::WitnessSigning::sign`. Only read and sign; nothing is changed.
    pub fn open_personal_card(&mut self) -> Result<Box<dyn PersonalCard>, RehearsalError> {
        let i = self.inserted.ok_or(RehearsalError::NoCard)?;
        // Its PIN counter may change: read it again at the next look.
        self.seen = None;
        Ok(Box::new(open(&self.cards[i])?))
    }
}

/// What can go wrong in a rehearsal's devices.
#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    #[error("no virtual card in the reader")]
    NoCard,
    #[error("the key given for a virtual personal card has no signing key with its secret")]
    NoSigningKey,
    #[error("the virtual card: {0}")]
    Card(#[from] cards::Error),
    #[error("{path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] ceremony::storage::WriteError),
}

impl Devices for Rehearsal {
    type Error = RehearsalError;

    fn rehearsal(&self) -> bool {
        true
    }

    fn attest(&mut self) -> Attestation {
        Attestation {
            iso: IsoCheck::NotFound(
                "rehearsal on a host: sherd was not booted, no boot stick is read".into(),
            ),
            rootfs_tree: None,
            kernel_release: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            boot_path: "rehearsal on an ordinary Linux host".into(),
            uefi: None,
            pcrs: (0..8)
                .map(|index| PcrLine {
                    index,
                    value: None,
                    verdict: "UNKNOWN".into(),
                    expectation: "read in the booted image only".into(),
                    reason: "rehearsal: the host's TPM is not read".into(),
                })
                .collect(),
        }
    }

    fn poll_plan(&mut self) -> PlanPoll {
        match std::fs::read_to_string(&self.plan) {
            Ok(text) => PlanPoll::Found {
                text,
                location: format!(
                    "{} (rehearsal: a file stands in for the stick)",
                    self.plan.display()
                ),
            },
            Err(e) => PlanPoll::Problem(format!("{}: {e}", self.plan.display())),
        }
    }

    fn open_personal_card(&mut self) -> Result<Box<dyn PersonalCard>, Self::Error> {
        // The inherent method (also used by the unit test below).
        Rehearsal::open_personal_card(self)
    }

    fn quote(&mut self, _plan_hash: &[u8; 32]) -> Result<tpm_quote::Quote, String> {
        // A host's TPM belongs to the host: a rehearsal does not use it.
        Err("a rehearsal on a host: no TPM quote".into())
    }

    fn gather_entropy(
        &mut self,
        allow_virtual_hardware: bool,
        progress: &mut dyn FnMut(&EntropyView),
    ) -> Result<Gathered, EntropyView> {
        let (mut sources, mut absent) = entropy_run::discover();
        let what = "virtual card GET CHALLENGE".to_owned();
        match self.inserted.map(|i| open(&self.cards[i])) {
            Some(Ok(card)) => sources.push(Box::new(entropy::CardSource::new(card))),
            Some(Err(e)) => absent.push((what, e.to_string())),
            None => absent.push((what, "no virtual card in the reader (press I)".into())),
        }
        entropy_run::gather(
            sources,
            absent,
            &entropy_run::policy(allow_virtual_hardware),
            progress,
        )
        .map(|mut o| {
            o.records.push(
                ceremony::record::Note::new(
                    "entropy.rehearsal",
                    ceremony::record::Fields::new().with(
                        "note",
                        "a rehearsal on a host: a virtual card's randomness comes from this host",
                    ),
                )
                .expect("not a core kind"),
            );
            Gathered::from(o)
        })
    }

    fn poll_card(&mut self) -> CardPoll {
        let Some(i) = self.inserted else {
            return CardPoll::Empty;
        };
        if let Some((j, poll)) = &self.seen
            && *j == i
        {
            return poll.clone();
        }
        let poll = match open(&self.cards[i]).and_then(|mut c| c.identity()) {
            Ok(id) => CardPoll::Card {
                holds_keys: id.holds_keys(),
                ident: id.ident,
            },
            Err(e) => CardPoll::Problem(e.to_string()),
        };
        self.seen = Some((i, poll.clone()));
        poll
    }

    fn open_card(&mut self) -> Result<Box<dyn LocationCard>, RehearsalError> {
        let i = self.inserted.ok_or(RehearsalError::NoCard)?;
        // It is about to change: read it again at the next look.
        self.seen = None;
        Ok(Box::new(open(&self.cards[i])?))
    }

    fn poll_sticks(&mut self) -> Result<Vec<String>, RehearsalError> {
        Ok(vec![format!(
            "{} (rehearsal: a folder stands in for the data stick)",
            self.out.display()
        )])
    }

    fn write(&mut self, dir: &str, files: &[OutputFile]) -> Result<WriteReport, RehearsalError> {
        std::fs::create_dir_all(&self.out).map_err(|source| RehearsalError::Folder {
            path: self.out.clone(),
            source,
        })?;
        let mut v = DirVolume::new(&self.out);
        Ok(write_all(&mut [&mut v], dir, files)?)
    }

    fn on_key(&mut self, key: Key) -> bool {
        match key {
            Key::Char('i' | 'I') => self.insert_next(),
            Key::Char('o' | 'O') => self.take_out(),
            // Going round the box: the next card `I` would insert, without inserting it.
            Key::Char('n' | 'N') if self.cycle && self.inserted.is_none() => {
                self.next = (self.next + 1) % self.cards.len().max(1);
                true
            }
            _ => false,
        }
    }

    fn key_hints(&self) -> Vec<(String, String)> {
        if self.inserted.is_some() {
            vec![("O".into(), "take the card out".into())]
        } else if self.cycle {
            let next = if self.next >= self.cards.len() {
                0
            } else {
                self.next
            };
            vec![
                (
                    "I".into(),
                    format!(
                        "insert {}",
                        self.labels.get(next).map_or("a card", String::as_str)
                    ),
                ),
                ("N".into(), "another card".into()),
            ]
        } else {
            vec![("I".into(), "insert a virtual card".into())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit;
    use ceremony::openpgp::serialize::SerializeInto;
    use ceremony::witness::WitnessSigning;

    /// A rehearsal witness's virtual card signs through the real card stack.
    #[test]
    fn a_virtual_personal_card_signs_as_its_witness() {
        let names: Vec<String> = ["Ann", "Ben"].map(String::from).to_vec();
        let keys: Vec<_> = names.iter().map(|n| kit::personal_key(n)).collect();
        let wendy = kit::personal_key("Wendy");
        let public = wendy.clone().strip_secret_key_material().armored().to_vec();
        let public = String::from_utf8(public.unwrap()).unwrap();
        let text = kit::plan_text("rehearsal-witness", 2, &names, &keys).replacen(
            "name = \"Wendy Witness\"\n",
            &format!("name = \"Wendy Witness\"\ncerts = ['''\n{public}''']\n"),
            1,
        );
        let plan = ceremony::plan::Plan::parse(&text).unwrap();
        let mut dev = Rehearsal::new("plan".into(), "out".into(), 1);
        assert!(matches!(
            dev.open_personal_card(),
            Err(RehearsalError::NoCard)
        ));
        let i = dev.add_personal_card(&wendy).unwrap();
        dev.reinsert(i);
        let mut card = dev.open_personal_card().unwrap();
        let mut signing = WitnessSigning::new(plan, b"transcript bytes".to_vec());
        let s = signing.sign(card.as_mut(), &mut |_| None).unwrap();
        assert_eq!((s.witness, s.name.as_str()), (1, "Wendy Witness"));
        assert_eq!(s.output_file().path, "witness-signatures/1.sig");
    }
}
