//! A recovery rehearsed right after a generation rehearsal, with the same virtual cards (they
//! live in this process only): the holders' throwaway personal keys on virtual personal cards,
//! a demo `prove-quorum` request in a folder standing in for the request stick, and the
//! generation's output folder read from the folder standing in for its data stick.

use crate::devices::{Rehearsal, RehearsalError, open};
use ceremony::card::{LocationCard, PersonalDecryptCard};
use ceremony::ceremony::NextCard;
use ceremony::openpgp::Cert;
use ceremony::openpgp::parse::Parse;
use ceremony::recovery::read_approvals;
use ceremony::storage::{OutputFile, WriteReport};
use ceremony_tui::ceremony::screens::Attestation;
use ceremony_tui::ceremony::{CardPoll, Devices, Gathered};
use ceremony_tui::entropy_check::EntropyView;
use ceremony_tui::recovery::{GenerationInput, RecoveryDevices, RequestInput, RequestPoll};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the rehearsal's request "stick" is, inside the output folder.
pub const REQUEST_DIR: &str = "rehearsal-request";

/// Writes a demo `prove-quorum` request for the generation folder `generation` into
/// `out/REQUEST_DIR/request.toml`, dated a day after the plan time; returns its path.
pub fn write_demo_request(out: &Path, generation: &Path) -> Result<PathBuf, String> {
    let plan = std::fs::read_to_string(generation.join("plan.toml"))
        .map_err(|e| format!("{}: {e}", generation.join("plan.toml").display()))?;
    let plan = ceremony::plan::Plan::parse(&plan).map_err(|e| format!("plan.toml: {e}"))?;
    let root = Cert::from_file(generation.join("root-cert.asc"))
        .map_err(|e| format!("root-cert.asc: {e}"))?;
    let time = plan.time_unix.saturating_add(86_400);
    let dir = out.join(REQUEST_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = format!(
        "# A demo request made by sherd-rehearsal: prove that the quorum still holds the key.\n\
         format = \"sherd-request/1\"\nceremony_id = \"{}\"\nroot_fingerprint = \"{}\"\n\
         time = {}\n\n[prove-quorum]\nchallenge = \"rehearsal: the quorum still holds the key\"\n",
        plan.ceremony_id,
        root.fingerprint().to_hex(),
        ceremony::plan::rfc3339(time)
    );
    let path = dir.join("request.toml");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Reads every file under `dir`, by path relative to it with `/` separators.
fn read_tree(dir: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let path = rel.join(e.file_name());
            if e.file_type()?.is_dir() {
                todo.push(path);
            } else {
                let key = path
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(key, std::fs::read(dir.join(&path))?);
            }
        }
    }
    Ok(out)
}

impl RecoveryDevices for Rehearsal {
    type Error = RehearsalError;

    fn rehearsal(&self) -> bool {
        true
    }

    fn attest(&mut self) -> Attestation {
        Devices::attest(self)
    }

    fn poll_request(&mut self) -> RequestPoll {
        let dir = self.out().join(REQUEST_DIR);
        let bytes = match std::fs::read(dir.join("request.toml")) {
            Ok(b) => b,
            Err(e) => {
                return RequestPoll::Waiting(format!(
                    "{}: {e} (rehearsal: a folder stands in for the request stick)",
                    dir.join("request.toml").display()
                ));
            }
        };
        let approvals = match read_approvals(&dir.join("approvals")) {
            Ok(a) => a,
            Err(e) => return RequestPoll::Problem(format!("{}: {e}", dir.display())),
        };
        let mut files = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name != "request.toml"
                    && e.file_type().is_ok_and(|t| t.is_file())
                    && let Ok(b) = std::fs::read(e.path())
                {
                    files.insert(name, b);
                }
            }
        }
        RequestPoll::Found(RequestInput {
            location: format!(
                "{} (rehearsal: a folder stands in for the request stick)",
                dir.display()
            ),
            bytes,
            approvals,
            files,
        })
    }

    fn read_generation(&mut self, name: &str) -> Result<GenerationInput, String> {
        let dir = self.out().join(name);
        let files = read_tree(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(GenerationInput {
            location: format!(
                "{} (rehearsal: a folder stands in for the data stick)",
                dir.display()
            ),
            files,
        })
    }

    fn read_recoveries(&mut self, ceremony_id: &str) -> Result<Vec<GenerationInput>, String> {
        let prefix = format!("sherd-{ceremony_id}-recovery-");
        let mut names: Vec<String> = std::fs::read_dir(self.out())
            .map_err(|e| format!("{}: {e}", self.out().display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        names.sort();
        names.iter().map(|n| self.read_generation(n)).collect()
    }

    fn gather_entropy(
        &mut self,
        allow_virtual_hardware: bool,
        progress: &mut dyn FnMut(&EntropyView),
    ) -> Result<Gathered, EntropyView> {
        Devices::gather_entropy(self, allow_virtual_hardware, progress)
    }

    fn open_new_card(&mut self, _next: &NextCard) -> Result<Box<dyn LocationCard>, RehearsalError> {
        Devices::open_card(self)
    }

    fn poll_card(&mut self) -> CardPoll {
        Devices::poll_card(self)
    }

    fn open_personal_card(&mut self) -> Result<Box<dyn PersonalDecryptCard>, RehearsalError> {
        let i = self.in_reader().ok_or(RehearsalError::NoCard)?;
        self.forget_seen();
        Ok(Box::new(open(&self.card(i))?))
    }

    fn open_location_card(&mut self) -> Result<Box<dyn LocationCard>, RehearsalError> {
        Devices::open_card(self)
    }

    fn poll_sticks(&mut self) -> Result<Vec<String>, RehearsalError> {
        Devices::poll_sticks(self)
    }

    fn write(&mut self, dir: &str, files: &[OutputFile]) -> Result<WriteReport, RehearsalError> {
        Devices::write(self, dir, files)
    }

    fn on_key(&mut self, key: ceremony_tui::keys::Key) -> bool {
        Devices::on_key(self, key)
    }

    fn key_hints(&self) -> Vec<(String, String)> {
        Devices::key_hints(self)
    }
}
