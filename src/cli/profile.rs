//! `harden profile list|show|validate`.
//!
//! Owns: these subcommands' flags and stdout. Must not: parse or resolve profiles itself
//! ([`harden::profile`] does).

use super::{outln, usage};
use anyhow::Result;
use clap::Subcommand;
use harden::profile;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ProfileCmd {
    /// The built-in profiles and path groups.
    List,
    /// The fully resolved profile (extends and groups expanded) as JSON.
    Show {
        /// Built-in names or files, merged in order.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Check a profile file; errors name file:line:column.
    Validate { file: String },
}

pub fn run(c: ProfileCmd) -> Result<ExitCode> {
    match c {
        ProfileCmd::List => {
            for (name, text) in profile::BUILTINS {
                let desc =
                    text.lines().find_map(|l| l.strip_prefix("description = ")).unwrap_or("\"\"").trim_matches('"');
                outln(&format!("{name:<12} {desc}"))?;
            }
            outln("")?;
            let groups: Vec<String> = profile::group_names().iter().map(|g| format!("@{g}")).collect();
            outln(&format!("groups: {}", groups.join(" ")))?;
        }
        ProfileCmd::Show { names } => {
            let p = profile::load(&names).map_err(usage)?;
            let mut v = serde_json::to_value(&p)?;
            v["digest"] = serde_json::json!(p.digest().as_str());
            outln(&serde_json::to_string_pretty(&v)?)?;
        }
        ProfileCmd::Validate { file } => {
            profile::validate_file(&file).map_err(usage)?;
            outln(&format!("{file}: ok"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
