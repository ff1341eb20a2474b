//! The read-only commands: `harden check` ([`check`]), `contract` ([`contract`]), `sbom`
//! ([`sbom`]) and `files` ([`listing`]). Each reads its images through the one read path,
//! [`crate::source::read_images`], and hands what it read to the stage that judges or
//! describes it ([`crate::audit`], [`crate::contract`], [`crate::pkgdb::sbom`], the listing).
//! A later read-only command is one more file here.
//!
//! Owns: each read-only command's flow and its options. Must not: change or write an image,
//! or read layers itself (the source does).

pub mod check;
pub mod contract;
pub mod listing;
pub mod sbom;

pub use crate::source::read::ReadOptions;
