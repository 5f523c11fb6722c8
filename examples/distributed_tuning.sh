#!/usr/bin/env bash
# Distributed coarse-to-fine search with Keras Tuner's chief/worker mode.
#
# One chief process holds the CoarseToFineOracle (it decides the trials and
# advances the stages); each worker asks it for trials over gRPC, trains
# them and reports back. Every process runs the SAME script with the same
# arguments; only the environment differs:
#
#   KERASTUNER_TUNER_ID     "chief" for the oracle, a unique name per worker
#   KERASTUNER_ORACLE_IP    address of the chief (reachable by the workers)
#   KERASTUNER_ORACLE_PORT  a free port on the chief
#
# On several machines: start the chief on host A with
#   KERASTUNER_TUNER_ID=chief KERASTUNER_ORACLE_IP=0.0.0.0 KERASTUNER_ORACLE_PORT=8000 python examples/tune_fashion_mnist.py
# and on each worker machine
#   KERASTUNER_TUNER_ID=tuner<N> KERASTUNER_ORACLE_IP=<host A> KERASTUNER_ORACLE_PORT=8000 python examples/tune_fashion_mnist.py
# Give every worker its own GPU (CUDA_VISIBLE_DEVICES) and, ideally, a shared
# --out directory (checkpoints of the best models are written by the workers).
# Needs grpcio (`pip install grpcio`; TensorFlow installs it).
#
# This script runs a chief and two workers on this machine, writing their
# logs and results under $OUT (default ./tune_fashion_mnist_distributed*)
# in the current directory:
#   bash examples/distributed_tuning.sh [--quick]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PORT=${KERASTUNER_ORACLE_PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
OUT=${OUT:-tune_fashion_mnist_distributed}
export KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=$PORT

KERASTUNER_TUNER_ID=chief python "$HERE/tune_fashion_mnist.py" --out "$OUT" "$@" > "$OUT.chief.log" 2>&1 &
CHIEF=$!
KERASTUNER_TUNER_ID=tuner0 python "$HERE/tune_fashion_mnist.py" --out "$OUT" "$@" > "$OUT.tuner0.log" 2>&1 &
W0=$!
KERASTUNER_TUNER_ID=tuner1 python "$HERE/tune_fashion_mnist.py" --out "$OUT" "$@" > "$OUT.tuner1.log" 2>&1 &
W1=$!
wait "$W0" "$W1" "$CHIEF"
cat "$OUT.chief.log"
