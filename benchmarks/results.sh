#!/usr/bin/env bash
# Every command of the Results page (docs/results.rst), one after another; each
# one's output goes to OUT/<name>.log (and its CSVs and figures to OUT/<name>/).
#   bash benchmarks/results.sh [OUT]        # about 9 hours on 2 CPU cores
# The thread-policy table (bench_parallel.py) times work beside a busy process:
# run it last, on a machine with nothing else running.
set -uo pipefail
out=${1:-results}
mkdir -p "$out"
run() {
    local name=$1
    shift
    echo "== $name: $*"
    local start=$SECONDS
    "$@" >"$out/$name.log" 2>&1
    echo "   exit $?, $((SECONDS - start)) s"
}
bench="python benchmarks/bench_training.py --n-jobs 2"
run digits compgen-sk compare --no-progress --out "$out/digits"
run defaults $bench --datasets balls sprites-l16 digits --csv "$out/defaults.csv"
run three-balls $bench --datasets three-balls --csv "$out/three-balls.csv"
run overlap-penalty $bench --datasets three-balls balls sprites-l16 \
    --csv "$out/overlap-penalty.csv" \
    --generator-params 'decoder=AdditiveDecoder("broadcast", overlap_penalty=0.1, penalty_epochs=15)'
run sprites compgen-sk compare --dataset sprites --no-progress --out "$out/sprites" \
    --methods encoder-autoencoder encoder-supervised generative-encoder generative-search \
    replay replay-search
run data-efficiency compgen-sk compare --no-progress --out "$out/data-efficiency" \
    --n-train 250 500 1000 2000 \
    --methods encoder-autoencoder generative-encoder generative-search replay
run objects compgen-sk compare --dataset objects --no-progress --out "$out/objects"
run object-slots python benchmarks/bench_object_slots.py --decoders mlp broadcast masked
run object-slots-16 python benchmarks/bench_object_slots.py --decoders mlp masked transformer --image-size 16
run object-background python benchmarks/bench_object_background.py --n-jobs 3
run object-background-40 python benchmarks/bench_object_background.py --n-jobs 3 --epochs 40
run object-background-estimator python benchmarks/bench_object_background.py --n-jobs 3 --estimator
run object-background-as-loop python benchmarks/bench_object_background.py --n-jobs 3 --estimator --as-loop
for kl in 0.2 0.5 1; do
    run "object-background-40-kl$kl" python benchmarks/bench_object_background.py \
        --n-jobs 2 --epochs 40 --seeds 0 2 --kl-weight "$kl"
done
run object-background-40-kl0.5-seed1 python benchmarks/bench_object_background.py \
    --epochs 40 --seeds 1 --kl-weight 0.5
run object-inits python benchmarks/bench_object_inits.py
run object-inits-12 python benchmarks/bench_object_inits.py --slot-dim 12
seed0="python benchmarks/bench_object_inits.py --data-seeds 0"
for kl in 0.05 0.5; do
    run "object-transformer-16-kl$kl" $seed0 --inits 0 1 --image-size 16 \
        --decoder transformer --kl-weight "$kl"
done
run object-masked-16 $seed0 --inits 0 1 --image-size 16
run object-transformer-16-120 $seed0 --inits 0 --image-size 16 --decoder transformer \
    --kl-weight 0.5 --epochs 120
run object-transformer-16-replay $seed0 --inits 0 --image-size 16 --decoder transformer \
    --kl-weight 0.05 --replay
run object-two $seed0 --inits 0 1 --n-objects 2 --slot-dim 12
for kl in 0.05 0.5; do
    run "object-transformer-32-kl$kl" $seed0 --inits 0 --decoder transformer --kl-weight "$kl"
done
run sprites-l16 $bench --datasets sprites-l16 --csv "$out/sprites-l16.csv" \
    --generator-params 'decoder=AdditiveDecoder(shared=True), consistency_weight=0.1, consistency_warmup=25'
run shared $bench --datasets sprites-l16 twin-balls balls --csv "$out/shared.csv" \
    --generator-params 'decoder=AdditiveDecoder(shared=True)'
run renderers $bench --datasets balls sprites-l16 digits --csv "$out/renderers.csv" \
    --params 'decoder__renderer="mlp"'
run consistency python benchmarks/bench_sprites.py --csv "$out/consistency.csv"
run search-budget python benchmarks/bench_search_budget.py --n-jobs 2
for epochs in 80 160; do
    run "sprites-$epochs" compgen-sk compare --dataset sprites --seeds 0 --epochs "$epochs" \
        --no-progress --out "$out/sprites-$epochs" \
        --methods generative-encoder generative-search replay replay-search
done
run parallel python benchmarks/bench_parallel.py
