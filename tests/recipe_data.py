"""A small generated copy of ../shared/data in the shape the default-model recipe reads: short videos with one face
each in every source folder, a few face photos in each photo source (CelebA with its identities file), and
MobileNetV2 weights (random) where the shared ImageNet file lies."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from . import media

FFPP_ORIGINALS = ("183", "253", "672", "720")
FFPP_FAKES = {"Deepfakes": ("183_253", "720_672"), "Face2Face": ("253_183", "672_720")}


def shared_tree(root: Path) -> Path:
    faces = iter(((90 + 7 * n, 40 + 3 * n, 200 - 4 * n),) for n in range(40))

    def video(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        media.face_video(path, frames=44, faces=next(faces))

    for number in range(4):
        video(root / "real_clips" / f"clip{number}.mp4")
    video(root / "samples/videos/real/hamilton_360p.mp4")
    video(root / "samples/videos/fake/ffpp_df_003_000.mp4")
    video(root / "samples/videos/fake/dfdc_abqwwspghj.mp4")
    ffpp = root / "ffpp_c40"
    for name in FFPP_ORIGINALS:
        video(ffpp / "original_sequences/youtube/c40/videos" / f"{name}.mp4")
    for name in ("01__talking", "02__walking", "03__hugging"):
        video(ffpp / "original_sequences/actors/c40/videos" / f"{name}.mp4")
    for method, names in FFPP_FAKES.items():
        for name in names:
            video(ffpp / "manipulated_sequences" / method / "c40/videos" / f"{name}.mp4")
    for name in ("RealTaxi", "FakeTaxi", "RealObama", "FakeObama", "FakeGuy"):
        video(root / "web_clips" / ("real" if name.startswith("Real") else "fake") / f"{name}.mp4")
    photos = {"gan_faces/real": 3, "real_faces/celeba": 3, "real_faces/utkface": 2}
    for offset, (folder, count) in enumerate(photos.items()):
        (root / folder).mkdir(parents=True)
        for number in range(count):  # one face filling most of the photo
            name = f"{number:06d}.jpg" if "celeba" in folder else f"{30 + number}_0_0_{number}.jpg"
            media.photo(root / folder / name, 256, 256, ((64 + 4 * number + 9 * offset, 40, 140),))
    (root / "real_faces/celeba/identities.csv").write_text("filename,identity\n000000.jpg,5\n000001.jpg,5\n")
    (root / "weights").mkdir(exist_ok=True)
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), root / "weights/mobilenet_v2-b0353104.pth")
    return root
