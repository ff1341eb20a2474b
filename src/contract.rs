//! The runtime contract: how to run a (hardened) image with least privilege, derived from its
//! final filesystem, its config and the profile's `[runtime]` — a Kubernetes `securityContext`
//! with the volumes it needs, and the same as `docker run` flags.
//!
//! - scratch paths: `/tmp` and the profile's `[runtime] writable`; each a tmpfs (`emptyDir`;
//!   for a non-root user `docker run --tmpfs PATH:uid=U,gid=G`, since a runtime gives a tmpfs
//!   the mode of the directory it covers), the root file system read-only;
//! - data: each `VOLUME` of the config is persistent storage — a named volume for
//!   `docker run -v`, a `persistentVolumeClaim` in the Kubernetes part (a placeholder claim of
//!   the same name, or a StatefulSet's volumeClaimTemplate), owned by the user through the
//!   pod's `fsGroup`;
//! - capabilities: all dropped; `NET_BIND_SERVICE` added when a port below 1024 is exposed and
//!   the user is not root; plus the profile's `[runtime] capabilities`;
//! - `allowPrivilegeEscalation: false` (`no-new-privileges`) only when no setuid/setgid file or
//!   file capability is left; otherwise true, and a note says which file;
//! - the user as numbers, a name resolved through the image's `/etc/passwd` (and `/etc/group`).
//!
//! Owns: the contract's derivation and its JSON and YAML forms. Must not: do I/O or change the
//! image.

use crate::fs::FinalFs;
use crate::layer::tar::Kind;
use crate::profile::RuntimeRules;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// How a contract file is written (`--contract-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Json,
    Yaml,
}

/// The manifest annotation holding the contract as compact JSON.
pub const ANNOTATION: &str = "dev.harden.contract";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    pub security_context: SecurityContext,
    /// The pod-level part, when a volume needs it: `fsGroup`, so the user owns its data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    pub volume_mounts: Vec<VolumeMount>,
    pub volumes: Vec<Volume>,
    pub docker_run_args: Vec<String>,
    /// Why a part of the contract is weaker than the default (a root user, setuid files left).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    pub run_as_user: u64,
    pub run_as_group: u64,
    pub run_as_non_root: bool,
    pub read_only_root_filesystem: bool,
    pub allow_privilege_escalation: bool,
    pub capabilities: Capabilities,
    pub seccomp_profile: SeccompProfile,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    pub fs_group: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub drop: Vec<String>,
    pub add: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeccompProfile {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    /// Scratch: `/tmp` and `[runtime] writable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<serde_json::Map<String, Value>>,
    /// Data: a `VOLUME` of the image (a claim of this name, to be created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<Claim>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub claim_name: String,
}

/// The config's `VOLUME`s but `/tmp` (always scratch): persistent data in the contract.
pub fn persistent_volumes(config: &Value) -> Vec<String> {
    let volumes: BTreeSet<String> = config["config"]["Volumes"]
        .as_object()
        .map(|m| m.keys().filter_map(|k| clean_dir(k)).collect())
        .unwrap_or_default();
    volumes.into_iter().filter(|v| v != "/tmp").collect()
}

/// What keeps a contract from being met: for `check` (see `crate::audit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Obstacle {
    /// The user is root (uid 0), named as in the config.
    RootUser(String),
    /// A setuid/setgid file or one with file capabilities (canonical path).
    Escalation(String),
    /// A user or group name not found in the image's account files.
    UnknownUser(String),
}

/// Derive the contract of the image whose final filesystem is `fs` and config `config`.
pub fn derive(fs: &FinalFs, config: &Value, runtime: &RuntimeRules) -> (Contract, Vec<Obstacle>) {
    let mut notes = Vec::new();
    let mut obstacles = Vec::new();
    let raw_user = config["config"]["User"].as_str().unwrap_or("").trim().to_string();
    let (uid, gid) = match resolve_user(fs, &raw_user) {
        Ok(ids) => ids,
        Err(name) => {
            notes.push(format!("user `{name}` is not in the image's account files; assumed root"));
            obstacles.push(Obstacle::UnknownUser(name));
            (0, 0)
        }
    };
    if uid == 0 {
        let shown = if raw_user.is_empty() { "not set".to_string() } else { format!("`{raw_user}`") };
        notes.push(format!("the user ({shown}) is root: runAsNonRoot cannot be true"));
        obstacles.push(Obstacle::RootUser(raw_user.clone()));
    }

    // Scratch: /tmp and the profile's writable paths, each once, /tmp first; data: the volumes.
    let data = persistent_volumes(config);
    let mut writable = vec!["/tmp".to_string()];
    for p in runtime.writable.iter() {
        if !writable.contains(p) && !data.contains(p) {
            writable.push(p.clone());
        }
    }
    let mut names = BTreeSet::new();
    let mut volume_mounts = Vec::new();
    let mut vols = Vec::new();
    for p in &writable {
        let name = volume_name(p, &names);
        names.insert(name.clone());
        volume_mounts.push(VolumeMount { name: name.clone(), mount_path: p.clone() });
        vols.push(Volume { name, empty_dir: Some(serde_json::Map::new()), persistent_volume_claim: None });
    }
    let mut data_names = Vec::new();
    for p in &data {
        let name = volume_name(p, &names);
        names.insert(name.clone());
        volume_mounts.push(VolumeMount { name: name.clone(), mount_path: p.clone() });
        vols.push(Volume {
            name: name.clone(),
            empty_dir: None,
            persistent_volume_claim: Some(Claim { claim_name: name.clone() }),
        });
        notes.push(format!(
            "VOLUME {p} is data: a persistentVolumeClaim `{name}` (create it, or use a volumeClaimTemplate), \
             `docker run -v {name}:{p}`"
        ));
        data_names.push(name);
    }

    // Capabilities.
    let mut add: BTreeSet<String> = runtime.capabilities.iter().cloned().collect();
    let low_port = config["config"]["ExposedPorts"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| k.split('/').next().and_then(|p| p.parse::<u32>().ok()))
        .find(|p| *p < 1024);
    if let (Some(port), true) = (low_port, uid != 0) {
        add.insert("NET_BIND_SERVICE".into());
        notes.push(format!("port {port} is below 1024: NET_BIND_SERVICE added"));
    }

    // Privilege escalation: only impossible to need when no file can grant privileges.
    let escalating: Vec<String> = fs
        .iter()
        .filter(|(_, _, e)| e.kind == Kind::File && (e.mode & 0o6000 != 0 || e.caps))
        .map(|(p, _, _)| format!("/{p}"))
        .collect();
    let allow_escalation = !escalating.is_empty();
    if let Some(first) = escalating.first() {
        notes.push(format!(
            "{first}{} is setuid/setgid or has file capabilities: allowPrivilegeEscalation stays true",
            match escalating.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            }
        ));
        obstacles.extend(escalating.iter().map(|p| Obstacle::Escalation(p.clone())));
    }

    let mut args = vec!["--user".to_string(), format!("{uid}:{gid}"), "--read-only".into()];
    for p in &writable {
        // A tmpfs takes the mode of the directory it covers: the user's own, unless /tmp (1777).
        let owned = uid != 0 && p != "/tmp";
        args.extend(["--tmpfs".to_string(), if owned { format!("{p}:uid={uid},gid={gid}") } else { p.clone() }]);
    }
    for (p, name) in data.iter().zip(&data_names) {
        args.extend(["-v".to_string(), format!("{name}:{p}")]);
    }
    args.extend(["--cap-drop".to_string(), "ALL".into()]);
    for c in &add {
        args.extend(["--cap-add".to_string(), c.clone()]);
    }
    if !allow_escalation {
        args.extend(["--security-opt".to_string(), "no-new-privileges".into()]);
    }
    let contract = Contract {
        security_context: SecurityContext {
            run_as_user: uid,
            run_as_group: gid,
            run_as_non_root: uid != 0,
            read_only_root_filesystem: true,
            allow_privilege_escalation: allow_escalation,
            capabilities: Capabilities { drop: vec!["ALL".into()], add: add.into_iter().collect() },
            seccomp_profile: SeccompProfile { kind: "RuntimeDefault".into() },
        },
        pod_security_context: (!data.is_empty() && uid != 0).then_some(PodSecurityContext { fs_group: gid }),
        volume_mounts,
        volumes: vols,
        docker_run_args: args,
        notes,
    };
    (contract, obstacles)
}

/// `user[:group]` as numbers: digits as they are, names through `/etc/passwd` and
/// `/etc/group`; no group means the user's primary group. `Err(name)` for a name not found.
fn resolve_user(fs: &FinalFs, user: &str) -> Result<(u64, u64), String> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = account_file(fs, "etc/passwd");
    let (uid, primary) = match u.parse::<u64>() {
        Ok(n) => (n, lookup(&passwd, 2, |f| f[2] == u).and_then(|f| f[3].parse().ok())),
        Err(_) => {
            let f = lookup(&passwd, 3, |f| f[0] == u).ok_or_else(|| u.to_string())?;
            (f[2].parse().map_err(|_| u.to_string())?, f[3].parse().ok())
        }
    };
    let gid = match g {
        None => primary.unwrap_or(uid),
        Some(g) => match g.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                let group = account_file(fs, "etc/group");
                let f = lookup(&group, 2, |f| f[0] == g).ok_or_else(|| g.to_string())?;
                f[2].parse().map_err(|_| g.to_string())?
            }
        },
    };
    Ok((uid, gid))
}

fn account_file(fs: &FinalFs, path: &str) -> String {
    fs.prefix(path).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
}

/// The `:`-separated fields of the first line with more than `min` fields matching `pred`.
fn lookup(text: &str, min: usize, pred: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    text.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() > min && pred(f))
}

fn clean_dir(p: &str) -> Option<String> {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    (!parts.is_empty() && !parts.contains(&"..")).then(|| format!("/{}", parts.join("/")))
}

/// A DNS-1123 label for the volume of `path` (`/var/cache/nginx` → `var-cache-nginx`), unique
/// among `taken`.
fn volume_name(path: &str, taken: &BTreeSet<String>) -> String {
    let mut base: String =
        path.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    base = base.trim_matches('-').to_string();
    while base.contains("--") {
        base = base.replace("--", "-");
    }
    base.truncate(56);
    let base = base.trim_end_matches('-').to_string();
    let base = if base.is_empty() { "vol".to_string() } else { base };
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

impl Contract {
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => self.to_json_pretty(),
            Format::Yaml => self.to_yaml(),
        }
    }

    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// YAML for this fixed shape (block style, strings double-quoted as JSON, which YAML reads).
    pub fn to_yaml(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        let mut out = String::new();
        yaml(&v, 0, &mut out);
        out
    }
}

fn yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::Object(o) if o.is_empty() => out.push_str(&format!("{pad}{k}: {{}}\n")),
                    Value::Array(a) if a.is_empty() => out.push_str(&format!("{pad}{k}: []\n")),
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        yaml(x, indent + 2, out);
                    }
                    s => out.push_str(&format!("{pad}{k}: {s}\n")),
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                match x {
                    Value::Object(_) => {
                        // The first key on the dash line, the rest aligned under it.
                        let mut inner = String::new();
                        yaml(x, indent + 2, &mut inner);
                        let inner = inner.replacen(&format!("{pad}  "), &format!("{pad}- "), 1);
                        out.push_str(&inner);
                    }
                    s => out.push_str(&format!("{pad}- {s}\n")),
                }
            }
        }
        s => out.push_str(&format!("{pad}{s}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tests::{entry, layer};
    use crate::layer::tar::Kind;

    fn fs_with(extra: Vec<crate::scan::EntryInfo>) -> FinalFs {
        let mut passwd = entry("etc/passwd", Kind::File, None);
        passwd.prefix = Some(
            b"root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n".to_vec().into(),
        );
        let mut group = entry("etc/group", Kind::File, None);
        group.prefix = Some(b"root:x:0:\nnonroot:x:65532:\nweb:x:33:\n".to_vec().into());
        let mut entries = vec![passwd, group, entry("usr/bin/app", Kind::File, None)];
        entries.extend(extra);
        FinalFs::build(vec![layer(entries)])
    }

    fn cfg(v: Value) -> Value {
        serde_json::json!({ "config": v })
    }

    #[test]
    fn the_default_contract_has_the_documented_shape() {
        let (c, obstacles) =
            derive(&fs_with(vec![]), &cfg(serde_json::json!({"User": "65532:65532"})), &RuntimeRules::default());
        assert!(obstacles.is_empty());
        let want = serde_json::json!({
          "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": true,
            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": []}, "seccompProfile": {"type": "RuntimeDefault"}},
          "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
          "volumes": [{"name": "tmp", "emptyDir": {}}],
          "dockerRunArgs": ["--user", "65532:65532", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        });
        assert_eq!(serde_json::from_str::<Value>(&c.to_json_pretty()).unwrap(), want);
        // Key order as documented (serde_json preserves it).
        assert!(c.to_json_compact().starts_with(r#"{"securityContext":{"runAsUser":65532,"runAsGroup""#));
    }

    #[test]
    fn names_volumes_ports_capabilities_and_setuid_files_shape_it() {
        let mut su = entry("usr/bin/su", Kind::File, None);
        su.mode = 0o4755;
        let fs = fs_with(vec![su]);
        let config = cfg(serde_json::json!({
            "User": "nonroot:web",
            "Volumes": {"/var/lib/data/": {}, "/tmp": {}},
            "ExposedPorts": {"80/tcp": {}, "8080/tcp": {}},
        }));
        let rt = RuntimeRules { writable: vec!["/var/cache/nginx".into()], capabilities: vec!["NET_RAW".into()] };
        let (c, obstacles) = derive(&fs, &config, &rt);
        assert_eq!((c.security_context.run_as_user, c.security_context.run_as_group), (65532, 33));
        let paths: Vec<&str> = c.volume_mounts.iter().map(|m| m.mount_path.as_str()).collect();
        // Scratch first (emptyDir), then data (a claim of the volume's name, fsGroup the group).
        assert_eq!(paths, ["/tmp", "/var/cache/nginx", "/var/lib/data"]);
        let names: Vec<&str> = c.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["tmp", "var-cache-nginx", "var-lib-data"]);
        let json: Value = serde_json::from_str(&c.to_json_pretty()).unwrap();
        assert_eq!(json["volumes"][1], serde_json::json!({"name": "var-cache-nginx", "emptyDir": {}}));
        assert_eq!(
            json["volumes"][2],
            serde_json::json!({"name": "var-lib-data", "persistentVolumeClaim": {"claimName": "var-lib-data"}})
        );
        assert_eq!(json["podSecurityContext"], serde_json::json!({"fsGroup": 33}));
        assert!(c.notes.iter().any(|n| n.contains("VOLUME /var/lib/data is data")), "{:?}", c.notes);
        assert_eq!(persistent_volumes(&config), ["/var/lib/data"]);
        assert_eq!(c.security_context.capabilities.add, ["NET_BIND_SERVICE", "NET_RAW"]);
        assert!(c.security_context.allow_privilege_escalation);
        assert!(!c.docker_run_args.contains(&"no-new-privileges".to_string()));
        assert!(c.notes.iter().any(|n| n.contains("/usr/bin/su")), "{:?}", c.notes);
        assert_eq!(obstacles, [Obstacle::Escalation("/usr/bin/su".into())]);
        let args = c.docker_run_args.join(" ");
        assert!(
            args.contains(
                "--tmpfs /tmp --tmpfs /var/cache/nginx:uid=65532,gid=33 -v var-lib-data:/var/lib/data --cap-drop ALL \
                 --cap-add NET_BIND_SERVICE --cap-add NET_RAW"
            ),
            "{args}"
        );

        // Root: no NET_BIND_SERVICE, runAsNonRoot false, an obstacle; unknown names are too.
        let (c, obstacles) = derive(
            &fs_with(vec![]),
            &cfg(serde_json::json!({"ExposedPorts": {"80/tcp": {}}})),
            &RuntimeRules::default(),
        );
        assert!(!c.security_context.run_as_non_root);
        assert!(c.security_context.capabilities.add.is_empty());
        assert_eq!(obstacles, [Obstacle::RootUser(String::new())]);
        let (_, obstacles) =
            derive(&fs_with(vec![]), &cfg(serde_json::json!({"User": "ghost"})), &RuntimeRules::default());
        assert!(obstacles.contains(&Obstacle::UnknownUser("ghost".into())));
        let (c, _) = derive(&fs_with(vec![]), &cfg(serde_json::json!({"User": "nonroot"})), &RuntimeRules::default());
        assert_eq!((c.security_context.run_as_user, c.security_context.run_as_group), (65532, 65532));
    }

    #[test]
    fn yaml_form_reads_like_the_json() {
        let (c, _) = derive(&fs_with(vec![]), &cfg(serde_json::json!({"User": "65532"})), &RuntimeRules::default());
        let y = c.to_yaml();
        assert!(y.starts_with("securityContext:\n  runAsUser: 65532\n"), "{y}");
        assert!(y.contains("  capabilities:\n    drop:\n      - \"ALL\"\n    add: []\n"), "{y}");
        assert!(y.contains("volumeMounts:\n  - name: \"tmp\"\n    mountPath: \"/tmp\"\n"), "{y}");
        assert!(y.contains("volumes:\n  - name: \"tmp\"\n    emptyDir: {}\n"), "{y}");
        assert!(y.contains("dockerRunArgs:\n  - \"--user\"\n  - \"65532:65532\"\n"), "{y}");
    }
}
