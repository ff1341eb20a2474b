//! `harden contract IMAGE`: read the image (an index: its first image) through the one read
//! path and derive its runtime contract ([`crate::contract`]).
//!
//! Owns: the command's flow. Must not: change anything, or hold the contract's rules.

use super::ReadOptions;
use crate::profile;
use crate::reference::ImageRef;
use crate::source;
use crate::Failure;
use anyhow::Result;

/// The runtime contract of `image` with the profiles' `[runtime]` rules (none without `-p`).
/// For an index, the first image's (platforms differ in binaries, not in users or setuid bits).
pub async fn contract(image: &ImageRef, profiles: &[String], o: &ReadOptions) -> Result<crate::contract::Contract> {
    let rules = if profiles.is_empty() {
        profile::RuntimeRules::default()
    } else {
        profile::load(profiles).map_err(|e| Failure::Usage(e.to_string()))?.runtime
    };
    let read = source::read::read_first(image, o).await?;
    let (c, _) = crate::contract::derive(&read.fs, &read.config, &rules);
    Ok(c)
}
