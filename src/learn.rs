//! `harden learn IMAGE`: run the source under runc over an overlay root and probe it
//! ([`crate::verify_run::observe`]), then say what a profile needs for it — `[runtime] writable`
//! (the directories the run wrote, collapsed to their roots), `[verify]` (the probe that
//! passed), `[config] user` when the entrypoint dropped privileges — as a snippet to review.
//! Nothing is applied.
//!
//! Owns: fetching the image for the run and turning an observation into the snippet. Must
//! not: change an image or a profile.

use crate::source::{self, walk};
use crate::transport::{Endpoint, NetOptions};
use crate::verify_run::observe::{Change, Observation};
use crate::verify_run::{Bytes, Image, Layer};
use crate::Failure;
use anyhow::Result;
use serde_json::Value;

pub struct LearnOptions {
    pub image: crate::reference::ImageRef,
    pub profiles: Vec<String>,
    pub net: NetOptions,
    pub progress: crate::progress::Progress,
}

/// Fetch, run, observe; the snippet.
pub async fn learn(o: LearnOptions) -> Result<String> {
    let profile = crate::profile::load(&o.profiles).map_err(|e| Failure::Usage(e.to_string()))?;
    let src = Endpoint::open(&o.image, &o.net)?;
    let share = source::ScanShare::new()?;
    let w = walk::walk(&src, &o.image).await?;
    if w.index.is_some() {
        return Err(
            Failure::Usage(format!("{} is a multi-platform index: name one platform by digest", o.image)).into()
        );
    }
    let (view, config) = source::image_config(&src, &o.image, &w.top).await?;
    let mut image = Image { config: serde_json::to_vec(&config)?, layers: Vec::new() };
    for l in &view.layers {
        let path = share.blob(&src, l).await?;
        image.layers.push(Layer {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
            bytes: Bytes::File(path),
        });
    }
    o.progress.line(&format!("learn: running {} under runc (overlay root)", o.image));
    let dir = share.spool.path().join("learn");
    let rules = profile.verify.clone();
    let obs = tokio::task::spawn_blocking(move || crate::verify_run::observe::observe(&image, &dir, &rules)).await??;
    Ok(snippet(&o.image.to_string(), &obs, &config))
}

/// Directories never offered whole: a write there is named in a note instead.
const TOO_WIDE: &[&str] = &["/", "/etc", "/usr", "/var", "/var/lib", "/var/cache", "/opt", "/home", "/root", "/srv"];
/// Scratch everywhere or not files: not listed.
const IGNORED: &[&str] = &["/tmp", "/var/tmp", "/dev", "/proc", "/sys"];

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

fn under(p: &str, root: &str) -> bool {
    p == root || (p.starts_with(root) && p.as_bytes().get(root.len()) == Some(&b'/')) || root == "/"
}

/// The writable roots of what a run changed, and notes for what is not offered.
pub fn writable_roots(changes: &[Change], volumes: &[String]) -> (Vec<String>, Vec<String>) {
    let created: std::collections::HashSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Created { path, dir: true } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    let mut roots: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for c in changes {
        let (dir, what) = match c {
            Change::Created { path, dir: true } => (path.as_str(), path),
            Change::Created { path, dir: false } | Change::Modified { path, dir: false } | Change::Deleted { path } => {
                (parent(path), path)
            }
            Change::Modified { dir: true, .. } => continue,
        };
        if IGNORED.iter().any(|i| under(dir, i)) || volumes.iter().any(|v| under(dir, v)) {
            continue;
        }
        // The topmost directory the run created, then its parent when that is specific enough
        // (/var/lib/nginx for /var/lib/nginx/body).
        let mut d = dir;
        while created.contains(parent(d)) {
            d = parent(d);
        }
        if created.contains(d) && d.matches('/').count() >= 3 && !TOO_WIDE.contains(&parent(d)) {
            d = parent(d);
        }
        if TOO_WIDE.contains(&d) {
            notes.push(format!(
                "wrote {what}: {d} is too wide to hand over; keep it out of the image's path or mount it"
            ));
            continue;
        }
        if !roots.iter().any(|r| r == d) {
            roots.push(d.to_string());
        }
    }
    let all = roots.clone();
    roots.retain(|r| !all.iter().any(|o| o != r && under(r, o)));
    roots.sort();
    (roots, notes)
}

/// The snippet for `obs`, a run of `image` whose config is `config`.
pub fn snippet(image: &str, obs: &Observation, config: &Value) -> String {
    let volumes = crate::contract::persistent_volumes(config);
    let (roots, mut notes) = writable_roots(&obs.changes, &volumes);
    let mut out = format!("# harden learn {image}: what a run of the source did — review before use\n");
    match &obs.probe {
        Ok(what) => out.push_str(&format!("# probe passed: {what}\n")),
        Err(why) => {
            out.push_str(&format!("# probe FAILED: {why}\n"));
            for l in &obs.last_lines {
                out.push_str(&format!("#   | {l}\n"));
            }
        }
    }
    if !obs.listening.is_empty() {
        let ports: Vec<String> = obs.listening.iter().map(|p| format!("{p}/tcp")).collect();
        out.push_str(&format!("# listened on {}\n", ports.join(", ")));
    }
    for p in obs.listening.iter().filter(|p| **p < 1024) {
        notes.push(format!("listens on {p}/tcp, below 1024: the contract adds NET_BIND_SERVICE for a non-root user"));
    }
    if let Some((argv0, interp)) = &obs.shebang {
        if interp.contains("sh") {
            notes.push(format!(
                "the entrypoint {argv0} is a `{interp}` script: it needs a shell (-p strict refuses it)"
            ));
        }
    }
    for v in &volumes {
        notes.push(format!("VOLUME {v}: data, a persistent volume in the contract (not listed as writable)"));
    }
    for n in &notes {
        out.push_str(&format!("# note: {n}\n"));
    }
    let config_user = config["config"]["User"].as_str().unwrap_or("");
    if let Some((uid, gid)) = obs.ran_as.filter(|(u, _)| *u != 0) {
        if config_user.is_empty() || config_user == "0" || config_user.starts_with("root") {
            let name = obs
                .passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 3 && f[2] == uid.to_string())
                .map(|f| f[0].to_string())
                .unwrap_or_else(|| format!("u{uid}"));
            out.push_str(&format!(
                "\n# the entrypoint dropped privileges: the service ran as {name} ({uid}:{gid})\n[config]\nuser = \"{name}\"\nuid = {uid}\ngid = {gid}\n"
            ));
        }
    }
    if !roots.is_empty() {
        let list: Vec<String> = roots.iter().map(|r| format!("{r:?}")).collect();
        out.push_str(&format!("\n[runtime]\nwritable = [{}]\n", list.join(", ")));
    }
    if obs.probe.is_ok() {
        out.push_str("\n[verify]\n");
        if let Some(p) = obs.http.first() {
            out.push_str(&format!("http = \"http://localhost:{p}/\"\n"));
        } else if !obs.listening.is_empty() {
            let ports: Vec<String> = obs.listening.iter().map(u16::to_string).collect();
            out.push_str(&format!("tcp = [{}]\n", ports.join(", ")));
        } else {
            out.push_str("seconds = 5\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_collapse_to_their_roots() {
        let c = |p: &str, dir: bool| Change::Created { path: p.into(), dir };
        let changes = vec![
            Change::Modified { path: "/var".into(), dir: true },
            c("/var/cache/nginx", true),
            c("/var/lib/nginx/body", true),
            c("/var/lib/nginx/proxy", true),
            c("/var/log/nginx/error.log", false),
            c("/run/nginx.pid", false),
            c("/tmp/x", false),
            c("/var/lib/db/db.pid", false),
            c("/etc/motd.new", false),
        ];
        let (roots, notes) = writable_roots(&changes, &["/var/lib/db".to_string()]);
        assert_eq!(roots, ["/run", "/var/cache/nginx", "/var/lib/nginx", "/var/log/nginx"]);
        assert!(notes[0].contains("/etc/motd.new"), "{notes:?}");
    }
}
