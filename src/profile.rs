//! Profiles: the TOML rules that say what to change, loaded from built-ins (profiles/, embedded
//! in the binary) or files, with `extends`, named path groups and validation that names
//! `file:line:column`.
//!
//! Owns: the schema, merging, glob compilation. Must not: look at images.

use crate::digest::Digest;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Built-in profiles and the groups file, embedded so the binary works anywhere.
pub const BUILTINS: &[(&str, &str)] = &[
    ("baseline", include_str!("../profiles/baseline.toml")),
    ("debian", include_str!("../profiles/debian.toml")),
    ("alpine", include_str!("../profiles/alpine.toml")),
    ("strict", include_str!("../profiles/strict.toml")),
    ("passthrough", include_str!("../profiles/passthrough.toml")),
];
const GROUPS: &str = include_str!("../profiles/groups.toml");
const MAX_EXTENDS_DEPTH: usize = 16;
const MAX_PATTERN_LEN: usize = 4096;
/// Largest profile file read (built-ins are a few KiB): `extends = "/dev/zero"` must not hang.
const MAX_PROFILE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ProfileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// 1-based line and column of a byte offset (TOML error spans), for `file:line:column`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(src.len());
    while !src.is_char_boundary(end) {
        end -= 1;
    }
    let before = &src[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
    (line, column)
}

struct Source<'a> {
    name: String,
    text: &'a str,
}

impl Source<'_> {
    fn err(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> ProfileError {
        let (line, column) = line_col(self.text, span.start);
        ProfileError { file: self.name.clone(), line, column, message: message.into() }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Option<String>,
    description: Option<String>,
    extends: Option<Spanned<String>>,
    files: Option<RawFiles>,
    config: Option<RawConfig>,
    runtime: Option<RawRuntime>,
    verify: Option<RawVerify>,
    packages: Option<RawPackages>,
}

/// `[verify]`: how `rebuild --verify-run` probes the source and the result (crate::verify_run).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    /// `http://localhost:PORT/PATH`: a GET answered 2xx or 3xx.
    http: Option<Spanned<String>>,
    /// TCP ports that must accept a connection.
    tcp: Option<Vec<u16>>,
    /// A command run in the container (as its process) that must exit 0.
    command: Option<Vec<String>>,
    /// How long the probe may take (the main process must stay up that long when nothing else
    /// is probed).
    seconds: Option<Spanned<u64>>,
}

/// `[runtime]`: what the runtime contract (crate::contract) adds to what it derives.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    /// Absolute directories the app writes (tmpfs / emptyDir in the contract).
    writable: Option<Vec<Spanned<String>>>,
    /// Linux capabilities the app needs, e.g. `NET_RAW` (`CAP_` prefix optional).
    capabilities: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPackages {
    remove: Option<Vec<Spanned<String>>>,
    keep_database: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    remove: Option<Vec<Spanned<String>>>,
    keep: Option<Vec<Spanned<String>>>,
    strip_setuid: Option<bool>,
    setuid_allow: Option<Vec<Spanned<String>>>,
    strip_capabilities: Option<bool>,
    fix_world_writable: Option<bool>,
    /// Which copies go with what this file's own `remove` globs and `[packages] remove` names
    /// remove (groups say it for themselves in groups.toml).
    follow_copies: Option<FollowCopies>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    user: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    home: Option<String>,
    healthcheck: Option<RawHealth>,
    labels: Option<BTreeMap<String, String>>,
    remove_labels: Option<Vec<String>>,
    annotations: Option<BTreeMap<String, String>>,
    remove_annotations: Option<Vec<String>>,
    env_secrets: Option<Spanned<String>>,
    env: Option<BTreeMap<String, String>>,
    exposed_ports: Option<Vec<String>>,
    volumes: Option<Vec<String>>,
    workdir: Option<String>,
    stop_signal: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    /// Exec form: `["CMD", "/app/check"]` or just the argv.
    test: Option<Vec<String>>,
    /// Shell form (`CMD-SHELL`): needs /bin/sh in the image.
    shell: Option<String>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    start_period: Option<Spanned<String>>,
    retries: Option<u32>,
    remove: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rule {
    /// The glob as written (after group expansion), e.g. `/usr/bin/sh`.
    pub pattern: String,
    /// Where it came from, e.g. `@shells (strict)`.
    pub origin: String,
    /// Which other names of a file this rule removes go with it (absent: none, so profiles
    /// whose rules follow nothing keep their digests).
    #[serde(skip_serializing_if = "FollowCopies::is_none")]
    pub follow_copies: FollowCopies,
}

impl Rule {
    /// A rule that takes no copy with it (a `keep`, a `setuid_allow`, a cache or a document).
    pub fn new(pattern: impl Into<String>, origin: impl Into<String>) -> Rule {
        Rule { pattern: pattern.into(), origin: origin.into(), follow_copies: FollowCopies::None }
    }
}

/// Whether the copies of a removed file go with it: the other names of a hardlinked file,
/// byte-identical files and busybox under any name. A program or a secret under another name
/// is still that program or secret; a copy of a cache file, a document or a log is just a file
/// that happens to hold the same bytes (debootstrap's `.deb` cache can hold an installed binary
/// byte for byte), so those removals take nothing with them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FollowCopies {
    /// Nothing else goes (caches, documents, logs; the default).
    #[default]
    None,
    /// Programs: a removed *executable*'s hardlinked names, byte-identical executables, and
    /// busybox under any name once a busybox goes. A removed non-executable (a package's
    /// copyright file, a config) takes nothing with it.
    Executables,
    /// Secrets: any removed regular file's hardlinked names and byte-identical files, whatever
    /// their mode (a copy of a private key is the key).
    Files,
}

impl FollowCopies {
    pub fn is_none(&self) -> bool {
        *self == FollowCopies::None
    }
    /// Whether a removed file of this mode takes its copies with it.
    pub fn follows(self, mode: u32) -> bool {
        match self {
            FollowCopies::None => false,
            FollowCopies::Executables => mode & 0o111 != 0,
            FollowCopies::Files => true,
        }
    }
    /// `none`, `executables`, `files`: as written in TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            FollowCopies::None => "none",
            FollowCopies::Executables => "executables",
            FollowCopies::Files => "files",
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EnvSecrets {
    Remove,
    Fail,
    Keep,
}

#[derive(Clone, Debug, Serialize)]
pub enum UserRule {
    Keep,
    Set { name: String, uid: u32, gid: u32, home: String },
}

#[derive(Clone, Debug, Serialize)]
pub enum HealthRule {
    Remove,
    /// Docker's config form: Test, Interval, Timeout, StartPeriod (ns), Retries.
    Set(serde_json::Value),
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigRules {
    pub user: UserRule,
    pub healthcheck: Option<HealthRule>,
    pub labels: BTreeMap<String, String>,
    pub remove_labels: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    pub remove_annotations: Vec<String>,
    pub env_secrets: EnvSecrets,
    pub env: BTreeMap<String, String>,
    pub exposed_ports: Option<Vec<String>>,
    pub volumes: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub stop_signal: Option<String>,
}

/// `[runtime]`, merged: later profiles add to earlier ones.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RuntimeRules {
    /// Normalised absolute paths (no trailing `/`), in order, without duplicates.
    pub writable: Vec<String>,
    /// Upper-case names without `CAP_`, e.g. `NET_RAW`.
    pub capabilities: Vec<String>,
}

impl RuntimeRules {
    pub fn is_empty(&self) -> bool {
        self.writable.is_empty() && self.capabilities.is_empty()
    }
}

/// `[verify]`, merged: a later profile's fields replace an earlier one's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyRules {
    /// (port, path) of an HTTP GET that must answer 2xx or 3xx.
    pub http: Option<(u16, String)>,
    pub tcp: Vec<u16>,
    pub command: Vec<String>,
    pub seconds: Option<u64>,
}

impl VerifyRules {
    pub fn is_empty(&self) -> bool {
        *self == VerifyRules::default()
    }
}

/// `http://HOST:PORT/PATH` (HOST ignored: the probe connects to the container's loopback) →
/// (PORT, `/PATH`); PORT defaults to 80.
pub fn parse_http_probe(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let port = match hostport.rsplit_once(':') {
        Some((_, p)) => p.parse().ok().filter(|p| *p > 0)?,
        None => 80,
    };
    (!path.contains(char::is_whitespace)).then(|| (port, path.to_string()))
}

/// The capabilities of Linux 6.x, without `CAP_`.
pub const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// A fully resolved profile: every `extends` and `--profile` merged, groups expanded.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub names: Vec<String>,
    pub remove: Vec<Rule>,
    pub keep: Vec<Rule>,
    pub strip_setuid: bool,
    pub setuid_allow: Vec<Rule>,
    pub strip_capabilities: bool,
    pub fix_world_writable: bool,
    pub config: ConfigRules,
    /// Absent from the digest when empty, so profiles without `[runtime]` keep their digests.
    #[serde(skip_serializing_if = "RuntimeRules::is_empty")]
    pub runtime: RuntimeRules,
    /// `[verify]` (absent from the digest when empty).
    #[serde(skip_serializing_if = "VerifyRules::is_empty")]
    pub verify: VerifyRules,
    /// `[packages]` (left out of the digest when empty, so older profiles keep theirs).
    #[serde(skip_serializing_if = "PackageRules::is_empty")]
    pub packages: PackageRules,
    /// Every profile file read, `extends` included, in the order read (for provenance; not
    /// part of the digest, which is the resolved rules').
    #[serde(skip)]
    pub files: Vec<ProfileFile>,
}

/// A profile file as read: `harden:profiles/NAME.toml` for a built-in, else `file:PATH`, and
/// the digest of its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileFile {
    pub uri: String,
    pub digest: Digest,
}

/// `[packages]`: packages removed as a unit (name globs, also from groups' `packages`), and
/// whether the package databases are left as they were.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PackageRules {
    /// Name globs, with where they came from (`@shells (strict)`).
    pub remove: Vec<Rule>,
    pub keep_database: bool,
}

impl PackageRules {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && !self.keep_database
    }
}

impl Profile {
    fn empty() -> Profile {
        Profile {
            names: Vec::new(),
            remove: Vec::new(),
            keep: Vec::new(),
            strip_setuid: false,
            setuid_allow: Vec::new(),
            strip_capabilities: false,
            fix_world_writable: false,
            packages: PackageRules::default(),
            files: Vec::new(),
            config: ConfigRules {
                user: UserRule::Keep,
                healthcheck: None,
                labels: BTreeMap::new(),
                remove_labels: Vec::new(),
                annotations: BTreeMap::new(),
                remove_annotations: Vec::new(),
                env_secrets: EnvSecrets::Keep,
                env: BTreeMap::new(),
                exposed_ports: None,
                volumes: None,
                workdir: None,
                stop_signal: None,
            },
            runtime: RuntimeRules::default(),
            verify: VerifyRules::default(),
        }
    }

    /// Whether any file rule applies (a profile without one only edits the config: mirroring).
    pub fn changes_files(&self) -> bool {
        !self.remove.is_empty()
            || !self.packages.remove.is_empty()
            || self.strip_setuid
            || self.strip_capabilities
            || self.fix_world_writable
    }

    /// The name recorded in labels: the `--profile` names joined with `+`.
    pub fn name(&self) -> String {
        self.names.join("+")
    }

    /// Digest of the resolved rules: with harden's version and the compressor, it names a
    /// layer rewrite (and makes output digests a pure function of their inputs).
    pub fn digest(&self) -> Digest {
        Digest::of(&serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Load and merge `specs` in order (built-in names or paths). No specs means `baseline`.
pub fn load(specs: &[String]) -> Result<Profile, ProfileError> {
    let groups = parse_groups()?;
    let mut profile = Profile::empty();
    let default = vec!["baseline".to_string()];
    let specs = if specs.is_empty() { &default } else { specs };
    for spec in specs {
        let (name, text, dir) = read_spec(spec, None)?;
        // Recorded in labels: the profile's own `name`, else the built-in name or file stem.
        let label = apply(&mut profile, Source { name: name.clone(), text: &text }, dir.as_deref(), &groups, 0)?;
        profile.names.push(label);
    }
    check_sets(&profile, &specs[specs.len() - 1])?;
    Ok(profile)
}

/// Load one profile from text (`name` is what errors call it); `extends` resolves against the
/// working directory. For the fuzzer (fuzz/fuzz_targets/profile_parse.rs) and tests.
#[allow(dead_code)]
pub fn load_str(name: &str, text: &str) -> Result<Profile, ProfileError> {
    let groups = parse_groups()?;
    let mut profile = Profile::empty();
    let label = apply(&mut profile, Source { name: name.to_string(), text }, None, &groups, 0)?;
    profile.names.push(label);
    check_sets(&profile, name)?;
    Ok(profile)
}

/// Most characters of globs one set (`remove`, `keep`, …) may hold, all rules together.
const MAX_SET_CHARS: usize = 64 << 10;

/// Every rule compiles on its own when loaded; together they must also fit the matcher's size
/// limits (regex's), or [`RuleSet::new`] and [`PackageMatcher::new`] would quietly match
/// nothing: path globs (`remove`, `keep`, `setuid_allow`) and package globs
/// (`[packages] remove`) alike.
fn check_sets(p: &Profile, file: &str) -> Result<(), ProfileError> {
    type Compile<'a> = &'a dyn Fn(&str) -> Result<Glob, globset::Error>;
    let package_glob = |pattern: &str| Glob::new(pattern);
    let sets: [(&str, &Vec<Rule>, Compile); 4] = [
        ("remove", &p.remove, &compile),
        ("keep", &p.keep, &compile),
        ("setuid_allow", &p.setuid_allow, &compile),
        ("[packages] remove", &p.packages.remove, &package_glob),
    ];
    for (what, rules, compile) in sets {
        // Past this many characters the matcher would take hundreds of MiB to find out it is
        // too big: refused before it is built (every built-in profile together is a few KiB).
        let chars: usize = rules.iter().map(|r| r.pattern.len()).sum();
        if chars > MAX_SET_CHARS {
            return Err(ProfileError {
                file: file.to_string(),
                line: 1,
                column: 1,
                message: format!(
                    "the `{what}` globs together are too complex to match: {chars} characters, more than {MAX_SET_CHARS}"
                ),
            });
        }
        let mut b = GlobSetBuilder::new();
        for r in rules.iter() {
            if let Ok(g) = compile(&r.pattern) {
                b.add(g);
            }
        }
        if let Err(e) = b.build() {
            return Err(ProfileError {
                file: file.to_string(),
                line: 1,
                column: 1,
                message: format!("the `{what}` globs together are too complex to match: {e}"),
            });
        }
    }
    Ok(())
}

fn display_name(spec: &str) -> String {
    if BUILTINS.iter().any(|(n, _)| *n == spec) {
        spec.to_string()
    } else {
        Path::new(spec).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| spec.to_string())
    }
}

fn read_spec(spec: &str, relative_to: Option<&Path>) -> Result<(String, String, Option<PathBuf>), ProfileError> {
    if let Some((n, t)) = BUILTINS.iter().find(|(n, _)| *n == spec) {
        return Ok((format!("profiles/{n}.toml"), t.to_string(), None));
    }
    let path = match relative_to {
        Some(dir) if !Path::new(spec).is_absolute() => dir.join(spec),
        _ => PathBuf::from(spec),
    };
    let looks_like_path = spec.contains('/') || spec.ends_with(".toml") || path.exists();
    if !looks_like_path {
        let names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
        return Err(ProfileError {
            file: spec.to_string(),
            line: 1,
            column: 1,
            message: format!("no built-in profile `{spec}` (built-ins: {}), and no such file", names.join(", ")),
        });
    }
    let text = read_bounded(&path).map_err(|message| ProfileError {
        file: path.display().to_string(),
        line: 1,
        column: 1,
        message,
    })?;
    Ok((path.display().to_string(), text, path.parent().map(Path::to_path_buf)))
}

/// A regular file of at most [`MAX_PROFILE_BYTES`] (a FIFO or a device would block or never end).
fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read profile: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read profile: {e}"))?;
    if !meta.is_file() {
        return Err("cannot read profile: not a regular file".into());
    }
    let mut text = String::new();
    f.take(MAX_PROFILE_BYTES + 1).read_to_string(&mut text).map_err(|e| format!("cannot read profile: {e}"))?;
    if text.len() as u64 > MAX_PROFILE_BYTES {
        return Err(format!("profile larger than {MAX_PROFILE_BYTES} bytes"));
    }
    Ok(text)
}

/// One group of groups.toml.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    #[allow(dead_code)]
    description: String,
    paths: Vec<String>,
    #[serde(default)]
    keep: Vec<String>,
    #[serde(default)]
    packages: Vec<String>,
    /// Required: every group says whether what it removes takes its copies along.
    follow_copies: FollowCopies,
}
struct Groups(BTreeMap<String, Group>);

fn parse_groups() -> Result<Groups, ProfileError> {
    parse_groups_from("profiles/groups.toml", GROUPS)
}

fn parse_groups_from(name: &str, text: &str) -> Result<Groups, ProfileError> {
    let src = Source { name: name.into(), text };
    let raw: BTreeMap<String, Group> =
        toml::from_str(text).map_err(|e| src.err(e.span().unwrap_or(0..0), e.message().trim().replace('\n', " ")))?;
    Ok(Groups(raw))
}

/// The group names, for `profile list`.
pub fn group_names() -> Vec<String> {
    parse_groups().map(|g| g.0.keys().cloned().collect()).unwrap_or_default()
}

/// One group's paths as rules with origin `@name` (the audit's "shells present" and similar
/// checks use the same lists the profiles remove). Unknown names give no rules.
pub fn group(name: &str) -> Vec<Rule> {
    let Ok(groups) = parse_groups() else { return Vec::new() };
    groups
        .0
        .get(name)
        .map(|g| {
            g.paths
                .iter()
                .map(|p| Rule { pattern: p.clone(), origin: format!("@{name}"), follow_copies: g.follow_copies })
                .collect()
        })
        .unwrap_or_default()
}

fn apply(
    p: &mut Profile,
    src: Source<'_>,
    dir: Option<&Path>,
    groups: &Groups,
    depth: usize,
) -> Result<String, ProfileError> {
    let (file, text) = (src.name.as_str(), src.text);
    let builtin = BUILTINS.iter().any(|(n, t)| file == format!("profiles/{n}.toml") && *t == text);
    p.files.push(ProfileFile {
        uri: if builtin { format!("harden:{file}") } else { format!("file:{file}") },
        digest: Digest::of(text.as_bytes()),
    });
    let raw: RawProfile = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().replace('\n', " ");
        src.err(e.span().unwrap_or(0..0), msg)
    })?;
    let label = raw.name.clone().unwrap_or_else(|| display_name(file));
    let rules = RulesOf { src: &src, label: &label, groups };
    if let Some(ext) = &raw.extends {
        if depth >= MAX_EXTENDS_DEPTH {
            return Err(src.err(ext.span(), format!("`extends` chain deeper than {MAX_EXTENDS_DEPTH} (a cycle?)")));
        }
        let (n, t, d) = read_spec(ext.get_ref(), dir).map_err(|e| src.err(ext.span(), e.message))?;
        apply(p, Source { name: n, text: &t }, d.as_deref().or(dir), groups, depth + 1)?;
    }
    let _ = raw.description;
    // This file's own removals follow copies as its `[files] follow_copies` says (groups as theirs).
    let own_follow = raw.files.as_ref().and_then(|f| f.follow_copies).unwrap_or_default();
    if let Some(f) = raw.files {
        for s in f.remove.unwrap_or_default() {
            let out = Some((&mut p.keep, &mut p.packages.remove));
            rules.expand(&s, own_follow, &mut p.remove, out)?;
        }
        for s in f.keep.unwrap_or_default() {
            rules.expand(&s, FollowCopies::None, &mut p.keep, None)?;
        }
        for s in f.setuid_allow.unwrap_or_default() {
            rules.expand(&s, FollowCopies::None, &mut p.setuid_allow, None)?;
        }
        p.strip_setuid = f.strip_setuid.unwrap_or(p.strip_setuid);
        p.strip_capabilities = f.strip_capabilities.unwrap_or(p.strip_capabilities);
        p.fix_world_writable = f.fix_world_writable.unwrap_or(p.fix_world_writable);
    }
    if let Some(pk) = raw.packages {
        for s in pk.remove.unwrap_or_default() {
            rules.package_rule(&s, own_follow, &mut p.packages.remove)?;
        }
        p.packages.keep_database = pk.keep_database.unwrap_or(p.packages.keep_database);
    }
    if let Some(c) = raw.config {
        let cr = &mut p.config;
        if let Some(u) = c.user {
            if u == "keep" {
                cr.user = UserRule::Keep;
            } else {
                let (uid, gid) = match &cr.user {
                    UserRule::Set { uid, gid, .. } => (*uid, *gid),
                    UserRule::Keep => (65532, 65532),
                };
                cr.user = UserRule::Set { home: format!("/home/{u}"), name: u, uid, gid };
            }
        }
        if let UserRule::Set { uid, gid, home, .. } = &mut cr.user {
            *uid = c.uid.unwrap_or(*uid);
            *gid = c.gid.unwrap_or(*gid);
            if let Some(h) = c.home {
                *home = h;
            }
        }
        if let Some(h) = c.healthcheck {
            cr.healthcheck = Some(health(&src, h)?);
        }
        cr.labels.extend(c.labels.unwrap_or_default());
        cr.remove_labels.extend(c.remove_labels.unwrap_or_default());
        cr.annotations.extend(c.annotations.unwrap_or_default());
        cr.remove_annotations.extend(c.remove_annotations.unwrap_or_default());
        if let Some(es) = c.env_secrets {
            cr.env_secrets = match es.get_ref().as_str() {
                "remove" => EnvSecrets::Remove,
                "fail" => EnvSecrets::Fail,
                "keep" => EnvSecrets::Keep,
                other => {
                    return Err(src
                        .err(es.span(), format!("env_secrets = `{other}`: expected \"remove\", \"fail\" or \"keep\"")))
                }
            };
        }
        cr.env.extend(c.env.unwrap_or_default());
        cr.exposed_ports = c.exposed_ports.or(cr.exposed_ports.take());
        cr.volumes = c.volumes.or(cr.volumes.take());
        cr.workdir = c.workdir.or(cr.workdir.take());
        cr.stop_signal = c.stop_signal.or(cr.stop_signal.take());
    }
    if let Some(rt) = raw.runtime {
        for w in rt.writable.unwrap_or_default() {
            let path = normalise_dir(w.get_ref()).ok_or_else(|| {
                src.err(
                    w.span(),
                    format!(
                        "writable = `{}`: expected an absolute directory like \"/var/cache/app\" (not `/`, no `..`)",
                        w.get_ref()
                    ),
                )
            })?;
            if !p.runtime.writable.contains(&path) {
                p.runtime.writable.push(path);
            }
        }
        for c in rt.capabilities.unwrap_or_default() {
            let up = c.get_ref().to_ascii_uppercase();
            let name = up.strip_prefix("CAP_").unwrap_or(&up).to_string();
            if !CAPABILITIES.contains(&name.as_str()) {
                return Err(src.err(
                    c.span(),
                    format!("capabilities: `{}` is not a Linux capability (e.g. \"NET_RAW\")", c.get_ref()),
                ));
            }
            if !p.runtime.capabilities.contains(&name) {
                p.runtime.capabilities.push(name);
            }
        }
    }
    if let Some(v) = raw.verify {
        if let Some(h) = v.http {
            let parsed = parse_http_probe(h.get_ref()).ok_or_else(|| {
                src.err(
                    h.span(),
                    format!("http = `{}`: expected a URL like \"http://localhost:8080/healthz\"", h.get_ref()),
                )
            })?;
            p.verify.http = Some(parsed);
        }
        if let Some(t) = v.tcp {
            p.verify.tcp = t;
        }
        if let Some(c) = v.command {
            p.verify.command = c;
        }
        if let Some(s) = v.seconds {
            if *s.get_ref() == 0 || *s.get_ref() > 600 {
                return Err(src.err(s.span(), "seconds: expected 1 to 600"));
            }
            p.verify.seconds = Some(*s.get_ref());
        }
    }
    Ok(label)
}

/// `/var/cache//nginx/` → `/var/cache/nginx`; None for a relative path, `/` itself, `..` or
/// `.` components, or characters a mount option list cannot carry (`,`, `:`, whitespace).
fn normalise_dir(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.chars().any(|c| c == ',' || c == ':' || c.is_whitespace() || c.is_control()) {
        return None;
    }
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|c| *c == ".." || *c == ".") {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

/// Where a profile file's rules come from: the file (errors point into it), its label (each
/// rule's origin) and the groups its `@name`s resolve in.
struct RulesOf<'a> {
    src: &'a Source<'a>,
    label: &'a str,
    groups: &'a Groups,
}

impl RulesOf<'_> {
    /// One `remove`, `keep` or `setuid_allow` entry: a glob (following copies as `follow` says,
    /// for a removal), or `@group` — its paths, and for a removal its keeps and packages,
    /// following copies as the group says.
    fn expand(
        &self,
        s: &Spanned<String>,
        follow: FollowCopies,
        out: &mut Vec<Rule>,
        keep_out: Option<(&mut Vec<Rule>, &mut Vec<Rule>)>,
    ) -> Result<(), ProfileError> {
        let v = s.get_ref();
        if let Some(name) = v.strip_prefix('@') {
            let g = self.group_named(s, name)?;
            let origin = format!("{v} ({})", self.label);
            let removal = keep_out.is_some();
            let follow = if removal { g.follow_copies } else { FollowCopies::None };
            out.extend(g.paths.iter().map(|p| Rule {
                pattern: p.clone(),
                origin: origin.clone(),
                follow_copies: follow,
            }));
            if let Some((k, pk)) = keep_out {
                k.extend(g.keep.iter().map(|p| Rule::new(p.clone(), origin.clone())));
                // A group removed by path also removes its packages (the database follows).
                pk.extend(g.packages.iter().map(|p| Rule {
                    pattern: p.clone(),
                    origin: origin.clone(),
                    follow_copies: follow,
                }));
            }
            return Ok(());
        }
        if v.is_empty() || v.len() > MAX_PATTERN_LEN {
            return Err(self.src.err(s.span(), "expected a non-empty glob of at most 4096 characters"));
        }
        compile(v).map_err(|e| self.src.err(s.span(), format!("bad glob `{v}`: {e}")))?;
        out.push(Rule { pattern: v.clone(), origin: self.label.to_string(), follow_copies: follow });
        Ok(())
    }

    /// The group `@name`, or an error at the reference naming the known ones.
    fn group_named(&self, s: &Spanned<String>, name: &str) -> Result<&Group, ProfileError> {
        self.groups.0.get(name).ok_or_else(|| {
            let known: Vec<String> = self.groups.0.keys().map(|k| format!("@{k}")).collect();
            self.src.err(s.span(), format!("unknown group `{}` (known: {})", s.get_ref(), known.join(", ")))
        })
    }

    /// One `[packages] remove` entry: a package name glob, or `@group` (its `packages`).
    fn package_rule(&self, s: &Spanned<String>, follow: FollowCopies, out: &mut Vec<Rule>) -> Result<(), ProfileError> {
        let v = s.get_ref();
        if let Some(name) = v.strip_prefix('@') {
            let g = self.group_named(s, name)?;
            out.extend(g.packages.iter().map(|p| Rule {
                pattern: p.clone(),
                origin: format!("{v} ({})", self.label),
                follow_copies: g.follow_copies,
            }));
            return Ok(());
        }
        if v.is_empty() || v.len() > 256 || v.contains('/') {
            return Err(self.src.err(s.span(), "expected a package name or glob (no `/`, at most 256 characters)"));
        }
        Glob::new(v).map_err(|e| self.src.err(s.span(), format!("bad package glob `{v}`: {e}")))?;
        out.push(Rule { pattern: v.clone(), origin: self.label.to_string(), follow_copies: follow });
        Ok(())
    }
}

/// A matcher of package names against `[packages] remove`: the first rule matching.
pub struct PackageMatcher<'a> {
    rules: &'a [Rule],
    /// Index into `rules` of each glob in `set` (a pattern that cannot compile matches nothing).
    index: Vec<usize>,
    set: GlobSet,
}

impl<'a> PackageMatcher<'a> {
    pub fn new(rules: &'a [Rule]) -> PackageMatcher<'a> {
        let mut b = GlobSetBuilder::new();
        let mut index = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if let Ok(g) = Glob::new(&r.pattern) {
                b.add(g);
                index.push(i);
            }
        }
        PackageMatcher { rules, index, set: b.build().unwrap_or_else(|_| GlobSet::empty()) }
    }
    pub fn which(&self, name: &str) -> Option<&'a Rule> {
        self.set.matches(name).into_iter().min().map(|i| &self.rules[self.index[i]])
    }
}

/// Compile one rule's glob against canonical paths (no leading `/`). `*` does not cross `/`;
/// a pattern without a leading `/` matches at any depth.
pub fn compile(pattern: &str) -> Result<Glob, globset::Error> {
    let p = match pattern.strip_prefix('/') {
        Some(rest) => rest.to_string(),
        None => format!("**/{pattern}"),
    };
    GlobBuilder::new(&p).literal_separator(true).build()
}

/// A set of rules compiled for matching; `which` tells the first rule matching a path.
pub struct RuleSet<'a> {
    rules: &'a [Rule],
    set: GlobSet,
}

impl<'a> RuleSet<'a> {
    pub fn new(rules: &'a [Rule]) -> RuleSet<'a> {
        let mut b = GlobSetBuilder::new();
        for r in rules {
            // Validated at load time; a rule that no longer compiles matches nothing.
            if let Ok(g) = compile(&r.pattern) {
                b.add(g);
            } else {
                b.add(Glob::new("\u{0}never").expect("literal glob"));
            }
        }
        RuleSet { rules, set: b.build().unwrap_or_else(|_| GlobSet::empty()) }
    }
    pub fn which(&self, path: &str) -> Option<&'a Rule> {
        // Most paths match no rule: the yes/no test allocates nothing and stops at the first
        // match; the list of matches is made only for a path that has one.
        let c = globset::Candidate::new(path);
        if !self.set.is_match_candidate(&c) {
            return None;
        }
        self.set.matches_candidate(&c).first().map(|&i| &self.rules[i])
    }
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn duration_ns(src: &Source, s: &Spanned<String>) -> Result<u64, ProfileError> {
    parse_duration(s.get_ref())
        .ok_or_else(|| src.err(s.span(), format!("bad duration `{}`: expected e.g. 30s, 1m30s, 500ms", s.get_ref())))
}

/// Parse `1h2m3s`, `500ms`, `30s` into nanoseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let mult: u64 = match &rest[..unit_len] {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn health(src: &Source, h: RawHealth) -> Result<HealthRule, ProfileError> {
    if h.remove == Some(true) {
        return Ok(HealthRule::Remove);
    }
    let test: Vec<String> = match (h.test, h.shell) {
        (Some(_), Some(_)) => return Err(src.err(0..0, "healthcheck: give `test` or `shell`, not both")),
        (Some(t), None) if t.first().map(String::as_str) == Some("CMD") => t,
        (Some(t), None) if !t.is_empty() => std::iter::once("CMD".to_string()).chain(t).collect(),
        (None, Some(s)) => vec!["CMD-SHELL".into(), s],
        _ => return Err(src.err(0..0, "healthcheck: expected `test = [\"/path\", ...]` or `shell = \"...\"`")),
    };
    let mut m = serde_json::Map::new();
    m.insert("Test".into(), serde_json::json!(test));
    for (key, v) in [("Interval", &h.interval), ("Timeout", &h.timeout), ("StartPeriod", &h.start_period)] {
        if let Some(v) = v {
            m.insert(key.into(), serde_json::json!(duration_ns(src, v)?));
        }
    }
    if let Some(r) = h.retries {
        m.insert("Retries".into(), serde_json::json!(r));
    }
    Ok(HealthRule::Set(serde_json::Value::Object(m)))
}

/// Validate one profile file on its own (`harden profile validate`).
pub fn validate_file(path: &str) -> Result<Profile, ProfileError> {
    load(&[path.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Profile, ProfileError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(&p, text).unwrap();
        load(&[p.display().to_string()])
    }

    #[test]
    fn builtins_load_and_strict_extends_baseline() {
        for (n, _) in BUILTINS {
            load(&[n.to_string()]).unwrap();
        }
        let s = load(&["strict".into()]).unwrap();
        assert!(s.remove.iter().any(|r| r.pattern == "/bin/sh" && r.origin.contains("@shells")));
        assert!(s.remove.iter().any(|r| r.origin.contains("@package-caches")));
        assert!(s.keep.iter().any(|r| r.pattern == "/var/lib/dpkg/status"));
        assert!(s.strip_setuid);
        assert!(matches!(s.config.user, UserRule::Set { uid: 65532, gid: 65532, .. }));
    }

    #[test]
    fn errors_name_file_line_column() {
        let e = load_text("[files]\nremove = [\"@nope\"]\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 11), "{e}");
        assert!(e.message.contains("unknown group `@nope`"), "{e}");
        let e = load_text("[files]\nbogus = 1\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("bogus"), "{e}");
        let e = load_text("[files]\nstrip_setuid = \"yes\"\n").unwrap_err();
        assert!(e.message.contains("bool"), "{e}");
        let e = load_text("[files]\nremove = [\"/a/[b\"]\n").unwrap_err();
        assert!(e.message.contains("bad glob"), "{e}");
        let e = load_text("[config.healthcheck]\ntest = [\"/x\"]\ninterval = \"3 parsecs\"\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn verify_section_is_validated_and_later_fields_win() {
        let p = load_text("[verify]\nhttp = \"http://localhost:8080/healthz\"\nseconds = 9\n").unwrap();
        assert_eq!(p.verify.http, Some((8080, "/healthz".to_string())));
        assert_eq!(p.verify.seconds, Some(9));
        assert_eq!(parse_http_probe("http://x"), Some((80, "/".to_string())));
        for bad in ["https://x/", "http://x:0/", "http://x:99999/", "localhost:80"] {
            let e = load_text(&format!("[verify]\nhttp = {bad:?}\n")).unwrap_err();
            assert!(e.message.contains("expected a URL"), "{bad}: {e}");
            assert_eq!(e.line, 2);
        }
        assert!(load_text("[verify]\nseconds = 0\n").unwrap_err().message.contains("1 to 600"));
        assert!(load_text("[verify]\nport = 1\n").unwrap_err().message.contains("port"));
        // Without [verify], the digest is what it was.
        let s = serde_json::to_string(&load_text("name = \"x\"\n").unwrap()).unwrap();
        assert!(!s.contains("verify"));
    }

    #[test]
    fn runtime_section_is_validated_and_merged() {
        let p = load_text(
            "extends = \"strict\"\n[runtime]\nwritable = [\"/var/cache//nginx/\", \"/run\"]\ncapabilities = [\"cap_net_raw\"]\n",
        )
        .unwrap();
        assert_eq!(p.runtime.writable, ["/var/cache/nginx", "/run"]);
        assert_eq!(p.runtime.capabilities, ["NET_RAW"]);
        let e = load_text("[runtime]\nwritable = [\"/tmp\", \"var/x\"]\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 21), "{e}");
        assert!(e.message.contains("absolute directory"), "{e}");
        for bad in ["/", "/a/../b", "/a,b"] {
            assert!(load_text(&format!("[runtime]\nwritable = [{bad:?}]\n")).is_err(), "{bad}");
        }
        let e = load_text("[runtime]\ncapabilities = [\"NET_RAW\",\n  \"FLY\"]\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("`FLY` is not a Linux capability"), "{e}");
        assert!(load_text("[runtime]\nreadonly = true\n").unwrap_err().message.contains("readonly"));
        // No [runtime]: the digest is what it was before the section existed.
        let s = load(&["strict".into()]).unwrap();
        assert!(!serde_json::to_string(&s).unwrap().contains("runtime"));
    }

    #[test]
    fn hostile_globs_are_bounded_in_time_or_refused() {
        // Compiled or refused, and matched, without a blow-up (regex is linear-time): a hang shows
        // as the watchdog, not as a duration asserted.
        crate::test_support::unless_hung("hostile globs", || {
            // Thousands of `**`, and of alternations, at the 4096-character limit.
            let stars = format!("/{}", "**/".repeat(1364));
            let alts = format!("/{}", "{a,b,c}/".repeat(512));
            let classes = format!("/{}", "[!a-z]*?".repeat(512));
            for g in [&stars, &alts, &classes] {
                let text = format!("[files]\nremove = [\"{g}\"]\nkeep = [\"{g}\"]\n");
                match load_text(&text) {
                    Ok(p) => {
                        // If it loads, matching a long path is still quick (regex is linear-time).
                        let rs = RuleSet::new(&p.remove);
                        let path = "a/".repeat(2000) + "z";
                        let _ = rs.which(&path);
                    }
                    Err(e) => assert!(e.message.contains("glob") || e.message.contains("complex"), "{e}"),
                }
            }
            // Many rules at once.
            let many: Vec<String> = (0..2000).map(|i| format!("\"/opt/{i}/**/{{a,b}}*\"")).collect();
            let _ = load_text(&format!("[files]\nremove = [{}]\n", many.join(",")));
            // Deeply nested alternations: compiled or refused, without overflowing the stack.
            let nested = format!("/{}b{}", "{a,".repeat(1000), "}".repeat(1000));
            let _ = load_text(&format!("[files]\nremove = [\"{nested}\"]\n"));
        });
    }

    #[test]
    fn hostile_package_globs_too_complex_together_are_refused_at_load() {
        // bash and 3,900 globs of 250 `?`: each compiles, together they are too big for the
        // matcher, which would then remove nothing; refused at load as path globs are.
        let q = "?".repeat(250);
        let mut globs = vec!["\"bash\"".to_string()];
        globs.extend((0..3900).map(|i| format!("\"{q}{i}\"")));
        let e = load_text(&format!("[packages]\nremove = [{}]\n", globs.join(","))).unwrap_err();
        assert!(e.message.contains("`[packages] remove` globs together are too complex"), "{e}");
        assert_eq!((e.line, e.column), (1, 1));
        // A few ordinary ones load and match.
        let p = load_text("[packages]\nremove = [\"bash\", \"lib*-dev\"]\n").unwrap();
        assert_eq!(PackageMatcher::new(&p.packages.remove).which("libc6-dev").unwrap().pattern, "lib*-dev");
    }

    #[test]
    fn hostile_files_and_deep_extends_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A chain longer than the limit (no cycle).
        for i in 0..40 {
            std::fs::write(dir.path().join(format!("p{i}.toml")), format!("extends = \"p{}.toml\"\n", i + 1)).unwrap();
        }
        std::fs::write(dir.path().join("p40.toml"), "").unwrap();
        let e = load(&[dir.path().join("p0.toml").display().to_string()]).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
        // A device, a directory, a FIFO-like non-file, an oversized file: errors, not hangs.
        for target in ["/dev/zero", "/tmp"] {
            let e = load_text(&format!("extends = \"{target}\"\n")).unwrap_err();
            assert!(e.message.contains("not a regular file"), "{target}: {e}");
        }
        let big = dir.path().join("big.toml");
        std::fs::write(&big, format!("description = \"{}\"\n", "x".repeat(2 << 20))).unwrap();
        let e = load(&[big.display().to_string()]).unwrap_err();
        assert!(e.message.contains("larger than"), "{e}");
        // A self-extending text through load_str stops too.
        let me = dir.path().join("me.toml");
        std::fs::write(&me, format!("extends = \"{}\"\n", me.display())).unwrap();
        let e = load_str("inline", &format!("extends = \"{}\"\n", me.display())).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
        assert!(load_str("inline", "extends = \"strict\"\n").is_ok());
    }

    #[test]
    fn extends_cycles_stop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "extends = \"b.toml\"\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "extends = \"a.toml\"\n").unwrap();
        let e = load(&[dir.path().join("a.toml").display().to_string()]).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
    }

    #[test]
    fn durations_and_healthchecks() {
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("5"), None);
        let p = load_text("[config.healthcheck]\nshell = \"curl -f localhost\"\ninterval = \"30s\"\nretries = 3\n")
            .unwrap();
        let Some(HealthRule::Set(v)) = p.config.healthcheck else { panic!() };
        assert_eq!(v["Test"][0], "CMD-SHELL");
        assert_eq!(v["Interval"], 30_000_000_000u64);
    }

    #[test]
    fn follow_copies_is_data_of_groups_and_of_a_profiles_own_rules() {
        let s = load(&["strict".into()]).unwrap();
        let rule = |pattern: &str| s.remove.iter().find(|r| r.pattern == pattern).unwrap().follow_copies;
        assert_eq!(rule("/bin/sh"), FollowCopies::Executables);
        assert_eq!(rule("/**/id_rsa"), FollowCopies::Files);
        assert_eq!(rule("/var/cache/apt/archives/*.deb"), FollowCopies::None);
        assert_eq!(rule("/usr/share/doc/**"), FollowCopies::None);
        assert_eq!(rule("/etc/shells"), FollowCopies::None, "strict's own rule follows nothing");
        assert!(s.packages.remove.iter().any(|r| r.pattern == "bash" && r.follow_copies == FollowCopies::Executables));
        assert!(s.keep.iter().all(|r| r.follow_copies.is_none()), "keeps follow nothing");
        // `profile show` prints it on the rules that follow, nowhere else.
        let v = serde_json::to_value(&s).unwrap();
        let sh = v["remove"].as_array().unwrap().iter().find(|r| r["pattern"] == "/bin/sh").unwrap();
        assert_eq!(sh["follow_copies"], "executables", "{sh}");
        let deb = v["remove"].as_array().unwrap().iter().find(|r| r["pattern"] == "/var/cache/apt/archives/*.deb");
        assert!(deb.unwrap().get("follow_copies").is_none());
        // A profile's own rules: [files] follow_copies covers its remove globs and package names,
        // not the rules it extends.
        let p = load_text(
            "extends = \"baseline\"\n[files]\nremove = [\"/usr/bin/perl*\", \"@docs\"]\nfollow_copies = \"executables\"\n\
             [packages]\nremove = [\"perl\"]\n",
        )
        .unwrap();
        let own = |pattern: &str| p.remove.iter().find(|r| r.pattern == pattern).unwrap().follow_copies;
        assert_eq!(own("/usr/bin/perl*"), FollowCopies::Executables);
        assert_eq!(own("/usr/share/man"), FollowCopies::None, "a group says it for itself");
        assert_eq!(own("/var/lib/apt/lists/*"), FollowCopies::None);
        assert_eq!(p.packages.remove[0].follow_copies, FollowCopies::Executables);
        let plain = load_text("[files]\nremove = [\"/opt/x\"]\n").unwrap();
        assert_eq!(plain.remove[0].follow_copies, FollowCopies::None, "the default");
        // A bad value is an error at its place.
        let e = load_text("[files]\nremove = [\"/opt/x\"]\nfollow_copies = \"always\"\n").unwrap_err();
        assert_eq!((e.line, e.column), (3, 17), "{e}");
        assert!(e.message.contains("executables"), "{e}");
        let e = load_text("[files]\nfollow_copies = true\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        // Every group must say it.
        let e = parse_groups_from("g.toml", "[x]\ndescription = \"x\"\npaths = [\"/x\"]\n").err().unwrap();
        assert!(e.message.contains("follow_copies"), "{e}");
        assert_eq!(e.file, "g.toml");
    }

    #[test]
    fn globs_stay_within_components() {
        let rules = vec![Rule::new("/usr/bin/dpkg-*", "t"), Rule::new(".env", "t")];
        let rs = RuleSet::new(&rules);
        assert!(rs.which("usr/bin/dpkg-query").is_some());
        assert!(rs.which("usr/bin/dpkg-x/y").is_none());
        assert!(rs.which("app/deep/.env").is_some());
    }
}
