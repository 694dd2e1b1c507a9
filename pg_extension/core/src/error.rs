//! The errors of the engine layer. The extension maps each to an SQLSTATE in one place.

use thiserror::Error;

use crate::subject::ACCEPTED_FORMS;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CoreError {
    /// The value is never part of the message: it may be personal data.
    #[error("malformed subject ({why}); accepted forms: {ACCEPTED_FORMS}")]
    MalformedSubject { why: &'static str },

    #[error("invalid data map: {0}")]
    InvalidDataMap(String),

    #[error("the data map has no root table for subjects of kind '{0}'")]
    NoRootForKind(&'static str),
}

pub(crate) fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidDataMap(msg.into())
}
