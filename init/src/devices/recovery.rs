//! The recovery ceremony's devices in the image: the same sticks, reader and attestation as the
//! generation's ([`ImageDevices`]), plus the request stick and the generation folder read
//! through `sherd-media`.

use super::{DeviceError, ImageDevices, open_openpgp};
use ceremony::card::{LocationCard, PersonalDecryptCard};
use ceremony::ceremony::NextCard;
use ceremony::request::{Operation, Request};
use ceremony::storage::{OutputFile, WriteReport};
use ceremony_tui::ceremony::screens::Attestation;
use ceremony_tui::ceremony::{CardPoll, Devices, Gathered};
use ceremony_tui::entropy_check::EntropyView;
use ceremony_tui::recovery::{GenerationInput, RecoveryDevices, RequestInput, RequestPoll};
use sherd_media::MediaError;
use std::time::{Duration, Instant};

/// The names of the files a `sign` request names, to read from the request stick; none for a
/// request that does not parse (the ceremony shows why it was refused).
fn wanted(bytes: &[u8]) -> Vec<String> {
    let Some(request) = std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| Request::parse(t).ok())
    else {
        return Vec::new();
    };
    match request.operation {
        Operation::Sign { files } => files.into_iter().map(|f| f.name).collect(),
        _ => Vec::new(),
    }
}

impl RecoveryDevices for ImageDevices {
    type Error = DeviceError;

    fn attest(&mut self) -> Attestation {
        Devices::attest(self)
    }

    fn poll_request(&mut self) -> RequestPoll {
        // Each look mounts every stick: not more often than once a second.
        if let Some((t, last)) = &self.last_request
            && t.elapsed() < Duration::from_secs(1)
        {
            return last.clone();
        }
        let poll = match self.media.find_request(&wanted) {
            Ok(found) => RequestPoll::Found(RequestInput {
                location: found.location.to_string(),
                bytes: found.bytes,
                approvals: found.approvals,
                files: found.files,
            }),
            Err(e @ MediaError::RequestNotFound { .. }) => RequestPoll::Waiting(e.to_string()),
            Err(e) => RequestPoll::Problem(e.to_string()),
        };
        self.last_request = Some((Instant::now(), poll.clone()));
        poll
    }

    fn read_generation(&mut self, name: &str) -> Result<GenerationInput, String> {
        let found = self.media.find_folder(name).map_err(|e| e.to_string())?;
        Ok(GenerationInput {
            location: found.location.to_string(),
            files: found.files,
        })
    }

    fn read_recoveries(&mut self, ceremony_id: &str) -> Result<Vec<GenerationInput>, String> {
        let prefix = format!("sherd-{ceremony_id}-recovery-");
        let names = self
            .media
            .folder_names(&prefix)
            .map_err(|e| e.to_string())?;
        names
            .iter()
            .map(|name| self.read_generation(name))
            .collect()
    }

    fn gather_entropy(
        &mut self,
        allow_virtual_hardware: bool,
        progress: &mut dyn FnMut(&EntropyView),
    ) -> Result<Gathered, EntropyView> {
        Devices::gather_entropy(self, allow_virtual_hardware, progress)
    }

    fn open_new_card(&mut self, next: &NextCard) -> Result<Box<dyn LocationCard>, DeviceError> {
        // Provisioning changes the card: journaled as at generation.
        Devices::card_for(self, next);
        Devices::open_card(self)
    }

    fn poll_card(&mut self) -> CardPoll {
        Devices::poll_card(self)
    }

    fn open_personal_card(&mut self) -> Result<Box<dyn PersonalDecryptCard>, DeviceError> {
        let reader = self.open_reader()?.ok_or(DeviceError::ReaderGone)?;
        // The next look reads the card again (its PIN counter may change).
        self.seen = None;
        Ok(Box::new(open_openpgp(reader)?))
    }

    fn open_location_card(&mut self) -> Result<Box<dyn LocationCard>, DeviceError> {
        // Only decrypts: nothing on the card changes, so nothing is journaled.
        let reader = self.open_reader()?.ok_or(DeviceError::ReaderGone)?;
        self.seen = None;
        Ok(Box::new(open_openpgp(reader)?))
    }

    fn poll_sticks(&mut self) -> Result<Vec<String>, DeviceError> {
        Devices::poll_sticks(self)
    }

    fn write(&mut self, dir: &str, files: &[OutputFile]) -> Result<WriteReport, DeviceError> {
        Devices::write(self, dir, files)
    }
}
