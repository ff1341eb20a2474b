#!/usr/bin/env python3
"""Fail when two source files of src/ import each other, directly or around a longer circle.

Each file of src/ is a module; a file depends on the modules its non-test code names through
`crate::…` or `super::…` paths (comments and `#[cfg(test)] mod tests` blocks are left out). Any
strongly connected set of two or more modules is printed, and the exit code is 1.
Run by `make lint`.
"""
import collections
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "src"


def module_of(path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


files = {}
for d, _, names in os.walk(root):
    for n in names:
        if n.endswith(".rs") and not n.endswith("tests.rs"):
            p = os.path.join(d, n)
            files[p] = open(p, encoding="utf-8").read()
modules = {module_of(p) for p in files}

graph = collections.defaultdict(set)
for path, text in files.items():
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//.*", "", text)
    me = module_of(path)
    # `super::` in a/b.rs is module a; in a/b/mod.rs it is a too.
    parent = list(me[:-1])
    names = [m.group(1).split("::") for m in re.finditer(r"crate::((?:\w+::)*\w+)", text)]
    names += [parent + m.group(1).split("::") for m in re.finditer(r"super::((?:\w+::)*\w+)", text)]
    for n in names:
        for k in range(len(n), 0, -1):
            target = tuple(n[:k])
            if target == me or me[: len(target)] == target:
                break
            if target in modules:
                graph[me].add(target)
                break

index, low, stack, on, found = {}, {}, [], set(), []
counter = [0]
sys.setrecursionlimit(100000)


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            found.append(sorted("::".join(c) or "crate" for c in comp))


for v in list(graph):
    if v not in index:
        visit(v)
if found:
    for c in found:
        print("import cycle: " + " <-> ".join(c))
    sys.exit(1)
print(f"import-cycles: none among {len(modules)} modules")
