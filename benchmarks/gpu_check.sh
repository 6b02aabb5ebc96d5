#!/bin/bash
# GPU readiness, one script, under 8 minutes on one H100/H200: records into benchmarks/results/gpu/
#   1. one distillation step, ours vs naive: XLM-R-Large's shape (random weights) as a bf16 teacher, relations at
#      layer 12 of 24, student m, batch 32 x 512 (benchmarks/distill_step.py);
#   2. time-hub bench xlm-roberta-large m s xs --device cuda --dtype fp16 with NVML energy (J/sentence) and absolute
#      sentences/s of XLM-R-Large (the paper's author reports about 370/s).
# Usage: bash benchmarks/gpu_check.sh            (on the GPU machine; commit benchmarks/results/gpu/ afterwards)
#        bash benchmarks/gpu_check.sh --dry_run [OUT]   (CPU, tiny sizes: checks the script itself; CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/gpu device=cuda dtype=fp16 teacher_dtype=bfloat16 student=m batch=32 seq=512
teacher=(--teacher_arch xlm-roberta-large --teacher_layer 12)
models=(xlm-roberta-large m s xs) batches='[1, 32, 128]' repeats=30 steps=3
if [ "${1:-}" = "--dry_run" ]; then
  out=${2:-/tmp/gpu-check-dry} device=cpu dtype=fp32 teacher_dtype=float32 student=L2-H64-A2 batch=2 seq=32
  models=(L2-H64-A2 L1-H64-A2) batches='[1]' repeats=1 steps=1
  teacher=(--teacher_layer 6)  # the real me5-small: building XLM-R-Large's random weights takes most of a minute
fi
mkdir -p "$out"
start=$(date +%s)
{ nvidia-smi || echo "no nvidia-smi on this machine"; } > "$out/nvidia-smi.txt" 2>&1
python -c "import json, torch, transformers, platform; print(json.dumps({'torch': torch.__version__, \
'transformers': transformers.__version__, 'cuda': torch.version.cuda, 'python': platform.python_version(), \
'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))" > "$out/versions.json"
python benchmarks/distill_step.py "${teacher[@]}" --teacher_dtype "$teacher_dtype" \
  --device "$device" --student "$student" --heads 16 --batch "$batch" --seq "$seq" --steps "$steps" \
  --json "$out/distill_step.json" | tee "$out/distill_step.txt"
time-hub bench "${models[@]}" --device "$device" --dtype "$dtype" --batch_sizes "$batches" --repeats "$repeats" \
  --tokenizer ../shared/tokenizers/xlm-roberta --output_dir "$out/bench" | tee "$out/bench.txt"
echo "gpu_check: $(( $(date +%s) - start )) s" | tee "$out/wall_time.txt"
