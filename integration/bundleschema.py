"""Validate a sigstore bundle against protobuf-specs' published JSON schema (vendored in
integration/schemas/, see its README): python bundleschema.py BUNDLE.json
The schema's oneOf clauses name proto fields (dsse_envelope) where its properties are JSON
names (dsseEnvelope, additionalProperties false); those required names are mapped to JSON names,
nothing else changes. Prints "ok" and exits 0, or the first error and exits 1."""
import json
import pathlib
import re
import sys

import jsonschema


def camel(name):
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def fix(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "required" and isinstance(v, list):
                node[k] = [camel(x) for x in v]
            else:
                fix(v)
    elif isinstance(node, list):
        for v in node:
            fix(v)


def main():
    schema = json.loads((pathlib.Path(__file__).parent / "schemas/sigstore-bundle.schema.json").read_text())
    fix(schema)
    bundle = json.loads(pathlib.Path(sys.argv[1]).read_text())
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(bundle), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        print(f"schema: {'/'.join(map(str, e.path)) or '(bundle)'}: {e.message}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
