// Independent check of a keyless Sigstore bundle with sigstore-js (@sigstore/verify), which harden
// did not write: node verify.js BUNDLE.json TRUSTED_ROOT.json sha256:<hex> IDENTITY ISSUER [ARTIFACT]
// Requires what cosign requires by default: the certificate chains to a CA of the root, an SCT
// from a CT log of the root, a transparency log entry (its SET / inclusion proof), the identity
// and issuer. For a DSSE bundle the statement's subject must name the digest (checked here:
// @sigstore/verify does not); for a message signature, ARTIFACT is the signed payload.
// Prints one JSON line and exits 0, or a line and exits 1.
'use strict';
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function main() {
  const [bundlePath, rootPath, digest, identity, issuer, artifactPath] = process.argv.slice(2);
  if (!issuer) throw new Error('usage: verify.js BUNDLE.json TRUSTED_ROOT.json sha256:<hex> IDENTITY ISSUER [ARTIFACT]');
  const json = JSON.parse(fs.readFileSync(bundlePath, 'utf8'));
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8')));
  const trust = toTrustMaterial(root);
  const verifier = new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 });
  const bundle = bundleFromJSON(json);
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  const signer = verifier.verify(toSignedEntity(bundle, artifact), { subjectAlternativeName: identity, extensions: { issuer } });
  const want = digest.replace(/^sha256:/, '');
  if (json.dsseEnvelope) {
    const statement = JSON.parse(Buffer.from(json.dsseEnvelope.payload, 'base64').toString('utf8'));
    const subjects = (statement.subject || []).map((s) => s.digest && s.digest.sha256);
    if (!subjects.includes(want)) throw new Error(`statement subject ${JSON.stringify(subjects)} does not name ${digest}`);
  } else {
    const p = JSON.parse(artifact.toString('utf8'));
    if (p.critical.image['docker-manifest-digest'] !== digest) throw new Error(`payload names ${p.critical.image['docker-manifest-digest']}`);
  }
  console.log(JSON.stringify({ identity: signer.identity }));
}

try {
  main();
} catch (e) {
  console.log(`bundle rejected: ${e && e.message ? e.message : e}`);
  process.exit(1);
}
