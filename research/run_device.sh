#!/bin/bash
# The one command run on the GPU machine (device tool): builds test/fixtures and packs them into $OUT.
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
{
  python3 -c 'import torch, transformers, tokenizers, safetensors; print(torch.__version__, transformers.__version__, tokenizers.__version__, safetensors.__version__)'
  python3 research/stream_ref.py --selftest
  time python3 research/fixtures.py; echo "fixtures rc=$?"
  time python3 research/stream_ref.py; echo "stream_ref rc=$?"
  du -sh test/fixtures/*
} 2>&1 | tee "$OUT/log"
tar czf "$OUT/fixtures.tgz" test/fixtures && ls -la "$OUT"
