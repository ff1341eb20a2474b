// Independent check of a cosign v3 sigstore bundle with sigstore-js (@sigstore/verify), which
// harden did not write: node verify.js BUNDLE.json PUBLIC.pem sha256:<hex>
// The key is trusted whatever its hint (the hint is printed for the test to compare); no
// transparency log, certificate log or timestamp is required (key-based signing, no tlog).
// @sigstore/verify does not check what the statement is about, so the subject is checked here.
// Prints one JSON line {hint, predicateType, subject} and exits 0, or a line and exits 1.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function main() {
  const [bundlePath, keyPath, digest] = process.argv.slice(2);
  if (!digest) throw new Error('usage: verify.js BUNDLE.json PUBLIC.pem sha256:<hex>');
  const json = JSON.parse(fs.readFileSync(bundlePath, 'utf8'));
  const publicKey = crypto.createPublicKey(fs.readFileSync(keyPath));
  const seen = [];
  const trust = toTrustMaterial(
    { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] },
    (hint) => { seen.push(hint); return { publicKey, validFor: () => true }; },
  );
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  const bundle = bundleFromJSON(json);
  verifier.verify(toSignedEntity(bundle));
  const statement = JSON.parse(Buffer.from(json.dsseEnvelope.payload, 'base64').toString('utf8'));
  const want = digest.replace(/^sha256:/, '');
  const subjects = (statement.subject || []).map((s) => s.digest && s.digest.sha256);
  if (!subjects.includes(want)) {
    throw new Error(`statement subject ${JSON.stringify(subjects)} does not name ${digest}`);
  }
  console.log(JSON.stringify({ hint: seen[0] || null, predicateType: statement.predicateType, subject: subjects }));
}

try {
  main();
} catch (e) {
  console.log(`bundle rejected: ${e && e.message ? e.message : e}`);
  process.exit(1);
}
