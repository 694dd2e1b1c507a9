//! The extension's error enum, and the one place that turns any error into an SQLSTATE.

use erasure_core::CoreError;
use erasure_rule_host::HostError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::SpiError;
use pgrx::PgSqlErrorCode;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExtError {
    #[error(transparent)]
    Core(#[from] CoreError),

    #[error("rule module in slot '{slot}' ({sha256}) failed: {source}")]
    Module {
        slot: String,
        sha256: String,
        #[source]
        source: HostError,
    },

    #[error("module rejected: {0}")]
    ModuleRejected(HostError),

    #[error("{0}")]
    InvalidArgument(String),

    #[error("{0}")]
    NotReady(String),

    #[error("{0}")]
    NotFound(String),

    /// A row still references a row an erasure or purge deleted (its own foreign-key check).
    #[error("{0}")]
    StillReferenced(String),

    #[error("internal SPI error: {0}")]
    Spi(#[from] SpiError),

    #[error("{0}")]
    Internal(String),
}

pub type ExtResult<T> = Result<T, ExtError>;

impl ExtError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            ExtError::Core(CoreError::MalformedSubject { .. }) => ERRCODE_INVALID_PARAMETER_VALUE,
            ExtError::Core(CoreError::InvalidDataMap(_)) => ERRCODE_INVALID_PARAMETER_VALUE,
            ExtError::Core(CoreError::NoRootForKind(_)) => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            ExtError::Module { source, .. } => module_sqlstate(source),
            ExtError::ModuleRejected(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            ExtError::InvalidArgument(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            ExtError::NotReady(_) => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            ExtError::NotFound(_) => ERRCODE_NO_DATA_FOUND,
            ExtError::StillReferenced(_) => ERRCODE_FOREIGN_KEY_VIOLATION,
            ExtError::Spi(_) | ExtError::Internal(_) => ERRCODE_INTERNAL_ERROR,
        }
    }

    /// Raises this error as a PostgreSQL ERROR. The only place errors become SQLSTATEs.
    pub fn raise(self) -> ! {
        let code = self.sqlstate();
        let hint = match &self {
            ExtError::Core(CoreError::MalformedSubject { .. }) => {
                Some("write the subject as kind:value, e.g. contact:1001 or phone:+4915112345678")
            }
            ExtError::StillReferenced(_) => Some(
                "the row was added while this ran, by a trigger of its own deletes, or by another organization, or is kept longer; nothing was deleted: remove or unlink it, then run this again",
            ),
            ExtError::NotReady(_) => Some(
                "load one: SELECT erasure.load_data_map(erasure.reference_data_map()) for the reference CRM, or your own map",
            ),
            _ => None,
        };
        let mut report = ErrorReport::new(code, self.to_string(), "pg_erasure");
        if let Some(h) = hint {
            report = report.set_hint(h);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR returns control to PostgreSQL")
    }
}

/// Budget and memory overruns are resource limits; everything else a module does wrong is a
/// fault of the module (an external routine).
fn module_sqlstate(e: &HostError) -> PgSqlErrorCode {
    use PgSqlErrorCode::*;
    match e {
        HostError::FuelExhausted | HostError::MemoryLimit | HostError::OutputTooLarge { .. } => {
            ERRCODE_PROGRAM_LIMIT_EXCEEDED
        }
        _ => ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
    }
}

/// Unwraps an API result, raising the error as an SQLSTATE.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T, E: Into<ExtError>> OrRaise<T> for Result<T, E> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.into().raise(),
        }
    }
}
