//! The erasure engine inside the backend: SPI, caches, the rule host, requests.

pub mod context;
pub mod datamap;
pub mod delete_checks;
pub mod erase;
pub mod failures;
pub mod jsonb_datum;
pub mod modules;
pub mod purge;
pub mod request;
pub mod rules;
pub mod shadow;
pub mod statements;
pub mod subxact;
