//! Fixtures from integration/keyless/sigstore_mock.py (Python `cryptography`, not harden's code),
//! all accepted or refused the same way by @sigstore/verify; the digest is sha256("x").
//!
//! Owns: the keyless verifier's unit tests. Must not: need the network or a registry.

use super::*;
use sha2::Sha256;

const DIGEST: &str = "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
const ID: &str = "https://github.com/vendor/app/.github/workflows/release.yml@refs/heads/main";
const ISS: &str = "https://token.actions.githubusercontent.com";

fn data(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sign/keyless/testdata").join(name))
        .unwrap()
}

fn root() -> TrustedRoot {
    TrustedRoot::parse(&data("trusted_root.json")).unwrap()
}

fn policy() -> Policy {
    Policy { identities: vec![Match::Exact(ID.into())], issuers: vec![Match::Exact(ISS.into())] }
}

fn bundle(variant: &str, p: &Policy) -> Result<Verified, Refusal> {
    verify_bundle(&data(&format!("bundle-{variant}.json")), &root(), p, DIGEST)
}

fn legacy_with(variant: &str, r: &TrustedRoot, p: &Policy) -> Result<Verified, Refusal> {
    let ann: Value = serde_json::from_slice(&data(&format!("legacy-{variant}.json"))).unwrap();
    verify_legacy(&data(&format!("legacy-{variant}.payload")), ann.as_object().unwrap(), r, p, DIGEST)
}

fn legacy(variant: &str) -> Result<Verified, Refusal> {
    legacy_with(variant, &root(), &policy())
}

#[test]
fn good_signatures_verify_in_both_formats() {
    let v = bundle("good", &policy()).unwrap();
    assert_eq!((v.identity.as_str(), v.issuer.as_str(), v.log_index), (ID, ISS, 1));
    assert_eq!(v.predicate_type.as_deref(), Some("https://sigstore.dev/cosign/sign/v1"));
    let v = legacy("good").unwrap();
    assert_eq!((v.identity.as_str(), v.issuer.as_str()), (ID, ISS));
    let email = Policy {
        identities: vec![Match::Exact("dev@vendor.example".into())],
        issuers: vec![Match::Exact("https://accounts.google.com".into())],
    };
    assert!(bundle("email", &email).is_ok());
}

#[test]
fn regexps_and_alternatives() {
    let p = Policy {
        identities: vec![Match::Exact("someone-else".into()), Match::regex(r"^https://github\.com/vendor/").unwrap()],
        issuers: vec![Match::regex(r"^https://token\.actions\.githubusercontent\.com$").unwrap()],
    };
    assert!(bundle("good", &p).is_ok());
    let p =
        Policy { identities: vec![Match::regex(r"^https://github\.com/other/").unwrap()], issuers: policy().issuers };
    assert!(matches!(bundle("good", &p), Err(Refusal::WrongIdentity { .. })));
}

#[test]
fn another_identity_or_issuer_is_refused() {
    let p = Policy { identities: vec![Match::Exact("https://github.com/evil/app".into())], issuers: policy().issuers };
    let e = bundle("good", &p).unwrap_err();
    assert!(matches!(e, Refusal::WrongIdentity { .. }), "{e}");
    assert!(e.to_string().contains(ID), "{e}");
    let p =
        Policy { identities: policy().identities, issuers: vec![Match::Exact("https://accounts.google.com".into())] };
    assert!(matches!(bundle("good", &p), Err(Refusal::WrongIssuer { .. })));
    assert!(matches!(legacy_with("good", &root(), &p), Err(Refusal::WrongIssuer { .. })));
}

#[test]
fn each_bad_input_is_refused_with_its_reason() {
    let p = policy();
    for (variant, want) in [
        ("other-ca", "untrusted chain"),
        ("loop-chain", "untrusted chain"),
        ("other-digest", "tampered: the log entry is for another artifact"),
        ("bad-set", "no log proof: the signed entry timestamp does not verify"),
        ("no-log", "no log proof: no transparency log entry"),
        ("tampered-payload", "tampered"),
        ("malformed-cert", "unreadable: malformed certificate"),
        ("bad-sct", "no valid SCT"),
    ] {
        for (format, r) in [("bundle", bundle(variant, &p)), ("legacy", legacy(variant))] {
            if format == "bundle" && variant == "loop-chain" {
                continue; // a bundle carries no chain
            }
            let e = r.expect_err(&format!("{format} {variant} must be refused"));
            assert!(e.to_string().starts_with(want), "{format} {variant}: {e}");
        }
    }
    let e = bundle("bad-checkpoint", &p).unwrap_err();
    assert!(e.to_string().contains("checkpoint's signature"), "{e}");
    let e = bundle("unknown-field", &p).unwrap_err();
    assert!(e.to_string().contains("unknown field `extraTrust`"), "{e}");
}

#[test]
fn timestamps_prove_time_and_rekor_v2_needs_one() {
    let tsa = Some("https://tsa.mock.harden");
    // A Rekor v2 entry (inclusion proof and checkpoint, no SET) with an RFC 3161 timestamp.
    let v = bundle("rekor-v2-tsa", &policy()).unwrap();
    assert_eq!((v.identity.as_str(), v.timestamp_authority.as_deref()), (ID, tsa));
    assert!(v.describe().ends_with(", timestamped by https://tsa.mock.harden"), "{}", v.describe());
    // A Rekor v1 entry with its SET and a timestamp: both verify, the earlier time is kept.
    let v = bundle("tsa", &policy()).unwrap();
    assert_eq!(v.timestamp_authority.as_deref(), tsa);
    assert_eq!(legacy("tsa").unwrap().timestamp_authority.as_deref(), tsa);
    for (variant, want) in [
        ("rekor-v2", "no proof of time: the log entry (Rekor v2) proves inclusion but not time"),
        ("tsa-other-sig", "no proof of time: the timestamp is over another signature"),
        ("tsa-untrusted", "no proof of time: the timestamp is signed by a TSA not in the trusted root"),
        ("tsa-tampered", "no proof of time: the timestamp is tampered"),
        ("tsa-expired", "certificate outside its validity: signed at"),
    ] {
        let e = bundle(variant, &policy()).expect_err(variant);
        assert!(e.to_string().starts_with(want), "{variant}: {e}");
    }
    let e = legacy("tsa-other-sig").unwrap_err();
    assert!(e.to_string().starts_with("no proof of time: the timestamp is over another signature"), "{e}");
    // A root without the TSA: the timestamp is not trusted, so a v2 entry has no time.
    let mut r = root();
    r.tsas.clear();
    let e = verify_bundle(&data("bundle-rekor-v2-tsa.json"), &r, &policy(), DIGEST).unwrap_err();
    assert!(e.to_string().contains("not in the trusted root"), "{e}");
}

#[test]
fn timestamp_garbage_never_passes_or_panics() {
    let v: Value = serde_json::from_slice(&data("bundle-rekor-v2-tsa.json")).unwrap();
    let ts_path = "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp";
    let ts = base64::engine::general_purpose::STANDARD.decode(v.pointer(ts_path).unwrap().as_str().unwrap()).unwrap();
    let (r, p) = (root(), policy());
    let with = |t: &[u8]| {
        let mut b = v.clone();
        *b.pointer_mut(ts_path).unwrap() = base64::engine::general_purpose::STANDARD.encode(t).into();
        verify_bundle(&serde_json::to_vec(&b).unwrap(), &r, &p, DIGEST)
    };
    assert!(with(&ts).is_ok());
    for n in (0..ts.len()).step_by(11) {
        assert!(with(&ts[..n]).is_err(), "truncation at {n} passed");
    }
    // A flip in what nothing signs (the embedded certificate) may pass; one in the genTime (the
    // TSTInfo) or the signature (the response's last bytes) must not.
    let gen_time = ts.windows(2).position(|w| w == [0x18, 0x0f]).unwrap();
    for i in 0..ts.len() {
        let mut t = ts.clone();
        t[i] ^= 0x01;
        let r = with(&t);
        if (gen_time..gen_time + 17).contains(&i) || i + 64 >= ts.len() {
            assert!(r.is_err(), "a flip at {i} passed");
        }
    }
}

fn att(variant: &str) -> Result<Verified, Refusal> {
    let ann: Value = serde_json::from_slice(&data(&format!("att-{variant}.json"))).unwrap();
    verify_legacy_attestation(
        &data(&format!("att-{variant}.envelope")),
        ann.as_object().unwrap(),
        &root(),
        &policy(),
        DIGEST,
    )
}

#[test]
fn cosign2_keyless_attestations_verify_with_their_intoto_entries() {
    let v = att("good").unwrap();
    assert_eq!((v.identity.as_str(), v.predicate_type.as_deref()), (ID, Some("https://slsa.dev/provenance/v1")));
    assert_eq!(att("tsa").unwrap().timestamp_authority.as_deref(), Some("https://tsa.mock.harden"));
    for (variant, want) in [
        ("other-digest", "tampered: the log entry is for another artifact"),
        ("tampered-payload", "tampered"),
        ("bad-set", "no log proof: the signed entry timestamp does not verify"),
    ] {
        let e = att(variant).expect_err(variant);
        assert!(e.to_string().starts_with(want), "{variant}: {e}");
    }
    // Another digest than the statement's subject.
    let ann: Value = serde_json::from_slice(&data("att-good.json")).unwrap();
    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let e = verify_legacy_attestation(&data("att-good.envelope"), ann.as_object().unwrap(), &root(), &policy(), other)
        .unwrap_err();
    assert!(e.to_string().contains("subject does not name"), "{e}");
}

#[test]
fn a_root_without_a_ca_valid_then_is_refused() {
    let r = TrustedRoot::parse(&data("trusted_root_expired_ca.json")).unwrap();
    let e = verify_bundle(&data("bundle-good.json"), &r, &policy(), DIGEST).unwrap_err();
    assert!(e.to_string().contains("no certificate authority valid at"), "{e}");
    assert!(legacy_with("good", &r, &policy()).is_err());
}

#[test]
fn another_digest_is_refused() {
    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let e = verify_bundle(&data("bundle-good.json"), &root(), &policy(), other).unwrap_err();
    assert!(e.to_string().contains("subject does not name"), "{e}");
}

#[test]
fn garbage_never_panics() {
    let good = data("bundle-good.json");
    let r = root();
    let p = policy();
    // Every truncation and a byte flip at every 7th position: refused or verified, never a panic.
    for n in (0..good.len()).step_by(13) {
        let _ = verify_bundle(&good[..n], &r, &p, DIGEST);
    }
    let v: Value = serde_json::from_slice(&good).unwrap();
    let cert = base64::engine::general_purpose::STANDARD
        .decode(v["verificationMaterial"]["certificate"]["rawBytes"].as_str().unwrap())
        .unwrap();
    for i in (0..cert.len()).step_by(7) {
        let mut c = cert.clone();
        c[i] ^= 0x5a;
        let _ = cert::Leaf::parse(&c);
        let mut b = v.clone();
        b["verificationMaterial"]["certificate"]["rawBytes"] =
            base64::engine::general_purpose::STANDARD.encode(&c).into();
        assert!(verify_bundle(&serde_json::to_vec(&b).unwrap(), &r, &p, DIGEST).is_err(), "flip at {i} passed");
    }
    assert!(TrustedRoot::parse(b"{").is_err());
    assert!(TrustedRoot::parse(br#"{"mediaType":"text/plain"}"#).is_err());
}

/// RFC 6962 §2.1 from its definition, to check the proof walk on trees of every shape.
fn mth(leaves: &[Vec<u8>]) -> Vec<u8> {
    match leaves.len() {
        0 => Sha256::digest([]).to_vec(),
        1 => Sha256::digest([&[0u8][..], &leaves[0]].concat()).to_vec(),
        n => {
            let k = n.next_power_of_two() / 2;
            Sha256::digest([&[1u8][..], &mth(&leaves[..k]), &mth(&leaves[k..])].concat()).to_vec()
        }
    }
}

fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = n.next_power_of_two() / 2;
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

#[test]
fn inclusion_proofs_of_every_shape_verify_and_nothing_else_does() {
    let key = root().tlogs[0].key.clone();
    for n in 1..=9usize {
        let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
        let root_hash = mth(&leaves);
        for (m, leaf) in leaves.iter().enumerate() {
            let p = tlog::Proof {
                log_index: m as u64,
                tree_size: n as u64,
                root_hash: root_hash.clone(),
                hashes: path(m, &leaves),
                checkpoint: None,
            };
            assert_eq!(tlog::verify_proof(leaf, &p, &key, &[0; 32]), Ok(()), "leaf {m} of {n}");
            assert!(tlog::verify_proof(b"another", &p, &key, &[0; 32]).is_err());
        }
    }
    // Absurd indexes and sizes are errors, not overflows.
    for (i, s) in [(u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX), (0, 0), (5, 3)] {
        let p = tlog::Proof { log_index: i, tree_size: s, root_hash: vec![0; 32], hashes: vec![], checkpoint: None };
        assert!(tlog::verify_proof(b"x", &p, &key, &[0; 32]).is_err());
    }
}
