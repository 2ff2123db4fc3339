//! What a key means on each page of the ceremony: pure functions from a key to an intent, one
//! per page, so the key bindings are in one place and tested without a console.

use crate::keys::Key;

/// What the operator (or a witness) asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// The witnesses confirm what is on screen (Y).
    Confirm,
    /// Abort the ceremony (A; asks first).
    Abort,
    /// Next or previous page of a multi-page step.
    NextPage,
    PreviousPage,
    /// Read the devices again (R on the attestation).
    ReadAgain,
    /// Try again (R after a refusal).
    Retry,
    /// Witness `n` (0-based) confirms (their number key).
    Witness(usize),
    /// Go on (Enter after the entropy report).
    GoOn,
    /// Write the outputs (W).
    Write,
    /// Do not abort after all (N or Esc on the abort question).
    Cancel,
    /// Power off (P).
    PowerOff,
    /// Sign with the card in the reader (S, on the witness signatures page).
    Sign,
    /// Record a deviation (D, when the boot is not PASS against the plan).
    Deviate,
    /// Not a key this page uses (it may still be a device's, e.g. a rehearsal's card keys).
    Other,
}

fn yes_or_abort(k: Key) -> Option<Intent> {
    match k {
        Key::Char('y' | 'Y') => Some(Intent::Confirm),
        Key::Char('a' | 'A') => Some(Intent::Abort),
        _ => None,
    }
}

/// The attestation's pages: turn pages, read again, confirm, abort.
pub fn attestation(k: Key) -> Intent {
    yes_or_abort(k).unwrap_or(match k {
        Key::Tab | Key::Right | Key::PageDown | Key::Char(' ') => Intent::NextPage,
        Key::Left | Key::PageUp => Intent::PreviousPage,
        Key::Char('r' | 'R') => Intent::ReadAgain,
        _ => Intent::Other,
    })
}

/// The plan: each witness presses their number (1 to 9), then Y.
pub fn plan(k: Key) -> Intent {
    yes_or_abort(k).unwrap_or(match k {
        Key::Char(c @ '1'..='9') => Intent::Witness(usize::from(c as u8 - b'1')),
        _ => Intent::Other,
    })
}

/// A page the witnesses confirm with Y (the root key, the final words) or abort.
pub fn confirm(k: Key) -> Intent {
    yes_or_abort(k).unwrap_or(Intent::Other)
}

/// The final words: Y once every witness has written them down. The ceremony's outputs are
/// written by then, so there is nothing left to abort.
pub fn final_words(k: Key) -> Intent {
    match k {
        Key::Char('y' | 'Y') => Intent::Confirm,
        _ => Intent::Other,
    }
}

/// The boot judged against the plan: Y goes on when all is PASS, D records a deviation when
/// not, A aborts.
pub fn verdicts(k: Key) -> Intent {
    yes_or_abort(k).unwrap_or(match k {
        Key::Char('d' | 'D') => Intent::Deviate,
        _ => Intent::Other,
    })
}

/// The witnesses' signatures: S signs with the card in the reader, Y goes on, A aborts.
pub fn witness_signatures(k: Key) -> Intent {
    yes_or_abort(k).unwrap_or(match k {
        Key::Char('s' | 'S') => Intent::Sign,
        _ => Intent::Other,
    })
}

/// A page that waits for a device and can only be aborted (plan stick, card).
pub fn waiting(k: Key) -> Intent {
    match k {
        Key::Char('a' | 'A') => Intent::Abort,
        _ => Intent::Other,
    }
}

/// The entropy report that passed: Enter goes on.
pub fn entropy_passed(k: Key) -> Intent {
    match k {
        Key::Enter => Intent::GoOn,
        _ => waiting(k),
    }
}

/// A refusal that can be tried again (entropy): R retries.
pub fn refused(k: Key) -> Intent {
    match k {
        Key::Char('r' | 'R') => Intent::Retry,
        _ => waiting(k),
    }
}

/// The write step: W writes.
pub fn write(k: Key) -> Intent {
    match k {
        Key::Char('w' | 'W') => Intent::Write,
        _ => waiting(k),
    }
}

/// "Abort the ceremony?": Y aborts, N or Esc goes back.
pub fn abort_question(k: Key) -> Intent {
    match k {
        Key::Char('y' | 'Y') => Intent::Abort,
        Key::Char('n' | 'N') | Key::Esc => Intent::Cancel,
        _ => Intent::Other,
    }
}

/// The last page: P powers off.
pub fn power_off(k: Key) -> Intent {
    match k {
        Key::Char('p' | 'P') => Intent::PowerOff,
        _ => Intent::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_page_s_keys() {
        assert_eq!(attestation(Key::Tab), Intent::NextPage);
        assert_eq!(attestation(Key::PageUp), Intent::PreviousPage);
        assert_eq!(attestation(Key::Char('R')), Intent::ReadAgain);
        assert_eq!(attestation(Key::Char('y')), Intent::Confirm);
        assert_eq!(attestation(Key::Char('a')), Intent::Abort);
        assert_eq!(plan(Key::Char('1')), Intent::Witness(0));
        assert_eq!(plan(Key::Char('9')), Intent::Witness(8));
        assert_eq!(plan(Key::Char('0')), Intent::Other);
        assert_eq!(plan(Key::Char('Y')), Intent::Confirm);
        assert_eq!(confirm(Key::Enter), Intent::Other);
        assert_eq!(final_words(Key::Char('y')), Intent::Confirm);
        assert_eq!(final_words(Key::Char('a')), Intent::Other);
        assert_eq!(waiting(Key::Char('y')), Intent::Other, "nothing to confirm");
        assert_eq!(entropy_passed(Key::Enter), Intent::GoOn);
        assert_eq!(refused(Key::Char('r')), Intent::Retry);
        assert_eq!(write(Key::Char('W')), Intent::Write);
        assert_eq!(write(Key::Char('a')), Intent::Abort);
        assert_eq!(abort_question(Key::Char('y')), Intent::Abort);
        assert_eq!(abort_question(Key::Esc), Intent::Cancel);
        assert_eq!(abort_question(Key::Char('a')), Intent::Other);
        assert_eq!(power_off(Key::Char('p')), Intent::PowerOff);
    }

    #[test]
    fn only_the_abort_question_and_a_can_abort() {
        let keys = [
            Key::Char('q'),
            Key::Ctrl('c'),
            Key::Esc,
            Key::Enter,
            Key::Char('n'),
            Key::F(1),
        ];
        for k in keys {
            for f in [
                attestation,
                plan,
                confirm,
                waiting,
                entropy_passed,
                refused,
                write,
            ] {
                assert_ne!(f(k), Intent::Abort, "{k:?}");
            }
        }
    }
}
