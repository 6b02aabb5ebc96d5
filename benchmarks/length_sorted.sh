#!/bin/bash
# Batch 1 vs batch 32 on CPU, batches length-sorted (bench's default, as pipelines run them) and padded as they come.
# Writes benchmarks/results/bench-length-sorted/sorted-{true,false}.{json,md}. Run on a quiet machine:
#   bash benchmarks/length_sorted.sh [teacher] [student]
set -euo pipefail
teacher=${1:-../shared/teachers/me5-small}
student=${2:-runs/demo-da/best}
out=benchmarks/results/bench-length-sorted
mkdir -p "$out"
for sort in true false; do
  time-hub bench "$teacher" "$student" --batch_sizes '[1, 32]' --repeats 20 --threads 2 --sort_by_length "$sort" \
    --output_dir "/tmp/bench-sort-$sort"
  cp "/tmp/bench-sort-$sort/bench.json" "$out/sorted-$sort.json"
  cp "/tmp/bench-sort-$sort/bench.md" "$out/sorted-$sort.md"
done
python - "$out" <<'PY'
import json, sys
for sort in ("true", "false"):
    bench = json.load(open(f"{sys.argv[1]}/sorted-{sort}.json"))
    for model in bench["models"]:
        rate = {r["batch_size"]: r["sentences_per_s"] for r in model["results"]}
        print(f"sort_by_length={sort:<5} {model['name']}: batch 32 / batch 1 sentences/s = {rate[32] / rate[1]:.2f}x")
PY
