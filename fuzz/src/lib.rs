//! harden's parsing and rewriting modules, compiled from ../src for the fuzz targets (see
//! Cargo.toml for why #[path] rather than a library split).
#![allow(dead_code, unused_imports)]

#[path = "../../src/config.rs"]
pub mod config;
#[path = "../../src/digest.rs"]
pub mod digest;
#[path = "../../src/fs.rs"]
pub mod fs;
#[path = "../../src/image.rs"]
pub mod image;
#[path = "../../src/layer/mod.rs"]
pub mod layer;
#[path = "../../src/plan.rs"]
pub mod plan;
#[path = "../../src/profile.rs"]
pub mod profile;
#[path = "../../src/rewrite.rs"]
pub mod rewrite;
#[path = "../../src/scan.rs"]
pub mod scan;

#[path = "../../src/audit/secrets.rs"]
pub mod audit_secrets;
/// scan.rs asks for `crate::audit::secrets`; the rest of the audit is not needed.
pub mod audit {
    pub use super::audit_secrets as secrets;
}

/// As in src/main.rs (config.rs returns these).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Policy(String),
}
