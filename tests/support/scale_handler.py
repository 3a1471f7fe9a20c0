"""TorchServe handler for the test and demo models: loads the TorchScript
model of the archive and answers, for a number x in the request body,
model(x) = x * sum(weights) as JSON. Weights split over further files
(make_mar.py --shards: weights/shard-*.pt beside the module) add x * their
sums, so the answer proves every file arrived intact."""
import json
import os

import torch


class ScaleHandler:
    def __init__(self):
        self.model = None
        self.extra = 0.0

    def initialize(self, context):
        model_dir = context.system_properties["model_dir"]
        serialized = context.manifest["model"]["serializedFile"]
        self.model = torch.jit.load(os.path.join(model_dir, serialized), map_location="cpu")
        self.model.eval()
        shard_dir = os.path.join(model_dir, "weights")
        names = sorted(os.listdir(shard_dir)) if os.path.isdir(shard_dir) else []
        shards = [torch.load(os.path.join(shard_dir, n), map_location="cpu", weights_only=True)
                  for n in names if n.endswith(".pt")]
        # As make_mar.py computes the expected answer: same sums, same order.
        self.extra = sum(float(s.sum()) for s in shards)

    def handle(self, data, context):
        answers = []
        for row in data:
            body = row.get("data") or row.get("body") or b"1"
            if isinstance(body, (bytes, bytearray)):
                body = body.decode("utf-8")
            x = float(body)
            with torch.no_grad():
                y = float(self.model(torch.tensor(x, dtype=torch.float64))) + x * self.extra
            answers.append(json.dumps({"x": x, "y": y}))
        return answers


_service = ScaleHandler()


def handle(data, context):
    if _service.model is None:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
