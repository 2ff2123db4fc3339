//! The boot screen's "this machine's values": reads PCR 0-7 as the boot attestation does and
//! the attestation key's name as the quote makes the key, shows them, and on W writes the
//! plan's `[machine]` table to a data stick as the ceremony's write step writes its outputs.
#![forbid(unsafe_code)]

use crate::devices::{self, ImageDevices, TpmOpenError};
use ceremony::plan::QUOTE_KEY_LEN;
use ceremony::storage::OutputFile;
use ceremony_tui::machine::{self, Action, KeyProblem, MachineView, WriteProblem};
use ceremony_tui::notice::{self, NoticeView};
use ceremony_tui::term::{self, ConsoleTerminal};
use std::io;

/// The attestation key's TPM name: the key made from the same template in the same hierarchy
/// as the quote's (`tpm_quote::ak_public` makes it and flushes it again).
fn key_name() -> Result<[u8; QUOTE_KEY_LEN], KeyProblem> {
    let (mut tpm, device) = devices::open_tpm().map_err(|e| match e {
        TpmOpenError::NoTpm(e) => KeyProblem::NoTpm(e.to_string()),
        TpmOpenError::Open { device, error } => KeyProblem::Open {
            device,
            error: error.to_string(),
        },
    })?;
    let public = tpm_quote::ak_public(&mut tpm).map_err(|e| KeyProblem::Tpm {
        device: device.clone(),
        error: e.to_string(),
    })?;
    // A name with SHA-256 as its algorithm is always 2 + 32 bytes.
    <[u8; QUOTE_KEY_LEN]>::try_from(tpm_quote::ak_name_bytes(&public)).map_err(|_| {
        KeyProblem::Tpm {
            device,
            error: "the key's name is not 34 bytes".into(),
        }
    })
}

fn read() -> MachineView {
    MachineView {
        pcrs: std::array::from_fn(devices::read_pcr),
        pcr_source: devices::PCR_DIR.into(),
        key_name: key_name(),
        written: None,
    }
}

fn notice(t: &mut ConsoleTerminal, banner: &str) -> io::Result<()> {
    let v = NoticeView {
        title: "this machine's values".into(),
        banner: banner.into(),
        lines: Vec::new(),
    };
    t.draw(|f| notice::render(f, &v, &[]))?;
    Ok(())
}

/// Runs the pages until Esc; returns to the boot screen.
pub fn run(t: &mut ConsoleTerminal) -> io::Result<()> {
    notice(
        t,
        "Reading PCR 0-7 and making the attestation key in the TPM ...",
    )?;
    let mut view = read();
    let mut page = 0;
    loop {
        match term::run_screen(t, |f| machine::render(f, &view, page), machine::on_key)? {
            Action::Next => page = (page + 1).min(machine::PAGES - 1),
            Action::Previous => page = page.saturating_sub(1),
            Action::Back => return Ok(()),
            Action::Write => {
                view.written = Some(match view.file_text() {
                    None => Err(WriteProblem::NothingRead),
                    Some(text) => {
                        notice(t, "Writing to the data stick ...")?;
                        let file = OutputFile {
                            path: machine::FILE.into(),
                            bytes: text.into_bytes(),
                        };
                        ImageDevices::new().write_outside_ceremony(machine::DIR, &[file])
                    }
                });
                // The outcome is shown on the first page.
                page = 0;
            }
        }
    }
}
