//! The identity steps of a call: keying date of birth and a second identifier, the directory's
//! verdict, and the password reset that only a verified caller can reach.
//!
//! What a caller keys here is PHI: it lives in [`Digits`] (redacted, scrubbed on drop) and leaves
//! the engine only inside [`Action::Verify`]. Failure messages are generic: the caller never
//! learns which identifier was wrong.

use std::sync::Arc;

use jiff::Timestamp;

use super::{Action, Call, Digits, ResetOutcome, Step, VerifyOutcome};
use crate::config::{Identifier, Node, PasswordResetNode, VerifyNode};

use crate::ivr::prompts;

/// Where a verify node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ivr) struct Verifying {
    stage: Stage,
    entry: Digits,
    dob: Digits,
    /// Directory checks that failed in this node.
    failed_attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    DateOfBirth,
    Second(Identifier),
    Checking,
}

impl Verifying {
    pub(in crate::ivr) fn is_checking(&self) -> bool {
        self.stage == Stage::Checking
    }
}

/// Date of birth is MMDDYYYY.
const DOB_DIGITS: usize = 8;

/// How many keys each identifier takes at most; the entry ends by itself there.
fn max_digits(identifier: Identifier) -> usize {
    match identifier {
        Identifier::Dob => DOB_DIGITS,
        Identifier::Zip => 5,
        Identifier::Ssn4 => 4,
        Identifier::Mrn => 12,
    }
}

/// Whether an entry has a possible length for its identifier.
fn well_formed(identifier: Identifier, entry: &Digits) -> bool {
    let digits_only = entry.expose().bytes().all(|byte| byte.is_ascii_digit());
    let length = entry.len();
    digits_only
        && match identifier {
            Identifier::Dob => length == DOB_DIGITS,
            Identifier::Zip => length == 5,
            Identifier::Ssn4 => length == 4,
            Identifier::Mrn => (4..=12).contains(&length),
        }
}

fn prompt_for(identifier: Identifier) -> &'static str {
    match identifier {
        Identifier::Dob => prompts::ENTER_DOB,
        Identifier::Mrn => prompts::ENTER_MRN,
        Identifier::Zip => prompts::ENTER_ZIP,
        Identifier::Ssn4 => prompts::ENTER_SSN4,
    }
}

/// The identifier asked after the date of birth (check guarantees exactly one).
fn second_identifier(node: &VerifyNode) -> Identifier {
    node.identifiers
        .iter()
        .copied()
        .find(|identifier| *identifier != Identifier::Dob)
        .unwrap_or(Identifier::Mrn)
}

impl Call {
    pub(super) fn start_verify(&mut self, _node: &VerifyNode, out: &mut Vec<Action>) {
        self.step = Step::Verify(Verifying {
            stage: Stage::DateOfBirth,
            entry: Digits::default(),
            dob: Digits::default(),
            failed_attempts: 0,
        });
        // Keys typed before this point were menu choices, not identifiers.
        self.type_ahead.clear();
        self.play(vec![Arc::from(prompts::ENTER_DOB)], out);
    }

    fn verify_node(&self) -> Option<VerifyNode> {
        match self.flow.nodes.get(&self.node) {
            Some(Node::Verify(node)) => Some(node.clone()),
            _ => None,
        }
    }

    fn current_identifier(&self) -> Option<Identifier> {
        match &self.step {
            Step::Verify(Verifying {
                stage: Stage::DateOfBirth,
                ..
            }) => Some(Identifier::Dob),
            Step::Verify(Verifying {
                stage: Stage::Second(identifier),
                ..
            }) => Some(*identifier),
            _ => None,
        }
    }

    pub(super) fn verify_key(&mut self, key: char, now: Timestamp, out: &mut Vec<Action>) {
        let Some(identifier) = self.current_identifier() else {
            return;
        };
        // Callers told to "press pound" do so even after an entry that ended by itself at its
        // full length; that `#` belongs to the entry before, not to this one.
        if key == '#' && matches!(&self.step, Step::Verify(verifying) if verifying.entry.is_empty())
        {
            return;
        }
        self.interrupt(out);
        let repeat_key = self.flow.repeat_key;
        let Step::Verify(verifying) = &mut self.step else {
            return;
        };
        if key == '#' {
            return self.finish_entry(now, out);
        }
        if key == repeat_key {
            verifying.entry.clear();
            self.play(vec![Arc::from(prompt_for(identifier))], out);
            return;
        }
        verifying.entry.push(key);
        if verifying.entry.len() >= max_digits(identifier) {
            self.swallow_pound = true;
            return self.finish_entry(now, out);
        }
        let after = self.flow.inter_digit_timeout;
        self.arm_timer(after, out);
    }

    pub(super) fn verify_prompt_done(&mut self, out: &mut Vec<Action>) {
        let Step::Verify(verifying) = &self.step else {
            return;
        };
        if verifying.stage == Stage::Checking {
            return;
        }
        let after = if verifying.entry.is_empty() {
            self.flow.first_digit_timeout
        } else {
            self.flow.inter_digit_timeout
        };
        self.arm_timer(after, out);
    }

    pub(super) fn verify_timeout(
        &mut self,
        node: &VerifyNode,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Step::Verify(verifying) = &self.step else {
            return;
        };
        if verifying.entry.is_empty() {
            let identifier = self.current_identifier().unwrap_or(Identifier::Dob);
            let on_failure = node.on_failure.clone();
            self.entry_failed(prompts::NO_INPUT, identifier, &on_failure, now, out);
        } else {
            self.finish_entry(now, out);
        }
    }

    /// A try that was not a directory check (silence, a malformed entry): re-ask, or after
    /// `max_retries` send the caller to a person.
    fn entry_failed(
        &mut self,
        apology: &'static str,
        identifier: Identifier,
        on_failure: &str,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.flow.max_retries {
            return self.goto(on_failure, now, out);
        }
        if let Step::Verify(verifying) = &mut self.step {
            verifying.entry.clear();
        }
        self.play(
            vec![Arc::from(apology), Arc::from(prompt_for(identifier))],
            out,
        );
    }

    fn finish_entry(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Some(node) = self.verify_node() else {
            return;
        };
        let Some(identifier) = self.current_identifier() else {
            return;
        };
        let Step::Verify(verifying) = &mut self.step else {
            return;
        };
        if !well_formed(identifier, &verifying.entry) {
            return self.entry_failed(
                prompts::INVALID_ENTRY,
                identifier,
                &node.on_failure,
                now,
                out,
            );
        }
        let entry = std::mem::take(&mut verifying.entry);
        // A good entry earns the next one a fresh set of tries.
        self.failures = 0;
        match verifying.stage {
            Stage::DateOfBirth => {
                verifying.dob = entry;
                let second = second_identifier(&node);
                verifying.stage = Stage::Second(second);
                self.play(vec![Arc::from(prompt_for(second))], out);
            }
            Stage::Second(second) => {
                verifying.stage = Stage::Checking;
                let attempt = verifying.failed_attempts.saturating_add(1);
                let dob = std::mem::take(&mut verifying.dob);
                out.push(Action::Verify {
                    node: self.node.clone(),
                    attempt,
                    dob,
                    identifier: second,
                    value: entry,
                });
            }
            Stage::Checking => {}
        }
    }

    pub(super) fn on_verification(
        &mut self,
        outcome: VerifyOutcome,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Some(node) = self.verify_node() else {
            return;
        };
        let Step::Verify(verifying) = &mut self.step else {
            return;
        };
        match outcome {
            VerifyOutcome::Verified { patient } => {
                self.patient = Some(patient);
                self.verification_failed = false;
                self.announce_then(&[prompts::VERIFIED], &node.on_success, out);
            }
            VerifyOutcome::NotVerified => {
                verifying.failed_attempts = verifying.failed_attempts.saturating_add(1);
                if verifying.failed_attempts >= self.flow.verify_max_attempts {
                    self.verification_failed = true;
                    return self.announce_then(&[prompts::VERIFY_FAILED], &node.on_failure, out);
                }
                verifying.stage = Stage::DateOfBirth;
                self.play(
                    vec![
                        Arc::from(prompts::VERIFY_FAILED),
                        Arc::from(prompts::ENTER_DOB),
                    ],
                    out,
                );
            }
            VerifyOutcome::Malformed => {
                verifying.stage = Stage::DateOfBirth;
                self.entry_failed(
                    prompts::INVALID_ENTRY,
                    Identifier::Dob,
                    &node.on_failure,
                    now,
                    out,
                );
            }
            VerifyOutcome::LockedOut => {
                self.verification_failed = true;
                self.announce_then(&[prompts::VERIFY_FAILED], &node.on_failure, out);
            }
            VerifyOutcome::Unavailable => {
                self.announce_then(&[prompts::TECHNICAL_DIFFICULTY], &node.on_failure, out);
            }
        }
    }

    /// Play `prompt_ids`, then go to `next`.
    fn announce_then(&mut self, prompt_ids: &[&str], next: &str, out: &mut Vec<Action>) {
        self.step = Step::Announce {
            next: Arc::from(next),
        };
        self.play(prompt_ids.iter().map(|id| Arc::from(*id)).collect(), out);
    }

    pub(super) fn start_reset(
        &mut self,
        node: &PasswordResetNode,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Some(patient) = self.patient.clone() else {
            // `careline check` makes a reset reachable only through a verify node's success.
            tracing::error!(node = %self.node, "password reset reached without verification");
            let fallback = node
                .on_failure
                .clone()
                .unwrap_or_else(|| self.flow.operator.to_string());
            return self.goto(&fallback, now, out);
        };
        self.step = Step::Resetting;
        out.push(Action::RequestReset {
            node: self.node.clone(),
            method: node.method,
            patient,
        });
    }

    pub(super) fn on_reset(
        &mut self,
        outcome: ResetOutcome,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Some(Node::PasswordReset(node)) = self.flow.nodes.get(&self.node).cloned() else {
            return;
        };
        match outcome {
            ResetOutcome::LinkSent => {
                self.announce_then(&[prompts::RESET_LINK_SENT], &node.next, out)
            }
            ResetOutcome::CodeIssued(code) => {
                self.step = Step::ReadingCode {
                    code,
                    next: Arc::from(node.next.as_str()),
                };
                self.type_ahead.clear();
                self.read_code(out);
            }
            ResetOutcome::Failed => {
                let fallback = node
                    .on_failure
                    .clone()
                    .unwrap_or_else(|| self.flow.operator.to_string());
                self.announce_then(&[prompts::TECHNICAL_DIFFICULTY], &fallback, out);
                let _ = now;
            }
        }
    }

    /// The code, digit by digit, between its introduction and how to hear it again.
    fn read_code(&mut self, out: &mut Vec<Action>) {
        let Step::ReadingCode { code, .. } = &self.step else {
            return;
        };
        let mut list: Vec<Arc<str>> = vec![Arc::from(prompts::RESET_CODE_INTRO)];
        list.extend(
            code.expose()
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|digit| Arc::from(prompts::DIGITS[usize::from(digit - b'0')])),
        );
        list.push(Arc::from(prompts::RESET_CODE_REPEAT));
        self.play(list, out);
    }

    /// While a code is read out only the repeat key acts: a stray key must not cut off a code
    /// the caller is writing down. The call goes on once the code has played and a moment passed.
    pub(super) fn code_key(&mut self, key: char, out: &mut Vec<Action>) {
        if key == self.flow.repeat_key {
            self.interrupt(out);
            self.read_code(out);
        }
    }
}
