"""Builds a real TorchScript model archive (.mar) of about SIZE_MB megabytes.

usage: make_mar.py NAME SIZE_MB OUT_DIR [--seed N]

The model multiplies its input by the sum of its weights (float64, random),
so an inference answer proves the archive's bytes arrived intact. Prints
one JSON line: {"file": ..., "bytes": ..., "expected_y_for_x_1": ...}.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch


class Scale(torch.nn.Module):
    def __init__(self, n, seed):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.rand(n, generator=gen, dtype=torch.float64))

    def forward(self, x):
        return (x * self.w).sum()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("size_mb", type=float)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    n = max(1, int(args.size_mb * 1024 * 1024 / 8))
    model = Scale(n, args.seed)
    expected = float(model(torch.tensor(1.0, dtype=torch.float64)))
    handler = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale_handler.py")
    os.makedirs(args.out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        serialized = os.path.join(tmp, f"{args.name}.pt")
        torch.jit.script(model).save(serialized)
        cmd = [
            os.path.join(os.path.dirname(sys.executable), "torch-model-archiver"),
            "--model-name", args.name, "--version", "1.0",
            "--serialized-file", serialized, "--handler", handler,
            "--export-path", args.out_dir, "--force",
        ]
        # torch-model-archiver stages files in $TMPDIR/<model name> and
        # removes whatever is there first: a private TMPDIR keeps two
        # archives of one name (or an unrelated /tmp/<name>) apart.
        subprocess.run(cmd, check=True, env=dict(os.environ, TMPDIR=tmp))
    path = os.path.join(args.out_dir, f"{args.name}.mar")
    print(json.dumps({"file": path, "bytes": os.path.getsize(path),
                      "expected_y_for_x_1": expected}))


if __name__ == "__main__":
    main()
