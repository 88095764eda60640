#!/usr/bin/env bash
# The GPU checks of one lent device session, in priority order, each bounded so the later ones still run:
#   bash bench/gpu_checks.sh OUT_DIR FASHION_MNIST_DIR
# 1. the suite's GPU tests; 2. bench/train_step.py on CUDA (steps, epochs, scaling, profile);
# 3. bench/iw_loglik.py with k = 5000 on the 10,000 test images; 4. `vae train` for three epochs, with and without CUDA graphs.
# Results: OUT_DIR/{gpu.log, train_step_cuda.json, iw_loglik-*.json, vae_train_metrics.jsonl}.
set -u
out=${1:?OUT_DIR}; data=${2:?FASHION_MNIST_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
log="$out/gpu.log"
step() { echo "=== $* ($(date +%T))" | tee -a "$log"; }

step device
nvidia-smi -L 2>&1 | tee -a "$log"
python3 -c "import torch, pyro, arviz; print('torch', torch.__version__, 'pyro', pyro.__version__, 'arviz', arviz.__version__)" 2>&1 | tee -a "$log"

step GPU tests
timeout 100 python3 -m pytest -q -p no:cacheprovider -m gpu tests/inference/training/test_gpu.py tests/inference/training/test_captured_engines.py \
    tests/inference/data/test_data.py 2>&1 | tail -30 | tee -a "$log"

step train_step
timeout 260 python3 bench/train_step.py --device cuda --dataset fashion-mnist --data-dir "$data" \
    --batch-sizes 128 1024 --modes trace trace-eager inductor --epoch-modes trace inductor --epoch --scaling \
    --profile --json "$out/train_step_cuda.json" 2>&1 | grep -v "^\(USDT\|STAGE\)" | tee -a "$log"

step iw_loglik
timeout 60 python3 bench/iw_loglik.py --iw-samples 5000 --test-images 10000 --device cuda --data-dir "$data" \
    --out "$out" 2>&1 | tee -a "$log"

for graph in "" --no-cuda-graph; do
    step vae train $graph
    timeout 60 python3 -m inference.cli train --dataset fashion-mnist --data-dir "$data" --epochs 3 --device cuda \
        $graph --out /tmp/gpu_run$graph --force 2>&1 | tail -6 | tee -a "$log"
    cp /tmp/gpu_run$graph/metrics.jsonl "$out/vae_train_metrics$graph.jsonl" 2>/dev/null
done
step done
