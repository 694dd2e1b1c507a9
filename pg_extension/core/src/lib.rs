//! pg_erasure's engine logic, kept free of PostgreSQL so it is unit-tested without a server:
//! subjects, the data map and its validation against catalog facts, and the erasure plan
//! (which rows of which table belong to a subject, in which order they go).

pub mod attrs;
pub mod batch;
pub mod catalog;
pub mod datamap;
pub mod decide;
pub mod error;
pub mod plan;
pub mod sql;
pub mod statements;
pub mod subject;

pub use error::CoreError;
