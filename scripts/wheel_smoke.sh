#!/usr/bin/env bash
# The wheel as users get it: build the sdist and wheel, install the wheel (not editable) into a fresh
# virtual environment and run `augbench list`, a one-epoch run and `augbench leaderboard` from an empty
# folder outside the source tree, so package data missing from the wheel (grids, the catalog, the
# paper's results, the leaderboard's templates) fails here.
#
#   scripts/wheel_smoke.sh WORK_DIR      # WORK_DIR: a scratch folder (created; the caller removes it)
set -euo pipefail
work="${1:?usage: scripts/wheel_smoke.sh WORK_DIR}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$work"
work="$(cd "$work" && pwd)"

python -m build --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
ls "$work"/dist/augbench-*.tar.gz "$work"/dist/augbench-*.whl

python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work"/dist/augbench-*.whl

mkdir -p "$work/smoke"
cd "$work/smoke"
export AUGBENCH_CACHE="$work/cache"
bin="$work/venv/bin"
env -u PYTHONPATH "$bin/python" -c "import augbench, sys; p = augbench.__file__; \
    sys.exit(0 if p.startswith('$work/venv/') else f'augbench imported from {p}, not the installed wheel')"
env -u PYTHONPATH "$bin/augbench" --version
env -u PYTHONPATH "$bin/augbench" list
env -u PYTHONPATH "$bin/augbench" run glyphs-rotation --method random-rotation --out runs/smoke \
    --set train.epochs=1 --set data.n_train=256 --set data.n_test=64
env -u PYTHONPATH "$bin/augbench" leaderboard runs --out site
test -s site/index.html && test -s site/glyphs-rotation/index.html
echo "wheel smoke test passed"
