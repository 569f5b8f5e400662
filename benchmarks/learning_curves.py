"""Record a learning-curve table for `benchmarks/search_efficiency.py`: the sweep file's
points_to_evaluate and then random configs of its space, each trained to the full budget on
each seed, one thread, in this process. Appends as it goes; the same command continues a
stopped build. Run from the repository root (training functions import from there).

    python benchmarks/learning_curves.py search_spaces/quickstart_graft.yaml \\
        --configs 256 --seeds 2 --top 64 --out benchmarks/tables/digits_graft.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from tuning.replay.build import build_table
from tuning.run.overrides import parse_overrides
from tuning.sweep.spec import load_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_file", type=Path)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="as after a sweep file on the command line")
    parser.add_argument("--configs", type=int, required=True, help="how many configs (the file's start points first)")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per config: the file's seed, +1, ...")
    parser.add_argument("--top", type=int, help="train seeds after the first only for this many best configs")
    parser.add_argument("--draw-seed", type=int, default=0, help="seed of the random draws of configs")
    parser.add_argument("--out", type=Path, required=True, help="the table file (CSV) to write or continue")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, os.getcwd())  # as fishleg-tune does: `trainable: examples.charlm.train:fit` from here
    spec = load_sweep(args.sweep_file, overrides=parse_overrides(args.overrides, str(args.sweep_file)))
    build_table(
        spec,
        args.out,
        configs=args.configs,
        seeds=args.seeds,
        top=args.top,
        draw_seed=args.draw_seed,
        source=str(args.sweep_file),
        overrides=args.overrides,
    )


if __name__ == "__main__":
    main()
