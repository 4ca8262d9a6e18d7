#!/usr/bin/env python3
"""Trims real Kubernetes OpenAPI v3 documents into the test data the testkit's API server
serves at /openapi/v3 (crates/testkit/data/openapi/<release>/).

Input: the per-group-version documents of one release, as published under
`api/openapi-spec/v3/` of kubernetes/kubernetes, or as vendored per release by
kubectl-validate (`pkg/openapiclient/builtins/<minor>/{api,apis}/...json`), read from a git
repository (bare is fine):

    python3 scripts/trim-openapi.py --git REPO.git --rev REV \
        --path pkg/openapiclient/builtins/1.35 --release v1.35

What is kept, per group-version the test server serves (KINDS below): the schemas of those
kinds and every schema they reference (transitively), and, of `paths`, only the operations
of those kinds with their `x-kubernetes-group-version-kind` and `x-kubernetes-action` (so
the documents still tell namespaced from cluster-scoped kinds). What is dropped:
`description` texts, the operations' request/response bodies and parameters, and every
kind the server does not serve. Nothing else is changed: list types, map keys, patch
strategies, formats and defaults are as the API server publishes them.
Python 3 standard library only; the output is deterministic (sorted keys).
"""
import argparse
import json
import os
import subprocess

# group-version -> kinds (the testkit API server's built-in resources).
KINDS = {
    "v1": ["Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount", "Pod", "Endpoints",
           "Event", "PersistentVolumeClaim", "PersistentVolume", "Node", "ReplicationController",
           "PodTemplate", "LimitRange", "ResourceQuota"],
    "apps/v1": ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ControllerRevision"],
    "batch/v1": ["CronJob", "Job"],
    "networking.k8s.io/v1": ["Ingress", "NetworkPolicy", "IngressClass"],
    "rbac.authorization.k8s.io/v1": ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"],
    "autoscaling/v2": ["HorizontalPodAutoscaler"],
    "policy/v1": ["PodDisruptionBudget"],
    "coordination.k8s.io/v1": ["Lease"],
    "discovery.k8s.io/v1": ["EndpointSlice"],
}
PREFIX = "#/components/schemas/"


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(PREFIX):
                yield v[len(PREFIX):]
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def trim(doc, gv, kinds):
    group, _, version = gv.rpartition("/")
    schemas = doc.get("components", {}).get("schemas", {})
    roots = [name for name, s in schemas.items()
             for g in s.get("x-kubernetes-group-version-kind", [])
             if g.get("group") == group and g.get("version") == version and g.get("kind") in kinds]
    keep, stack = set(), list(roots)
    while stack:
        n = stack.pop()
        if n in keep or n not in schemas:
            continue
        keep.add(n)
        stack.extend(refs(schemas[n]))
    paths = {}
    for p, item in doc.get("paths", {}).items():
        ops = {}
        for verb, op in item.items():
            if not isinstance(op, dict):
                continue
            g = op.get("x-kubernetes-group-version-kind")
            if g and g.get("kind") in kinds:
                ops[verb] = {k: op[k] for k in ("operationId", "x-kubernetes-action",
                                                  "x-kubernetes-group-version-kind") if k in op}
        if ops:
            paths[p] = ops
    return {
        "openapi": doc.get("openapi", "3.0.0"),
        "info": doc.get("info", {}),
        "paths": paths,
        "components": {"schemas": {n: strip(schemas[n]) for n in sorted(keep)}},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--git", required=True)
    ap.add_argument("--rev", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--release", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "crates",
                                                  "testkit", "data", "openapi"))
    args = ap.parse_args()
    out_dir = os.path.join(args.out, args.release)
    os.makedirs(out_dir, exist_ok=True)
    for gv, kinds in sorted(KINDS.items()):
        src = f"{args.path}/api/{gv}.json" if "/" not in gv else f"{args.path}/apis/{gv}.json"
        text = subprocess.run(["git", "--git-dir", args.git, "show", f"{args.rev}:{src}"],
                              check=True, capture_output=True).stdout
        doc = trim(json.loads(text), gv, set(kinds))
        name = ("api/" + gv if "/" not in gv else "apis/" + gv).replace("/", "__") + ".json"
        body = json.dumps(doc, sort_keys=True, indent=1, separators=(",", ":")) + "\n"
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as fh:
            fh.write(body)
        print(f"{gv}: {len(doc['components']['schemas'])} schemas, {len(body)} bytes -> {name}")


if __name__ == "__main__":
    main()
