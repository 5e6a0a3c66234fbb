#!/usr/bin/env python3
"""Keeps the README's "Use it in your service" and tests/consumers/ in step.

  check.py readme ROOT
      Every `<!-- consumer: NAME -->` marker in ROOT/README.md is followed by a
      ```toml block and a ```rust block. The rust block must equal
      tests/consumers/NAME/src/snippet.rs byte for byte; the toml block's
      [dependencies] must be in NAME/Cargo.toml with the same specification
      (the source aside: git + tag in the README, path in the consumer), and
      the consumer must name no tessera crate the README does not. Every
      consumer directory has a marker. Every feature of every crate under
      ROOT/crates/ has a row in the README's feature table.

  check.py lock CONSUMER_LOCK WORKSPACE_LOCK
      Every package of the consumer's Cargo.lock (the workspace's, copied and
      trimmed by cargo) is in the workspace's Cargo.lock at the same version
      and source: building the consumer resolved nothing new.
"""

import pathlib
import re
import sys
import tomllib

SOURCE_KEYS = {"git", "tag", "rev", "branch", "path", "version"}


def fail(message):
    print(f"tests/consumers/check.py: {message}", file=sys.stderr)
    sys.exit(1)


def normalise(spec):
    """A dependency specification without its source, features sorted."""
    if isinstance(spec, str):
        spec = {"version": spec}
    out = {k: v for k, v in spec.items() if k not in SOURCE_KEYS}
    out.setdefault("default-features", True)
    out["features"] = sorted(out.get("features", []))
    return out


def version_of(spec):
    return spec if isinstance(spec, str) else spec.get("version")


def check_readme(root):
    root = pathlib.Path(root)
    readme = (root / "README.md").read_text()
    consumers = root / "tests" / "consumers"
    names = sorted(p.name for p in consumers.iterdir() if (p / "Cargo.toml").is_file())
    markers = re.findall(r"<!-- consumer: ([a-z0-9-]+) -->", readme)
    if sorted(markers) != names:
        fail(f"README markers {sorted(markers)} != consumer crates {names}")
    for name in names:
        after = readme.split(f"<!-- consumer: {name} -->", 1)[1]
        toml_block = re.search(r"```toml\n(.*?)```", after, re.S)
        rust_block = re.search(r"```rust\n(.*?)```", after, re.S)
        if not toml_block or not rust_block:
            fail(f"{name}: the marker is not followed by a ```toml and a ```rust block")
        snippet = (consumers / name / "src" / "snippet.rs").read_text()
        if rust_block.group(1) != snippet:
            fail(
                f"{name}: the README's rust block differs from tests/consumers/{name}/src/snippet.rs "
                "(copy one onto the other)"
            )
        wanted = tomllib.loads(toml_block.group(1)).get("dependencies", {})
        have = tomllib.loads((consumers / name / "Cargo.toml").read_text())["dependencies"]
        for dep, spec in wanted.items():
            if dep not in have:
                fail(f"{name}: README dependency {dep} is not in the consumer's Cargo.toml")
            if normalise(spec) != normalise(have[dep]):
                fail(f"{name}: {dep}: README {normalise(spec)} != consumer {normalise(have[dep])}")
            if dep.startswith("tessera-"):
                if have[dep].get("default-features", True):
                    fail(f"{name}: {dep} must have default-features = false in the consumer")
            elif version_of(spec) != version_of(have[dep]):
                fail(f"{name}: {dep}: README version {version_of(spec)} != {version_of(have[dep])}")
        extra = sorted(d for d in have if d.startswith("tessera-") and d not in wanted)
        if extra:
            fail(f"{name}: the consumer depends on {extra}, which the README's block does not list")
    section = readme.split("## Use it in your service", 1)
    if len(section) != 2:
        fail('README has no "## Use it in your service" section')
    section = section[1].split("\n## ", 1)[0]
    for manifest in sorted((root / "crates").glob("*/Cargo.toml")):
        package = tomllib.loads(manifest.read_text())
        crate = package["package"]["name"]
        for feature in package.get("features", {}):
            if feature == "default":
                continue
            row = re.search(rf"^\| `{crate}` \| `{re.escape(feature)}` \|", section, re.M)
            if not row:
                fail(f"README feature table: no row for {crate} feature `{feature}`")
    print(f"README in step with tests/consumers ({', '.join(names)}) and the crates' features")


def check_lock(consumer_lock, workspace_lock):
    known = {
        (p["name"], p["version"], p.get("source"))
        for p in tomllib.loads(pathlib.Path(workspace_lock).read_text())["package"]
    }
    consumer = tomllib.loads(pathlib.Path(consumer_lock).read_text())["package"]
    new = [
        f"{p['name']} {p['version']}"
        for p in consumer
        if not p["name"].startswith("consumer-") and (p["name"], p["version"], p.get("source")) not in known
    ]
    if new:
        fail(f"{consumer_lock}: resolved packages the workspace's Cargo.lock does not have: {', '.join(new)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "readme":
        check_readme(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "lock":
        check_lock(sys.argv[2], sys.argv[3])
    else:
        fail(__doc__)
