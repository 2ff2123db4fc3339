//! The ceremony's devices in the image: sticks through `sherd-media`, the TPM's PCRs through
//! sysfs, entropy through the `entropy` crate, OpenPGP cards through the `cards` crate.

mod recovery;

use crate::ENV_FINDISO;
use crate::journal::{self, Entry, Journal};
use ceremony::card::{CardError, CardSerial, LocationCard, PersonalCard};
use ceremony::ceremony::NextCard;
use ceremony::keys::CardImport;
use ceremony::secret::{CardPins, Pin, SharedSecret};
use ceremony::storage::{OutputFile, Volume, WriteReport, write_all};
use ceremony_tui::ceremony::screens::{Attestation, IsoCheck, PcrLine};
use ceremony_tui::ceremony::{CardPoll, Devices, Gathered, PlanPoll};
use ceremony_tui::entropy_check::EntropyView;
use ceremony_tui::entropy_run;
use ceremony_tui::machine::{PcrProblem, WriteProblem, Written};
use heads_config::attest::{self, Verdict};
use sherd_media::{DataStickRules, FsIdentity, Media, MediaError};
use std::time::{Duration, Instant};

/// Where the boot attestation reads PCR 0-7 (and "this machine's values" too, so recorded
/// values compare equal to the ones the ceremony judges).
pub(crate) const PCR_DIR: &str = "/sys/class/tpm/tpm0/pcr-sha256";

/// PCR `index` of the SHA-256 bank from sysfs, or why not.
pub(crate) fn read_pcr(index: usize) -> Result<[u8; 32], PcrProblem> {
    let path = format!("{PCR_DIR}/{index}");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PcrProblem::Missing { path: path.clone() }
        } else {
            PcrProblem::Unreadable {
                path: path.clone(),
                error: e.to_string(),
            }
        }
    })?;
    attest::parse_sysfs_pcr(&text)
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or(PcrProblem::NotAValue { path })
}

/// Why the TPM could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TpmOpenError {
    #[error("no TPM: {0}")]
    NoTpm(entropy::SourceError),
    #[error("{device}: {error}")]
    Open {
        device: String,
        error: std::io::Error,
    },
}

/// The TPM's device, opened read-write, and its path to show: the same device the entropy
/// step's TPM source uses.
pub(crate) fn open_tpm() -> Result<(std::fs::File, String), TpmOpenError> {
    let path = entropy::tpm_device(std::path::Path::new("/dev")).map_err(TpmOpenError::NoTpm)?;
    let device = path.display().to_string();
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        Ok(f) => Ok((f, device)),
        Err(error) => Err(TpmOpenError::Open { device, error }),
    }
}

/// A TPM quote of PCR 0-7 over `plan_hash`, or why there is none.
fn tpm_quote_of(plan_hash: &[u8; 32]) -> Result<tpm_quote::Attestation, String> {
    let (mut tpm, shown) = open_tpm().map_err(|e| e.to_string())?;
    tpm_quote::attest(&mut tpm, plan_hash).map_err(|e| format!("{shown}: {e}"))
}

const EVENT_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";

pub struct ImageDevices {
    media: Media,
    /// The file systems the ISO and the plan came from, and the ISO's path in its own: outputs
    /// never go to the boot or plan stick, whatever name the kernel gives them (see
    /// `DataStickRules`).
    boot_fs: Option<FsIdentity>,
    plan_fs: Option<FsIdentity>,
    boot_iso_path: Option<String>,
    /// Under UEFI: the Authenticode hash (hex) of the boot stick's `EFI/BOOT/BOOTX64.EFI`, or why
    /// it is not known.
    stick_efi_app: Result<String, String>,
    /// Plan sticks are mounted to be read: not more often than this.
    last_plan_look: Option<Instant>,
    last_plan: PlanPoll,
    /// The data sticks at the last successful look, and when.
    last_sticks: Option<(Instant, Vec<String>)>,
    cards: cards::discovery::Watcher,
    /// The reader and card last seen, so a card is read once per insertion.
    seen: Option<(String, CardPoll)>,
    /// Every card reset and file written is recorded here for PID 1's fatal screen.
    journal: Journal,
    /// The holder the next card opened is for (named in the journal).
    holder: String,
    /// The request stick at the last look, and when (a recovery).
    last_request: Option<(Instant, ceremony_tui::recovery::RequestPoll)>,
}

impl ImageDevices {
    pub fn new() -> Self {
        ImageDevices {
            media: Media::system(),
            boot_fs: None,
            plan_fs: None,
            boot_iso_path: None,
            stick_efi_app: Err("not looked for yet".into()),
            last_plan_look: None,
            last_plan: PlanPoll::Waiting("looking for a plan stick".into()),
            last_sticks: None,
            cards: cards::discovery::Watcher::system(),
            seen: None,
            journal: Journal::new(journal::PATH),
            holder: "?".into(),
            last_request: None,
        }
    }

    fn iso(&mut self) -> (IsoCheck, String) {
        let findiso = std::env::var(ENV_FINDISO).ok();
        match &findiso {
            Some(path) => {
                let path_shown = path.clone();
                match self.media.find_boot_iso(path, &mut |_, _| {}) {
                    Ok(f) => {
                        self.boot_fs = f.location.identity.clone();
                        self.boot_iso_path = Some(f.location.path.clone());
                        (
                            IsoCheck::Found {
                                sha256: f.sha256_hex(),
                                location: f.location.to_string(),
                                via: format!("findiso={path_shown}"),
                            },
                            format!(
                                "findiso={path_shown} on the kernel command line (as Heads boots a USB ISO)"
                            ),
                        )
                    }
                    Err(e) => (
                        IsoCheck::NotFound(e.to_string()),
                        format!("findiso={path_shown} on the kernel command line"),
                    ),
                }
            }
            None if crate::uefi::booted_by_uefi() => self.uefi_image(),
            None => {
                let path =
                    "no findiso= on the kernel command line: not booted as Heads boots a USB ISO"
                        .to_owned();
                match self.media.scan_isos(&mut |_, _, _| {}) {
                    Ok(scan) => match scan.found.as_slice() {
                        [] => (
                            IsoCheck::NotFound(format!(
                                "no .iso on any removable stick (looked at: {})",
                                if scan.looked.is_empty() {
                                    "nothing"
                                } else {
                                    &scan.looked
                                }
                            )),
                            path,
                        ),
                        [f] => {
                            self.boot_fs = f.location.identity.clone();
                            self.boot_iso_path = Some(f.location.path.clone());
                            (
                                IsoCheck::Found {
                                    sha256: f.sha256_hex(),
                                    location: f.location.to_string(),
                                    via: "a scan of removable sticks".into(),
                                },
                                path,
                            )
                        }
                        many => (
                            IsoCheck::Several(
                                many.iter()
                                    .map(|f| (f.location.to_string(), f.sha256_hex()))
                                    .collect(),
                            ),
                            path,
                        ),
                    },
                    Err(e) => (IsoCheck::NotFound(e.to_string()), path),
                }
            }
        }
    }

    /// Under UEFI the ISO is the whole stick: found by its EFI system partition, hashed up to
    /// the end of its backup GPT header (which is the ISO file's end).
    fn uefi_image(&mut self) -> (IsoCheck, String) {
        let path = "UEFI firmware started the kernel from a stick's EFI system partition \
                    (no boot loader)"
            .to_owned();
        match self.media.find_uefi_images() {
            Ok(found) => match found.as_slice() {
                [] => {
                    self.stick_efi_app = Err("no stick holds sherd's EFI system partition".into());
                    (
                        IsoCheck::NotFound(
                            "no removable stick holds sherd's image with its EFI system \
                             partition (labelled SHERD-EFI)"
                                .into(),
                        ),
                        path,
                    )
                }
                [img] => {
                    self.stick_efi_app = authenticode::authenticode_sha256(&img.efi_app)
                        .map(|h| hexstr::encode(&h))
                        .map_err(|e| format!("{}: {e}", sherd_media::EFI_APP_PATH));
                    (
                        IsoCheck::Found {
                            sha256: img.sha256_hex(),
                            location: format!(
                                "{} (the whole stick, its first {} bytes)",
                                img.device, img.image_len
                            ),
                            via: "the stick with sherd's EFI system partition".into(),
                        },
                        path,
                    )
                }
                many => {
                    self.stick_efi_app =
                        Err("several sticks hold sherd's EFI system partition".into());
                    (
                        IsoCheck::Several(
                            many.iter()
                                .map(|i| (i.device.clone(), i.sha256_hex()))
                                .collect(),
                        ),
                        path,
                    )
                }
            },
            Err(e) => {
                self.stick_efi_app = Err(e.to_string());
                (IsoCheck::NotFound(e.to_string()), path)
            }
        }
    }

    fn open_reader(&mut self) -> Result<Option<UsbReader>, DeviceError> {
        self.cards.poll().map_err(DeviceError::Reader)?;
        let Some(info) = self.cards.readers().next().cloned() else {
            return Ok(None);
        };
        cards::usb::open(&info)
            .map(Some)
            .map_err(DeviceError::Reader)
    }
}

type UsbReader = cards::reader::Reader<cards::usb::UsbTransport>;

/// What went wrong with the image's devices, as the ceremony's screens explain it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("the card reader: {0}")]
    Reader(cards::Error),
    #[error("the card reader is gone")]
    ReaderGone,
    #[error("the card does not answer: {0}")]
    CardSilent(cards::Error),
    #[error("not a usable OpenPGP card: {0}")]
    NotOpenPgp(cards::Error),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Write(#[from] ceremony::storage::WriteError),
    /// Every stick is flushed and unmounted whatever happened; these failed.
    #[error("flushing and unmounting: {}", list(.0))]
    Unmount(Vec<MediaError>),
}

fn list(errors: &[MediaError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Powers the card in `reader` and opens its OpenPGP application; the error says which failed.
fn open_openpgp(mut reader: UsbReader) -> Result<cards::OpenPgpCard, DeviceError> {
    reader.power_on().map_err(DeviceError::CardSilent)?;
    cards::OpenPgpCard::open(reader).map_err(DeviceError::NotOpenPgp)
}

fn pcrs() -> [Option<Vec<u8>>; 8] {
    std::array::from_fn(|i| read_pcr(i).ok().map(|v| v.to_vec()))
}

impl Devices for ImageDevices {
    type Error = DeviceError;

    fn attest(&mut self) -> Attestation {
        // USB sticks appear a few seconds after boot: give them up to 15 s before saying the
        // image cannot be found (the page offers to read again after that).
        let t0 = Instant::now();
        let (iso, boot_path) = loop {
            let r = self.iso();
            if !matches!(r.0, IsoCheck::NotFound(_)) || t0.elapsed() > Duration::from_secs(15) {
                break r;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let log = std::fs::read(EVENT_LOG).ok();
        let pcrs = attest::judge(&pcrs(), log.as_deref())
            .into_iter()
            .map(|v| PcrLine {
                index: v.index,
                value: v.value.as_deref().map(hexstr::encode),
                verdict: match v.verdict {
                    Verdict::Pass => "PASS",
                    Verdict::Fail => "FAIL",
                    Verdict::Unknown => "UNKNOWN",
                }
                .into(),
                expectation: v.expectation,
                reason: v.reason,
            })
            .collect();
        Attestation {
            iso,
            rootfs_tree: crate::rootfs_tree(),
            kernel_release: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_else(|e| format!("unknown ({e})")),
            boot_path,
            pcrs,
            uefi: crate::uefi::booted_by_uefi().then(|| {
                crate::uefi::check(log.as_deref(), read_pcr(4).ok(), self.stick_efi_app.clone())
            }),
        }
    }

    fn poll_plan(&mut self) -> PlanPoll {
        if self
            .last_plan_look
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return self.last_plan.clone();
        }
        self.last_plan_look = Some(Instant::now());
        self.last_plan = match self.media.find_plan() {
            Ok(found) => {
                self.plan_fs = found.location.identity.clone();
                PlanPoll::Found {
                    location: found.location.to_string(),
                    text: found.text,
                }
            }
            Err(e @ MediaError::PlanNotFound { .. }) => PlanPoll::Waiting(e.to_string()),
            Err(e) => PlanPoll::Problem(e.to_string()),
        };
        self.last_plan.clone()
    }

    fn open_personal_card(&mut self) -> Result<Box<dyn PersonalCard>, Self::Error> {
        ImageDevices::open_personal_card(self)
    }

    fn quote(&mut self, plan_hash: &[u8; 32]) -> Result<tpm_quote::Quote, String> {
        tpm_quote_of(plan_hash).map(|a| a.quote)
    }

    fn gather_entropy(
        &mut self,
        allow_virtual_hardware: bool,
        progress: &mut dyn FnMut(&EntropyView),
    ) -> Result<Gathered, EntropyView> {
        let (mut sources, mut absent) = entropy_run::discover();
        // A card in the reader adds its GET CHALLENGE as one more hardware source.
        let what = "OpenPGP card GET CHALLENGE".to_owned();
        match self.open_reader() {
            Ok(Some(r)) => match open_openpgp(r) {
                Ok(card) => sources.push(Box::new(entropy::CardSource::new(card))),
                Err(e) => absent.push((what, e.to_string())),
            },
            Ok(None) => absent.push((what, "no card reader".into())),
            Err(e) => absent.push((what, e.to_string())),
        }
        entropy_run::gather(
            sources,
            absent,
            &entropy_run::policy(allow_virtual_hardware),
            progress,
        )
        .map(Gathered::from)
    }

    fn poll_card(&mut self) -> CardPoll {
        let mut reader = match self.open_reader() {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.seen = None;
                return CardPoll::NoReader;
            }
            Err(e) => return CardPoll::Problem(e.to_string()),
        };
        match reader.slot_status() {
            Ok(cards::ccid::IccStatus::Absent) => {
                self.seen = None;
                return CardPoll::Empty;
            }
            Ok(_) => {}
            Err(e) => return CardPoll::Problem(e.to_string()),
        }
        let reader_id = self
            .cards
            .readers()
            .next()
            .map(|r| r.id.clone())
            .unwrap_or_default();
        if let Some((id, poll)) = &self.seen
            && *id == reader_id
        {
            return poll.clone();
        }
        let poll = match open_openpgp(reader)
            .and_then(|mut c| c.identity().map_err(DeviceError::NotOpenPgp))
        {
            Ok(id) => CardPoll::Card {
                holds_keys: id.holds_keys(),
                ident: id.ident,
            },
            Err(e) => CardPoll::Problem(e.to_string()),
        };
        self.seen = Some((reader_id, poll.clone()));
        poll
    }

    fn open_card(&mut self) -> Result<Box<dyn LocationCard>, DeviceError> {
        let reader = self.open_reader()?.ok_or(DeviceError::ReaderGone)?;
        // The next look at the reader reads the card again (it is being changed now).
        self.seen = None;
        Ok(Box::new(JournaledCard {
            card: open_openpgp(reader)?,
            journal: self.journal.clone(),
            holder: self.holder.clone(),
        }))
    }

    fn card_for(&mut self, next: &NextCard) {
        self.holder = next.holder_name.clone();
    }

    fn poll_sticks(&mut self) -> Result<Vec<String>, DeviceError> {
        // Each look reads every stick's first 32 KiB: once a second is enough.
        if let Some((t, last)) = &self.last_sticks
            && t.elapsed() < Duration::from_secs(1)
        {
            return Ok(last.clone());
        }
        self.last_sticks = None;
        let found = self.list_sticks()?;
        self.last_sticks = Some((Instant::now(), found.clone()));
        Ok(found)
    }

    fn write(&mut self, dir: &str, files: &[OutputFile]) -> Result<WriteReport, DeviceError> {
        self.last_sticks = None;
        self.write_sticks(dir, files)
    }
}

impl ImageDevices {
    /// Opens the card in the reader as a witness's personal card, for the step where each
    /// witness's own card signs the transcript: hand it to
    /// `ceremony::witness::WitnessSigning::sign`, once per card inserted. Only read and sign:
    /// nothing on the card is changed (so nothing is journaled), and every PIN presented goes
    /// through the card stack's retry guard. Errors as for `open_card`: no reader, a silent
    /// card, not an OpenPGP card.
    pub fn open_personal_card(&mut self) -> Result<Box<dyn PersonalCard>, DeviceError> {
        let reader = self.open_reader()?.ok_or(DeviceError::ReaderGone)?;
        // The next look reads the card again (its PIN counter may change).
        self.seen = None;
        Ok(Box::new(open_openpgp(reader)?))
    }

    fn list_sticks(&mut self) -> Result<Vec<String>, DeviceError> {
        Ok(self
            .data_candidates()?
            .iter()
            .map(|c| format!("{} ({})", c.device.describe(), c.fs().name()))
            .collect())
    }

    fn write_sticks(
        &mut self,
        dir: &str,
        files: &[OutputFile],
    ) -> Result<WriteReport, DeviceError> {
        let candidates = self.data_candidates()?;
        let mut sticks = Vec::new();
        for c in &candidates {
            sticks.push(self.media.open_data_stick(c, &self.rules())?);
        }
        let report = {
            let mut journaled: Vec<JournaledVolume<'_, _>> = sticks
                .iter_mut()
                .map(|s| JournaledVolume {
                    volume: s,
                    journal: &self.journal,
                    started: false,
                })
                .collect();
            let mut vols: Vec<&mut dyn Volume> =
                journaled.iter_mut().map(|v| v as &mut dyn Volume).collect();
            write_all(&mut vols, dir, files)
        };
        // Flush and unmount every stick, whatever happened: only then may they be pulled.
        let unmount_errors: Vec<MediaError> = sticks
            .into_iter()
            .filter_map(|s| s.finish().err())
            .collect();
        let report = report?;
        if !unmount_errors.is_empty() {
            return Err(DeviceError::Unmount(unmount_errors));
        }
        Ok(report)
    }

    /// The boot and plan sticks, told by their file systems and what they hold.
    fn rules(&self) -> DataStickRules<'_> {
        DataStickRules {
            boot: self.boot_fs.as_ref(),
            plan: self.plan_fs.as_ref(),
            boot_iso_path: self.boot_iso_path.as_deref(),
        }
    }

    /// Writes `files` under `dir` to every data stick, as the ceremony's write step does (the
    /// same checks, journal and read-back), for the boot screen's "this machine's values".
    /// The boot and plan sticks are looked for first, so neither is ever written.
    pub fn write_outside_ceremony(
        &mut self,
        dir: &str,
        files: &[OutputFile],
    ) -> Result<Written, WriteProblem> {
        if let (IsoCheck::Several(_), _) = self.iso() {
            return Err(WriteProblem::SeveralBootImages);
        }
        self.last_plan_look = None;
        let _ = Devices::poll_plan(self);
        match self.data_candidates() {
            Ok(c) if c.is_empty() => return Err(WriteProblem::NoStick),
            Ok(_) => {}
            Err(e) => return Err(WriteProblem::Stick(e.to_string())),
        }
        match self.write_sticks(dir, files) {
            Ok(r) if r.volumes.is_empty() => Err(WriteProblem::NoStick),
            Ok(r) => Ok(Written {
                volumes: r.volumes.into_iter().map(|(label, _)| label).collect(),
            }),
            Err(DeviceError::Write(ceremony::storage::WriteError::AlreadyExists {
                volume,
                ..
            })) => Err(WriteProblem::AlreadyThere { volume }),
            Err(e) => Err(WriteProblem::Stick(e.to_string())),
        }
    }

    /// Data sticks: neither the boot stick nor the plan stick, even plugged in again.
    fn data_candidates(&mut self) -> Result<Vec<sherd_media::DataCandidate>, DeviceError> {
        Ok(self.media.data_candidates(&self.rules())?)
    }
}

/// A card whose reset and provisioning are recorded in the progress journal: the start line is
/// fsync'd before the reset (or the card is left untouched), the done line after.
struct JournaledCard<C> {
    card: C,
    journal: Journal,
    holder: String,
}

impl<C: LocationCard> LocationCard for JournaledCard<C> {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        self.card.serial()
    }

    fn holds_keys(&mut self) -> Result<bool, CardError> {
        self.card.holds_keys()
    }

    fn provision(
        &mut self,
        key: &CardImport<'_>,
        pins: &CardPins,
    ) -> Result<CardSerial, CardError> {
        let serial = self.card.serial()?;
        let (serial_text, holder) = (serial.0.clone(), self.holder.clone());
        self.journal
            .append(&Entry::CardStart {
                serial: serial_text.clone(),
                holder: holder.clone(),
            })
            .map_err(|e| CardError::Device(format!("{e}; the card was not touched")))?;
        let provisioned = self.card.provision(key, pins)?;
        // The card holds its key now; a journal that cannot say so still says "partly".
        let _ = self.journal.append(&Entry::CardDone {
            serial: serial_text,
            holder,
        });
        Ok(provisioned)
    }

    fn ecdh(
        &mut self,
        user_pin: &Pin,
        ephemeral_public: &[u8; 32],
    ) -> Result<SharedSecret, CardError> {
        self.card.ecdh(user_pin, ephemeral_public)
    }
}

/// A stick whose writes are recorded in the progress journal: a start line before its first
/// change (or no change at all), then one line per file complete under its final name.
struct JournaledVolume<'a, V: Volume> {
    volume: &'a mut V,
    journal: &'a Journal,
    started: bool,
}

impl<V: Volume> JournaledVolume<'_, V> {
    fn start(&mut self) -> std::io::Result<()> {
        if !self.started {
            self.journal
                .append(&Entry::StickStart {
                    volume: self.volume.label(),
                })
                .map_err(std::io::Error::other)?;
            self.started = true;
        }
        Ok(())
    }
}

impl<V: Volume> Volume for JournaledVolume<'_, V> {
    fn label(&self) -> String {
        self.volume.label()
    }
    fn exists(&mut self, path: &str) -> std::io::Result<bool> {
        self.volume.exists(path)
    }
    fn create_dirs(&mut self, path: &str) -> std::io::Result<()> {
        self.start()?;
        self.volume.create_dirs(path)
    }
    fn write_new_synced(&mut self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.start()?;
        self.volume.write_new_synced(path, bytes)
    }
    fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        self.start()?;
        self.volume.rename(from, to)?;
        // The file's bytes were fsync'd before the rename: it is there under its name.
        let _ = self.journal.append(&Entry::File {
            volume: self.volume.label(),
            path: to.to_owned(),
        });
        Ok(())
    }
    fn sync_dir(&mut self, path: &str) -> std::io::Result<()> {
        self.volume.sync_dir(path)
    }
    fn read(&mut self, path: &str) -> std::io::Result<Vec<u8>> {
        self.volume.read(path)
    }
    fn remove(&mut self, path: &str) -> std::io::Result<()> {
        self.start()?;
        self.volume.remove(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceremony::card::SoftwareCard;
    use ceremony::keys::LocationKey;
    use ceremony::rng::SecretRng;
    use ceremony::storage::DirVolume;
    use std::path::PathBuf;

    /// Not random at all: enough to make a key for a software card.
    struct Counter(u8);
    impl SecretRng for Counter {
        fn fill(&mut self, out: &mut [u8]) {
            for b in out {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sherd-devices-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn provision(card: &mut dyn LocationCard) -> Result<CardSerial, CardError> {
        let mut rng = Counter(0);
        let key = LocationKey::generate(&mut rng, "c1", 1, "Alice", 1_700_000_000).unwrap();
        let pins = CardPins::generate(&mut rng);
        card.provision(&key.card_import(), &pins)
    }

    #[test]
    fn a_card_reset_is_journaled_before_and_after() {
        let dir = tempdir("card");
        let path = dir.join("progress");
        let mut card = JournaledCard {
            card: SoftwareCard::new("0005:0000A1B2"),
            journal: Journal::new(&path),
            holder: "Alice".into(),
        };
        assert_eq!(provision(&mut card).unwrap().0, "0005:0000A1B2");
        let (serial, holder) = ("0005:0000A1B2".to_owned(), "Alice".to_owned());
        assert_eq!(
            journal::read(&path).unwrap(),
            [
                Entry::CardStart {
                    serial: serial.clone(),
                    holder: holder.clone()
                },
                Entry::CardDone { serial, holder }
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_journal_no_reset() {
        let dir = tempdir("card-nojournal");
        let mut card = JournaledCard {
            card: SoftwareCard::new("S1"),
            journal: Journal::new(dir.join("missing/progress")),
            holder: "Alice".into(),
        };
        let e = provision(&mut card).unwrap_err();
        assert!(e.to_string().contains("the card was not touched"), "{e}");
        assert!(!card.holds_keys().unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn outputs() -> Vec<OutputFile> {
        ["root.asc", "transcript.txt"]
            .iter()
            .map(|p| OutputFile {
                path: (*p).into(),
                bytes: p.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn each_file_written_is_journaled() {
        let dir = tempdir("stick");
        let path = dir.join("progress");
        std::fs::create_dir_all(dir.join("stick")).unwrap();
        let mut stick = DirVolume::new(dir.join("stick"));
        let journal = Journal::new(&path);
        let mut v = JournaledVolume {
            volume: &mut stick,
            journal: &journal,
            started: false,
        };
        let label = v.label();
        write_all(&mut [&mut v], "sherd-c1", &outputs()).unwrap();
        let file = |p: &str| Entry::File {
            volume: label.clone(),
            path: p.into(),
        };
        assert_eq!(
            journal::read(&path).unwrap(),
            [
                Entry::StickStart {
                    volume: label.clone()
                },
                file("sherd-c1/root.asc"),
                file("sherd-c1/transcript.txt"),
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_journal_no_write() {
        let dir = tempdir("stick-nojournal");
        std::fs::create_dir_all(dir.join("stick")).unwrap();
        let mut stick = DirVolume::new(dir.join("stick"));
        let journal = Journal::new(dir.join("missing/progress"));
        let mut v = JournaledVolume {
            volume: &mut stick,
            journal: &journal,
            started: false,
        };
        assert!(write_all(&mut [&mut v], "sherd-c1", &outputs()).is_err());
        assert_eq!(std::fs::read_dir(dir.join("stick")).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
