#!/bin/bash
# The one command run on the GPU machine (device tool) for the narrowed fixtures (2026-12-02): rebuilds only
# the fixtures whose spec changed, the stream references of the two stream families among them, and packs
# those directories into $OUT. The other fixtures (llama, qwen2, gpt_neox, falcon, mpt, lowrank-llama) are
# not rebuilt, so their bytes stay as committed.
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
NAMES="llama-bf16 mistral falcon-alibi llama-rope-linear llama-rope-dynamic llama-rope-llama3 llama-rope-yarn mistral-sliding mpt-expansion"
{
  python3 -c 'import torch, transformers, tokenizers, safetensors; print(torch.__version__, transformers.__version__, tokenizers.__version__, safetensors.__version__)'
  time python3 research/fixtures.py $NAMES; echo "fixtures rc=$?"
  time python3 research/stream_ref.py mistral; echo "stream_ref rc=$?"
  for n in $NAMES; do du -sb test/fixtures/$n; done
} 2>&1 | tee "$OUT/log"
tar czf "$OUT/fixtures.tgz" test/fixtures/versions.json $(for n in $NAMES; do echo test/fixtures/$n; done) && ls -la "$OUT"
