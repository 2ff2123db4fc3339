//! The signing policy a plan may fix at generation (its optional `[policy]` table): the
//! approvers' certificates, and for each kind of operation how many distinct approvers must sign
//! a request (k of n) and optional limits on what one request may ask for. Part of the plan's
//! canonical hash, so changing it needs a reshare.
//!
//! The format is specified in docs/formats/plan.md; requests are checked against it by
//! [`crate::recovery::check_policy`] before any card is asked for.

use std::collections::HashMap;
use std::time::SystemTime;

use sequoia_openpgp as openpgp;
use serde::{Deserialize, Serialize};

use openpgp::Fingerprint;
use openpgp::policy::StandardPolicy;

use crate::hex;
use crate::plan::{self, CertUse, PersonalCert, PlanError, RawWitness};
use crate::request::{self, OperationKind};

/// At most this many approvers (an approver's index is one byte).
pub const MAX_APPROVERS: usize = 255;

/// The `[policy]` table as written.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(rename = "approver", default)]
    approvers: Vec<RawWitness>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sign: Option<RawSignRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certify: Option<RawCertifyRule>,
    #[serde(
        rename = "prove-quorum",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    prove_quorum: Option<RawRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reshare: Option<RawRule>,
    #[serde(
        rename = "replace-card",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    replace_card: Option<RawRule>,
}

/// `[policy.sign]`: a quorum and the most files one request may name.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSignRule {
    k: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_files: Option<i64>,
}

/// `[policy.certify]`: a quorum and the most user IDs one request may certify.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawCertifyRule {
    k: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_user_ids: Option<i64>,
}

/// `[policy.prove-quorum]`, `[policy.reshare]`, `[policy.replace-card]`: a quorum only.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    k: i64,
}

/// Someone whose detached signature over a request counts as an approval.
#[derive(Clone, Debug)]
pub struct Approver {
    /// 1-based position among the plan's `[[policy.approver]]` tables.
    pub index: u8,
    /// The approver's name as written (the rules of a holder's name).
    pub name: String,
    /// The approver's certificates: a signature by a live, unrevoked signing key of any of them
    /// (at the request time) is this approver's approval.
    pub certs: Vec<PersonalCert>,
}

/// What one kind of operation needs: `k` distinct approvers, and its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// How many distinct approvers must sign a request, 1..=number of approvers.
    pub k: u8,
    /// `sign` only: the most files one request may name (none: the request format's own
    /// limit, [`request::MAX_FILES`]).
    pub max_files: Option<usize>,
    /// `certify` only: the most user IDs one request may certify (none: the request format's
    /// own limit, [`request::MAX_USER_IDS`]).
    pub max_user_ids: Option<usize>,
}

/// A validated signing policy: approvers, and a [`Rule`] for every [`OperationKind`].
#[derive(Clone, Debug)]
pub struct Policy {
    /// The approvers, in plan order (approver i is `approvers[i - 1]`).
    pub approvers: Vec<Approver>,
    rules: [Rule; 5],
}

impl Policy {
    /// The rule for one kind of operation.
    pub fn rule(&self, kind: OperationKind) -> &Rule {
        &self.rules[kind as usize]
    }

    /// Approver `index` (1-based, plan order).
    pub fn approver(&self, index: u8) -> Option<&Approver> {
        self.approvers.get(usize::from(index).checked_sub(1)?)
    }

    /// Validates a `[policy]` table; certificates are judged at the plan time `time`.
    pub(crate) fn from_raw(raw: RawPolicy, time: SystemTime) -> Result<Policy, PlanError> {
        let bad = |field: String, reason: String| PlanError::Policy { field, reason };
        if raw.approvers.is_empty() {
            return Err(bad(
                "policy.approver".into(),
                "the policy names no approver: add [[policy.approver]] tables, each with a name \
                 and certs = ['''...'''] (the approver's public certificate)"
                    .into(),
            ));
        }
        if raw.approvers.len() > MAX_APPROVERS {
            return Err(bad(
                "policy.approver".into(),
                format!(
                    "{} approvers; at most {MAX_APPROVERS} are possible: remove some",
                    raw.approvers.len()
                ),
            ));
        }
        let policy = StandardPolicy::new();
        // Approvers' certificates are checked among themselves only: one key may not count for
        // two approvers, but a holder or witness may also be an approver with the same key.
        let mut seen: HashMap<Fingerprint, String> = HashMap::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        let mut approvers = Vec::with_capacity(raw.approvers.len());
        for (i, a) in raw.approvers.iter().enumerate() {
            plan::check_name("approver", &a.name)?;
            if let Some(first) = by_name.insert(&a.name, i + 1) {
                return Err(bad(
                    format!("policy.approver[{}].name", i + 1),
                    format!(
                        "{:?} is already approver {first}: each approver appears once (give one \
                         approver several certificates in certs = [...])",
                        a.name
                    ),
                ));
            }
            if a.certs.is_empty() {
                return Err(bad(
                    format!("policy.approver[{}].certs", i + 1),
                    format!(
                        "approver {:?} has no certificate: add certs = ['''...'''] with the \
                         public certificate whose signing key will sign requests",
                        a.name
                    ),
                ));
            }
            let certs = plan::check_certs(
                ("approver", &a.name),
                &a.certs,
                &policy,
                time,
                CertUse::Sign,
                &mut seen,
            )?;
            approvers.push(Approver {
                index: u8::try_from(i + 1).expect("at most 255 approvers"),
                name: a.name.clone(),
                certs,
            });
        }

        let n = approvers.len();
        let missing = |kind: OperationKind| {
            bad(
                format!("policy.{kind}"),
                format!(
                    "missing: a policy gives a rule for every operation; add [policy.{kind}] \
                     with k = <how many approvers must sign> (1..={n})"
                ),
            )
        };
        let quorum = |kind: OperationKind, k: i64| -> Result<u8, PlanError> {
            let field = format!("policy.{kind}.k");
            if k < 1 {
                return Err(bad(
                    field,
                    format!("k = {k}: at least 1 approver must sign; set k to 1..={n}"),
                ));
            }
            if usize::try_from(k).unwrap_or(usize::MAX) > n {
                return Err(bad(
                    field,
                    format!(
                        "k = {k} is more than the {n} approver(s): no request could ever be \
                         approved; lower k or add [[policy.approver]] tables"
                    ),
                ));
            }
            Ok(u8::try_from(k).expect("at most 255 approvers"))
        };
        let limit = |field: &str, v: Option<i64>, max: usize, what: &str| match v {
            None => Ok(None),
            Some(v) => usize::try_from(v)
                .ok()
                .filter(|v| (1..=max).contains(v))
                .map(Some)
                .ok_or_else(|| {
                    bad(
                        field.to_string(),
                        format!(
                            "{v} is out of range 1..={max} (a request names at most {max} \
                             {what}); set it in that range or leave it out"
                        ),
                    )
                }),
        };

        let s = raw.sign.ok_or_else(|| missing(OperationKind::Sign))?;
        let sign = Rule {
            k: quorum(OperationKind::Sign, s.k)?,
            max_files: limit(
                "policy.sign.max_files",
                s.max_files,
                request::MAX_FILES,
                "files",
            )?,
            max_user_ids: None,
        };
        let c = raw.certify.ok_or_else(|| missing(OperationKind::Certify))?;
        let certify = Rule {
            k: quorum(OperationKind::Certify, c.k)?,
            max_files: None,
            max_user_ids: limit(
                "policy.certify.max_user_ids",
                c.max_user_ids,
                request::MAX_USER_IDS,
                "user IDs",
            )?,
        };
        let only_k = |kind: OperationKind, r: Option<RawRule>| -> Result<Rule, PlanError> {
            let r = r.ok_or_else(|| missing(kind))?;
            Ok(Rule {
                k: quorum(kind, r.k)?,
                max_files: None,
                max_user_ids: None,
            })
        };
        let prove_quorum = only_k(OperationKind::ProveQuorum, raw.prove_quorum)?;
        let reshare = only_k(OperationKind::Reshare, raw.reshare)?;
        let replace_card = only_k(OperationKind::ReplaceCard, raw.replace_card)?;
        Ok(Policy {
            approvers,
            rules: [sign, certify, prove_quorum, reshare, replace_card],
        })
    }

    /// Its lines of the plan's canonical encoding (docs/formats/plan.md).
    pub(crate) fn canonical(&self, out: &mut String) {
        out.push_str(&format!("policy_approvers={}\n", self.approvers.len()));
        for a in &self.approvers {
            out.push_str(&format!("approver={}\tname={}\n", a.index, a.name));
            for c in &a.certs {
                out.push_str(&format!(
                    "approver_cert={}\t{}\t{}\n",
                    a.index,
                    c.fingerprint.to_hex(),
                    hex::encode(&c.sha256)
                ));
            }
        }
        for kind in OperationKind::ALL {
            let r = self.rule(kind);
            out.push_str(&format!("policy_rule={kind}\tk={}", r.k));
            if let Some(m) = r.max_files {
                out.push_str(&format!("\tmax_files={m}"));
            }
            if let Some(m) = r.max_user_ids {
                out.push_str(&format!("\tmax_user_ids={m}"));
            }
            out.push('\n');
        }
    }
}

/// How a reshare's new plan changes the signing policy, for the screen and the transcript to
/// say plainly (a reshare without `[reshare.policy]` drops it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyChange {
    /// Neither plan has a policy.
    NoneBefore,
    /// The same policy (the same canonical lines).
    Kept,
    /// The old plan has none; the new one has one.
    Added,
    /// The old plan has one; the new one has none: the new shares' requests need no approvals.
    Dropped,
    /// Both have one, and they differ (approvers, quorums or limits).
    Changed,
}

impl PolicyChange {
    /// Compares the generation plan's policy with a reshare's new plan's.
    pub fn between(old: Option<&Policy>, new: Option<&Policy>) -> PolicyChange {
        let lines = |p: &Policy| {
            let mut s = String::new();
            p.canonical(&mut s);
            s
        };
        match (old, new) {
            (None, None) => PolicyChange::NoneBefore,
            (None, Some(_)) => PolicyChange::Added,
            (Some(_), None) => PolicyChange::Dropped,
            (Some(o), Some(n)) if lines(o) == lines(n) => PolicyChange::Kept,
            (Some(_), Some(_)) => PolicyChange::Changed,
        }
    }
}

impl std::fmt::Display for PolicyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyChange::NoneBefore => "no policy before or after the reshare",
            PolicyChange::Kept => "the new plan keeps the signing policy unchanged",
            PolicyChange::Added => "the new plan adds a signing policy",
            PolicyChange::Dropped => {
                "the new plan DROPS the signing policy: requests to the new shares will need no approvals"
            }
            PolicyChange::Changed => "the new plan CHANGES the signing policy",
        })
    }
}
