"""The original ResNeXt+LSTM app's prediction path, reproduced as the benchmark's baseline.

What its ``predict_page`` view does for one upload, minus the Django request: read *every* frame of the video into a
list with OpenCV; for the first N frames run ``face_recognition.face_locations`` at full resolution to save face
images; build the validation dataset, which decodes the video again and runs ``face_locations`` again on each of the
first N frames, crops ``faces[0]`` (or keeps the whole frame when there is none) and transforms it; load the model
from its file (every request); run it. Its LSTM is the one with swapped axes; its weights here are random.

bench/bench_pipeline.py runs it (``python bench/original_app.py VIDEO N STATE_DICT`` prints JSON timings), and
tests/test_legacy.py imports :class:`Model` and ``TRANSFORM`` from here: the one copy of the original's network that
the converted checkpoints are proved against.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import warnings

import torch
from torch import nn
from torchvision import models, transforms

with warnings.catch_warnings():  # face_recognition's models package imports the deprecated pkg_resources
    warnings.simplefilter("ignore")
    import cv2
    import face_recognition

TRANSFORM = transforms.Compose(
    [
        transforms.ToPILImage(),
        transforms.Resize((112, 112)),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ]
)


class Model(nn.Module):
    """The original app's ``Model`` class, verbatim apart from ``weights=None`` (its LSTM reads the batch axis as
    time, and ``forward`` returns the feature maps and the logits of the last step)."""

    def __init__(self, num_classes, latent_dim=2048, lstm_layers=1, hidden_dim=2048, bidirectional=False):
        super().__init__()
        model = models.resnext50_32x4d(weights=None)
        self.model = nn.Sequential(*list(model.children())[:-2])
        self.lstm = nn.LSTM(latent_dim, hidden_dim, lstm_layers, bidirectional)
        self.relu = nn.LeakyReLU()
        self.dp = nn.Dropout(0.4)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear1 = nn.Linear(2048, num_classes)

    def forward(self, x):
        batch_size, seq_length, c, h, w = x.shape
        x = x.view(batch_size * seq_length, c, h, w)
        fmap = self.model(x)
        x = self.avgpool(fmap)
        x = x.view(batch_size, seq_length, 2048)
        x_lstm, _ = self.lstm(x, None)
        return fmap, self.dp(self.linear1(x_lstm[:, -1, :]))


def frame_extract(path):
    capture = cv2.VideoCapture(path)
    success = True
    while success:
        success, image = capture.read()
        if success:
            yield image


def predict(video: str, sequence_length: int, state_dict_path: str) -> dict:
    timings: dict[str, float] = {}
    started = time.perf_counter()

    # predict_page: all frames into memory, then face_locations on the first N to save face images
    mark = time.perf_counter()
    frames = list(frame_extract(video))
    timings["decode"] = time.perf_counter() - mark
    mark = time.perf_counter()
    for image in frames[:sequence_length]:
        face_recognition.face_locations(image[:, :, ::-1])
    timings["detect"] = time.perf_counter() - mark

    # validation_dataset.__getitem__: decode again, detect again, crop faces[0] or keep the frame
    crops = []
    for frame in frame_extract(video):
        mark = time.perf_counter()
        faces = face_recognition.face_locations(frame)
        timings["detect"] += time.perf_counter() - mark
        mark = time.perf_counter()
        if faces:
            top, right, bottom, left = faces[0]
            frame = frame[top:bottom, left:right, :]  # noqa: PLW2901 - the original's own code
        crops.append(TRANSFORM(frame))
        timings["crop"] = timings.get("crop", 0.0) + time.perf_counter() - mark
        if len(crops) == sequence_length:
            break

    # the model is built and loaded on every request
    mark = time.perf_counter()
    model = Model(2)
    model.load_state_dict(torch.load(state_dict_path, map_location="cpu", weights_only=True))
    model.eval()
    timings["model_load"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with torch.no_grad():
        _, logits = model(torch.stack(crops).unsqueeze(0))
        probabilities = torch.softmax(logits, dim=1)[0].tolist()
    timings["network"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    return {
        "timings": timings,
        "frames_in_memory": len(frames),
        "fake_probability": probabilities[0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    print(json.dumps(predict(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
