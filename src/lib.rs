//! harden: harden container images that already exist — no Dockerfile, no rebuild from source.
//!
//! The library holds every stage; the `harden` binary (src/main.rs, src/cli/) only parses
//! arguments, prints and maps errors to exit codes. The path of an image, one module per stage:
//!
//! [`reference`] names it → [`transport`] fetches it (every digest verified) → [`source`]
//! scans its layers ([`scan`]) into a [`fs::FinalFs`] → [`plan`] decides what the [`profile`]
//! changes and [`guard`] checks the result still starts → [`rewrite`] streams the layers that
//! change ([`layer`] has the codecs, the tar model and the splicer; [`cache`] remembers
//! rewrites) → [`config`] edits the config → [`transport::push`] stores blobs first and the
//! manifest last → [`sign`] signs and attests it ([`provenance`] is the SLSA predicate). [`audit`] judges an image (`check`) and the rebuild's
//! before/after; [`report`] holds the typed reports. [`pipeline`] orders the stages for one
//! image or an index; [`batch`] runs many.
//!
//! Owns: the crate's module tree and its few re-exports ([`Failure`]). Must not: hold a stage
//! of its own.

pub mod audit;
pub mod batch;
#[cfg(test)]
mod build_id;
pub mod cache;
pub mod config;
pub mod contract;
pub mod cpu;
pub mod digest;
pub mod error;
pub mod files;
pub mod fs;
pub mod guard;
pub mod image;
pub mod inspect;
pub mod layer;
pub mod learn;
pub mod memory;
pub mod pipeline;
pub mod pkgdb;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod provenance;
pub mod reference;
pub mod report;
pub mod rewrite;
pub mod scan;
pub mod secrets;
pub mod shared_cache;
pub mod sign;
pub mod source;
pub mod spool;
#[cfg(test)]
mod test_support;
pub mod transport;
pub mod verify_run;

pub use error::Failure;
