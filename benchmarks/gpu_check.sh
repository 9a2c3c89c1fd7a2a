#!/usr/bin/env bash
# The GPU measurements of issue 20, in one call (a few minutes on one H100/H200):
#   1. KCenterGreedy at n=230k, d=1024, k=70k on the GPU vs its floor, and vs the CPU path
#      on a subset (same indices checked)      benchmarks/kcenter_gpu.py
#   2. embedding throughput of the packaged all-MiniLM-L6-v2      benchmarks/embedding_throughput.py
#   3. SFT tokens/s and MFU at 1.3B, bf16, ZeRO-2 and ZeRO-3       benchmarks/train_throughput.py
# Tables go to $OUT/gpu_check.txt when OUT is set, else ./gpu_check.txt. Each section fails
# soft: its error tail is written and the next one runs.
#
#   bash benchmarks/build_device_wheels.sh   # here, once: wheels the device image lacks
#   bash benchmarks/gpu_check.sh             # on the device (carry benchmarks/.device-wheels)
#   bash benchmarks/gpu_check.sh --dry       # CPU-sized smoke run of every section
set -u
cd "$(dirname "$0")/.."
RESULT=${OUT:+$OUT/gpu_check.txt}
RESULT=${RESULT:-gpu_check.txt}
PY=${PYTHON:-python}
DRY=0
[ "${1:-}" = "--dry" ] && DRY=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
LOG=$(mktemp)
: > "$RESULT"

section() {  # section TITLE SECONDS COMMAND...: run one measurement, fail soft
    local title=$1 limit=$2 status
    shift 2
    printf '\n## %s\n\n' "$title" >> "$RESULT"
    echo "== $title" >&2
    timeout "$limit" "$@" >> "$RESULT" 2> "$LOG"
    status=$?
    if [ $status -ne 0 ]; then
        { echo "FAILED (exit $status; 124 = over ${limit}s): last lines of stderr:";
          tail -n 15 "$LOG"; } >> "$RESULT"
    fi
}

{ echo "# gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')";
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
      || echo "no nvidia-smi";
  $PY -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__)'
} >> "$RESULT" 2>&1

if [ -d benchmarks/.device-wheels ]; then
    # --no-deps: only what the image lacks travels; warriorcoder itself runs from src/.
    section "install carried wheels" 180 $PY -m pip install --quiet --no-index --no-deps \
        $(ls benchmarks/.device-wheels/*.whl | grep -v '/warriorcoder-')
fi

if [ $DRY = 1 ]; then
    section "KCenterGreedy (dry)" 300 $PY benchmarks/kcenter_gpu.py --dry
    section "Embedding throughput (dry)" 300 $PY benchmarks/embedding_throughput.py --dry
    [ "${SKIP_TRAIN:-0}" = 1 ] || section "SFT throughput (dry, tiny, CPU)" 600 \
        env DS_ACCELERATOR=cpu $PY benchmarks/train_throughput.py --model tiny --seq-len 64 \
        --micro-batch 2 --steps 3 --warmup 1 --no-gradient-checkpointing
else
    section "KCenterGreedy, paper scale" 240 $PY benchmarks/kcenter_gpu.py
    section "Embedding throughput" 120 $PY benchmarks/embedding_throughput.py
    section "SFT throughput, 1.3B, bf16, ZeRO-3" 150 $PY benchmarks/train_throughput.py \
        --model 1.3b --zero 3 --steps 8 --warmup 3
    section "SFT throughput, 1.3B, bf16, ZeRO-2" 150 $PY benchmarks/train_throughput.py \
        --model 1.3b --zero 2 --steps 8 --warmup 3
fi
rm -f "$LOG"
echo "tables written to $RESULT" >&2
cat "$RESULT"
