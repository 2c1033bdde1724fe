#!/usr/bin/env bash
# Session 7's one prepared run on a lent GPU machine, used as a 16-core box: eight teacher variants
# of experiments/teacher-variants/teacher_variants.py side by side, each on 2 CPU threads (device cpu, as on the
# project's CPU machine), seed 0 of runs/demo4. Rule and results: experiments/teacher-variants/README.md.
#
# It needs, in .gpu/ (ignored; carried): whl/ (soundfile, cffi, pycparser, espeakng_loader, jiwer,
# rapidfuzz for the machine's Python 3.12) and seed-0/pretrain/{manifest.jsonl, content-2/final,
# targets-2 without features/} copied from runs/demo4/seed-0. The corpus is synthesised there
# (deterministic: its content hash is printed and must equal the CPU machine's).
set -u
T0=$(date +%s); BUDGET=${BUDGET:-545}; PY=${PY:-python3}  # EXTRA: overrides added to every variant (smoke tests)
[ -n "${SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 MPLBACKEND=Agg OMP_NUM_THREADS=2
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; RES=/tmp/res; mkdir -p $RES
$PY -c "import torch, sys, os; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cpus', os.cpu_count())" | tee "$OUT/machine.txt"
lscpu | grep -E "Model name|^CPU\(s\)" | tee -a "$OUT/machine.txt"
D=$PWD/.gpu/seed-0
$PY -m jooci.cli synth --out $D/corpus --minutes 60 --seed 0 --speakers 48 --workers 16 > $RES/synth.log 2>&1 || { tail $RES/synth.log; exit 1; }
$PY .gpu/corpus_hash.py $D/corpus | tee -a "$OUT/machine.txt"
sed -i "s#\"path\": \"[^\"]*/corpus/#\"path\": \"$D/corpus/#" $D/pretrain/manifest.jsonl  # the copy's corpus
echo "set-up done at $(( $(date +%s) - T0 )) s"

T6=schedule.teacher
run() {  # NAME [overrides...]
  local name=$1; shift
  local args=(); for o in "$@" ${EXTRA:-}; do args+=(--set "$o"); done
  timeout $(( BUDGET - ($(date +%s) - T0) - 15 )) $PY experiments/teacher-variants/teacher_variants.py $D --name $name \
    "${args[@]}" ${PHASE1:+--phase1 $PHASE1} --out $RES/$name.json > $RES/$name.log 2>&1
  echo "$name rc=$? at $(( $(date +%s) - T0 )) s"
}
K() { echo teacher.head.out_dim=$1 model.dino.out_dim=$1; }
PHASE1="schedule.phase1.steps=1 schedule.phase1.warmup_steps=1" run init $T6.steps=1 $T6.warmup_steps=1 &
run default &
run k1024 $(K 1024) &
run k256 $(K 256) &
run k64 $(K 64) &
run steps600 $T6.steps=600 $T6.warmup_steps=60 &
run k256-steps600 $(K 256) $T6.steps=600 $T6.warmup_steps=60 &
run lr2e-3 $T6.lr=2.0e-3 &
wait
$PY - "$RES" "$OUT/teacher-variants.json" <<'PY'
import json, sys
from pathlib import Path
rows = [r for f in sorted(Path(sys.argv[1]).glob("*.json")) for r in json.loads(f.read_text())]
Path(sys.argv[2]).write_text(json.dumps(rows, indent=1))
PY
$PY experiments/teacher-variants/teacher_variants.py $D --show --out "$OUT/teacher-variants.json"
(cd $RES && tar czf "$OUT/logs.tar.gz" *.log)
echo "all done at $(( $(date +%s) - T0 )) s"
