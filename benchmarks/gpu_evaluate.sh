#!/usr/bin/env bash
# Lent-GPU session: the celeba_mustache and fashionmnist paper evaluations, sharded over processes on one GPU (4 shards
# per CelebA model, 2 per Fashion-MNIST model, 13 processes on 16 cores), beside the test suite. Every process writes
# its results unit by unit; a process stopped at LIMIT seconds keeps what it scored, and the same command resumes it.
# Data: .data/pack/celeba-subset.tar.gz (tar czf of the shared celeba-subset/ folder) and the two t10k files in
# .data/fashion-mnist/; the Python packages the GPU image lacks as wheels in .whl/ (README of the device tool).
# Run from the repository root: LIMIT=470 OUT=folder bash benchmarks/gpu_evaluate.sh
set -u
LIMIT=${LIMIT:-480}
DEVICE=${DEVICE:-cuda}
SAMPLES=${SAMPLES:-}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" .gpu/eval .gpu/logs
[ -d .data/celeba-subset ] || tar xzf .data/pack/celeba-subset.tar.gz -C .data || { echo "no CelebA data"; exit 1; }
export PYTHONUNBUFFERED=1 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ -d .whl ] && [ "$DEVICE" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=$PWD:/tmp/site
fi
{ date -u; nvidia-smi -L 2>&1; nproc; python3 -c "import torch, timm, captum, quantus; print(torch.__version__, timm.__version__, captum.__version__, quantus.__version__, torch.cuda.is_available())"; } > .gpu/logs/env.txt 2>&1
cat .gpu/logs/env.txt

run_eval() {  # config model shard
  local name="$1-$2-s${3%/*}"
  local begin=$EPOCHREALTIME
  OTNN_DATA_DIR=$PWD/.data timeout "$LIMIT" python3 -m otnn_plugin evaluate "evaluations/$1.yaml" --models "$2" \
    --shard "$3" --device "$DEVICE" --threads 1 --quiet --no-leaderboard ${SAMPLES:+--samples $SAMPLES} \
    --out ".gpu/eval/$name" > ".gpu/logs/$name.log" 2>&1
  local code=$?
  echo "{\"run\": \"$name\", \"exit\": $code, \"seconds\": $(awk "BEGIN{print $EPOCHREALTIME - $begin}")}" >> .gpu/logs/walls.jsonl
}

for model in OTNN Unconstrained; do
  for shard in 0/4 1/4 2/4 3/4; do run_eval celeba_mustache "$model" "$shard" & done
  for shard in 0/2 1/2; do run_eval fashionmnist "$model" "$shard" & done
done
run_eval fashionmnist Linear 0/1 &

# The test suite on the GPU machine (the data-backed tests skip: only the test splits travel).
(mkdir -p /tmp/nodata; OTNN_DATA_DIR=/tmp/nodata timeout "$LIMIT" python3 -m pytest -q -n 2 -p no:cacheprovider \
   > .gpu/logs/pytest.log 2>&1; echo "pytest exit $?" >> .gpu/logs/pytest.log) &
wait
tail -3 .gpu/logs/pytest.log
cat .gpu/logs/walls.jsonl
tar czf "$OUT/eval.tar.gz" .gpu/eval
tar czf "$OUT/logs.tar.gz" .gpu/logs
ls -la "$OUT"
