"""Rigid-motion fitting for point tracks: weighted Kabsch, per-frame rigid tracks of a point
set (with the denoised current positions), and a chained PnP fit from 2D tracks + first-frame
depth (the AVDC-style estimate). NumPy float64, deterministic.

Why here: the planner needs the grasped part's motion (part selection, ``t*``, the denoised
current points) and the rigid baselines need per-frame object poses; both are the same fits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jaxtyping import Bool, Float

    from dream2flow.types import CameraModel


def kabsch(X: "Float[np.ndarray, '... k 3']", Y: "Float[np.ndarray, '... k 3']", w: np.ndarray | None = None
           ) -> np.ndarray:
    """T [...,4,4] minimising sum_i w_i ||R x_i + t − y_i||² (proper rotation, det +1); leading
    dimensions are independent problems (one batched SVD). Zero total weight gives the identity."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    w = np.ones(X.shape[:-1]) if w is None else np.asarray(w, dtype=np.float64)
    ws = w.sum(-1)
    T = np.broadcast_to(np.eye(4), X.shape[:-2] + (4, 4)).copy()
    if X.shape[-2] == 0:
        return T
    good = ws > 0
    wsafe = np.where(good, ws, 1.0)[..., None]
    cx = (w[..., None] * X).sum(-2) / wsafe
    cy = (w[..., None] * Y).sum(-2) / wsafe
    C = np.swapaxes((X - cx[..., None, :]) * w[..., None], -1, -2) @ (Y - cy[..., None, :])
    U, _, Vt = np.linalg.svd(C)
    Vt_T, U_T = np.swapaxes(Vt, -1, -2), np.swapaxes(U, -1, -2)
    sgn = np.sign(np.linalg.det(Vt_T @ U_T))
    d = np.ones(X.shape[:-2] + (3,))
    d[..., 2] = np.where(sgn == 0, 1.0, sgn)
    R = (Vt_T * d[..., None, :]) @ U_T
    t = cy - (R @ cx[..., None])[..., 0]
    T[..., :3, :3] = np.where(good[..., None, None], R, np.eye(3))
    T[..., :3, 3] = np.where(good[..., None], t, 0.0)
    return T


def robust_kabsch(X: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None, delta_m: float = 0.01,
                  iters: int = 3) -> np.ndarray:
    """Kabsch with a few IRLS (Huber) rounds so a few wrong tracks do not drag the fit (batched
    like ``kabsch``)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    w0 = np.ones(X.shape[:-1]) if w is None else np.asarray(w, dtype=np.float64)
    T = kabsch(X, Y, w0)
    for _ in range(iters):
        r = np.linalg.norm(X @ np.swapaxes(T[..., :3, :3], -1, -2) + T[..., None, :3, 3] - Y, axis=-1)
        T = kabsch(X, Y, w0 * np.minimum(1.0, delta_m / np.maximum(r, 1e-9)))
    return T


def apply(T: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Apply [...,4,4] transforms to [...,k,3] points."""
    return p @ np.swapaxes(T[..., :3, :3], -1, -2) + T[..., None, :3, 3]


def invert(T: np.ndarray) -> np.ndarray:
    out = np.zeros_like(T)
    R = T[..., :3, :3]
    out[..., :3, :3] = np.swapaxes(R, -1, -2)
    out[..., :3, 3] = -np.einsum("...ji,...j->...i", R, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def rigid_track(P: "Float[np.ndarray, 'T k 3']", V: "Bool[np.ndarray, 'T k']", iters: int = 3,
                delta_m: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit one rigid motion per frame to a point set's tracks (visible entries only).

    Returns ``(T [T,4,4], X0 [k,3], residual [k])``: ``T[t]`` maps the set's frame-0 pose to
    frame t (T[0] = I), ``X0`` the denoised frame-0 positions (each point averaged over all its
    visible frames after undoing the motion: fills points hidden at t = 0 and halves noise),
    ``residual`` the mean distance of each point's visible observations to the rigid model
    (NaN when never visible). Frames with fewer than 3 usable points repeat the previous motion.
    """
    P = np.asarray(P, dtype=np.float64)
    V = np.asarray(V, dtype=bool) & np.isfinite(P).all(-1)
    Tn, k = V.shape
    counts = V.sum(1)
    ref = 0 if counts[0] >= 3 else int(np.argmax(counts))
    X = np.where(V[ref][:, None], P[ref], np.nan)
    Ts = np.repeat(np.eye(4)[None], Tn, axis=0)
    P0 = np.where(V[..., None], P, 0.0)                  # unusable entries carry zero weight (no NaN)
    for _ in range(iters):
        known = np.isfinite(X).all(1)
        m = known[None] & V                                # [T,k]
        ok = m.sum(1) >= 3
        fit = robust_kabsch(np.broadcast_to(np.where(known[:, None], X, 0.0), P.shape), P0,
                            m.astype(np.float64), delta_m=delta_m)          # all frames at once
        # a frame with fewer than 3 usable points repeats the previous frame's motion (frame 0 keeps its own)
        last_ok = np.maximum.accumulate(np.where(ok, np.arange(Tn), -1))
        Ts = np.where((last_ok >= 0)[:, None, None], fit[np.maximum(last_ok, 0)], Ts[0][None])
        # X in the reference frame: average of T_t^-1 P[t] over visible frames
        back = apply(invert(Ts), P)  # [T,k,3]
        w = V.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            X_new = (np.where(V[..., None], back, 0.0)).sum(0) / w.sum(0)[:, None]
        X = np.where((w.sum(0) > 0)[:, None], X_new, np.nan)
    # re-express relative to frame 0 (the current scene)
    T0_inv = invert(Ts[0])
    Ts_rel = Ts @ T0_inv
    X0 = apply(Ts[0], X)
    pred = apply(Ts_rel, X0)  # [T,k,3]
    err = np.linalg.norm(pred - P, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        res = np.where(V, err, 0.0).sum(0) / V.sum(0)
    return Ts_rel, X0, res


def pnp_chain(px: "Float[np.ndarray, 'T k 2']", V: np.ndarray, X0_base: np.ndarray, camera: "CameraModel"
              ) -> np.ndarray:
    """AVDC-style object motion: 3D points only at frame 0 (from the first depth image) and 2D
    tracks afterwards; each frame's pose is a PnP fit (iterative, reprojection error) of the frame-0
    points to that frame's tracks, warm-started at the previous frame's pose (the chain).
    Frames with fewer than 6 usable tracks keep the previous pose. Returns ``T [T,4,4]`` in the
    base frame (frame 0 -> frame t)."""
    import cv2

    Tn = px.shape[0]
    K = camera.K.astype(np.float64)
    T_cam_base = camera.T_cam_base
    Xc = apply(T_cam_base, np.asarray(X0_base, dtype=np.float64))  # frame-0 3D points, camera frame
    known = np.isfinite(Xc).all(1)
    rvec, tvec = np.zeros((3, 1)), np.zeros((3, 1))
    out = [np.eye(4)]
    for t in range(1, Tn):
        m = known & V[t] & np.isfinite(px[t]).all(1)
        if m.sum() >= 6:
            ok, r, tv = cv2.solvePnP(Xc[m], px[t, m].astype(np.float64), K, None, rvec=rvec.copy(),
                                     tvec=tvec.copy(), useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
            if ok and np.isfinite(r).all() and np.isfinite(tv).all():
                rvec, tvec = r, tv
        M = np.eye(4)
        M[:3, :3] = cv2.Rodrigues(rvec)[0]
        M[:3, 3] = tvec.ravel()
        out.append(camera.T_base_cam @ M @ T_cam_base)
    return np.stack(out)
