//! Batch: many rebuilds from one TOML job list — the registry-mirroring and CI-promote case —
//! with bounded concurrency, a stable shard of the list per worker (`--shard I/N`, for the pods
//! of a Kubernetes indexed Job), and one rewrite cache shared by every job, so a base layer
//! common to many images is rewritten once.
//!
//! Owns: job files, sharding, scheduling, the batch report. Must not: rebuild anything itself
//! (each job is a [`pipeline::rebuild`]).

use crate::cache::RewriteCache;
use crate::digest::Digest;
use crate::layer::codec::OutputCodec;
use crate::pipeline::{self, RebuildOptions};
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::transport::NetOptions;
use crate::Failure;
use anyhow::{anyhow, Context, Result};
use futures_util::{stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default)]
    profiles: Vec<String>,
    sign_key: Option<PathBuf>,
    compression: Option<String>,
    /// As `rebuild --recompress`.
    #[serde(default)]
    recompress: bool,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub source: String,
    pub destination: String,
    pub profiles: Option<Vec<String>>,
    pub sign_key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default, rename = "job")]
    jobs: Vec<Job>,
}

/// `I/N`: this worker's share of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard `{s}`: expected I/N with 0 <= I < N (e.g. 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// A job belongs to the shard its (source, destination) hashes to: stable when jobs are
    /// added, removed or reordered, unlike position-based splits.
    pub fn owns(&self, job: &Job) -> bool {
        let d = Digest::of(format!("{}\0{}", job.source, job.destination).as_bytes());
        let n = u64::from_str_radix(&d.hex()[..16], 16).unwrap_or(0);
        n % self.count == self.index
    }
}

pub struct BatchOptions {
    pub file: PathBuf,
    pub jobs: usize,
    pub shard: Option<Shard>,
    pub keep_going: bool,
    pub report: Option<PathBuf>,
    pub cache: Arc<RewriteCache>,
    pub net: NetOptions,
    pub quiet: bool,
}

fn load(path: &Path) -> Result<(Defaults, Vec<Job>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the job file", path.display()))?;
    let f: JobFile = toml::from_str(&text).map_err(|e| {
        let (line, col) = e.span().map(|sp| crate::profile::line_col(&text, sp.start)).unwrap_or((1, 1));
        Failure::Usage(format!("{}:{line}:{col}: {}", path.display(), e.message().trim().replace('\n', " ")))
    })?;
    for (i, j) in f.jobs.iter().enumerate() {
        for r in [&j.source, &j.destination] {
            ImageRef::parse(r).map_err(|e| Failure::Usage(format!("{}: job {}: {e}", path.display(), i + 1)))?;
        }
    }
    Ok((f.defaults, f.jobs))
}

/// Run the batch; prints one line per job on stdout. Exit: 0 all done, 3 when every failure is
/// a policy result, 1 otherwise.
pub async fn run(o: BatchOptions) -> Result<()> {
    let (defaults, all) = load(&o.file)?;
    let mine: Vec<(usize, Job)> =
        all.into_iter().enumerate().filter(|(_, j)| o.shard.is_none_or(|s| s.owns(j))).collect();
    let codec: OutputCodec = defaults.compression.as_deref().unwrap_or("gzip:6").parse().map_err(Failure::Usage)?;
    // Keys are loaded (and their passwords asked for) once, before any work.
    let mut keys: HashMap<PathBuf, Arc<crate::sign::SigningKey>> = HashMap::new();
    for (_, j) in &mine {
        if let Some(k) = j.sign_key.as_ref().or(defaults.sign_key.as_ref()) {
            if !keys.contains_key(k) {
                keys.insert(k.clone(), Arc::new(crate::signing::load_signing_key(k)?));
            }
        }
    }
    let stop = AtomicBool::new(false);
    // One spool and scan memo for the whole batch: a shared base layer is fetched and scanned once.
    let scans = Arc::new(pipeline::ScanShare::new()?);
    let progress = Progress::new(o.quiet);
    let total = mine.len();
    let results: Vec<Value> = stream::iter(mine)
        .map(|(i, job)| {
            let (defaults, keys, stop, progress, o, scans) = (&defaults, &keys, &stop, &progress, &o, &scans);
            async move {
                let label = format!("job {} {} -> {}", i + 1, job.source, job.destination);
                if stop.load(Ordering::SeqCst) {
                    println!("skipped {} (an earlier job failed; --keep-going runs the rest)", job.source);
                    return json!({"job": i + 1, "source": job.source, "destination": job.destination, "status": "skipped"});
                }
                progress.line(&format!("{label}: started"));
                let outcome = run_job(o, defaults, keys, &job, codec, scans).await;
                match outcome {
                    Ok((line, report)) => {
                        println!("ok {} {line}", job.source);
                        progress.line(&format!("{label}: done"));
                        json!({"job": i + 1, "source": job.source, "destination": job.destination, "status": "ok", "result": line, "report": report})
                    }
                    Err(e) => {
                        let policy = matches!(e.downcast_ref::<Failure>(), Some(Failure::Policy(_)));
                        let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
                        let msg = msg.join(": ").replace('\n', " ");
                        println!("failed {} {msg}", job.source);
                        if !o.keep_going {
                            stop.store(true, Ordering::SeqCst);
                        }
                        json!({"job": i + 1, "source": job.source, "destination": job.destination, "status": if policy { "refused" } else { "failed" }, "error": msg})
                    }
                }
            }
        })
        .buffer_unordered(o.jobs.max(1))
        .collect()
        .await;
    if let Some(bar) = progress.clone_bar() {
        bar.finish_and_clear();
    }
    let count = |s: &str| results.iter().filter(|r| r["status"] == s).count();
    let (ok, refused, failed, skipped) = (count("ok"), count("refused"), count("failed"), count("skipped"));
    if !o.quiet {
        eprintln!(
            "harden: batch: {total} jobs in this shard: {ok} ok, {refused} refused, {failed} failed, {skipped} skipped"
        );
    }
    if let Some(p) = &o.report {
        let mut sorted = results.clone();
        sorted.sort_by_key(|r| r["job"].as_u64());
        let report = json!({"harden_version": env!("CARGO_PKG_VERSION"), "file": o.file.display().to_string(),
            "shard": o.shard.map(|s| format!("{}/{}", s.index, s.count)), "jobs": sorted});
        crate::transport::layout::write_atomic(p, &serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("--report {}", p.display()))?;
    }
    match (failed, refused) {
        (0, 0) => Ok(()),
        (0, _) => Err(Failure::Policy(format!("{refused} of {total} jobs refused by the guard")).into()),
        _ => Err(anyhow!("{} of {total} jobs failed", failed + refused)),
    }
}

async fn run_job(
    o: &BatchOptions,
    defaults: &Defaults,
    keys: &HashMap<PathBuf, Arc<crate::sign::SigningKey>>,
    job: &Job,
    codec: OutputCodec,
    scans: &Arc<pipeline::ScanShare>,
) -> Result<(String, Value)> {
    let key = job.sign_key.as_ref().or(defaults.sign_key.as_ref()).and_then(|k| keys.get(k)).cloned();
    let opts = RebuildOptions {
        src: ImageRef::parse(&job.source).map_err(Failure::Usage)?,
        dst: ImageRef::parse(&job.destination).map_err(Failure::Usage)?,
        profiles: job.profiles.clone().unwrap_or_else(|| defaults.profiles.clone()),
        report: None,
        digest_file: None,
        dry_run: false,
        allow_broken: false,
        codec,
        recompress: defaults.recompress,
        jobs: 2,
        net: o.net.clone(),
        limits: crate::layer::Limits::default().with_cancel(&crate::spool::INTERRUPTED),
        progress: Progress::Quiet,
        sign_key: key,
        base_name: None,
        platforms: Vec::new(),
        cache: Some(Arc::clone(&o.cache)),
        scans: Some(Arc::clone(scans)),
    };
    pipeline::rebuild(&opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(s: &str) -> Job {
        Job {
            source: format!("r.example/{s}:1"),
            destination: format!("m.example/{s}:1"),
            profiles: None,
            sign_key: None,
        }
    }

    #[test]
    fn shards_partition_the_list_stably() {
        let jobs: Vec<Job> = (0..200).map(|i| job(&format!("img{i}"))).collect();
        let shards: Vec<Shard> = (0..4).map(|i| format!("{i}/4").parse().unwrap()).collect();
        for j in &jobs {
            assert_eq!(shards.iter().filter(|s| s.owns(j)).count(), 1, "every job in exactly one shard");
        }
        let sizes: Vec<usize> = shards.iter().map(|s| jobs.iter().filter(|j| s.owns(j)).count()).collect();
        assert!(sizes.iter().all(|&n| n > 25), "roughly even: {sizes:?}");
        // Adding a job does not move the others.
        let before: Vec<bool> = jobs.iter().map(|j| shards[1].owns(j)).collect();
        let mut more = jobs.clone();
        more.insert(0, job("new"));
        let after: Vec<bool> = more[1..].iter().map(|j| shards[1].owns(j)).collect();
        assert_eq!(before, after);
        assert!("4/4".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn job_files_are_validated_with_positions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("jobs.toml");
        std::fs::write(&p, "[defaults]\nprofiles = [\"strict\"]\n\n[[job]]\nsource = \"a.example/x:1\"\ndestination = \"b.example/x:1\"\nbogus = 1\n").unwrap();
        let e = load(&p).err().unwrap().to_string();
        assert!(e.contains("jobs.toml:7:1") && e.contains("bogus"), "{e}");
        std::fs::write(&p, "[[job]]\nsource = \"a.example/X:1\"\ndestination = \"b.example/x:1\"\n").unwrap();
        assert!(load(&p).err().unwrap().to_string().contains("job 1"));
        std::fs::write(&p, "[[job]]\nsource = \"a.example/x:1\"\ndestination = \"b.example/x:1\"\n").unwrap();
        assert_eq!(load(&p).unwrap().1.len(), 1);
    }
}
