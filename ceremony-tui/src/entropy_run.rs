//! Gathering entropy under the ceremony's policy while a screen follows along: one routine for
//! the boot screen's entropy check, the ceremony's entropy step and the rehearsal.

use crate::entropy_check::{EntropyView, SourceRow};
use ceremony::record::{Fields, Note};
use entropy::{Assessment, Counted, Drbg, Event, Machine, Policy, Source, SourceReport};

/// One source's line on the screen: public values only.
pub fn source_row(r: &SourceReport) -> SourceRow {
    let detail = match (r.failure_reason(), &r.counted) {
        (Some(why), _) => format!("excluded: {why}"),
        (None, counted) => {
            // One row under the source's name: bytes, credit, commitment, and VIRTUAL when
            // the device is (why is in the transcript and, when it stops the count, in the
            // verdict).
            let credit = match &r.assessment {
                Some(Assessment::ByClaim) => format!("{:.0} bits by claim", r.credited_bits),
                Some(a @ Assessment::Estimated(_)) => format!(
                    "{:.0} bits (SP 800-90B {:.2}/{})",
                    r.credited_bits,
                    a.per_sample(r.claimed_h),
                    r.sample_bits
                ),
                None => "not credited".into(),
            };
            let commitment = r
                .commitment
                .as_ref()
                .map(|c| c.to_hex()[..16].to_owned())
                .unwrap_or_default();
            let mut base = format!(
                "{} B, {credit}, commitment {commitment}",
                r.bytes_contributed
            );
            if r.virtual_device.is_some() && r.kind.is_hardware() {
                base.push_str(", VIRTUAL");
            }
            match counted {
                Counted::Yes | Counted::Excluded => base,
                Counted::Virtual { .. } => format!(
                    "{} B, commitment {commitment}, VIRTUAL: not counted",
                    r.bytes_contributed
                ),
                Counted::OsSource => format!(
                    "{} B, commitment {commitment}; mixed, never counted",
                    r.bytes_contributed
                ),
                Counted::SameDeviceAs { same_as, .. } => format!(
                    "{} B, commitment {commitment}; same device as #{}",
                    r.bytes_contributed,
                    same_as + 1
                ),
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

/// The ceremony's entropy policy; `allow_virtual_hardware` comes from the plan (a test or
/// rehearsal plan), and is off for the boot screen's check.
pub fn policy(allow_virtual_hardware: bool) -> Policy {
    Policy {
        allow_virtual_hardware,
        ..Policy::default()
    }
}

/// Draws from `sources` under `policy` on this machine, calling `progress` with the view after
/// each step. `absent` lists sources looked for and not found (what, why). On refusal returns
/// the view that says why.
pub fn gather(
    mut sources: Vec<Box<dyn Source>>,
    absent: Vec<(String, String)>,
    policy: &Policy,
    progress: &mut dyn FnMut(&EntropyView),
) -> Result<Outcome, EntropyView> {
    gather_on(&mut sources, absent, policy, &Machine::detect(), progress)
}

/// [`gather`] on a machine described by `machine` (tests give one; the image detects it).
pub fn gather_on(
    sources: &mut [Box<dyn Source>],
    absent: Vec<(String, String)>,
    policy: &Policy,
    machine: &Machine,
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
    let result = entropy::gather_with_progress(sources, policy, machine, &mut |ev| {
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
            let counted: Vec<&SourceReport> = report
                .sources
                .iter()
                .filter(|r| r.counted == Counted::Yes)
                .collect();
            let names: Vec<&str> = counted.iter().map(|r| r.identity.as_str()).collect();
            view.ok = Some(true);
            view.verdict = if counted.iter().any(|r| r.virtual_device.is_some()) {
                format!(
                    "{} sources counted as independent hardware ({}), VIRTUAL devices allowed \
                     by the plan, and the kernel CSPRNG",
                    counted.len(),
                    names.join(", ")
                )
            } else {
                format!(
                    "{} independent hardware sources ({}) and the kernel CSPRNG",
                    counted.len(),
                    names.join(", ")
                )
            };
            let mut records: Vec<Note> = report
                .sources
                .iter()
                .map(|r| {
                    let commitment = r
                        .commitment
                        .as_ref()
                        .map(|c| c.to_hex())
                        .unwrap_or_else(|| "none".into());
                    let mut fields = Fields::new()
                        .with("source", r.kind.to_string())
                        .with("identity", r.identity.clone())
                        .with("conditioning", r.conditioning.to_string())
                        .with("healthy", r.is_healthy().to_string())
                        .with("counted", (r.counted == Counted::Yes).to_string())
                        .with("bytes", r.bytes_contributed.to_string())
                        .with("commitment", commitment)
                        .with(
                            "virtual",
                            r.virtual_device.clone().unwrap_or_else(|| "no".into()),
                        )
                        .with("credited-bits", format!("{:.0}", r.credited_bits));
                    fields = match &r.assessment {
                        None => fields.with("assessment", "none"),
                        Some(Assessment::ByClaim) => fields
                            .with("assessment", "claim")
                            .with("claimed-h", format!("{}", r.claimed_h)),
                        Some(Assessment::Estimated(e)) => fields
                            .with("assessment", "sp800-90b")
                            .with("claimed-h", format!("{}", r.claimed_h))
                            .with("samples", e.samples.to_string())
                            .with("h", format!("{:.4}", e.per_sample()))
                            .with("mcv", format!("{:.4}", e.mcv))
                            .with("bit-mcv", format!("{:.4}", e.bit_mcv))
                            .with("bit-collision", format!("{:.4}", e.bit_collision))
                            .with("bit-markov", format!("{:.4}", e.bit_markov)),
                    };
                    Note::new("entropy.source", fields).expect("not a core kind")
                })
                .collect();
            records.insert(
                0,
                Note::new(
                    "entropy.policy",
                    Fields::new()
                        .with(
                            "hardware-sources",
                            report.policy.min_hardware_sources.to_string(),
                        )
                        .with(
                            "credited-bits",
                            format!("{:.0}", report.policy.min_credited_bits),
                        )
                        .with(
                            "allow-virtual-hardware",
                            report.policy.allow_virtual_hardware.to_string(),
                        )
                        .with(
                            "hypervisor",
                            machine.hypervisor.clone().unwrap_or_else(|| "no".into()),
                        ),
                )
                .expect("not a core kind"),
            );
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
            view.verdict = refusal(&e);
            Err(view)
        }
    }
}

/// The refusal in a few lines: each row already says how its source fared, so the verdict
/// gives the count and, for virtual devices, why they did not count.
fn refusal(e: &entropy::Error) -> String {
    match e {
        entropy::Error::TooFewHardwareSources {
            required,
            counted,
            report,
            ..
        } => {
            let mut why: Vec<&str> = Vec::new();
            for r in &report.sources {
                if let Counted::Virtual { why: w } = &r.counted
                    && !why.contains(&w.as_str())
                {
                    why.push(w);
                }
            }
            let mut v = format!(
                "{} of {required} independent hardware sources counted.",
                counted.len()
            );
            if !why.is_empty() {
                v.push_str(&format!(
                    " Not counted as VIRTUAL ({}): only a test or rehearsal plan may allow that.",
                    why.join("; ")
                ));
            }
            v
        }
        other => other.to_string(),
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_verifier_checks_the_mixer_this_image_uses() {
        assert_eq!(ceremony::verify::MIX_CONTEXT, entropy::mix::MIX_CONTEXT);
    }
}
