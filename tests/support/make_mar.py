"""Builds a real TorchScript model archive of about SIZE_MB megabytes.

usage: make_mar.py NAME SIZE_MB OUT_DIR [--seed N]
                   [--archive-format default|tgz|zip-store|no-archive]
                   [--shards N]

The model multiplies its input by the sum of its weights (float64, random),
so an inference answer proves the archive's bytes arrived intact. With
--shards N the weights are split over N files: the TorchScript module holds
the first part, weights/shard-K-of-N.pt (torch.save of a tensor) the rest,
and scale_handler.py adds x * their sums. --archive-format is passed to
torch-model-archiver: NAME.mar (default: deflated zip; zip-store: stored
entries), NAME.tar.gz (tgz) or the directory NAME/ (no-archive: the unpacked
model, MAR-INF/MANIFEST.json at its root). Prints one JSON line:
{"file": ..., "bytes": ..., "files": ..., "format": ..., "expected_y_for_x_1": ...}
("bytes" and "files" count every file under a directory).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch

OUTPUT = {"default": "{}.mar", "zip-store": "{}.mar", "tgz": "{}.tar.gz", "no-archive": "{}"}


class Scale(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.w = torch.nn.Parameter(weights)

    def forward(self, x):
        return (x * self.w).sum()


def shard_sums(shards):
    """What scale_handler.py adds per unit of x: the same sum, in the same order."""
    return sum(float(s.sum()) for s in shards)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("size_mb", type=float)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--archive-format", default="default", choices=sorted(OUTPUT))
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()

    n = max(args.shards, int(args.size_mb * 1024 * 1024 / 8))
    gen = torch.Generator().manual_seed(args.seed)
    weights = torch.rand(n, generator=gen, dtype=torch.float64)
    parts = list(torch.tensor_split(weights, max(1, args.shards)))
    model = Scale(parts[0].clone())
    extra = [p.clone() for p in parts[1:]]
    expected = float(model(torch.tensor(1.0, dtype=torch.float64))) + 1.0 * shard_sums(extra)
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
            "--archive-format", args.archive_format,
        ]
        if extra:
            # A folder given as an extra file is copied into the model's
            # root with what it holds: weights/ lands beside the module.
            shard_dir = os.path.join(tmp, "extra", "weights")
            os.makedirs(shard_dir)
            for i, shard in enumerate(extra, start=1):
                torch.save(shard, os.path.join(shard_dir, f"shard-{i:03}-of-{len(parts):03}.pt"))
            cmd += ["--extra-files", os.path.join(tmp, "extra")]
        # torch-model-archiver stages files in $TMPDIR/<model name> and
        # removes whatever is there first: a private TMPDIR keeps two
        # archives of one name (or an unrelated /tmp/<name>) apart.
        subprocess.run(cmd, check=True, env=dict(os.environ, TMPDIR=tmp))
    path = os.path.join(args.out_dir, OUTPUT[args.archive_format].format(args.name))
    if os.path.isdir(path):
        sizes = [os.path.getsize(os.path.join(root, f))
                 for root, _, files in os.walk(path) for f in files]
    else:
        sizes = [os.path.getsize(path)]
    print(json.dumps({"file": path, "bytes": sum(sizes), "files": len(sizes),
                      "format": args.archive_format, "expected_y_for_x_1": expected}))


if __name__ == "__main__":
    main()
