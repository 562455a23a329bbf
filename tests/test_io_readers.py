"""The file readers every command shares (masks, .npy arrays): real files in, arrays or one clear
InvalidInput naming the file out."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dream2flow.errors import InvalidInput
from dream2flow.io_utils import read_mask, read_npy


def test_a_mask_reads_from_npy_and_from_an_image_written_by_opencv(tmp_path: Path) -> None:
    m = np.zeros((6, 8), dtype=np.uint8)
    m[2:4, 3:7] = 255
    np.save(tmp_path / "m.npy", m)
    cv2.imwrite(str(tmp_path / "m.png"), m)
    for name in ("m.npy", "m.png"):
        got = read_mask(tmp_path / name, (6, 8))
        assert got.dtype == bool and got.sum() == 8 and got[2:4, 3:7].all()


@pytest.mark.parametrize("content, shape, words", [
    (None, (6, 8), "mask not found"),
    (b"not numpy", (6, 8), "not a readable .npy"),
    ("ok", (7, 8), "is [6, 8], the image is [7, 8]"),
])
def test_a_bad_mask_is_one_clear_error(tmp_path: Path, content, shape, words) -> None:
    p = tmp_path / "m.npy"
    if content == "ok":
        np.save(p, np.ones((6, 8), dtype=bool))
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(InvalidInput) as ei:
        read_mask(p, shape)
    assert words in ei.value.message


def test_read_npy_refuses_pickled_objects(tmp_path: Path) -> None:
    p = tmp_path / "o.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInput) as ei:
        read_npy(p, "video depth")
    assert "video depth" in ei.value.message and str(p) in ei.value.message
