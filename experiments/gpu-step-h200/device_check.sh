#!/usr/bin/env bash
# One prepared run on a lent GPU machine (see benchmarks/RESULTS.md for what it gave):
#   1. the step/extraction benchmark against HF HuBERT (GPU to itself),
#   2. then, side by side: the GPU tests (pytest -m gpu) and four demos -- seeds 0, 1, 2 at the
#      demo's budget and seed 0 at 3x its steps -- to see how much of the demo's verdict is seed
#      noise and whether more steps change it.
# It runs under the machine's own python3 (its torch, not the pinned CPU build), with jooci's
# missing dependencies carried as wheels in .whl/. Everything comes back as a few files in $OUT.
set -u
T0=$(date +%s)
left() { echo $(( ${BUDGET:-540} - ($(date +%s) - T0) )); }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/machine.txt"
python3 -c "import torch, transformers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'cpus', __import__('os').cpu_count())" | tee -a "$OUT/machine.txt"

timeout 150 python3 benchmarks/gpu_step.py --out "$OUT/gpu_step.json" > "$OUT/gpu_step.log" 2>&1
echo "bench rc=$? at $(( $(date +%s) - T0 )) s"; tail -n 15 "$OUT/gpu_step.log"

W=/tmp/w; mkdir -p $W
stop=$(( $(left) - 25 ))
timeout $stop python3 -m pytest -q -p no:cacheprovider -o addopts="--strict-markers" -m gpu tests/test_device.py > "$OUT/test_gpu.log" 2>&1 &
for run in "s0 0 1" "s1 1 1" "s2 2 1" "s0x3 0 3"; do
  set -- $run
  timeout $stop python3 -m jooci.cli demo --out $W/$1 --seed $2 --threads 3 --device cuda schedule.scale=$3 \
    > $W/$1.log 2>&1 &
done
wait
echo "all done at $(( $(date +%s) - T0 )) s"; tail -n 5 "$OUT/test_gpu.log"
for d in $W/s*/; do n=$(basename $d); echo "== $n"; grep -E "^== .*: [0-9.]+ s|wall time" $W/$n.log; done
cd $W && tar czf "$OUT/demos.tar.gz" --exclude='*/corpus' --exclude='*/eval/cache' --exclude='*.safetensors' \
  --exclude='*/checkpoint*' --exclude='*/tensorboard' --exclude='*.km' --exclude='*.npy' *.log s*/ 2>/dev/null
ls -la "$OUT"
