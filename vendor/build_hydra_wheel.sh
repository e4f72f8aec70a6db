#!/usr/bin/env bash
# Rebuild vendor/hydra_core-1.3.8+antlr413-py3-none-any.whl: hydra-core 1.3.8 with its override
# grammar regenerated for the ANTLR 4.10+ runtime (serialized ATN version 4).
#
# Why: DVC parses `dvc exp run -S` overrides with hydra, whose released parser (ANTLR 4.9.3) needs
# antlr4-python3-runtime 4.9.*, while Dagster's asset-selection parser (every --select, job and
# sensor selection) needs >= 4.10: no single runtime served both. omegaconf >= 2.4 vendors its own
# runtime, so after this rebuild one antlr4-python3-runtime (4.13.2) serves Dagster and hydra.
# Needs java and pip; the ANTLR 4.11.1 tool is the one omegaconf 2.4.0's sdist ships.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
"$py" -m pip download -q --no-deps hydra-core==1.3.8 -d whl
"$py" -m pip download -q --no-deps --no-binary :all: hydra-core==1.3.8 omegaconf==2.4.0 -d sdist
tar xzf sdist/hydra_core-1.3.8.tar.gz hydra_core-1.3.8/hydra/grammar
tar xzf sdist/omegaconf-2.4.0.tar.gz omegaconf-2.4.0/build_helpers/bin/antlr-4.11.1-complete.jar
"$py" -m zipfile -e whl/hydra_core-1.3.8-py3-none-any.whl w
for grammar in OverrideLexer OverrideParser; do
  java -jar omegaconf-2.4.0/build_helpers/bin/antlr-4.11.1-complete.jar -Dlanguage=Python3 \
    -o w/hydra/grammar/gen -Xexact-output-dir -visitor "hydra_core-1.3.8/hydra/grammar/$grammar.g4"
done
# ATN format 4 is shared by runtimes 4.10-4.13: say so, or the runtime prints a mismatch warning
sed -i 's/checkVersion("4.11.1")/checkVersion("4.13.2")/' w/hydra/grammar/gen/*.py
"$py" - <<'PY'
import base64, hashlib, os, re
from pathlib import Path
w = Path("w")
old = w / "hydra_core-1.3.8.dist-info"
new = w / "hydra_core-1.3.8+antlr413.dist-info"
old.rename(new)
meta = (new / "METADATA").read_text()
meta = meta.replace("Version: 1.3.8", "Version: 1.3.8+antlr413")
meta = re.sub(r"Requires-Dist: omegaconf.*", "Requires-Dist: omegaconf>=2.4", meta)
meta = re.sub(r"Requires-Dist: antlr4-python3-runtime.*", "Requires-Dist: antlr4-python3-runtime>=4.10,<4.14", meta)
(new / "METADATA").write_text(meta)
rows = []
for path in sorted(p for p in w.rglob("*") if p.is_file() and p.name != "RECORD"):
    data = path.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    rows.append(f"{path.relative_to(w).as_posix()},sha256={digest},{len(data)}")
rows.append(f"{(new / 'RECORD').relative_to(w).as_posix()},,")
(new / "RECORD").write_text("\n".join(rows) + "\n")
PY
rm -f "$here"/hydra_core-*.whl
(cd w && TZ=UTC find . -exec touch -d 1980-01-02 {} + && "$py" -m zipfile -c "$here/hydra_core-1.3.8+antlr413-py3-none-any.whl" $(ls))
echo "wrote $here/hydra_core-1.3.8+antlr413-py3-none-any.whl"
