#!/usr/bin/env python3
"""Generates src/diff/schema/builtin.json, envdrift's bundled schema set for built-in kinds.

Input: the Kubernetes OpenAPI v3 documents of one release (one JSON document per
group-version, as published under `api/openapi-spec/v3/` of the kubernetes/kubernetes
repository, or the same documents as vendored per release by kubectl-validate under
`pkg/openapiclient/builtins/<minor>/`). Either a directory holding them (searched
recursively for *.json) or a git repository, a revision and a path inside it:

    python3 scripts/gen-schemas.py --dir api/openapi-spec/v3 --release v1.35
    python3 scripts/gen-schemas.py --git REPO.git --rev REV --path pkg/openapiclient/builtins/1.35 --release v1.35

Output (deterministic: sorted keys; small enough, about 60 kB, to commit uncompressed): what the engine needs per kind and
nothing else (see src/diff/schema/mod.rs for the format): list types and map keys
(`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`), strategic-merge keys
(`x-kubernetes-patch-merge-key` with `x-kubernetes-patch-strategy: merge`), int-or-string
(`format: int-or-string`), quantities (references to `resource.Quantity`),
`x-kubernetes-preserve-unknown-fields`, `x-kubernetes-embedded-resource`, non-trivial
`default` values, and the scope (namespaced or cluster) derived from the document's paths.
Python 3 standard library only.
"""
import argparse
import json
import os
import re
import subprocess
import sys

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
# Metadata semantics come from envdrift's own metadata rules (strip, user maps).
SKIP = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
}
PREFIXES = ["io.k8s.api.", "io.k8s.apimachinery.pkg.apis.", "io.k8s.apimachinery.pkg.", "io.k8s."]


def short(name):
    for p in PREFIXES:
        if name.startswith(p):
            return name[len(p):]
    return name


def ref_name(node):
    r = node.get("$ref")
    if r is None:
        for sub in node.get("allOf", []):
            if "$ref" in sub:
                r = sub["$ref"]
                break
    return r.rsplit("/", 1)[-1] if r else None


def trivial_default(d):
    return d in ({}, [], "", 0, False, None)


def trim(node):
    """The trimmed node of one schema (references kept as references)."""
    out = {}
    r = ref_name(node)
    if r == QUANTITY:
        out["t"] = "q"
    elif r == INT_OR_STRING or node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string"):
        out["t"] = "ios"
    elif r and r not in SKIP:
        out["r"] = short(r)
    if "default" in node and not trivial_default(node["default"]):
        out["d"] = node["default"]
    lt = node.get("x-kubernetes-list-type")
    if lt:
        out["lt"] = lt
    if node.get("x-kubernetes-list-map-keys"):
        out["lk"] = node["x-kubernetes-list-map-keys"]
    if node.get("x-kubernetes-patch-strategy", "").split(",").count("merge") and node.get("x-kubernetes-patch-merge-key"):
        out["mk"] = node["x-kubernetes-patch-merge-key"]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out["pu"] = True
    if node.get("x-kubernetes-embedded-resource"):
        out["er"] = True
    props = {}
    for k, v in sorted(node.get("properties", {}).items()):
        t = trim(v)
        if t:
            props[k] = t
    if props:
        out["p"] = props
    if isinstance(node.get("items"), dict):
        t = trim(node["items"])
        if t:
            out["i"] = t
    if isinstance(node.get("additionalProperties"), dict):
        t = trim(node["additionalProperties"])
        if t:
            out["a"] = t
    return out


def prune(node, live):
    """Drops references to definitions that trimmed to nothing; returns the node or None."""
    node = dict(node)
    if "r" in node and node["r"] not in live:
        del node["r"]
    for f in ("i", "a"):
        if f in node:
            t = prune(node[f], live)
            if t:
                node[f] = t
            else:
                del node[f]
    if "p" in node:
        props = {}
        for k, v in node["p"].items():
            t = prune(v, live)
            if t:
                props[k] = t
        if props:
            node["p"] = props
        else:
            del node["p"]
    return node or None


STABILITY = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_rank(v):
    m = STABILITY.match(v)
    if not m:
        return (0, 0, 0)
    major, level, minor = m.groups()
    return ({None: 3, "beta": 2, "alpha": 1}[level], int(major), int(minor or 0))


def load_documents(args):
    docs = []
    if args.dir:
        for root, _, files in os.walk(args.dir):
            for f in sorted(files):
                if f.endswith(".json"):
                    with open(os.path.join(root, f), encoding="utf-8") as fh:
                        docs.append((os.path.join(root, f), json.load(fh)))
    else:
        names = subprocess.run(
            ["git", "--git-dir", args.git, "ls-tree", "-r", "--name-only", args.rev, args.path],
            check=True, capture_output=True, text=True).stdout.split()
        for n in sorted(names):
            if n.endswith(".json"):
                text = subprocess.run(["git", "--git-dir", args.git, "show", f"{args.rev}:{n}"],
                                      check=True, capture_output=True).stdout
                docs.append((n, json.loads(text)))
    return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir")
    ap.add_argument("--git")
    ap.add_argument("--rev")
    ap.add_argument("--path")
    ap.add_argument("--release", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "src", "diff", "schema", "builtin.json"))
    args = ap.parse_args()
    if not args.dir and not (args.git and args.rev and args.path):
        ap.error("give --dir, or --git with --rev and --path")
    defs = {}
    kinds = {}  # "group/kind" -> (rank, entry)
    for name, doc in load_documents(args):
        schemas = doc.get("components", {}).get("schemas", {})
        namespaced = set()
        for path, item in doc.get("paths", {}).items():
            for op in item.values():
                if isinstance(op, dict) and "x-kubernetes-group-version-kind" in op:
                    g = op["x-kubernetes-group-version-kind"]
                    if "{namespace}" in path:
                        namespaced.add((g["group"], g["kind"]))
        for sname, s in schemas.items():
            if sname in SKIP:
                continue
            defs.setdefault(short(sname), trim(s))
            for gvk in s.get("x-kubernetes-group-version-kind", []):
                g, k, v = gvk["group"], gvk["kind"], gvk["version"]
                if k.endswith("List") or k in ("Status", "WatchEvent", "DeleteOptions", "APIResourceList",
                                                "APIGroup", "APIGroupList", "APIVersions", "Eviction"):
                    continue
                if not s.get("properties", {}).keys() - {"apiVersion", "kind", "metadata"}:
                    continue
                rank = version_rank(v)
                key = f"{g}/{k}"
                entry = {"v": v, "r": short(sname), "s": "N" if (g, k) in namespaced else "C"}
                if key not in kinds or kinds[key][0] < rank:
                    kinds[key] = (rank, entry)
    # Status is never compared: drop it from the kinds' roots.
    for _, e in kinds.values():
        root = defs.get(e["r"])
        if root and "p" in root:
            root["p"].pop("status", None)
    # Keep only definitions reachable from the kinds, then drop empty ones (fixpoint).
    reach, stack = set(), [e["r"] for _, e in kinds.values()]
    while stack:
        n = stack.pop()
        if n in reach or n not in defs:
            continue
        reach.add(n)
        def refs(node):
            if "r" in node:
                yield node["r"]
            for f in ("i", "a"):
                if f in node:
                    yield from refs(node[f])
            for v in node.get("p", {}).values():
                yield from refs(v)
        stack.extend(refs(defs[n]))
    defs = {k: v for k, v in defs.items() if k in reach}
    live = set(defs)
    while True:
        pruned = {}
        for k, v in defs.items():
            t = prune(v, live)
            if t:
                pruned[k] = t
        if set(pruned) == live and pruned == defs:
            break
        defs, live = pruned, set(pruned)
    for _, e in kinds.values():
        if e["r"] not in live:
            del e["r"]
    out = {
        "release": args.release,
        "generator": "scripts/gen-schemas.py",
        "kinds": {k: e for k, (_, e) in sorted(kinds.items())},
        "defs": defs,
    }
    text = json.dumps(out, sort_keys=True, indent=0, separators=(",", ":")) + "\n"
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"{len(kinds)} kinds, {len(defs)} definitions, {len(text)} bytes -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
