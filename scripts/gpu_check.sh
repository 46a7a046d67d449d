#!/usr/bin/env bash
# The CUDA checks of augbench, one prepared script (about 5 minutes on an H100-class GPU).
#
#   scripts/gpu_check.sh                 # writes results/perf/paper-cuda*
#   OUT_DIR=/some/dir scripts/gpu_check.sh
#
# Needs a CUDA build of torch and augbench importable (pip install -e .); no network, no data
# (the bench uses synthetic images). Steps, each logged under $OUT_DIR:
#   1. the tests that skip without CUDA (reason "needs CUDA" / "needs a GPU"); a skip here fails;
#   2. two one-epoch runs on CUDA with bf16 and channels_last (training, validation, TTA, records);
#   3. device syncs per training step and per augmentation call of every crop-family method
#      (torch.cuda.set_sync_debug_mode): paper-cuda-syncs.csv;
#   4. `augbench bench --config paper --device cuda --set train.amp=bf16 --set run.channels_last=true
#      --compare-public`: per method the augmentation's images/s and share of the step, the step
#      ratio to random-crop (and augbench's InstaAug step over the public code's), TTA with 50 views
#      against 50 plain forwards, peak memory: paper-cuda.csv, paper-cuda.txt, paper-cuda.png.
# Exit status: 0 when every step passed, 1 otherwise (every step runs regardless).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT_DIR:-results/perf}
PY=${PYTHON:-python}
mkdir -p "$OUT_DIR"
status=0
step() { echo; echo "== $*"; }

step "environment"
if ! "$PY" -c "import torch, augbench; assert torch.cuda.is_available(), 'no CUDA GPU visible'"; then
    echo "gpu_check: needs a CUDA GPU and augbench importable by $PY" >&2
    exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true

step "1. tests that skip without CUDA"
mapfile -t files < <(grep -lE "needs CUDA|needs a GPU" tests/*.py)
"$PY" -m pytest -q -rs -p no:cacheprovider "${files[@]}" -k "cuda or gpu" 2>&1 | tee "$OUT_DIR/paper-cuda-tests.txt"
test_rc=${PIPESTATUS[0]}
if [ "$test_rc" -ne 0 ] || grep -qE "SKIPPED.*(needs CUDA|needs a GPU)" "$OUT_DIR/paper-cuda-tests.txt"; then
    echo "gpu_check: CUDA tests failed or were skipped" >&2
    status=1
fi

step "2. one-epoch runs on CUDA (bf16, channels_last)"
runs=$(mktemp -d)
for method in instaaug autoaugment; do
    if ! "$PY" -m augbench run clutter-crop --method "$method" --device cuda --out "$runs/$method" --json \
            --set train.epochs=1 --set data.n_train=256 --set data.n_test=64 --set train.amp=bf16 \
            --set run.channels_last=true --set eval.tta_views=4 --set run.progress=false \
            > "$OUT_DIR/paper-cuda-run-$method.json"; then
        echo "gpu_check: the CUDA run of $method failed" >&2
        status=1
    fi
done
rm -rf "$runs"

step "3. device syncs per training step and per augmentation call"
"$PY" - "$OUT_DIR/paper-cuda-syncs.csv" <<'EOF' || status=1
import sys, tempfile, traceback, warnings
from pathlib import Path

import pandas as pd
import torch

from augbench.methods import get_method, list_methods
from augbench.perf.configs import get_config
from augbench.perf.harness import MethodHarness, dataset_for, fixed_batches
from augbench.runs import resolve
from augbench.tasks.evaluate import to_float

cfg = get_config("paper")
overrides = {**cfg.settings, "run.device": "cuda", "run.progress": False, "train.amp": "bf16",
             "run.channels_last": True}
s = resolve(cfg.benchmark, "none", 0, overrides).settings
data = dataset_for(cfg, s["train.batch_size"], s["train.val_fraction"], 4, 2, 0)


def syncs(fn):
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


rows, failed = [], False
for name in list_methods():
    if "crop" not in get_method(name).families:
        continue
    try:
        with tempfile.TemporaryDirectory() as tmp:
            h = MethodHarness(cfg.benchmark, name, overrides, data, Path(tmp), 0)
            idx = fixed_batches(len(h.trainer.train_split), s["train.batch_size"], 2, h.device)
            x, y = to_float(h.trainer.train_split.x[idx[0]]), h.trainer.train_split.y[idx[0]]
            for _ in range(2):  # caches, lazy modules, cuDNN autotuning
                h.step(idx[0])
                h.augment(x, y)
            rows.append({"method": name, "syncs_per_step": syncs(lambda: h.step(idx[1])),
                         "syncs_per_augment": syncs(lambda: h.augment(x, y)), "steps_per_block": h.block})
    except Exception:  # noqa: BLE001
        failed = True
        traceback.print_exc()
        rows.append({"method": name, "syncs_per_step": float("nan"), "syncs_per_augment": float("nan"),
                     "steps_per_block": 0})
df = pd.DataFrame(rows)
df.to_csv(sys.argv[1], index=False)
print(df.to_string(index=False))
sys.exit(1 if failed else 0)
EOF

step "4. augbench bench --config paper on CUDA"
"$PY" -m augbench bench --config paper --device cuda --set train.amp=bf16 --set run.channels_last=true \
    --compare-public --reps 5 --warmup 3 --tta-views 50 \
    --out "$OUT_DIR/paper-cuda.csv" --figure "$OUT_DIR/paper-cuda.png" 2> "$OUT_DIR/paper-cuda-bench.log" \
    | tee "$OUT_DIR/paper-cuda.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu_check: the bench reported a failure (see paper-cuda-bench.log)" >&2; status=1; }

step "summary"
"$PY" - "$OUT_DIR/paper-cuda.csv" <<'EOF' || status=1
import sys

import pandas as pd

df = pd.read_csv(sys.argv[1])
cols = {"method": "method", "system": "system", "augment_img_s": "aug img/s", "augment_own_pct": "aug % of step",
        "step_ms": "step ms", "step_x_crop": "step x crop", "step_x_public": "x public",
        "tta_views_evaluated": "TTA views run", "tta_x_plain": "TTA-50 x 50 fwd", "step_mem_mb": "step MiB",
        "tta_mem_mb": "TTA MiB"}
print(df[df["status"] == "ok"][list(cols)].rename(columns=cols).round(3).to_string(index=False))
bad = df[df["status"] == "failed"]
for _, r in bad.iterrows():
    print(f"FAILED {r['method']} ({r['system']}): {r['note']}")
sys.exit(1 if len(bad) else 0)
EOF
echo
echo "gpu_check: files in $OUT_DIR: paper-cuda.csv paper-cuda.txt paper-cuda.png paper-cuda-syncs.csv paper-cuda-tests.txt"
exit $status
