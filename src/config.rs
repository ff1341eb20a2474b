//! Config: the image config edits a profile asks for — numeric non-root user (and the small
//! layer that creates it when missing), health check, labels, annotations, env secrets
//! (also scrubbed from history), ports, volumes, workdir, stop signal — plus new diff_ids
//! and one history entry saying what harden did.
//!
//! Owns: config JSON edits and the user layer. Must not: touch existing layers.

use crate::digest::{Digest, HashingWriter};
use crate::fs::FinalFs;
use crate::layer::codec::{Encoder, OutputCodec};
use crate::profile::{EnvSecrets, HealthRule, Profile, UserRule};
use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

pub const LABEL_NS: &str = "dev.harden";

/// The user the result runs as, and the layer that creates it when the image lacks it.
pub struct UserPlan {
    pub config_user: Option<String>,
    pub layer: Option<UserLayer>,
}

pub struct UserLayer {
    pub blob: Vec<u8>,
    pub digest: Digest,
    pub diff_id: Digest,
    pub name: String,
}

fn find_account(text: &str, name: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// The numeric user and group the profile's `[config] user` runs as in this image: the
/// account's when the image has it, else the profile's numbers (the user layer adds it).
pub fn profile_user_ids(fs: &FinalFs, profile: &Profile) -> Option<(u32, u32)> {
    let UserRule::Set { name, uid, gid, .. } = &profile.config.user else { return None };
    let passwd = fs.prefix("etc/passwd").map(|b| String::from_utf8_lossy(b).into_owned());
    Some(passwd.as_deref().and_then(|p| find_account(p, name)).unwrap_or((*uid, *gid)))
}

/// Resolve the profile's user against the image's passwd; build a layer adding it if needed,
/// and the `[runtime] writable` directories the image lacks (`created`, canonical paths the
/// plan handed over: each owned by the user, missing parents root's, all with the mode of the
/// nearest existing parent).
pub fn plan_user(
    fs: &FinalFs,
    profile: &Profile,
    created: &[&str],
    mtime: u64,
    codec: OutputCodec,
) -> Result<UserPlan> {
    let UserRule::Set { name, uid, gid, home } = &profile.config.user else {
        return Ok(UserPlan { config_user: None, layer: None });
    };
    let passwd = fs.prefix("etc/passwd").map(|b| String::from_utf8_lossy(b).into_owned());
    let existing = passwd.as_deref().and_then(|p| find_account(p, name));
    if let (Some((u, g)), true) = (existing, created.is_empty()) {
        return Ok(UserPlan { config_user: Some(format!("{u}:{g}")), layer: None });
    }
    let group = fs.prefix("etc/group").map(|b| String::from_utf8_lossy(b).into_owned());
    let with_line = |orig: Option<String>, line: String| {
        let mut s = orig.unwrap_or_default();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&line);
        s
    };
    let passwd = with_line(passwd, format!("{name}:x:{uid}:{gid}:{name}:{home}:/sbin/nologin\n"));
    let group_has =
        group.as_deref().map(|g| g.lines().any(|l| l.split(':').nth(2) == Some(&gid.to_string()))).unwrap_or(false);
    let group = if group_has { group.unwrap_or_default() } else { with_line(group, format!("{name}:x:{gid}:\n")) };
    let file_meta = |path: &str| fs.get(path).map(|(_, e)| (e.mode, e.uid, e.gid)).unwrap_or((0o644, 0, 0));

    let blob = HashingWriter::new(Vec::new());
    let enc = Encoder::new(codec, blob)?;
    let mut tb = tar::Builder::new(HashingWriter::new(enc));
    let mut add = |path: &str, data: &[u8], meta: (u32, u64, u64), dir: bool| -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
        h.set_mode(meta.0);
        h.set_uid(meta.1);
        h.set_gid(meta.2);
        h.set_mtime(mtime);
        h.set_size(data.len() as u64);
        tb.append_data(&mut h, path, data)?;
        Ok(())
    };
    if existing.is_none() {
        add("etc/passwd", passwd.as_bytes(), file_meta("etc/passwd"), false)?;
        add("etc/group", group.as_bytes(), file_meta("etc/group"), false)?;
        let home = home.trim_start_matches('/');
        let mut parent = String::new();
        for part in home.split('/').filter(|p| !p.is_empty()) {
            parent = if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
            let meta = if parent == home {
                (0o755, *uid as u64, *gid as u64)
            } else {
                fs.get(&parent).map(|(_, e)| (e.mode, e.uid, e.gid)).unwrap_or((0o755, 0, 0))
            };
            add(&format!("{parent}/"), b"", meta, true)?;
        }
    }
    // Missing writable directories, and their missing parents, after everything else.
    let mut made: Vec<String> = Vec::new();
    let (owner_uid, owner_gid) = existing.unwrap_or((*uid, *gid));
    for dir in created {
        let mut mode = 0o755;
        let mut parent = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            parent = if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
            if let Some((_, e)) = fs.get(&parent) {
                mode = e.mode & 0o7777;
                continue;
            }
            if made.contains(&parent) {
                continue;
            }
            let owner = if parent == *dir { (owner_uid as u64, owner_gid as u64) } else { (0, 0) };
            add(&format!("{parent}/"), b"", (mode, owner.0, owner.1), true)?;
            made.push(parent.clone());
        }
    }
    let tar_hash = tb.into_inner()?;
    let (enc, diff_id, _) = tar_hash.finish();
    let (blob, digest, _) = enc.finish()?.finish();
    let (u, g) = existing.unwrap_or((*uid, *gid));
    Ok(UserPlan {
        config_user: Some(format!("{u}:{g}")),
        layer: Some(UserLayer { blob, digest, diff_id, name: name.clone() }),
    })
}

/// What the config edit did, for the report and the history comment.
#[derive(Default, Clone, Debug, serde::Serialize)]
pub struct ConfigChanges {
    pub user: Option<String>,
    pub env_removed: Vec<String>,
    pub healthcheck: Option<String>,
    pub labels_set: Vec<String>,
}

pub struct ConfigEdit<'a> {
    pub profile: &'a Profile,
    /// The source's pullable name, recorded as org.opencontainers.image.base.name; None for an
    /// OCI layout (a local path is nobody's name, and would make the digest depend on where the
    /// layout sits on disk) unless `--base-name` gives one.
    pub source_name: Option<String>,
    pub source_digest: Digest,
    pub diff_ids: Vec<Digest>,
    pub user: Option<String>,
    pub added_layer: bool,
    pub summary: String,
    pub created: Option<String>,
}

/// The edit in progress: what the passes have done so far.
pub struct Editing<'e> {
    pub edit: &'e ConfigEdit<'e>,
    pub changes: ConfigChanges,
    /// Values of the secret Env entries removed, scrubbed from history by a later pass.
    pub secret_values: Vec<String>,
}

/// One step of the config edit: one concern, applied to the config JSON. Passes run in
/// [`PASSES`] order, each seeing what the earlier ones did.
pub type Pass = fn(&mut Value, &mut Editing) -> Result<()>;

/// The passes, in order.
pub const PASSES: &[(&str, Pass)] = &[
    ("user", set_user),
    ("healthcheck", set_healthcheck),
    ("env", edit_env),
    ("runtime settings", set_runtime),
    ("labels", set_labels),
    ("rootfs", set_rootfs),
    ("history", edit_history),
];

/// Apply the edit: every pass in order. Fails (policy) when env secrets are found and the
/// profile says `fail`, and when the config is not a JSON object.
pub fn edit(config: &mut Value, e: &ConfigEdit) -> Result<ConfigChanges> {
    let mut ed = Editing { edit: e, changes: ConfigChanges::default(), secret_values: Vec::new() };
    for (_, pass) in PASSES {
        pass(config, &mut ed)?;
    }
    Ok(ed.changes)
}

/// The container config (`config` in the image config), made an object if it is missing.
fn container(config: &mut Value) -> Result<&mut Map<String, Value>> {
    let top = config.as_object_mut().ok_or_else(|| anyhow::anyhow!("the image config is not a JSON object"))?;
    let c = top.entry("config").or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    c.as_object_mut().ok_or_else(|| anyhow::anyhow!("the image config's `config` is not a JSON object"))
}

/// `User` (numeric uid:gid from the user plan).
pub fn set_user(config: &mut Value, ed: &mut Editing) -> Result<()> {
    if let Some(u) = &ed.edit.user {
        container(config)?.insert("User".into(), json!(u));
        ed.changes.user = Some(u.clone());
    }
    Ok(())
}

/// `Healthcheck`: set or removed as the profile says.
pub fn set_healthcheck(config: &mut Value, ed: &mut Editing) -> Result<()> {
    let c = container(config)?;
    match &ed.edit.profile.config.healthcheck {
        Some(HealthRule::Remove) => {
            c.remove("Healthcheck");
            ed.changes.healthcheck = Some("removed".into());
        }
        Some(HealthRule::Set(h)) => {
            c.insert("Healthcheck".into(), h.clone());
            ed.changes.healthcheck = Some(h["Test"].to_string());
        }
        None => {}
    }
    Ok(())
}

/// `Env`: secrets out (or refuse, per `env_secrets`), the profile's values in.
pub fn edit_env(config: &mut Value, ed: &mut Editing) -> Result<()> {
    let rules = &ed.edit.profile.config;
    let c = container(config)?;
    if let Some(env) = c.get_mut("Env").and_then(Value::as_array_mut) {
        let mut kept = Vec::new();
        for v in env.drain(..) {
            let s = v.as_str().unwrap_or_default().to_string();
            let (k, val) = s.split_once('=').unwrap_or((&s, ""));
            if crate::secrets::env_name(k) && !val.is_empty() && rules.env_secrets != EnvSecrets::Keep {
                if rules.env_secrets == EnvSecrets::Fail {
                    bail!(crate::Failure::Policy(format!(
                        "config Env: `{k}` looks like a secret and the profile says env_secrets = \"fail\""
                    )));
                }
                ed.changes.env_removed.push(k.to_string());
                if val.len() >= 4 {
                    ed.secret_values.push(val.to_string());
                }
            } else {
                kept.push(v);
            }
        }
        *env = kept;
    }
    if !rules.env.is_empty() {
        if let Some(env) = c.entry("Env").or_insert_with(|| json!([])).as_array_mut() {
            for (k, v) in &rules.env {
                env.retain(|x| x.as_str().and_then(|s| s.split_once('=')).map(|(n, _)| n != k).unwrap_or(true));
                env.push(json!(format!("{k}={v}")));
            }
        }
    }
    Ok(())
}

/// `ExposedPorts`, `Volumes`, `WorkingDir`, `StopSignal`: replaced where the profile sets them.
pub fn set_runtime(config: &mut Value, ed: &mut Editing) -> Result<()> {
    let rules = &ed.edit.profile.config;
    let c = container(config)?;
    if let Some(p) = &rules.exposed_ports {
        c.insert("ExposedPorts".into(), Value::Object(p.iter().map(|x| (x.clone(), json!({}))).collect()));
    }
    if let Some(v) = &rules.volumes {
        c.insert("Volumes".into(), Value::Object(v.iter().map(|x| (x.clone(), json!({}))).collect()));
    }
    if let Some(w) = &rules.workdir {
        c.insert("WorkingDir".into(), json!(w));
    }
    if let Some(s) = &rules.stop_signal {
        c.insert("StopSignal".into(), json!(s));
    }
    Ok(())
}

/// `Labels`: the profile's removals and values, then harden's own record of where this came from.
pub fn set_labels(config: &mut Value, ed: &mut Editing) -> Result<()> {
    let e = ed.edit;
    let rules = &e.profile.config;
    let c = container(config)?;
    let labels = c.entry("Labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    let Some(labels) = labels.as_object_mut() else { return Ok(()) };
    for k in &rules.remove_labels {
        labels.remove(k);
    }
    // A base.name inherited from the source's own base would be wrong for the result.
    labels.remove("org.opencontainers.image.base.name");
    let mut set = |k: &str, v: String| {
        labels.insert(k.to_string(), json!(v));
        ed.changes.labels_set.push(k.to_string());
    };
    for (k, v) in &rules.labels {
        set(k, v.clone());
    }
    if let Some(n) = &e.source_name {
        set("org.opencontainers.image.base.name", n.clone());
    }
    set("org.opencontainers.image.base.digest", e.source_digest.to_string());
    set(&format!("{LABEL_NS}.profile"), e.profile.name());
    set(&format!("{LABEL_NS}.profile.digest"), e.profile.digest().to_string());
    set(&format!("{LABEL_NS}.version"), env!("CARGO_PKG_VERSION").to_string());
    Ok(())
}

/// `created` (from `SOURCE_DATE_EPOCH` when given) and `rootfs.diff_ids` of the result.
pub fn set_rootfs(config: &mut Value, ed: &mut Editing) -> Result<()> {
    let e = ed.edit;
    let top = config.as_object_mut().ok_or_else(|| anyhow::anyhow!("the image config is not a JSON object"))?;
    if let Some(created) = &e.created {
        top.insert("created".into(), json!(created));
    }
    let diff_ids: Vec<&str> = e.diff_ids.iter().map(Digest::as_str).collect();
    top.insert("rootfs".into(), json!({"type": "layers", "diff_ids": diff_ids}));
    Ok(())
}

/// `history`: removed secrets scrubbed from every `created_by`, and harden's own entry last.
pub fn edit_history(config: &mut Value, ed: &mut Editing) -> Result<()> {
    let e = ed.edit;
    let created = config["created"].clone();
    let top = config.as_object_mut().ok_or_else(|| anyhow::anyhow!("the image config is not a JSON object"))?;
    let history = top.entry("history").or_insert_with(|| json!([]));
    if let Some(h) = history.as_array_mut() {
        for entry in h.iter_mut() {
            if let Some(cb) = entry["created_by"].as_str() {
                let mut s = cb.to_string();
                for v in &ed.secret_values {
                    s = s.replace(v.as_str(), "***");
                }
                entry["created_by"] = json!(s);
            }
        }
        let mut entry = Map::new();
        if !created.is_null() {
            entry.insert("created".into(), created);
        }
        entry.insert(
            "created_by".into(),
            json!(format!("harden {} --profile {}", env!("CARGO_PKG_VERSION"), e.profile.name())),
        );
        entry.insert("comment".into(), json!(e.summary));
        if !e.added_layer {
            entry.insert("empty_layer".into(), json!(true));
        }
        h.push(Value::Object(entry));
    }
    Ok(())
}

/// RFC 3339 from SOURCE_DATE_EPOCH, when set: the only clock harden reads.
pub fn source_date_epoch() -> Result<Option<(u64, String)>> {
    let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") else { return Ok(None) };
    let secs: u64 = s
        .trim()
        .parse()
        .map_err(|_| crate::Failure::Usage(format!("SOURCE_DATE_EPOCH=`{s}` is not a number of seconds")))?;
    Ok(Some((secs, rfc3339(secs))))
}

fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Seconds since the epoch of an RFC 3339 `created` (for the user layer's mtimes); 0 if unparsable.
pub fn epoch_of(created: &str) -> u64 {
    let p = |a: usize, b: usize| created.get(a..b).and_then(|s| s.parse::<i64>().ok());
    let (Some(y), Some(m), Some(d), Some(hh), Some(mm), Some(ss)) =
        (p(0, 4), p(5, 7), p(8, 10), p(11, 13), p(14, 16), p(17, 19))
    else {
        return 0;
    };
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86400 + hh * 3600 + mm * 60 + ss).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_user_layer_creates_missing_writable_directories_with_their_parents_modes() {
        use crate::fs::tests::{entry, layer};
        use crate::layer::tar::Kind;
        let mut passwd = entry("etc/passwd", Kind::File, None);
        passwd.prefix = Some(b"root:x:0:0::/root:/bin/sh\nnonroot:x:65532:65532::/home/nonroot:/x\n".to_vec().into());
        let mut srv = entry("srv", Kind::Dir, None);
        srv.mode = 0o750;
        let fs = crate::fs::FinalFs::build(vec![layer(vec![passwd, srv])]);
        let profile = crate::profile::load(&["baseline".into()]).unwrap();
        let u = plan_user(&fs, &profile, &["srv/app/cache"], 0, OutputCodec::Gzip(1)).unwrap();
        assert_eq!(u.config_user.as_deref(), Some("65532:65532"), "the account exists: its numbers");
        let layer = u.layer.expect("a layer for the missing directories");
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&layer.blob[..]).read_to_end(&mut tar).unwrap();
        let got: Vec<(String, u64, u64, u32)> = crate::layer::testdata::entries(&tar)
            .into_iter()
            .map(|(e, _)| (e.path.clone(), e.uid(), e.gid(), e.mode()))
            .collect();
        // The account exists: no passwd or group entry; the new directories only.
        assert_eq!(got, [("srv/app".into(), 0, 0, 0o750), ("srv/app/cache".into(), 65532, 65532, 0o750)]);
        // Nothing missing: no layer at all.
        assert!(plan_user(&fs, &profile, &[], 0, OutputCodec::Gzip(1)).unwrap().layer.is_none());
    }

    #[test]
    fn dates_roundtrip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(epoch_of("2023-11-14T22:13:20.123456Z"), 1_700_000_000);
    }

    #[test]
    fn edit_keeps_unknown_fields_and_scrubs_history() {
        let profile = crate::profile::load(&["baseline".into()]).unwrap();
        let mut cfg: Value = serde_json::from_str(r#"{"architecture":"amd64","config":{"Env":["PATH=/bin","API_TOKEN=abcd1234"],"ArgsEscaped":true,"Healthcheck":{"Test":["NONE"]}},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"RUN echo abcd1234"}],"container_config":{"x":1}}"#).unwrap();
        let e = ConfigEdit {
            profile: &profile,
            source_name: Some("r/x:1".into()),
            source_digest: Digest::of(b"m"),
            diff_ids: vec![Digest::of(b"l")],
            user: Some("65532:65532".into()),
            added_layer: true,
            summary: "s".into(),
            created: None,
        };
        let ch = edit(&mut cfg, &e).unwrap();
        assert_eq!(ch.env_removed, vec!["API_TOKEN"]);
        assert_eq!(cfg["config"]["User"], "65532:65532");
        assert_eq!(cfg["config"]["ArgsEscaped"], true);
        assert_eq!(cfg["config"]["Healthcheck"]["Test"][0], "NONE");
        assert_eq!(cfg["container_config"]["x"], 1);
        assert_eq!(cfg["history"][0]["created_by"], "RUN echo ***");
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        assert!(cfg["history"][1].get("empty_layer").is_none());
        assert_eq!(cfg["config"]["Labels"]["org.opencontainers.image.base.name"], "r/x:1");
    }

    fn edit_of(profile: &Profile) -> ConfigEdit<'_> {
        ConfigEdit {
            profile,
            source_name: None,
            source_digest: Digest::of(b"m"),
            diff_ids: vec![Digest::of(b"l")],
            user: None,
            added_layer: false,
            summary: "s".into(),
            created: None,
        }
    }

    fn run_pass(pass: Pass, config: &mut Value, e: &ConfigEdit) -> Result<ConfigChanges> {
        let mut ed = Editing { edit: e, changes: ConfigChanges::default(), secret_values: Vec::new() };
        pass(config, &mut ed)?;
        Ok(ed.changes)
    }

    #[test]
    fn pass_user_and_healthcheck_touch_only_their_fields() {
        let profile = crate::profile::load_str(
            "t.toml",
            "name = \"t\"\n[config.healthcheck]\ntest = [\"/app/check\"]\ninterval = \"10s\"\n",
        )
        .unwrap();
        let mut e = edit_of(&profile);
        e.user = Some("65532:65532".into());
        let mut cfg = json!({"config": {"Env": ["A=b"]}});
        let ch = run_pass(set_user, &mut cfg, &e).unwrap();
        assert_eq!(ch.user.as_deref(), Some("65532:65532"));
        assert_eq!(cfg, json!({"config": {"Env": ["A=b"], "User": "65532:65532"}}));
        let ch = run_pass(set_healthcheck, &mut cfg, &e).unwrap();
        assert_eq!(cfg["config"]["Healthcheck"]["Test"], json!(["CMD", "/app/check"]));
        assert!(ch.healthcheck.is_some());
        assert_eq!(cfg["config"]["Env"], json!(["A=b"]));
    }

    #[test]
    fn pass_env_refuses_with_fail_and_keeps_with_keep() {
        let fail = crate::profile::load_str("t.toml", "name = \"t\"\n[config]\nenv_secrets = \"fail\"\n").unwrap();
        let mut cfg = json!({"config": {"Env": ["DB_PASSWORD=swordfish"]}});
        let e = run_pass(edit_env, &mut cfg, &edit_of(&fail)).unwrap_err();
        assert!(matches!(e.downcast_ref::<crate::Failure>(), Some(crate::Failure::Policy(_))), "{e}");
        let keep = crate::profile::load_str("t.toml", "name = \"t\"\n[config]\nenv_secrets = \"keep\"\n").unwrap();
        let mut cfg = json!({"config": {"Env": ["DB_PASSWORD=swordfish"]}});
        let ch = run_pass(edit_env, &mut cfg, &edit_of(&keep)).unwrap();
        assert!(ch.env_removed.is_empty());
        assert_eq!(cfg["config"]["Env"], json!(["DB_PASSWORD=swordfish"]));
    }

    #[test]
    fn pass_labels_replace_an_inherited_base_name() {
        let profile = crate::profile::load(&["passthrough".into()]).unwrap();
        let mut cfg = json!({"config": {"Labels": {"org.opencontainers.image.base.name": "their/base", "keep": "me"}}});
        run_pass(set_labels, &mut cfg, &edit_of(&profile)).unwrap();
        let l = &cfg["config"]["Labels"];
        assert!(l.get("org.opencontainers.image.base.name").is_none(), "no name for a layout source: {l}");
        assert_eq!(l["keep"], "me");
        assert_eq!(l["org.opencontainers.image.base.digest"], Digest::of(b"m").as_str());
    }

    #[test]
    fn passes_refuse_a_config_that_is_not_an_object() {
        let profile = crate::profile::load(&["baseline".into()]).unwrap();
        let mut e = edit_of(&profile);
        e.user = Some("1:1".into());
        for (name, pass) in PASSES {
            // Each pass that touches the config refuses it (none panics).
            let mut cfg = json!(["not", "an", "object"]);
            assert!(run_pass(*pass, &mut cfg, &e).is_err(), "{name}");
        }
        assert!(edit(&mut json!("text"), &e).is_err());
    }
}
