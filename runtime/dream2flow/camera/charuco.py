"""ChArUco board: definition, printing, detection + pose, and an exact synthetic renderer.

Board frame (OpenCV >= 4.6 ``CharucoBoard``): origin at the board's top-left outer corner,
x to the right along the squares, y down, z into the board (away from a viewer who reads
the pattern); chessboard corner ``id`` sits at ``((id % (nx-1)) + 1, (id // (nx-1)) + 1) ·
square``. ``T_cam_board`` maps board points (metres) into the OpenCV camera frame.

The renderer is the calibration's honest test: the board image that ``generateImage``
prints is placed as a textured plane at a known pose and imaged through a pinhole camera
by the exact plane-to-image homography (``cv2.warpPerspective``), supersampled and area-
averaged like a sensor, over a textured background, with optional blur and noise.
Detection then has to find the corners in pixels, exactly as on a real image.
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput


SQUARE_RANGE_M = (0.002, 0.5)   # a printable ChArUco square: 2 mm .. 50 cm
MAX_SQUARES = 50
MAX_BOARD_PX = 20000             # longest side of a printed board image (A0 at 600 dpi is ~28000 px x 20000)


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board: ``squares_x`` × ``squares_y`` squares of ``square_m`` metres, ArUco
    markers of ``marker_m`` metres from ``dictionary`` (a ``cv2.aruco.DICT_*`` name).
    Measure the printed square with calipers and put the measured value here: the
    calibration's translation scales with it."""

    squares_x: int = 7
    squares_y: int = 5
    square_m: float = 0.04
    marker_m: float = 0.03
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if not (isinstance(self.squares_x, int) and isinstance(self.squares_y, int)
                and self.squares_x >= 3 and self.squares_y >= 3):
            raise InvalidInput(f"board needs at least 3x3 squares, got {self.squares_x}x{self.squares_y}")
        if self.squares_x > MAX_SQUARES or self.squares_y > MAX_SQUARES:
            raise InvalidInput(f"board of {self.squares_x}x{self.squares_y} squares: at most {MAX_SQUARES} per side")
        for name, v in (("square", self.square_m), ("marker", self.marker_m)):
            if not (isinstance(v, (int, float)) and SQUARE_RANGE_M[0] <= v <= SQUARE_RANGE_M[1]):
                hint = (f"; sizes are in metres: did you mean {v / 1000:g} ({v:g} mm)?"
                        if isinstance(v, (int, float)) and SQUARE_RANGE_M[0] <= v / 1000 <= SQUARE_RANGE_M[1] else "")
                raise InvalidInput(f"board {name} size {v!r} m is outside {SQUARE_RANGE_M[0]:g}..{SQUARE_RANGE_M[1]:g} m"
                                   f"{hint}")
        if not (0 < self.marker_m < self.square_m):
            raise InvalidInput(f"board marker size {self.marker_m} m must be positive and below the square "
                               f"size {self.square_m} m")
        import cv2

        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            raise InvalidInput(f"unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_5X5_100, DICT_6X6_250)")
        dict_size = int(re.search(r"_(\d+)$", self.dictionary).group(1)) if re.search(r"_(\d+)$", self.dictionary) else 0
        need = (self.squares_x * self.squares_y) // 2
        if dict_size and dict_size < need:
            raise InvalidInput(f"dictionary {self.dictionary} has {dict_size} markers; a "
                               f"{self.squares_x}x{self.squares_y} board needs {need}")

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares_x * self.square_m, self.squares_y * self.square_m

    @property
    def num_corners(self) -> int:
        return (self.squares_x - 1) * (self.squares_y - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "board") -> "BoardSpec":
        known = {"squares_x", "squares_y", "square_m", "marker_m", "dictionary"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)}")
        try:
            return cls(**{k: d[k] for k in d})
        except TypeError as exc:
            raise InvalidInput(f"{where}: {exc}") from None

    @classmethod
    def parse(cls, text: str) -> "BoardSpec":
        """``"7x5:0.04:0.03:DICT_5X5_100"`` (squares, square m, marker m, dictionary)."""
        m = re.fullmatch(r"\s*(\d+)x(\d+):([0-9.]+):([0-9.]+)(?::(\w+))?\s*", text)
        if not m:
            raise InvalidInput(f"board spec {text!r} is not NXxNY:SQUARE_M:MARKER_M[:DICT_NAME]")
        return cls(int(m.group(1)), int(m.group(2)), float(m.group(3)), float(m.group(4)),
                   m.group(5) or "DICT_5X5_100")

    def __str__(self) -> str:
        return f"{self.squares_x}x{self.squares_y}:{self.square_m}:{self.marker_m}:{self.dictionary}"


@functools.lru_cache(maxsize=8)
def make_board(spec: BoardSpec) -> Any:
    """The ``cv2.aruco.CharucoBoard`` of a spec (OpenCV >= 4.7 API)."""
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    return cv2.aruco.CharucoBoard((spec.squares_x, spec.squares_y), spec.square_m, spec.marker_m, dictionary)


@functools.lru_cache(maxsize=8)
def board_texture(spec: BoardSpec, px_per_square: int = 64, margin_squares: float = 0.5) -> tuple[np.ndarray, float, int]:
    """The printed board: grayscale uint8 image with a white margin, its scale in pixels per
    metre, and the margin in pixels. Board point (x, y) m is at texture pixel centre
    coordinates ``(x·s + margin − 0.5, y·s + margin − 0.5)`` (pixel centres are integers)."""
    board = make_board(spec)
    w, h = spec.squares_x * px_per_square, spec.squares_y * px_per_square
    img = board.generateImage((w, h), marginSize=0, borderBits=1)
    pad = int(round(margin_squares * px_per_square))
    img = np.pad(img, pad, constant_values=255)
    img.setflags(write=False)
    return img, px_per_square / spec.square_m, pad


def board_png(spec: BoardSpec, dpi: float = 300.0, margin_m: float = 0.01) -> np.ndarray:
    """A printable board image at ``dpi`` (print at 100 % scale, then measure a square)."""
    px_per_m = dpi / 0.0254
    px_per_square = int(round(spec.square_m * px_per_m))
    side_px = (max(spec.squares_x, spec.squares_y) * spec.square_m + 2 * margin_m) * px_per_m
    if side_px > MAX_BOARD_PX:
        raise InvalidInput(f"a {spec} board at {dpi:g} dpi would be {side_px:.0f} px wide (max {MAX_BOARD_PX}): "
                           "use a lower --dpi or smaller squares (sizes are in metres)")
    if px_per_square < 20:
        raise InvalidInput(f"squares of {px_per_square} px at {dpi:g} dpi are too small to print and detect: raise --dpi")
    board = make_board(spec)
    img = board.generateImage((spec.squares_x * px_per_square, spec.squares_y * px_per_square),
                              marginSize=0, borderBits=1)
    return np.pad(img, int(round(margin_m * px_per_m)), constant_values=255)


@dataclass
class BoardDetection:
    """ChArUco corners found in one image. ``ids`` [n] int, ``corners_px`` [n,2] (pixel
    centres are integers), ``object_points`` [n,3] board frame (m). ``T_cam_board`` [4,4]
    from PnP when enough non-collinear corners were found, else ``None`` with ``reason``."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    corners_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    object_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    T_cam_board: np.ndarray | None = None
    reprojection_rms_px: float = float("nan")
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.T_cam_board is not None


def _to_gray(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def pose_from_rvec(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    import cv2

    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3))[0]
    T[:3, 3] = np.asarray(tvec, dtype=np.float64).reshape(3)
    return T


@functools.lru_cache(maxsize=1)
def charuco_corner_bias_px() -> float:
    """The half-pixel bias of this OpenCV's ``CharucoDetector`` corners (0.5 or 0.0).

    OpenCV 4.x (4.7 to at least 4.10) returns ChArUco corners shifted by +0.5 px in x and y
    against ``cornerSubPix``'s pixel-centre convention (opencv/opencv#25539, fixed by
    opencv/opencv#28380; 5.0 is unbiased). At 1 m that is ~1 mm of board pose, so it is
    measured once on a synthetic axis-aligned board with known corners (boundaries at
    integer + 0.5) and removed, making results the same on 4.x (e.g. Jetson) and 5.x."""
    import cv2

    spec = BoardSpec(5, 4, 0.04, 0.03, "DICT_5X5_100")
    tex = make_board(spec).generateImage((5 * 40, 4 * 40), marginSize=0, borderBits=1)
    canvas = np.full((4 * 40 + 80, 5 * 40 + 80), 255, np.uint8)
    canvas[40:-40, 40:-40] = tex
    corners, ids, _, _ = cv2.aruco.CharucoDetector(make_board(spec)).detectBoard(canvas)
    if ids is None or len(ids) < 4:  # cannot measure: assume the unbiased (fixed) behaviour
        return 0.0
    ids = np.asarray(ids).reshape(-1)
    truth = np.stack([(ids % 4 + 1) * 40 + 40 - 0.5, (ids // 4 + 1) * 40 + 40 - 0.5], axis=1)
    bias = float(np.mean(np.asarray(corners).reshape(-1, 2) - truth))
    return round(bias * 2.0) / 2.0


def detect_board(image: np.ndarray, spec: BoardSpec, K: np.ndarray, dist: np.ndarray | None = None,
                 *, min_corners: int = 6) -> BoardDetection:
    """Find the board's ChArUco corners in an RGB (or gray) image and its pose by PnP.

    Pose: ``cv2.solvePnP`` with ``SOLVEPNP_IPPE`` (the planar solver) on the matched
    corners (pixel centres at integers; OpenCV 4.x's half-pixel bias removed, see
    ``charuco_corner_bias_px``), refined by Levenberg–Marquardt. Fewer than ``min_corners`` corners, or corners
    all on one line, give no pose (a planar pose from a line is ambiguous)."""
    import cv2

    board = make_board(spec)
    detector = cv2.aruco.CharucoDetector(board)
    corners, ids, _, _ = detector.detectBoard(_to_gray(image))
    n = 0 if ids is None else len(ids)
    if n == 0:
        return BoardDetection(reason="board not found")
    obj, img = board.matchImagePoints(corners, ids)
    det = BoardDetection(ids=np.asarray(ids, dtype=np.int64).reshape(-1),
                         corners_px=np.asarray(img, dtype=np.float64).reshape(-1, 2) - charuco_corner_bias_px(),
                         object_points=np.asarray(obj, dtype=np.float64).reshape(-1, 3))
    if n < min_corners:
        det.reason = f"only {n} ChArUco corners (need {min_corners})"
        return det
    centred = det.object_points[:, :2] - det.object_points[:, :2].mean(axis=0)
    if np.linalg.svd(centred, compute_uv=False)[1] < 0.5 * spec.square_m:
        det.reason = "ChArUco corners are (nearly) collinear"
        return det
    dist = np.zeros(5) if dist is None else np.asarray(dist, dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(det.object_points, det.corners_px, np.asarray(K, dtype=np.float64), dist,
                                  flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        det.reason = "PnP failed"
        return det
    rvec, tvec = cv2.solvePnPRefineLM(det.object_points, det.corners_px, np.asarray(K, dtype=np.float64), dist,
                                      rvec, tvec)
    proj, _ = cv2.projectPoints(det.object_points, rvec, tvec, np.asarray(K, dtype=np.float64), dist)
    det.reprojection_rms_px = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - det.corners_px) ** 2, axis=1))))
    det.T_cam_board = pose_from_rvec(rvec, tvec)
    return det


def board_outline_in_camera(spec: BoardSpec, T_cam_board: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
    """The board's 4 outer corners (plus ``margin_m``) in the camera frame, [4,3] metres."""
    w, h = spec.size_m
    c = np.array([[-margin_m, -margin_m, 0], [w + margin_m, -margin_m, 0],
                  [w + margin_m, h + margin_m, 0], [-margin_m, h + margin_m, 0]], dtype=np.float64)
    return c @ T_cam_board[:3, :3].T + T_cam_board[:3, 3]


def board_faces_camera(T_cam_board: np.ndarray) -> bool:
    """True when the printed side is towards the camera: board z (into the board) points
    away from the camera, i.e. along the ray to the board."""
    return float(T_cam_board[:3, 2] @ T_cam_board[:3, 3]) > 0.0


def background_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured gray background (a cluttered-ish scene without board-like edges)."""
    import cv2

    rng = np.random.default_rng(seed)
    low = rng.uniform(70, 190, size=(max(2, height // 40), max(2, width // 40)))
    bg = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    bg += rng.normal(0, 6, size=(height, width))
    return np.clip(bg, 0, 255).astype(np.uint8)


def render_board(spec: BoardSpec, K: np.ndarray, width: int, height: int, T_cam_board: np.ndarray, *,
                 background: np.ndarray | None = None, px_per_square: int = 64, supersample: int = 2,
                 blur_sigma_px: float = 0.0, noise_std: float = 0.0, seed: int = 0) -> np.ndarray:
    """Image [H,W,3] uint8 RGB of the board at ``T_cam_board`` through the pinhole ``K``.

    The board texture pixel ``(u_b, v_b)`` (pixel centre) is the board point
    ``((u_b − pad + 0.5)/s, (v_b − pad + 0.5)/s, 0)``; it images at ``K (R p + t)``, so the
    texture-to-image map is the homography ``H = K_ss [r1 r2 t] S``, exact for a plane.
    It is drawn at ``supersample``× resolution (``K_ss`` shifts pixel centres accordingly)
    and area-averaged down, which is what a sensor's pixels do. A board behind the camera
    or turned away from it is not drawn (its back is blank)."""
    import cv2

    bg = background_image(width, height, seed) if background is None else np.asarray(background)
    if bg.ndim == 3:
        bg = cv2.cvtColor(bg, cv2.COLOR_RGB2GRAY)
    out = bg.astype(np.float32)
    corners_cam = board_outline_in_camera(spec, T_cam_board, margin_m=0.5 * spec.square_m)
    if (corners_cam[:, 2] > 0.05).all() and board_faces_camera(T_cam_board):
        tex, s, pad = board_texture(spec, px_per_square)
        ss = int(supersample)
        A = np.array([[ss, 0, (ss - 1) / 2.0], [0, ss, (ss - 1) / 2.0], [0, 0, 1.0]])
        S = np.array([[1 / s, 0, (0.5 - pad) / s], [0, 1 / s, (0.5 - pad) / s], [0, 0, 1.0]])
        Rt = np.column_stack([T_cam_board[:3, 0], T_cam_board[:3, 1], T_cam_board[:3, 3]])
        H = A @ np.asarray(K, dtype=np.float64) @ Rt @ S
        size = (width * ss, height * ss)
        # Printed paper is not pure black/white under room light.
        paper = 25.0 + tex.astype(np.float32) * (215.0 / 255.0)
        # Warping with a zero border gives the board premultiplied by its pixel coverage.
        board_hi = cv2.warpPerspective(paper, H, size, flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        cover_hi = cv2.warpPerspective(np.ones(tex.shape, np.float32), H, size, flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        board_lo = cv2.resize(board_hi, (width, height), interpolation=cv2.INTER_AREA)
        cover_lo = cv2.resize(cover_hi, (width, height), interpolation=cv2.INTER_AREA)
        out = board_lo + (1.0 - cover_lo) * out
    if blur_sigma_px > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur_sigma_px)
    if noise_std > 0:
        out = out + np.random.default_rng(seed + 7919).normal(0.0, noise_std, size=out.shape)
    gray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)
