"""Measure the ImageNet-C reference (`imagecorruptions` 1.1.2): PSNR and time per corruption.

`imagecorruptions` 1.1.2 no longer installs beside current numpy and scikit-image, so
it runs in its own pinned environment, outside the repository:

    /root/.pyenv/versions/3.10.13/bin/python -m venv /work/refenv
    /work/refenv/bin/pip install numpy==1.26.4 scikit-image==0.19.3 \
        imagecorruptions==1.1.2 "opencv-python-headless<4.9" "scipy<1.12"

(On Python 3.10 all of these come as wheels; imagecorruptions also pulls in
`opencv-python`, harmless in a throwaway environment. Measured with numpy 1.26.4,
scikit-image 0.19.3, scipy 1.11.4, OpenCV 4.11, Pillow 12.)

    cd REPO && /work/refenv/bin/python bench/imagecorruptions_reference.py \
        > tests/fixtures/imagecorruptions_psnr.json
    /work/refenv/bin/python bench/imagecorruptions_reference.py --time 3   # seconds, as JSON

The first writes the fixture that tests/test_fidelity.py compares our perturbations
with: for each corruption and severity, the median PSNR against the clean image over
the photographs that `photos()` builds. The reference draws from the global
`np.random`; it is seeded here before every (corruption, severity) so that the
figures do not depend on the order they are measured in, and each photograph is
corrupted ROUNDS times so that the median of a random corruption (frost picks one
of five textures at random) is stable. The second is what
bench/perturbations.py runs to time the reference in the same run as ours.

`photos()` builds eight 224 x 224 RGB photographs from the PNGs bundled with
scikit-image (never fetched): square crops, area-averaged by an integer factor in
numpy, so any numpy and any OpenCV build give the same pixels; their sha256 are in
the fixture and the test checks them. This file needs only numpy, OpenCV (to read
PNGs), scikit-image's data folder and the suite names from `auditor.perturbations`
(numpy and OpenCV again), so our environment can import it too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.perturbations import SUITES  # noqa: E402

SIZE = 224
SEED = 20190401
ROUNDS = 4  # each photograph is corrupted this many times (fresh randomness each time)
# (file in skimage/data, top, left, integer downscale factor): a crop of SIZE * factor.
PHOTOS = (
    ("astronaut.png", 32, 32, 2),
    ("astronaut.png", 30, 150, 1),
    ("chelsea.png", 38, 113, 1),
    ("coffee.png", 88, 188, 1),
    ("coffee.png", 150, 10, 1),
    ("ihc.png", 32, 32, 2),
    ("motorcycle_left.png", 26, 146, 2),
    ("motorcycle_left.png", 138, 258, 1),
)
NAMES = SUITES["imagenet-c-all"]  # the corruptions imagecorruptions implements, in its order
MAX_PSNR = 100.0  # reported for an unchanged image, where PSNR is infinite


def skimage_data() -> Path:
    """Return scikit-image's bundled data folder (found without importing skimage.data)."""
    import skimage

    return Path(skimage.__file__).parent / "data"


def photos() -> list[np.ndarray]:
    """Return the eight SIZE x SIZE RGB uint8 photographs the fidelity figures use."""
    out = []
    for name, top, left, factor in PHOTOS:
        bgr = cv2.imread(str(skimage_data() / name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(skimage_data() / name)
        side = SIZE * factor
        crop = bgr[top : top + side, left : left + side, ::-1].astype(np.float64)
        blocks = crop.reshape(SIZE, factor, SIZE, factor, 3).mean(axis=(1, 3))
        out.append(np.ascontiguousarray(np.rint(blocks).astype(np.uint8)))
    return out


def sha256(image: np.ndarray) -> str:
    """Return the sha256 of the image's shape and bytes."""
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


def psnr(clean: np.ndarray, changed: np.ndarray) -> float:
    """Return the PSNR in dB of `changed` against `clean` (both uint8), capped at MAX_PSNR."""
    mse = float(np.mean((clean.astype(np.float64) - changed.astype(np.float64)) ** 2))
    return MAX_PSNR if mse == 0 else min(MAX_PSNR, 10 * math.log10(255.0**2 / mse))


def measure_psnr() -> dict:
    from imagecorruptions import corrupt

    images = photos()
    table: dict[str, list[float]] = {}
    every: dict[str, list[list[float]]] = {}
    for index, name in enumerate(NAMES):
        table[name], every[name] = [], []
        for severity in range(1, 6):
            np.random.seed(SEED + 10 * index + severity)
            values = [psnr(im, corrupt(im, severity, name)) for _ in range(ROUNDS) for im in images]
            table[name].append(round(float(np.median(values)), 3))
            every[name].append([round(v, 3) for v in values])
        print(name, table[name], file=sys.stderr)
    return {
        "reference": "imagecorruptions 1.1.2",
        "environment": environment(),
        "seed": SEED,
        "rounds": ROUNDS,
        "photos": [
            {"source": f"skimage/data/{n}", "top": t, "left": lf, "factor": f, "sha256": sha256(im)}
            for (n, t, lf, f), im in zip(PHOTOS, images)
        ],
        "median_psnr": table,
        "psnr": every,
    }


def median_seconds(run, repeats: int, budget: float = 0.02) -> float:
    """Median seconds of one `run()` over `repeats` timings, each looping for `budget` s."""
    start = time.perf_counter()
    run()  # also warms caches
    loops = max(1, math.ceil(budget / max(time.perf_counter() - start, 1e-9)))
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            run()
        timings.append((time.perf_counter() - start) / loops)
    return float(np.median(timings))


def measure_time(repeats: int, count: int) -> dict:
    """Return median seconds per image for each (corruption, severity), first `count` photos."""
    from imagecorruptions import corrupt

    images = photos()[:count]
    np.random.seed(SEED)
    seconds: dict[str, list[float]] = {}
    for name in NAMES:
        seconds[name] = []
        for severity in range(1, 6):

            def run(name: str = name, severity: int = severity) -> None:
                for im in images:
                    corrupt(im, severity, name)

            seconds[name].append(median_seconds(run, repeats) / len(images))
    return {"environment": environment(), "seconds_per_image": seconds}


def environment() -> dict[str, str]:
    import PIL
    import scipy
    import skimage

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scikit-image": skimage.__version__,
        "scipy": scipy.__version__,
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", type=int, metavar="REPEATS", help="time instead of PSNR")
    parser.add_argument("--images", type=int, default=len(PHOTOS), help="photos to time on")
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")  # the reference's deprecation warnings
    result = measure_time(args.time, args.images) if args.time else measure_psnr()
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
