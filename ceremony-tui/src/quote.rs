//! The TPM quote's transcript record: a quote of PCR 0-7 made after the plan was confirmed,
//! with the plan hash as its qualifying data ([`tpm_quote`], docs/formats/tpm-quote.md).

use ceremony::record::{Fields, Note};

/// The record kind.
pub const KIND: &str = "tpm.quote";

/// `tpm.quote attest= signature= ak-public= ak-name= ek-cert=` (hex; `ek-cert=none` when the
/// TPM holds no EK certificate), or `tpm.quote none="<why>"` when no quote could be made.
pub fn record(result: Result<&tpm_quote::Quote, &str>) -> Note {
    let fields = match result {
        Ok(q) => Fields::new()
            .with("attest", hexstr::encode(&q.attest))
            .with("signature", hexstr::encode(&q.signature))
            .with("ak-public", hexstr::encode(&q.ak_public))
            .with("ak-name", tpm_quote::ak_name(&q.ak_public))
            .with(
                "ek-cert",
                q.ek_cert
                    .as_deref()
                    .map(hexstr::encode)
                    .unwrap_or_else(|| "none".into()),
            ),
        Err(why) => Fields::new().with("none", why),
    };
    Note::new(KIND, fields).expect("not a core kind")
}
