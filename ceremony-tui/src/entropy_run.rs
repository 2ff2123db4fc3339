//! Gathering entropy under the ceremony's policy while a screen follows along: one routine for
//! the boot screen's entropy check, the ceremony's entropy step and the rehearsal.

use crate::entropy_check::{EntropyView, SourceRow};
use ceremony::record::{Fields, Note};
use entropy::{Counted, Drbg, Event, Policy, Source, SourceReport};

/// One source's line on the screen: public values only.
pub fn source_row(r: &SourceReport) -> SourceRow {
    let detail = match (r.failure_reason(), &r.counted) {
        (Some(why), _) => format!("excluded: {why}"),
        (None, counted) => {
            let base = format!(
                "{} B, H {:.2}/{} per sample, commitment {}",
                r.bytes_contributed,
                r.estimated_h.unwrap_or(r.claimed_h),
                r.sample_bits,
                r.commitment
                    .as_ref()
                    .map(|c| c.to_hex()[..16].to_owned())
                    .unwrap_or_default()
            );
            match counted {
                Counted::Yes | Counted::Excluded => base,
                Counted::OsSource => format!("{base}; mixed in, never counted as hardware"),
                Counted::SameDeviceAs { same_as, .. } => {
                    format!(
                        "{base}; same device as source {}, counted once",
                        same_as + 1
                    )
                }
                Counted::TooLittleEntropy {
                    credited_bits,
                    needed,
                } => format!("{base}; credited {credited_bits:.0} bits of {needed:.0} needed"),
            }
        }
    };
    SourceRow {
        kind: r.kind.to_string(),
        identity: r.identity.clone(),
        conditioning: r.conditioning.to_string(),
        healthy: r.is_healthy(),
        counted: r.counted == Counted::Yes,
        detail,
    }
}

/// A successful gathering: the final view, the transcript records, the seeded DRBG.
pub struct Outcome {
    pub view: EntropyView,
    /// `entropy.source` per source (kind, identity, health, counted, bytes, commitment) and
    /// `entropy.mixer`: public values for the transcript.
    pub records: Vec<Note>,
    pub drbg: Drbg,
}

/// Draws from `sources` under the default policy, calling `progress` with the view after each
/// step. `absent` lists sources looked for and not found (what, why). On refusal returns the
/// view that says why.
pub fn gather(
    mut sources: Vec<Box<dyn Source>>,
    absent: Vec<(String, String)>,
    progress: &mut dyn FnMut(&EntropyView),
) -> Result<Outcome, EntropyView> {
    let mut view = EntropyView {
        progress: Some("looking for sources".into()),
        rows: Vec::new(),
        absent,
        ok: None,
        verdict: String::new(),
    };
    progress(&view);
    let result = entropy::gather_with_progress(&mut sources, &Policy::default(), &mut |ev| {
        match ev {
            Event::SourceStarted { index, total, info } => {
                view.progress = Some(format!(
                    "source {} of {total}: {} {}",
                    index + 1,
                    info.kind,
                    info.identity
                ));
            }
            Event::SourceFinished(r) => view.rows.push(source_row(r)),
            Event::Mixing { .. } => view.progress = Some("mixing".into()),
            _ => return,
        }
        progress(&view);
    });
    view.progress = None;
    match result {
        Ok((drbg, report)) => {
            let counted: Vec<String> = report
                .sources
                .iter()
                .filter(|r| r.counted == Counted::Yes)
                .map(|r| r.identity.clone())
                .collect();
            view.ok = Some(true);
            view.verdict = format!(
                "{} independent hardware sources ({}) and the kernel CSPRNG",
                counted.len(),
                counted.join(", ")
            );
            let mut records: Vec<Note> = report
                .sources
                .iter()
                .map(|r| {
                    let commitment = r
                        .commitment
                        .as_ref()
                        .map(|c| c.to_hex())
                        .unwrap_or_else(|| "none".into());
                    let fields = Fields::new()
                        .with("source", r.kind.to_string())
                        .with("identity", r.identity.clone())
                        .with("conditioning", r.conditioning.to_string())
                        .with("healthy", r.is_healthy().to_string())
                        .with("counted", (r.counted == Counted::Yes).to_string())
                        .with("bytes", r.bytes_contributed.to_string())
                        .with("commitment", commitment);
                    Note::new("entropy.source", fields).expect("not a core kind")
                })
                .collect();
            records.push(
                Note::new(
                    "entropy.mixer",
                    Fields::new().with("context", report.mixer_context),
                )
                .expect("not a core kind"),
            );
            Ok(Outcome {
                view,
                records,
                drbg,
            })
        }
        Err(e) => {
            view.ok = Some(false);
            view.verdict = e.to_string();
            Err(view)
        }
    }
}

/// Sources found, and those looked for and not found (what, why).
pub type Found = (Vec<Box<dyn Source>>, Vec<(String, String)>);

/// The sources this machine has (CPU, TPM, hwrng, serial TRNGs, kernel CSPRNG) and those
/// looked for and not found.
pub fn discover() -> Found {
    let found = entropy::discover_verbose(&entropy::Config::default());
    let absent = found
        .absent
        .iter()
        .map(|a| (a.what.clone(), a.reason.clone()))
        .collect();
    (found.sources, absent)
}
