"""Eye-to-hand calibration math: the camera is fixed, the board rides on the gripper.

Frames (``T_a_b`` maps b-coordinates into a):

- ``A_i = T_base_gripper_i``  from the robot's forward kinematics at pose i;
- ``B_i = T_cam_board_i``     from PnP on image i;
- ``X   = T_base_cam``        wanted (fixed);
- ``Z   = T_gripper_board``   nuisance (fixed: the board is rigidly held).

Every pose closes the loop base → gripper → board = base → camera → board::

    A_i · Z = X · B_i                                        (1)

Eliminating ``Z`` between poses i, j gives the classic ``C X = X D`` with
``C = A_i A_j⁻¹`` (the gripper's motion, base frame) and ``D = B_i B_j⁻¹`` (the board's
motion, camera frame). ``closed_form`` solves it (Park & Martin 1994: the rotation from the
motions' rotation vectors by orthogonal Procrustes, then the translation by linear least
squares), then ``Z`` from (1). ``refine`` then adjusts ``X`` and ``Z`` together to minimise
the board corners' reprojection error over all images — the maximum-likelihood estimate
when pixel noise dominates (robot FK of a Panda is good to well under a millimetre).

OpenCV's solvers are offered too (``opencv_hand_eye``/``opencv_robot_world``), with the
eye-to-hand substitution made explicit; they are missing from the OpenCV 5.0.0 Python
wheels (opencv/opencv#29565), so the NumPy solver is the default and always available.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dream2flow.errors import NotReady


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms [...,4,4]."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def make_T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t).reshape(3)
    return T


def rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def rot_from_vec(v: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(v).as_matrix()


def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """Angle of rotation matrices [...,3,3] in degrees: ``atan2(sin, cos)`` from the skew and
    trace parts, accurate near 0 (where ``arccos`` of the trace loses half the digits)."""
    R = np.asarray(R)
    c = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    w = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], axis=-1)
    return np.degrees(np.arctan2(0.5 * np.linalg.norm(w, axis=-1), c))


def project_to_so3(M: np.ndarray) -> np.ndarray:
    """Nearest rotation to a 3x3 matrix (SVD)."""
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, k=1)
    return i, j


def relative_motions(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairwise motions ``C = A_i A_j⁻¹`` (base frame) and ``D = B_i B_j⁻¹`` (camera frame)."""
    i, j = _pairs(len(A))
    return A[i] @ invert(A[j]), B[i] @ invert(B[j])


def rotation_diversity(A: np.ndarray, min_angle_deg: float = 5.0) -> tuple[float, float]:
    """How well the poses constrain the rotation: (largest pairwise rotation angle in deg,
    spread of the rotation axes in deg). The axis spread is ``2·asin(sqrt(λ2/Σλ))`` of the
    scatter matrix of the unit axes of all pairwise motions larger than ``min_angle_deg``
    (for exactly two such motions it is the angle between their axes; 0 when all axes are
    parallel). Hand-eye needs motions about non-parallel axes: with one axis direction the
    rotation about it, and the translation along it, are unobservable."""
    C, _ = relative_motions(A, A)
    vecs = np.array([rotvec(c[:3, :3]) for c in C]) if len(C) else np.zeros((0, 3))
    angles = np.degrees(np.linalg.norm(vecs, axis=1)) if len(vecs) else np.zeros(0)
    big = angles >= min_angle_deg
    if big.sum() < 2:
        return float(angles.max(initial=0.0)), 0.0
    axes = vecs[big] / np.linalg.norm(vecs[big], axis=1, keepdims=True)
    lam = np.sort(np.linalg.eigvalsh(axes.T @ axes))[::-1]
    spread = 2.0 * np.degrees(np.arcsin(np.sqrt(max(lam[1], 0.0) / lam.sum())))
    return float(angles.max()), float(spread)


def _z_from_x(A: np.ndarray, B: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``Z`` from (1) for each pose, averaged: chordal mean rotation, mean translation."""
    Zs = invert(A) @ X[None] @ B
    return make_T(project_to_so3(Zs[:, :3, :3].sum(axis=0)), Zs[:, :3, 3].mean(axis=0))


def closed_form(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Park–Martin on all pose pairs: ``(X = T_base_cam, Z = T_gripper_board)``.

    Rotation: ``R_C R_X = R_X R_D`` ⇒ ``log R_C = R_X log R_D``; ``R_X`` is the orthogonal
    Procrustes fit of the rotation vectors. Translation: ``(R_C − I) t_X = R_X t_D − t_C``
    stacked over the pairs, solved by least squares."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    C, D = relative_motions(A, B)
    alpha = np.array([rotvec(c[:3, :3]) for c in C])
    beta = np.array([rotvec(d[:3, :3]) for d in D])
    R_X = project_to_so3(alpha.T @ beta)
    M = (C[:, :3, :3] - np.eye(3)).reshape(-1, 3)
    rhs = (np.einsum("ij,nj->ni", R_X, D[:, :3, 3]) - C[:, :3, 3]).reshape(-1)
    t_X = np.linalg.lstsq(M, rhs, rcond=None)[0]
    X = make_T(R_X, t_X)
    return X, _z_from_x(A, B, X)


def opencv_hand_eye(A: np.ndarray, B: np.ndarray, method: str = "park") -> tuple[np.ndarray, np.ndarray]:
    """``cv2.calibrateHandEye`` used for eye-to-hand.

    OpenCV solves eye-in-hand: ``T_base_gripper_i · X · T_cam_target_i = const`` for
    ``X = T_gripper_cam``. Passing ``T_gripper_base_i = A_i⁻¹`` where it expects
    ``gripper2base`` and ``B_i`` as ``target2cam`` turns that into
    ``T_gripper_base_i · X · T_cam_board_i = T_gripper_board`` (constant), whose solution
    is ``X = T_base_cam``: what it returns as ``cam2gripper`` is ``cam2base`` here."""
    import cv2

    if not hasattr(cv2, "calibrateHandEye"):
        raise NotReady(f"this OpenCV ({cv2.__version__}) has no calibrateHandEye in Python "
                       "(OpenCV 5.0.0 wheels lack it: opencv/opencv#29565); use method 'park_martin'")
    flags = {"tsai": cv2.CALIB_HAND_EYE_TSAI, "park": cv2.CALIB_HAND_EYE_PARK, "horaud": cv2.CALIB_HAND_EYE_HORAUD,
             "andreff": cv2.CALIB_HAND_EYE_ANDREFF, "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS}
    Ainv = invert(np.asarray(A, dtype=np.float64))
    B = np.asarray(B, dtype=np.float64)
    R, t = cv2.calibrateHandEye(list(Ainv[:, :3, :3]), list(Ainv[:, :3, 3].reshape(-1, 3, 1)),
                                list(B[:, :3, :3]), list(B[:, :3, 3].reshape(-1, 3, 1)), method=flags[method])
    X = make_T(R, t)
    return X, _z_from_x(np.asarray(A, dtype=np.float64), B, X)


def opencv_robot_world(A: np.ndarray, B: np.ndarray, method: str = "shah") -> tuple[np.ndarray, np.ndarray]:
    """``cv2.calibrateRobotWorldHandEye`` used for eye-to-hand.

    OpenCV solves ``T_cam_world_i · T_world_base = T_cam_gripper · T_gripper_base_i``
    (inputs ``world2cam``, ``base2gripper``; outputs ``base2world``, ``gripper2cam``).
    Inverting (1) gives ``B_i⁻¹ · X⁻¹ = Z⁻¹ · A_i⁻¹``, the same shape with
    ``world2cam := T_board_cam_i = B_i⁻¹``, ``base2gripper := T_gripper_base_i = A_i⁻¹``;
    so its ``base2world`` is ``X⁻¹ = T_cam_base`` and its ``gripper2cam`` is ``Z⁻¹``."""
    import cv2

    if not hasattr(cv2, "calibrateRobotWorldHandEye"):
        raise NotReady(f"this OpenCV ({cv2.__version__}) has no calibrateRobotWorldHandEye in Python "
                       "(OpenCV 5.0.0 wheels lack it: opencv/opencv#29565); use method 'park_martin'")
    flags = {"shah": cv2.CALIB_ROBOT_WORLD_HAND_EYE_SHAH, "li": cv2.CALIB_ROBOT_WORLD_HAND_EYE_LI}
    Ainv = invert(np.asarray(A, dtype=np.float64))
    Binv = invert(np.asarray(B, dtype=np.float64))
    R_bw, t_bw, R_gc, t_gc = cv2.calibrateRobotWorldHandEye(
        list(Binv[:, :3, :3]), list(Binv[:, :3, 3].reshape(-1, 3, 1)),
        list(Ainv[:, :3, :3]), list(Ainv[:, :3, 3].reshape(-1, 3, 1)), method=flags[method])
    return invert(make_T(R_bw, t_bw)), invert(make_T(R_gc, t_gc))


def pose_consistency(A: np.ndarray, B: np.ndarray, X: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pose, how well (1) closes: the board pose via the robot (``A_i Z``) against via
    the camera (``X B_i``): translation difference (mm) and rotation angle (deg), [N] each."""
    via_robot = np.asarray(A) @ Z[None]
    via_cam = X[None] @ np.asarray(B)
    dt = np.linalg.norm(via_robot[:, :3, 3] - via_cam[:, :3, 3], axis=1) * 1000.0
    dR = rotation_angle_deg(np.swapaxes(via_robot[:, :3, :3], 1, 2) @ via_cam[:, :3, :3])
    return dt, dR


def _project(K: np.ndarray, dist: np.ndarray | None, T_cam_board: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pc = pts @ T_cam_board[:3, :3].T + T_cam_board[:3, 3]
    if dist is None or not np.any(dist):
        uv = pc @ K.T
        return uv[:, :2] / uv[:, 2:3]
    import cv2

    proj, _ = cv2.projectPoints(pts, cv2.Rodrigues(T_cam_board[:3, :3])[0], T_cam_board[:3, 3], K, dist)
    return proj.reshape(-1, 2)


def reprojection_errors(A: np.ndarray, X: np.ndarray, Z: np.ndarray, object_points: list[np.ndarray],
                        corners_px: list[np.ndarray], K: np.ndarray, dist: np.ndarray | None = None) -> list[np.ndarray]:
    """Per image, per corner pixel error [n_i] when the board pose is predicted through the
    robot: ``T_cam_board_i = X⁻¹ A_i Z``."""
    Xinv = invert(X)
    out = []
    for Ai, P, uv in zip(A, object_points, corners_px):
        pred = _project(K, dist, Xinv @ Ai @ Z, P)
        out.append(np.linalg.norm(pred - uv, axis=1))
    return out


def refine(A: np.ndarray, X0: np.ndarray, Z0: np.ndarray, object_points: list[np.ndarray],
           corners_px: list[np.ndarray], K: np.ndarray, dist: np.ndarray | None = None,
           loss_scale_px: float = 1.0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Joint least squares over ``X`` and ``Z`` (6 + 6 parameters, rotation vectors as
    increments on the initial rotations) of the reprojection error of every detected
    corner, with a soft-L1 loss (``loss_scale_px``) so a few bad corners cannot drag it."""
    from scipy.optimize import least_squares

    A = np.asarray(A, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    RX0, RZ0 = X0[:3, :3], Z0[:3, :3]

    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = make_T(rot_from_vec(p[0:3]) @ RX0, X0[:3, 3] + p[3:6])
        Z = make_T(rot_from_vec(p[6:9]) @ RZ0, Z0[:3, 3] + p[9:12])
        return X, Z

    def residuals(p: np.ndarray) -> np.ndarray:
        X, Z = unpack(p)
        Xinv = invert(X)
        res = [(_project(K, dist, Xinv @ Ai @ Z, P) - uv).ravel() for Ai, P, uv in zip(A, object_points, corners_px)]
        return np.concatenate(res)

    sol = least_squares(residuals, np.zeros(12), loss="soft_l1", f_scale=loss_scale_px, x_scale="jac",
                        method="trf", max_nfev=200)
    X, Z = unpack(sol.x)
    return X, Z, {"nfev": int(sol.nfev), "status": int(sol.status), "cost": float(sol.cost),
                  "message": str(sol.message)}
