"""TorchServe handler for the test and demo models: loads the TorchScript
model of the archive and answers, for a number x in the request body,
model(x) = x * sum(weights) as JSON."""
import json
import os

import torch


class ScaleHandler:
    def __init__(self):
        self.model = None

    def initialize(self, context):
        model_dir = context.system_properties["model_dir"]
        serialized = context.manifest["model"]["serializedFile"]
        self.model = torch.jit.load(os.path.join(model_dir, serialized), map_location="cpu")
        self.model.eval()

    def handle(self, data, context):
        answers = []
        for row in data:
            body = row.get("data") or row.get("body") or b"1"
            if isinstance(body, (bytes, bytearray)):
                body = body.decode("utf-8")
            x = float(body)
            with torch.no_grad():
                y = self.model(torch.tensor(x, dtype=torch.float64))
            answers.append(json.dumps({"x": x, "y": float(y)}))
        return answers


_service = ScaleHandler()


def handle(data, context):
    if _service.model is None:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
