"""``cover_bowl``: draw a cloth over a bowl (the paper's deformable task).

The cloth is a MuJoCo flex: an ``N x N`` grid of point masses (3 slide joints each) joined by
triangles whose edge lengths are held by a flex equality constraint (an inextensible, limp
fabric, 5 mm thick for collisions), lying flat on the table beside the bowl. Its edge nearest the
bowl is sewn to a hem: a light rigid bar (4 x 2.8 cm section, the edge's length), which is what the
hand takes hold of, by contact (friction between the finger pads and the bar; nothing is welded to
the gripper). Why a hem: the Panda's fingertips cannot go below the table's surface, so a 5 mm
fabric lying flat offers them nothing to pinch; a rolled or stitched edge is how such a cloth is
picked up.

Drawing it over: the hem is lifted over the bowl and set down beyond its far side, so the cloth
slides after it across the table and drapes over the bowl, top face up. Only the hem moves
rigidly; the rest of the cloth slides, bends over the rim and sags (measured on seed 0's
ground-truth flow: in the last frame a rigid fit to all the cloth's points misses by 1.3 cm at the
median and 4.4 cm at the 90th percentile, the hem's by < 5 mm; a rigid fit reads the bend as the
whole object pitching, up to ~30 degrees, which tilts a hand that follows it). The simulated
generator does exactly that with an invisible hand (a mocap body welded to the hem, active only in the generator's copy
of the scene), running the physics, so the cloth's motion in the video is the simulator's, not a
script. (A page-turn variant -- hem on the far edge, the cloth flipped over the bowl -- was tried
and dropped: the flipped cloth hides its tracked face, the visible flow at the end is the hem
alone, and a rigid fit of it is the hem's motion, so it compares nothing.)

Success: the fraction of the bowl's rim under the cloth. ``RIM_POINTS`` points on the rim's outer
edge; one is covered when the cloth's surface lies above it at or above the rim's height (resting
on the rim or hanging over it; not beside the bowl, not fallen inside). Success at >=
``COVER_FRACTION`` of the rim; ``value`` is the covered fraction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dream2flow.sim import textures
from dream2flow.sim.tasks.base import SceneParts, SuccessResult, Task, box, fmt, min_jerk
from dream2flow.sim.tasks.bowl import bowl_body_xml, rim_radius

GRID_N = 8  # vertices per side of the cloth grid (measured: >= 1000 physics steps/s with the Panda)
CLOTH_RADIUS_M = 0.0025  # half thickness of the fabric (collisions and rendering)
CLOTH_MASS_KG = 0.08
HEM_HALF = np.array([0.0, 0.02, 0.014])  # x is set per cloth (its length), y across, z up
HEM_MASS_KG = 0.05
RIM_POINTS = 36
COVER_FRACTION = 0.75
COVER_Z_TOL_M = 0.004  # the cloth's mid-surface may sit this far below the rim's top and still cover it
VIDEO_HAND = "cloth_video_hand"
VIDEO_WELD = "cloth_video_grip"
SETTLE_AFTER_S = 0.6  # set_progress: physics after the invisible hand lets go


def _free_adr(model, name: str) -> tuple[int, int]:  # noqa: ANN001
    import mujoco

    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    return int(model.jnt_qposadr[jid]), int(model.jnt_dofadr[jid])


class CoverBowl(Task):
    name = "cover_bowl"
    instruction = "Cover the bowl with the cloth."
    object_prompt = "cloth"
    object_bodies = ("cloth_hem", "cloth")  # "cloth" stands for the flex in segmentation (``flex_bodies``)
    thumb_body = "cloth_hem"
    flex_bodies = {"cloth": "cloth"}  # flex name -> body id its pixels get in segmentation
    dynamic_video = True

    def build(self, parts: SceneParts) -> None:
        rng = self.rng
        self.bowl_xy = np.array([0.50 + rng.uniform(-0.03, 0.03), -0.12 + rng.uniform(-0.02, 0.02)])
        self.r_in = float(rng.uniform(0.045, 0.055))
        self.wall_h = float(rng.uniform(0.035, 0.045))
        self.flare = float(np.deg2rad(rng.uniform(15, 22)))
        self.rim_r = rim_radius(self.r_in, self.wall_h, self.flare)
        self.side = float(rng.uniform(0.27, 0.30))  # cloth edge length (m), square
        # rim to the hem's centre line: room for the open gripper's finger between the hem and the bowl
        # (a 4 cm hem, fingers 8 cm apart when open, ~1.2 cm thick; at 3-4.5 cm the finger on the bowl's
        # side landed on the rim in 4 of 10 episodes of the first evaluation, for every method alike)
        gap = float(rng.uniform(0.065, 0.08))
        cx = float(self.bowl_xy[0] + rng.uniform(-0.02, 0.02))
        y_hem = float(self.bowl_xy[1] + self.rim_r + gap)  # the hem's centre line, next to the bowl
        n = GRID_N
        self.spacing = self.side / (n - 1)
        self.hem_half = HEM_HALF.copy()
        self.hem_half[0] = self.side / 2 + 0.01
        self.hem_pos0 = np.array([cx, y_hem, self.hem_half[2]])
        # vertex (i, j) -> index j*n + i: x along the hem (i), y away from the bowl (j); row j = 0 is sewn
        # to the hem, which lies between the bowl and the cloth, on the camera's side of the cloth (a
        # segmenter sees the bar in front of the cloth, not resting on it)
        xs = cx + (np.arange(n) - (n - 1) / 2) * self.spacing
        ys = y_hem + self.hem_half[1] + np.arange(n) * self.spacing
        self.thumb_local = np.array([0.0, 0.0, self.hem_half[2]])  # top of the bar, mid-length
        self.vert0 = np.array([[x, y, CLOTH_RADIUS_M] for y in ys for x in xs])  # [n*n,3]

        fabric = textures.random_colour(rng, (0.0, 1.0), (0.35, 0.75), (0.45, 0.85))
        alt = textures.random_colour(rng, (0.0, 1.0), (0.1, 0.4), (0.75, 0.95))
        self.mat_cloth = "cloth_mat"
        parts.assets["cloth_mat.png"] = textures.png_bytes(
            textures.speckle(rng, fabric, cells=28, size=256, contrast=0.6, alt_rgb=alt))
        parts.asset_xml += ['<texture name="cloth_tex" type="2d" file="cloth_mat.png"/>',
                            '<material name="cloth_mat" texture="cloth_tex" specular="0.05" shininess="0.05"/>']
        hem_rgb = textures.random_colour(rng, (0.05, 0.12), (0.3, 0.6), (0.35, 0.6))
        # a uniform 2D pattern (5 mm blocks) on every face of the bar: a cube texture stretched over its
        # long thin faces would leave nothing a tracker could hold along the bar
        parts.assets["cloth_hem_mat.png"] = textures.png_bytes(textures.speckle(rng, hem_rgb, cells=16, size=64,
                                                                                contrast=0.7))
        parts.asset_xml += ['<texture name="cloth_hem_tex" type="2d" file="cloth_hem_mat.png"/>',
                            '<material name="cloth_hem_mat" texture="cloth_hem_tex" texuniform="true" '
                            'texrepeat="12 12" specular="0.2" shininess="0.2"/>']
        mat_hem = "cloth_hem_mat"
        bowl_rgb = textures.random_colour(rng, (0.0, 1.0), (0.25, 0.6), (0.45, 0.8))
        mat_bowl = parts.material("bowl_mat", textures.speckle(rng, bowl_rgb, cells=10, size=64, contrast=0.25,
                                                               alt_rgb=tuple(0.8 * c for c in bowl_rgb)))
        parts.body_xml.append(bowl_body_xml(self.bowl_xy, self.r_in, self.wall_h, self.flare, mat_bowl))

        # hem bar (free) and the cloth's moving vertices (3 slides each, world axes)
        hem_mass = f'mass="{HEM_MASS_KG}"'
        parts.body_xml.append(
            f'<body name="cloth_hem" pos="{fmt(self.hem_pos0)}">\n'
            f'  <freejoint name="cloth_hem_free"/>\n'
            f'  {box([0, 0, 0], self.hem_half, mat_hem, name="cloth_hem_geom", extra=hem_mass)}\n'
            f'</body>')
        m_v = CLOTH_MASS_KG / (n * (n - 1))  # the hem row's share is in the bar
        bodies = []
        names = []
        hem_local = []
        for j in range(n):
            for i in range(n):
                k = j * n + i
                if j == 0:  # sewn to the hem: its vertex lives in the hem's frame
                    names.append("cloth_hem")
                    hem_local.append(self.vert0[k] - self.hem_pos0)
                    continue
                names.append(f"cloth_v{k}")
                slides = "".join(f'<joint type="slide" axis="{a}"/>'
                                 for a in ("1 0 0", "0 1 0", "0 0 1"))
                bodies.append(f'<body name="cloth_v{k}" pos="{fmt(self.vert0[k])}"><inertial pos="0 0 0" '
                              f'mass="{m_v:.6g}" diaginertia="1e-7 1e-7 1e-7"/>{slides}</body>')
        parts.body_xml.append("\n".join(bodies))
        centre = self.vert0.mean(0)
        parts.body_xml.append(f'<body name="cloth" pos="{fmt(centre)}"/>')  # stands for the flex (segmentation)
        parts.body_xml.append(f'<body name="{VIDEO_HAND}" mocap="true" pos="{fmt(self.hem_pos0)}"/>')
        verts = []
        h = iter(hem_local)
        for j in range(n):
            for i in range(n):
                verts.append(next(h) if j == 0 else np.zeros(3))
        elems = []
        for j in range(n - 1):
            for i in range(n - 1):
                a, b, c, d = j * n + i, j * n + i + 1, (j + 1) * n + i, (j + 1) * n + i + 1
                elems += [a, b, d, a, d, c]  # counter-clockwise seen from above
        tex = [v for j in range(n) for i in range(n) for v in (i / (n - 1), j / (n - 1))]
        parts.deformable_xml.append(
            f'<flex name="cloth" dim="2" radius="{CLOTH_RADIUS_M}" material="{self.mat_cloth}"\n'
            f'      body="{" ".join(names)}"\n      vertex="{fmt(np.array(verts).ravel())}"\n'
            f'      element="{" ".join(map(str, elems))}"\n      texcoord="{fmt(np.array(tex))}">\n'
            f'  <edge damping="0.002"/>\n'
            f'  <contact condim="3" solref="0.005 1" solimp="0.95 0.99 0.001" friction="0.8 0.005 0.0001" '
            f'selfcollide="none"/>\n'
            f'</flex>')
        parts.equality_xml += [
            '<flex name="cloth_edges" flex="cloth" solref="0.004 1"/>',
            f'<weld name="{VIDEO_WELD}" body1="{VIDEO_HAND}" body2="cloth_hem" active="false" solref="0.004 1"/>']

        a = np.linspace(0, 2 * np.pi, RIM_POINTS, endpoint=False)
        self.rim_xy = self.bowl_xy[None] + self.rim_r * np.stack([np.cos(a), np.sin(a)], 1)
        self.elements = np.array(elems).reshape(-1, 3)
        self.info = {
            "bowl_center": [*self.bowl_xy.tolist(), 0.0], "bowl_inner_radius_m": self.r_in,
            "bowl_rim_height_m": self.wall_h, "bowl_rim_radius_m": self.rim_r,
            "cloth_size_m": [self.side, self.side], "cloth_grid": [n, n], "cloth_mass_kg": CLOTH_MASS_KG,
            "cloth_thickness_m": 2 * CLOTH_RADIUS_M, "cloth_centre": centre.tolist(),
            "hem_center": self.hem_pos0.tolist(), "hem_size_m": (2 * self.hem_half).tolist(), "hem_mass_kg": HEM_MASS_KG,
            "hem_grasp": "from above, fingers closing across the bar (y)",
            "success": f">= {COVER_FRACTION:.0%} of {RIM_POINTS} points on the bowl's rim (radius {self.rim_r:.3f} m, "
                       f"z {self.wall_h:.3f} m) under the cloth",
        }

    # --- the invisible hand's path ----------------------------------------------------------------
    def video_path(self, rng: np.random.Generator) -> dict[str, Any]:
        far = self.bowl_xy[1] - self.rim_r - float(rng.uniform(0.025, 0.04))
        return {"end": [float(self.hem_pos0[0] + rng.uniform(-0.015, 0.015)), far, float(rng.uniform(0.025, 0.04))],
                "lift_m": float(rng.uniform(0.12, 0.16))}

    def hem_target(self, s: float, path: dict[str, Any] | None = None) -> np.ndarray:
        """Where the invisible hand holds the hem's centre at progress ``s`` (m, base frame)."""
        path = path or {"end": [float(self.hem_pos0[0]), float(self.bowl_xy[1] - self.rim_r - 0.03), 0.03],
                        "lift_m": 0.14}
        s = float(np.clip(s, 0.0, 1.0))
        end = np.asarray(path["end"], dtype=np.float64)
        p = self.hem_pos0 + (end - self.hem_pos0) * s
        p[2] += path["lift_m"] * np.sin(np.pi * s) ** 0.8
        return p

    def start_video(self, model, data, path: dict[str, Any]) -> None:  # noqa: ANN001
        """Take hold of the hem with the invisible hand (in a copy of the scene's data)."""
        import mujoco

        mid = model.body(VIDEO_HAND).mocapid[0]
        a, _ = _free_adr(model, "cloth_hem_free")
        data.mocap_pos[mid] = data.qpos[a:a + 3]
        data.mocap_quat[mid] = data.qpos[a + 3:a + 7]
        data.eq_active[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_EQUALITY, VIDEO_WELD)] = 1
        self._hold_offset = np.zeros(3)

    def drive_video(self, model, data, s: float, path: dict[str, Any]) -> None:  # noqa: ANN001
        """Move the invisible hand to progress ``s`` (called before each physics step)."""
        data.mocap_pos[model.body(VIDEO_HAND).mocapid[0]] = self.hem_target(s, path)

    def release_video(self, model, data) -> None:  # noqa: ANN001
        import mujoco

        data.eq_active[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_EQUALITY, VIDEO_WELD)] = 0

    # --- scripted states (tests, demos of the success check) ------------------------------------------
    def _restart(self, model, data) -> None:  # noqa: ANN001
        """The cloth and hem back where they lay (the scene's reference configuration)."""
        import mujoco

        for j in range(model.njnt):
            b = int(model.jnt_bodyid[j])
            name = model.body(b).name
            if name == "cloth_hem" or name.startswith("cloth_v"):
                qa, da = int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])
                nq = 7 if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE else 1
                nv = 6 if nq == 7 else 1
                data.qpos[qa:qa + nq] = model.qpos0[qa:qa + nq]
                data.qvel[da:da + nv] = 0.0
        mujoco.mj_forward(model, data)

    def _simulate_to(self, model, data, s: float, path: dict[str, Any] | None, duration_s: float = 3.0) -> None:  # noqa: ANN001
        import mujoco

        self._restart(model, data)
        self.start_video(model, data, path or {})
        n = int(round(duration_s * float(np.clip(s, 0, 1)) / model.opt.timestep))
        for k in range(1, n + 1):
            self.drive_video(model, data, float(s) * float(min_jerk(k / n)), path)
            mujoco.mj_step(model, data)
        self.release_video(model, data)
        for _ in range(int(round(SETTLE_AFTER_S / model.opt.timestep))):
            mujoco.mj_step(model, data)

    def set_progress(self, model, data, s: float, path: dict[str, Any] | None = None) -> None:  # noqa: ANN001
        """Not kinematic for a cloth: the invisible hand draws it from where it lay to progress
        ``s`` with the physics running, lets go, and the cloth settles."""
        self._simulate_to(model, data, s, path)

    def failure_state(self, model, data) -> None:  # noqa: ANN001
        """Drawn a third of the way and let go: lifted, but not over the bowl."""
        self._simulate_to(model, data, 0.35, None)

    # --- success ------------------------------------------------------------------------------------
    def rim_coverage(self, model, data) -> np.ndarray:  # noqa: ANN001
        """[RIM_POINTS] bool: which rim points lie under the cloth (at or above the rim's height)."""
        V = np.asarray(data.flexvert_xpos[model.flex_vertadr[0]:model.flex_vertadr[0] + model.flex_vertnum[0]])
        tri = V[self.elements]  # [m,3,3]
        a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
        P = self.rim_xy[:, None, :]  # [K,1,2]
        v0, v1, v2 = (b - a)[None], (c - a)[None], P - a[None]
        d00 = (v0 * v0).sum(-1)
        d01 = (v0 * v1).sum(-1)
        d11 = (v1 * v1).sum(-1)
        d20 = (v2 * v0).sum(-1)
        d21 = (v2 * v1).sum(-1)
        den = d00 * d11 - d01 * d01
        with np.errstate(divide="ignore", invalid="ignore"):
            w1 = (d11 * d20 - d01 * d21) / den
            w2 = (d00 * d21 - d01 * d20) / den
        w0 = 1.0 - w1 - w2
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9) & np.isfinite(w1) & (np.abs(den) > 1e-12)
        z = w0 * tri[None, :, 0, 2] + w1 * tri[None, :, 1, 2] + w2 * tri[None, :, 2, 2]
        z_over = np.where(inside, z, -np.inf).max(1)
        return z_over >= self.wall_h - COVER_Z_TOL_M

    def success(self, model, data) -> SuccessResult:  # noqa: ANN001
        cov = self.rim_coverage(model, data)
        frac = float(cov.mean())
        a, _ = _free_adr(model, "cloth_hem_free")
        moved = float(np.linalg.norm(np.asarray(data.qpos[a:a + 3]) - self.hem_pos0))
        ok = frac >= COVER_FRACTION
        if ok:
            reason = f"the cloth covers {cov.sum()}/{cov.size} points of the bowl's rim ({frac:.0%})"
        elif moved < 0.01:
            reason = f"cloth not moved (its edge is {moved * 100:.1f} cm from where it lay; rim covered {frac:.0%})"
        else:
            reason = (f"the cloth covers {cov.sum()}/{cov.size} points of the bowl's rim ({frac:.0%}, needs >= "
                      f"{COVER_FRACTION:.0%})")
        return SuccessResult(ok, frac, reason, moved=moved >= 0.01)
