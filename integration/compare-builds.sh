#!/usr/bin/env bash
# Before/after: the cached debootstrap fixtures through two builds of harden, with every built-in
# profile; prints each pair's exit codes and result digest and whether they agree, and any change
# in the --report shape. For refactors that must not change a digest. Run after `make fixtures`.
set -u
FX=${FX:-$(ls -d "${XDG_CACHE_HOME:-target}"/harden-fixtures/*/ 2>/dev/null | grep -v -e /rootfs/ -e /debs/ | head -1)}
OLD=${1:?usage: compare-builds.sh OLD-HARDEN NEW-HARDEN}; NEW=${2:?usage: compare-builds.sh OLD-HARDEN NEW-HARDEN}
W=$(mktemp -d)
shape() { python3 -c '
import json,sys
def walk(v,at,out):
    if isinstance(v,dict):
        for k,x in v.items():
            p=at+"."+k if at else k; out.add(p); walk(x,p,out)
    elif isinstance(v,list):
        for x in v: walk(x,at+"[]",out)
out=set(); walk(json.load(open(sys.argv[1])),"",out)
print("\n".join(sorted(k for k in out if not k.startswith(("findings.before[]","findings.after[]")))))' "$1"; }
for img in "debian:debian" "app:app" "app:app-shellcmd"; do
  dir=${img%%:*}; tag=${img#*:}
  for prof in passthrough baseline debian strict "strict -p samples/app-profile.toml"; do
    for b in OLD NEW; do
      bin=${!b}
      $bin rebuild -q --no-cache -p $prof oci:$FX/$dir:$tag oci:$W/$b-$dir-$tag:out --report $W/$b.json > $W/$b.out 2> $W/$b.err
      echo $? > $W/$b.rc
    done
    o=$(cat $W/OLD.out | sed 's/.*@//'); n=$(cat $W/NEW.out | sed 's/.*@//')
    same=$([ "$o" = "$n" ] && [ "$(cat $W/OLD.rc)" = "$(cat $W/NEW.rc)" ] && echo same || echo DIFFERENT)
    printf '%-22s %-45s rc %s/%s %s %s\n' "$dir:$tag" "$prof" "$(cat $W/OLD.rc)" "$(cat $W/NEW.rc)" "${n:0:19}" "$same"
    if [ -s $W/OLD.json ] && [ -s $W/NEW.json ]; then
      diff <(shape $W/OLD.json) <(shape $W/NEW.json) | sed 's/^/    shape: /'
    fi
    rm -f $W/*.json
  done
done
rm -rf "$W"
