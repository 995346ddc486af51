//! The one place where an outcome becomes an exit code: errors by their [`Fault`],
//! finished runs by what they found.

use super::render::OutputError;
use crate::failover::restore::RestoreReport;
use crate::failover::status::StatusReport;
use crate::fault::{Classify, Fault};
use crate::federation::audit::AuditReport;
use crate::integrity::verify::VerifyReport;
use crate::records::RunStatus;
use crate::sync::SyncReport;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CHECK_FAILED: u8 = 3;

pub fn for_fault(fault: Fault) -> u8 {
    match fault {
        Fault::Usage | Fault::Config => EXIT_USAGE,
        Fault::Failed => EXIT_FAILED,
        Fault::Integrity => EXIT_CHECK_FAILED,
    }
}

/// One code for two outcomes of the same command (its verdict, and whether its output
/// was written): the contract's "the highest wins".
pub fn most_serious(a: u8, b: u8) -> u8 {
    a.max(b)
}

/// A command's exit code once its output is accounted for: output that could not be
/// written is a failure (1) unless the command already ends with a higher code.
pub fn after_output(code: u8, output: &Result<(), OutputError>) -> u8 {
    match output {
        Ok(()) => code,
        Err(e) => most_serious(code, for_fault(e.fault())),
    }
}

/// What a finished command found, as the contract's exit code (3 over 1 over 0).
pub trait Verdict {
    fn exit_code(&self) -> u8;
}

impl Verdict for SyncReport {
    fn exit_code(&self) -> u8 {
        if self.is_success() {
            EXIT_OK
        } else {
            EXIT_FAILED
        }
    }
}

impl Verdict for RestoreReport {
    fn exit_code(&self) -> u8 {
        if !self.corrupted.is_empty() {
            EXIT_CHECK_FAILED
        } else if self.status() == RunStatus::Succeeded {
            EXIT_OK
        } else {
            EXIT_FAILED
        }
    }
}

impl Verdict for VerifyReport {
    fn exit_code(&self) -> u8 {
        if self.ok {
            EXIT_OK
        } else {
            EXIT_CHECK_FAILED
        }
    }
}

impl Verdict for StatusReport {
    fn exit_code(&self) -> u8 {
        if self.ok {
            EXIT_OK
        } else {
            EXIT_CHECK_FAILED
        }
    }
}

impl Verdict for AuditReport {
    fn exit_code(&self) -> u8 {
        if self.has_high() {
            EXIT_CHECK_FAILED
        } else if !self.complete() {
            // A file that could not be read at all: the audit finished partially.
            EXIT_FAILED
        } else {
            EXIT_OK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_map_to_the_contract_codes() {
        assert_eq!(for_fault(Fault::Usage), 2);
        assert_eq!(for_fault(Fault::Config), 2);
        assert_eq!(for_fault(Fault::Failed), 1);
        assert_eq!(for_fault(Fault::Integrity), 3);
    }

    #[test]
    fn unwritten_output_fails_a_command_unless_it_already_ended_worse() {
        let unwritten =
            || -> Result<(), OutputError> { Err(OutputError::Write(std::io::Error::from_raw_os_error(28))) };
        assert_eq!(after_output(EXIT_OK, &unwritten()), EXIT_FAILED);
        assert_eq!(after_output(EXIT_FAILED, &unwritten()), EXIT_FAILED);
        assert_eq!(after_output(EXIT_USAGE, &unwritten()), EXIT_USAGE);
        assert_eq!(after_output(EXIT_CHECK_FAILED, &unwritten()), EXIT_CHECK_FAILED);
        for code in [EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CHECK_FAILED] {
            assert_eq!(after_output(code, &Ok(())), code);
        }
    }
}
