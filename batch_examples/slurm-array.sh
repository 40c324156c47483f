#!/usr/bin/env bash
# Split one manifest over a Slurm job array of 8 tasks:
#   sbatch batch_examples/slurm-array.sh models.csv
# Each task runs `fwprep batch --shard auto`, which reads SLURM_ARRAY_TASK_ID,
# SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT. Every task writes its own report;
# afterwards, `fwprep report reports/shard-*.jsonl` gives the merged summary.
#SBATCH --job-name=fwprep
#SBATCH --array=0-7
#SBATCH --cpus-per-task=1
#SBATCH --mem=512M
#SBATCH --time=02:00:00
#SBATCH --output=reports/slurm-%A_%a.log
set -euo pipefail

manifest=${1:?usage: sbatch slurm-array.sh MANIFEST}
mkdir -p reports
# fwprep comes from a wheel built from this checkout, installed once into a virtual environment
# on the shared filesystem (never by name from a package index):
#   python3 -m pip wheel --no-deps --wheel-dir dist .
#   python3 -m venv ~/fwprep-venv && ~/fwprep-venv/bin/pip install dist/fwprep-*.whl
# (or run the image the Containerfile builds, with your cluster's container support).
fwprep=${FWPREP:-$HOME/fwprep-venv/bin/fwprep}
# FIREWORKS_API_KEY and FIREWORKS_ACCOUNT_ID come from the submitting environment.
# The account's limit is shared by the tasks: each one's limiter finds its share, with no
# setting. One process keeps up with any account's limit, so tasks make a job no faster than
# the limit allows; on an account under a few hundred requests a minute, run one task. A fixed
# share (--max-rps 10 each: 80 requests/s in all) suits a fast account whose share you know.
exec "$fwprep" batch "$manifest" --shard auto --resume -q \
    --report "reports/shard-${SLURM_ARRAY_TASK_ID}.jsonl"
