#!/usr/bin/env bash
# The CUDA checks of augbench: one prepared script, every step under its own time limit
# (at most about 9 minutes in all), every step run whatever the others gave.
#
#   scripts/gpu_check.sh            # on a CUDA GPU; writes $OUT_DIR (default results/perf/gpu)
#   scripts/gpu_check.sh --dry      # the same steps on the CPU at a tiny size (a test runs it)
#
# Needs augbench importable by $PYTHON (default python) and, for the per-op table against
# kornia, `pip install -e '.[bench]'`; no network, no data (every image is synthetic). Steps:
#   1. the tests that skip without CUDA ("needs CUDA" / "needs a GPU"); a skip here fails;
#   2. `tinyimagenet-crop` InstaAug at the paper's batch (100) and image size (64 px) on synthetic
#      data of Tiny-ImageNet's size (100,000 + 10,000 images): per-epoch wall time of training,
#      validation and checkpoint, the final evaluation with 50-view TTA, and the extrapolation to
#      the 150-epoch schedule against one hour (epochs.txt);
#   3. host-device syncs per training step of every crop-family method on the paper config:
#      the calls augbench's counter recognises and the syncs CUDA reports (syncs.csv);
#   4. `augbench bench --ops`: images/s of each per-sample op beside kornia and torchvision's
#      per-image loop on the same GPU, 224 px x 32 and 32 px x 128 (ops.csv, ops.txt);
#   5. `augbench bench --config paper --compare-public` with bf16 and channels_last: each method's
#      augmentation, step against random-crop and the public code, TTA against plain forwards
#      (paper.csv, paper.txt).
# Exit status: 0 when every step passed, 1 otherwise, 2 when no GPU (or no augbench) is there.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry" ] && DRY=1
PY=${PYTHON:-python}
if [ "$DRY" = 1 ]; then
    OUT_DIR=${OUT_DIR:-$(mktemp -d)}
    DEVICE=cpu
    # tiny sizes: the point is that every step still runs, not the figures
    TESTS=(--collect-only -q)  # the CUDA tests cannot run here: that they still import and collect
    EPOCHS=(--device cpu --epochs 1 --size 96,16,32,10 --set train.batch_size=16 --set eval.tta_views=2
            --set model.name=small_cnn --set model.width=0.25)
    SYNCS=(--config tiny --device cpu)
    OPS=(--device cpu --sizes 16x4 --reps 1 --min-time 0)
    BENCH=(--config tiny --device cpu --reps 1 --warmup 1 --min-time 0 --no-memory --tta-batch 2 --methods instaaug)
    LIMITS=(240 240 240 240 240)  # generous: a shared CI machine may be slow
else
    OUT_DIR=${OUT_DIR:-results/perf/gpu}
    DEVICE=cuda
    TESTS=(-k "cuda or gpu")
    EPOCHS=(--device cuda --epochs "${EPOCHS_TIMED:-2}" --set train.amp=bf16 --set run.channels_last=true)
    SYNCS=(--config paper --device cuda --set train.amp=bf16 --set run.channels_last=true)
    OPS=(--device cuda --reps 7)
    BENCH=(--config paper --device cuda --set train.amp=bf16 --set run.channels_last=true --compare-public
           --reps 5 --warmup 3 --tta-views 50)
    LIMITS=(90 200 60 60 110)  # seconds per step: 520 in all
fi
mkdir -p "$OUT_DIR"
status=0
step() { echo; echo "== $*"; }
fail() { echo "gpu_check: $*" >&2; status=1; }

step "environment"
if [ "$DRY" = 0 ] && ! "$PY" -c "import torch, augbench; assert torch.cuda.is_available(), 'no CUDA GPU visible'"; then
    echo "gpu_check: needs a CUDA GPU and augbench importable by $PY (or --dry)" >&2
    exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU (dry run on the CPU)')"
"$PY" -c "import kornia; print('kornia', kornia.__version__)" 2>/dev/null || echo "kornia not installed: the op table leaves it out"

step "1. tests that skip without CUDA"
mapfile -t files < <(grep -lE "needs CUDA|needs a GPU" tests/*.py)
timeout "${LIMITS[0]}" "$PY" -m pytest -q -rs -p no:cacheprovider "${files[@]}" "${TESTS[@]}" 2>&1 | tee "$OUT_DIR/tests.txt"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ] || { [ "$DRY" = 0 ] && grep -qE "SKIPPED.*(needs CUDA|needs a GPU)" "$OUT_DIR/tests.txt"; }; then
    fail "the CUDA tests failed, timed out or were skipped (exit $rc)"
fi

step "2. tinyimagenet-crop InstaAug: epochs, evaluation, TTA, extrapolation to 150 epochs"
timeout "${LIMITS[1]}" "$PY" -m augbench.perf.epochs --benchmark tinyimagenet-crop --method instaaug "${EPOCHS[@]}" \
    2>"$OUT_DIR/epochs.log" | tee "$OUT_DIR/epochs.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the timed epochs failed or timed out (see epochs.log)"

step "3. host-device syncs per training step"
timeout "${LIMITS[2]}" "$PY" -m augbench.perf.syncs "${SYNCS[@]}" --out "$OUT_DIR/syncs.csv" 2>"$OUT_DIR/syncs.log" \
    | tee "$OUT_DIR/syncs.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "counting syncs failed or timed out (see syncs.log)"

step "4. per-op images/s against kornia and torchvision on $DEVICE"
timeout "${LIMITS[3]}" "$PY" -m augbench bench --ops "${OPS[@]}" --out "$OUT_DIR/ops.csv" 2>"$OUT_DIR/ops.log" \
    | tee "$OUT_DIR/ops.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "bench --ops failed or timed out (see ops.log)"

step "5. augbench bench --config paper on $DEVICE"
timeout "${LIMITS[4]}" "$PY" -m augbench bench "${BENCH[@]}" --out "$OUT_DIR/paper.csv" 2>"$OUT_DIR/paper.log" \
    | tee "$OUT_DIR/paper.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the bench failed or timed out (see paper.log)"

echo
echo "gpu_check: $([ $status = 0 ] && echo "every step passed" || echo "FAILED steps above"); files in $OUT_DIR"
exit $status
