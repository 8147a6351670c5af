"""Validate rendered Kubernetes manifests against the API's schemas (kubernetes-validate,
strict: unknown fields are errors) and write out the ConfigMap's Córtex config.

    validate_manifests.py MANIFESTS.yaml --kubernetes 1.35.0 [--crd ServiceMonitor]
                          [--toml-out cortex.toml]

A kind with no schema is an error, except the custom resources named with --crd (their
definitions are not Kubernetes's): those are listed as not checked here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("manifests", type=Path)
    parser.add_argument("--kubernetes", action="append", required=True)
    parser.add_argument("--crd", action="append", default=[])
    parser.add_argument("--toml-out", type=Path)
    args = parser.parse_args()
    resources = [r for r in yaml.safe_load_all(args.manifests.read_text()) if r]
    failures = 0
    for resource in resources:
        failures += not _valid(resource, args.kubernetes, set(args.crd))
    if args.toml_out is not None:
        configs = [r for r in resources if r["kind"] == "ConfigMap" and "cortex.toml" in r["data"]]
        if len(configs) != 1:
            print(f"  expected one ConfigMap with cortex.toml, found {len(configs)}")
            return 1
        args.toml_out.write_text(configs[0]["data"]["cortex.toml"])
    return 1 if failures else 0


def _valid(resource: dict[str, Any], versions: list[str], crds: set[str]) -> bool:
    name = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
    for version in versions:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if resource.get("kind") in crds:
                print(f"  {name}: a custom resource, no Kubernetes schema: not checked here")
                return True
            print(f"  {name}: no schema for {resource.get('apiVersion')} in Kubernetes {version}")
            return False
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            print(f"  {name}: invalid for Kubernetes {version} at {path}: {exc.message}")
            return False
    print(f"  {name}: valid for Kubernetes {', '.join(versions)}")
    return True


if __name__ == "__main__":
    sys.exit(main())
