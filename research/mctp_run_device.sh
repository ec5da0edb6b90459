#!/bin/bash
# The one device (GPU) command of docs/training.md (MCTP section): trains MCTP heads for both shipped models at once on the GPU.
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT/r"
S=${SECONDS_TRAIN:-300}
R=research/_mctp_run
nvidia-smi --query-gpu=name,memory.used --format=csv 2>&1 | tee "$OUT/log"
timeout 120 python3 $R/mctp_train.py --selftest > "$OUT/r/selftest.log" 2>&1; echo "selftest rc=$?" | tee -a "$OUT/log"; tail -5 "$OUT/r/selftest.log" | tee -a "$OUT/log"
for m in novels-8m novels-8m-sink; do
  mkdir -p "$OUT/r/$m"
  python3 $R/mctp_train.py --model models/$m --data $R --out "$OUT/r/$m" --seconds $S > "$OUT/r/$m/train.log" 2>&1 &
done
wait
for m in novels-8m novels-8m-sink; do echo "== $m"; grep -v "^.*it [0-9]*[1-9]00 " "$OUT/r/$m/train.log" | tail -30; done | tee -a "$OUT/log"
cd "$OUT" && tar czf result.tgz r && rm -rf r && ls -la
