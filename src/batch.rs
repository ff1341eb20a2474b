//! Batch: many rebuilds from one TOML job list — the registry-mirroring and CI-promote case —
//! with bounded concurrency, a stable shard of the list per worker (`--shard I/N`, for the pods
//! of a Kubernetes indexed Job), and one rewrite cache shared by every job, so a base layer
//! common to many images is rewritten once.
//!
//! Owns: job files, sharding, scheduling, the batch report. Must not: rebuild anything itself
//! (each job is a [`pipeline::rebuild`]), or print (the CLI prints each job's line).

use crate::cache::RewriteCache;
use crate::digest::Digest;
use crate::layer::codec::OutputCodec;
use crate::pipeline::{self, RebuildOptions};
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::report::{BatchReport, JobReport, JobStatus};
use crate::source::ScanShare;
use crate::transport::locations::Locations;
use crate::transport::NetOptions;
use crate::Failure;
use anyhow::{anyhow, Context, Result};
use futures_util::{stream, StreamExt};
use serde::Deserialize;
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
    /// As `rebuild --require-signature` (public key files; any of them).
    #[serde(default)]
    require_signature: Vec<PathBuf>,
    /// As `rebuild --require-identity[-regexp]`, `--require-issuer[-regexp]`, `--trusted-root`.
    #[serde(default)]
    require_identity: Vec<String>,
    #[serde(default)]
    require_identity_regexp: Vec<String>,
    #[serde(default)]
    require_issuer: Vec<String>,
    #[serde(default)]
    require_issuer_regexp: Vec<String>,
    trusted_root: Option<PathBuf>,
    /// As `rebuild --attest`, `--bundle` (need a sign_key).
    #[serde(default)]
    attest: bool,
    #[serde(default)]
    bundle: bool,
    /// As `rebuild --verify-run`.
    #[serde(default)]
    verify_run: bool,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub source: String,
    pub destination: String,
    pub profiles: Option<Vec<String>>,
    pub sign_key: Option<PathBuf>,
    /// Replaces `[defaults]`'s `require_signature` for this job.
    pub require_signature: Option<Vec<PathBuf>>,
    /// Any of these replaces all five of `[defaults]`'s keyless gate for this job.
    pub require_identity: Option<Vec<String>>,
    pub require_identity_regexp: Option<Vec<String>>,
    pub require_issuer: Option<Vec<String>>,
    pub require_issuer_regexp: Option<Vec<String>>,
    pub trusted_root: Option<PathBuf>,
    pub attest: Option<bool>,
    pub bundle: Option<bool>,
    /// Replaces `[defaults]`'s `verify_run` for this job.
    pub verify_run: Option<bool>,
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
    /// Images rebuilt at once; the CPU budget is shared among them.
    pub jobs: usize,
    pub shard: Option<Shard>,
    pub keep_going: bool,
    pub report: Option<PathBuf>,
    pub cache: Arc<RewriteCache>,
    pub net: NetOptions,
    pub progress: Progress,
    /// What every job starts from (each job's file entries override its profiles, key,
    /// compression and recompress).
    pub rebuild: RebuildOptions,
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

/// The signing keys a batch's jobs name (in this shard), loaded once before any work; `ask`
/// gives the password of an encrypted key when the environment has none.
pub fn signing_keys(
    o: &BatchOptions,
    mut ask: impl FnMut(&Path) -> Result<String>,
) -> Result<HashMap<PathBuf, Arc<crate::sign::SigningKey>>> {
    let (defaults, all) = load(&o.file)?;
    let mut keys = HashMap::new();
    for j in all.iter().filter(|j| o.shard.is_none_or(|s| s.owns(j))) {
        if let Some(k) = j.sign_key.as_ref().or(defaults.sign_key.as_ref()) {
            if !keys.contains_key(k) {
                let key = crate::sign::keyfile::load_signing_key(k, || ask(k))?;
                keys.insert(k.clone(), Arc::new(key));
            }
        }
    }
    Ok(keys)
}

/// The public keys a batch's jobs require signatures by (in this shard), loaded once before
/// any work, by file.
pub fn trusted_keys(o: &BatchOptions) -> Result<HashMap<PathBuf, crate::sign::VerifyingKey>> {
    let (defaults, all) = load(&o.file)?;
    let mut keys = HashMap::new();
    for j in all.iter().filter(|j| o.shard.is_none_or(|s| s.owns(j))) {
        for k in j.require_signature.as_ref().unwrap_or(&defaults.require_signature) {
            if !keys.contains_key(k) {
                keys.insert(k.clone(), crate::sign::keyfile::load_verifying_key(k)?);
            }
        }
    }
    Ok(keys)
}

/// The keyless gate of `job`: its own keyless keys if it sets any, else `[defaults]`'. The
/// trusted root is read here, per job (it is small and bounded).
fn keyless_gate(defaults: &Defaults, job: &Job) -> Result<Option<Arc<crate::sign::keyless::Gate>>> {
    let own = job.require_identity.is_some()
        || job.require_identity_regexp.is_some()
        || job.require_issuer.is_some()
        || job.require_issuer_regexp.is_some()
        || job.trusted_root.is_some();
    let none = Vec::new();
    let (v, root) = if own {
        (
            [
                job.require_identity.as_ref().unwrap_or(&none),
                job.require_identity_regexp.as_ref().unwrap_or(&none),
                job.require_issuer.as_ref().unwrap_or(&none),
                job.require_issuer_regexp.as_ref().unwrap_or(&none),
            ],
            job.trusted_root.as_deref(),
        )
    } else {
        (
            [
                &defaults.require_identity,
                &defaults.require_identity_regexp,
                &defaults.require_issuer,
                &defaults.require_issuer_regexp,
            ],
            defaults.trusted_root.as_deref(),
        )
    };
    let gate = crate::sign::keyless::Gate::from_flags(
        v.map(Vec::as_slice),
        root,
        ["require_identity[_regexp]", "require_issuer[_regexp]"],
    )
    .map_err(|e| anyhow::anyhow!("job {}: {e:#}", job.source))?;
    Ok(gate.map(Arc::new))
}

/// Run the batch with the keys from [`signing_keys`]; `on_result` hears of each job as it ends
/// (the CLI prints a line). Exit: 0 all done, 3 when every failure is a policy result, 1
/// otherwise.
pub async fn run(
    o: BatchOptions,
    keys: HashMap<PathBuf, Arc<crate::sign::SigningKey>>,
    on_result: impl Fn(&JobReport) + Sync,
) -> Result<BatchReport> {
    let trusted = trusted_keys(&o)?;
    let (defaults, all) = load(&o.file)?;
    let mine: Vec<(usize, Job)> =
        all.into_iter().enumerate().filter(|(_, j)| o.shard.is_none_or(|s| s.owns(j))).collect();
    let codec: OutputCodec = defaults.compression.as_deref().unwrap_or("gzip:6").parse().map_err(Failure::Usage)?;
    let batch = Batch {
        // One spool and scan memo for the whole batch: a shared base layer is fetched and scanned once.
        scans: Arc::new(ScanShare::new()?.with_cache(o.cache.dir(), &o.progress)),
        locations: Arc::new(Locations::new(o.cache.dir())),
        // The jobs at once share the machine: each gets its part of the run's CPU budget.
        cpu: o.rebuild.cpu.share(o.jobs.max(1)),
        o: &o,
        defaults,
        keys,
        trusted,
        codec,
        stop: AtomicBool::new(false),
    };
    let total = mine.len();
    let jobs_bar = o.progress.counter("jobs", total as u64);
    let kept = match &o.report {
        Some(_) => Some(KeptReports::new(batch.scans.spool.path())?),
        None => None,
    };
    let mut results: Vec<JobReport> = stream::iter(mine)
        .map(|(i, job)| {
            let (batch, on_result, kept, jobs_bar) = (&batch, &on_result, &kept, &jobs_bar);
            async move {
                let r = batch.run_one(i, job).await;
                on_result(&r);
                if r.status == JobStatus::Skipped {
                    return r;
                }
                jobs_bar.inc(1);
                match kept {
                    Some(k) => k.keep(r),
                    None => JobReport { report: None, ..r },
                }
            }
        })
        .buffer_unordered(o.jobs.max(1))
        .collect()
        .await;
    results.sort_by_key(|r| r.job);
    finish(&o, results, kept.as_ref())
}

/// What every job of a batch shares: the options, the job file's defaults, the keys, the
/// scans and blob locations, and whether to stop starting jobs.
struct Batch<'a> {
    o: &'a BatchOptions,
    defaults: Defaults,
    keys: HashMap<PathBuf, Arc<crate::sign::SigningKey>>,
    trusted: HashMap<PathBuf, crate::sign::VerifyingKey>,
    codec: OutputCodec,
    cpu: crate::cpu::Budget,
    scans: Arc<ScanShare>,
    locations: Arc<Locations>,
    /// Set by a failure without `--keep-going`: the jobs not yet started are skipped.
    stop: AtomicBool,
}

impl Batch<'_> {
    /// Run job `i` (from 0): skipped after a failure without `--keep-going`, else rebuilt.
    async fn run_one(&self, i: usize, job: Job) -> JobReport {
        let label = format!("job {} {} -> {}", i + 1, job.source, job.destination);
        let mut r = JobReport {
            job: i + 1,
            source: job.source.clone(),
            destination: job.destination.clone(),
            status: JobStatus::Skipped,
            result: None,
            report: None,
            error: None,
        };
        if self.stop.load(Ordering::SeqCst) {
            return r;
        }
        let progress = &self.o.progress;
        progress.line(&format!("{label}: started"));
        let done = match self.options(&job) {
            Ok(opts) => run_job(&job, &opts).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(outcome) => {
                progress.line(&format!("{label}: done"));
                r.status = JobStatus::Ok;
                r.result = outcome.pushed;
                r.report = Some(Box::new(outcome.report));
            }
            Err(e) => {
                let policy = matches!(e.downcast_ref::<Failure>(), Some(Failure::Policy(_)));
                let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
                r.status = if policy { JobStatus::Refused } else { JobStatus::Failed };
                r.error = Some(msg.join(": ").replace('\n', " "));
                if !self.o.keep_going {
                    self.stop.store(true, Ordering::SeqCst);
                }
            }
        }
        r
    }

    /// The rebuild options of `job`: the batch's, with the job file's defaults and the job's own
    /// entries over them (its keyless gate read here: a trusted root that cannot be read fails
    /// the job).
    fn options(&self, job: &Job) -> Result<RebuildOptions> {
        let (o, defaults) = (self.o, &self.defaults);
        let key = job.sign_key.as_ref().or(defaults.sign_key.as_ref()).and_then(|k| self.keys.get(k)).cloned();
        let require_signature = job
            .require_signature
            .as_ref()
            .unwrap_or(&defaults.require_signature)
            .iter()
            .filter_map(|k| {
                self.trusted.get(k).map(|key| pipeline::TrustedKey { name: k.display().to_string(), key: key.clone() })
            })
            .collect();
        Ok(RebuildOptions {
            require_identity: keyless_gate(defaults, job)?,
            profiles: job.profiles.clone().unwrap_or_else(|| defaults.profiles.clone()),
            codec: self.codec,
            recompress: defaults.recompress,
            cpu: self.cpu,
            net: o.net.clone(),
            progress: Progress::Quiet,
            sign_key: key,
            require_signature,
            attest: job.attest.unwrap_or(defaults.attest),
            bundle: job.bundle.unwrap_or(defaults.bundle),
            verify_run: job.verify_run.unwrap_or(defaults.verify_run),
            cache: Some(Arc::clone(&o.cache)),
            scans: Some(Arc::clone(&self.scans)),
            locations: Some(Arc::clone(&self.locations)),
            ..o.rebuild.clone()
        })
    }
}

/// The batch's summary line, its report (written with `--report`), and its exit.
fn finish(o: &BatchOptions, results: Vec<JobReport>, kept: Option<&KeptReports>) -> Result<BatchReport> {
    let total = results.len();
    let count = |s: JobStatus| results.iter().filter(|r| r.status == s).count();
    let (ok, refused, failed, skipped) =
        (count(JobStatus::Ok), count(JobStatus::Refused), count(JobStatus::Failed), count(JobStatus::Skipped));
    o.progress.line(&format!(
        "batch: {total} jobs in this shard: {ok} ok, {refused} refused, {failed} failed, {skipped} skipped"
    ));
    let report = BatchReport {
        schema: crate::report::BATCH_SCHEMA,
        harden_version: env!("CARGO_PKG_VERSION"),
        file: o.file.display().to_string(),
        shard: o.shard.map(|s| format!("{}/{}", s.index, s.count)),
        jobs: results,
    };
    if let (Some(p), Some(k)) = (&o.report, kept) {
        k.write(p, &report).with_context(|| format!("--report {}", p.display()))?;
    }
    match (failed, refused) {
        (0, 0) => Ok(report),
        (0, _) => {
            Err(Failure::Policy(format!("{refused} of {total} jobs refused (by the guard or the signature gate)"))
                .into())
        }
        _ => Err(anyhow!("{} of {total} jobs failed", failed + refused)),
    }
}

/// The finished jobs' full rebuild reports, kept on disk (in the batch's spool) until the
/// batch's report is written, so that a batch's memory does not grow with its number of jobs
/// (a `strict` job's report is ~300 KiB).
struct KeptReports {
    dir: PathBuf,
}

impl KeptReports {
    fn new(spool: &Path) -> Result<KeptReports> {
        let dir = spool.join("reports");
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(KeptReports { dir })
    }

    fn path(&self, job: usize) -> PathBuf {
        self.dir.join(format!("job-{job}.json"))
    }

    /// Store `r` (pretty, as it will appear in the batch report) and return it without its
    /// rebuild report; a report that cannot be stored (a full disk) stays in memory instead.
    fn keep(&self, mut r: JobReport) -> JobReport {
        if r.report.is_some() {
            let stored = serde_json::to_vec_pretty(&r)
                .map_err(std::io::Error::other)
                .and_then(|bytes| std::fs::write(self.path(r.job), bytes));
            if stored.is_ok() {
                r.report = None;
            }
        }
        r
    }

    /// The batch's report, as `serde_json::to_vec_pretty` of the whole would write it, with
    /// each job's full report read back from its file in turn.
    fn write(&self, path: &Path, report: &BatchReport) -> Result<()> {
        crate::files::write_atomic_with(path, |w| {
            let head = serde_json::to_value(BatchReport { jobs: Vec::new(), ..report.clone() })?;
            let serde_json::Value::Object(fields) = head else { anyhow::bail!("batch report: not an object") };
            w.write_all(b"{\n")?;
            for (k, v) in fields.iter().filter(|(k, _)| k.as_str() != "jobs") {
                let v = serde_json::to_string_pretty(v)?.replace('\n', "\n  ");
                writeln!(w, "  {}: {v},", serde_json::to_string(k)?)?;
            }
            if report.jobs.is_empty() {
                w.write_all(b"  \"jobs\": []\n}")?;
                return Ok(());
            }
            w.write_all(b"  \"jobs\": [\n")?;
            for (n, r) in report.jobs.iter().enumerate() {
                let bytes = match r.report {
                    Some(_) => serde_json::to_vec_pretty(r)?,
                    None => match std::fs::read(self.path(r.job)) {
                        Ok(b) => b,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::to_vec_pretty(r)?,
                        Err(e) => return Err(anyhow!("job {}: its kept report: {e}", r.job)),
                    },
                };
                // Nested two levels deep: every line four spaces in (JSON strings hold no newline).
                for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                    if i > 0 {
                        w.write_all(b"\n")?;
                    }
                    w.write_all(b"    ")?;
                    w.write_all(line)?;
                }
                w.write_all(if n + 1 < report.jobs.len() { b",\n" } else { b"\n" })?;
            }
            w.write_all(b"  ]\n}")?;
            Ok(())
        })
    }
}

async fn run_job(job: &Job, opts: &RebuildOptions) -> Result<crate::pipeline::Outcome> {
    let src = ImageRef::parse(&job.source).map_err(Failure::Usage)?;
    let dst = ImageRef::parse(&job.destination).map_err(Failure::Usage)?;
    pipeline::rebuild(&src, &dst, opts).await
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
            require_signature: None,
            require_identity: None,
            require_identity_regexp: None,
            require_issuer: None,
            require_issuer_regexp: None,
            trusted_root: None,
            attest: None,
            bundle: None,
            verify_run: None,
        }
    }

    #[test]
    fn the_keyless_gate_comes_from_defaults_or_wholly_from_the_job() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/sign/keyless/testdata/trusted_root.json");
        let d: JobFile = toml::from_str(&format!(
            "[defaults]\nrequire_identity = [\"a@x\"]\nrequire_issuer = [\"https://i\"]\ntrusted_root = \"{root}\"\n\n[[job]]\nsource = \"a/b:1\"\ndestination = \"c/d:1\"\n\n[[job]]\nsource = \"a/b:2\"\ndestination = \"c/d:2\"\nrequire_identity_regexp = [\"^b@\"]\n"
        ))
        .unwrap();
        let g = keyless_gate(&d.defaults, &d.jobs[0]).unwrap().unwrap();
        assert_eq!(g.policy.describe(), "identity a@x, issuer https://i");
        // The job's own keys replace all of the defaults': no issuer, no root → a usage error.
        let e = keyless_gate(&d.defaults, &d.jobs[1]).unwrap_err();
        assert!(format!("{e:#}").contains("needs require_issuer"), "{e:#}");
        assert!(keyless_gate(&Defaults::default(), &job("x")).unwrap().is_none());
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
    fn kept_reports_write_what_the_whole_report_would() {
        use crate::report::{ProfileRef, RebuildReport, SourceRef};
        let spool = tempfile::tempdir().unwrap();
        let kept = KeptReports::new(spool.path()).unwrap();
        let job = |n: usize, status: JobStatus| JobReport {
            job: n,
            source: format!("r.example/a:{n}"),
            destination: format!("m.example/a:{n}"),
            status,
            result: (status == JobStatus::Ok).then(|| format!("m.example/a@sha256:{n:064}")),
            report: (status == JobStatus::Ok).then(|| {
                Box::new(RebuildReport::new(
                    SourceRef { reference: format!("r.example/a:{n}"), digest: "sha256:aa".into() },
                    ProfileRef { name: "strict".into(), digest: "sha256:bb".into() },
                    "gzip:6".into(),
                    true,
                ))
            }),
            error: (status == JobStatus::Failed).then(|| "no \"quotes\"\nor lines".into()),
        };
        for shard in [None, Some("1/2".to_string())] {
            let whole = BatchReport {
                schema: crate::report::BATCH_SCHEMA,
                harden_version: "0",
                file: "jobs.toml".into(),
                shard: shard.clone(),
                jobs: vec![job(1, JobStatus::Ok), job(2, JobStatus::Failed), job(3, JobStatus::Ok)],
            };
            let compact =
                BatchReport { jobs: whole.jobs.iter().cloned().map(|r| kept.keep(r)).collect(), ..whole.clone() };
            assert!(compact.jobs.iter().all(|r| r.report.is_none()), "reports left memory");
            let out = spool.path().join("report.json");
            kept.write(&out, &compact).unwrap();
            assert_eq!(
                std::fs::read_to_string(&out).unwrap(),
                String::from_utf8(serde_json::to_vec_pretty(&whole).unwrap()).unwrap()
            );
            let empty = BatchReport { jobs: vec![], ..whole.clone() };
            kept.write(&out, &empty).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), serde_json::to_vec_pretty(&empty).unwrap());
        }
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
        // The supply-chain keys: in [defaults], and per job (replacing the defaults').
        std::fs::write(&p, "[defaults]\nrequire_signature = [\"v.pub\"]\nattest = true\n\n[[job]]\nsource = \"a.example/x:1\"\ndestination = \"b.example/x:1\"\nrequire_signature = [\"w.pub\", \"x.pub\"]\nbundle = true\n").unwrap();
        let (d, jobs) = load(&p).unwrap();
        assert_eq!(d.require_signature, [PathBuf::from("v.pub")]);
        assert!(d.attest && !d.bundle);
        assert_eq!(jobs[0].require_signature.as_ref().unwrap().len(), 2);
        assert_eq!(jobs[0].bundle, Some(true));
    }
}
