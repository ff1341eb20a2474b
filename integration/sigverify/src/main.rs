//! `sigverify`: an independent implementation (the `sigstore` crate, sigstore-rs) used by harden's
//! integration tests to check that what harden writes is what cosign-compatible tools read.
//!
//! Subcommands (exit 0 on success, 1 on verification failure, 2 on usage/IO errors):
//!   sigverify verify [--plain-http] REF PUBKEY_PEM_FILE
//!       Fetch the `sha256-<hex>.sig` signatures of REF (registry/repo@sha256:... or :tag) and
//!       require at least one simple-signing layer signed by the public key.
//!   sigverify write-key PASSWORD OUT.key [OUT.pub]
//!       Generate an ECDSA P-256 key pair with sigstore-rs and write the encrypted private key
//!       ("ENCRYPTED SIGSTORE PRIVATE KEY") and optionally the public key PEM.
//!   sigverify sign-blob KEY_FILE PASSWORD PAYLOAD_FILE
//!       Load a cosign encrypted private key with sigstore-rs, sign the file, print base64 DER sig.
//!   sigverify verify-blob PUBKEY_PEM_FILE PAYLOAD_FILE SIG_B64
//!       Verify a base64 ECDSA P-256 signature over the file with sigstore-rs.

use std::process::ExitCode;

use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{ClientBuilder, CosignCapabilities};
use sigstore::crypto::signing_key::ecdsa::{ECDSAKeys, EllipticCurve};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

fn usage() -> ExitCode {
    eprintln!(
        "usage:\n  sigverify verify [--plain-http] REF PUBKEY_PEM_FILE\n  \
         sigverify write-key PASSWORD OUT.key [OUT.pub]\n  \
         sigverify sign-blob KEY_FILE PASSWORD PAYLOAD_FILE\n  \
         sigverify verify-blob PUBKEY_PEM_FILE PAYLOAD_FILE SIG_B64"
    );
    ExitCode::from(2)
}

fn read(path: &str) -> Result<Vec<u8>, ExitCode> {
    std::fs::read(path).map_err(|e| {
        eprintln!("sigverify: cannot read {path}: {e}");
        ExitCode::from(2)
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage();
    };
    let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let r = match cmd.as_str() {
        "verify" => verify(&rest).await,
        "write-key" => write_key(&rest),
        "sign-blob" => sign_blob(&rest),
        "verify-blob" => verify_blob(&rest),
        _ => return usage(),
    };
    r.unwrap_or_else(|code| code)
}

async fn verify(args: &[&str]) -> Result<ExitCode, ExitCode> {
    let plain_http = args.contains(&"--plain-http");
    let pos: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--plain-http")
        .collect();
    let [reference, pubkey_file] = pos.as_slice() else {
        return Err(usage());
    };
    let image: OciReference = reference.parse().map_err(|e| {
        eprintln!("sigverify: bad reference {reference}: {e}");
        ExitCode::from(2)
    })?;
    let pem = read(pubkey_file)?;
    let verifier =
        PublicKeyVerifier::new(&pem, &SigningScheme::ECDSA_P256_SHA256_ASN1).map_err(|e| {
            eprintln!("sigverify: bad public key {pubkey_file}: {e}");
            ExitCode::from(2)
        })?;

    let config = ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    };
    let mut client = ClientBuilder::default()
        .with_oci_client_config(config)
        .build()
        .map_err(|e| {
            eprintln!("sigverify: cannot build client: {e}");
            ExitCode::from(2)
        })?;

    let layers = match client
        .trusted_signature_layers(&Auth::Anonymous, &image)
        .await
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sigverify: FAIL: cannot fetch signatures of {reference}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    eprintln!(
        "sigverify: {} trusted signature layer(s) for {reference}",
        layers.len()
    );
    if layers.is_empty() {
        eprintln!("sigverify: FAIL: no signature layers");
        return Ok(ExitCode::from(1));
    }
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    match sigstore::cosign::verify_constraints(&layers, constraints.iter()) {
        Ok(()) => {
            println!("sigverify: OK: {reference} is signed by {pubkey_file}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "sigverify: FAIL: {} constraint(s) unsatisfied (no layer signed by {pubkey_file})",
                e.unsatisfied_constraints.len()
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn write_key(args: &[&str]) -> Result<ExitCode, ExitCode> {
    let (password, out, out_pub) = match args {
        [p, o] => (*p, *o, None),
        [p, o, q] => (*p, *o, Some(*q)),
        _ => return Err(usage()),
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("sigverify: {what}: {e}");
        ExitCode::from(2)
    };
    let keys = ECDSAKeys::new(EllipticCurve::P256).map_err(|e| fail("generate", &e))?;
    let pair = SigStoreKeyPair::ECDSA(keys);
    let enc = pair
        .private_key_to_encrypted_pem(password.as_bytes())
        .map_err(|e| fail("encrypt", &e))?;
    std::fs::write(out, enc.as_bytes()).map_err(|e| fail(out, &e))?;
    if let Some(q) = out_pub {
        let p = pair
            .public_key_to_pem()
            .map_err(|e| fail("public key", &e))?;
        std::fs::write(q, p).map_err(|e| fail(q, &e))?;
    }
    println!("sigverify: wrote {out}");
    Ok(ExitCode::SUCCESS)
}

fn sign_blob(args: &[&str]) -> Result<ExitCode, ExitCode> {
    let [key_file, password, payload_file] = args else {
        return Err(usage());
    };
    let pem = read(key_file)?;
    let payload = read(payload_file)?;
    let pair = SigStoreKeyPair::from_encrypted_pem(&pem, password.as_bytes()).map_err(|e| {
        eprintln!("sigverify: cannot load {key_file}: {e}");
        ExitCode::from(1)
    })?;
    let signer = pair
        .to_sigstore_signer(&SigningScheme::ECDSA_P256_SHA256_ASN1)
        .map_err(|e| {
            eprintln!("sigverify: not a P-256 key: {e}");
            ExitCode::from(1)
        })?;
    let sig = signer.sign(&payload).map_err(|e| {
        eprintln!("sigverify: sign: {e}");
        ExitCode::from(2)
    })?;
    use base64::Engine as _;
    println!("{}", base64::engine::general_purpose::STANDARD.encode(sig));
    Ok(ExitCode::SUCCESS)
}

fn verify_blob(args: &[&str]) -> Result<ExitCode, ExitCode> {
    let [pub_file, payload_file, sig_b64] = args else {
        return Err(usage());
    };
    let pem = read(pub_file)?;
    let payload = read(payload_file)?;
    let key = CosignVerificationKey::from_pem(&pem, &SigningScheme::ECDSA_P256_SHA256_ASN1)
        .map_err(|e| {
            eprintln!("sigverify: bad public key {pub_file}: {e}");
            ExitCode::from(2)
        })?;
    match key.verify_signature(Signature::Base64Encoded(sig_b64.as_bytes()), &payload) {
        Ok(()) => {
            println!("sigverify: OK");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("sigverify: FAIL: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
