//! The TPM quote's transcript record: a quote of PCR 0-7 made after the plan was confirmed,
//! with the plan hash as its qualifying data ([`tpm_quote`], docs/formats/tpm-quote.md).

use ceremony::record::{Fields, Note};

/// The record kind.
pub const KIND: &str = "tpm.quote";

/// `tpm.quote attest= signature= ak-public= ak-name= ek-cert=` (hex; `ek-cert=none` when the
/// TPM holds no EK certificate), or `tpm.quote none="<why>"` when no quote could be made.
pub fn record(result: Result<tpm_quote::Attestation, String>) -> Note {
    let fields = match result {
        Ok(a) => Fields::new()
            .with("attest", hexstr::encode(&a.quote.attest))
            .with("signature", hexstr::encode(&a.quote.signature))
            .with("ak-public", hexstr::encode(&a.quote.ak_public))
            .with("ak-name", a.report.ak_name)
            .with(
                "ek-cert",
                a.quote
                    .ek_cert
                    .as_deref()
                    .map(hexstr::encode)
                    .unwrap_or_else(|| "none".into()),
            ),
        Err(why) => Fields::new().with("none", why),
    };
    Note::new(KIND, fields).expect("not a core kind")
}
