"""One Push-T episode: scene -> generated video -> 3D flow (the normal flow stage) -> for each
dynamics model, a fresh identical scene and the closed loop (observe, shoot, push with the
Panda) until done or out of pushes -> the simulator's success check.

The flow is made once per (initial state, seed) and shared by every model, as in the paper's
comparison. Its inputs are swappable (``FLOW_SOURCES``): ``privileged`` gives the flow stage the
simulator's object box and the generator's relative depth video (the run says
``inputs: privileged`` in every output). Candidate pushes are drawn from the same seeded stream
for every model (common random numbers).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dream2flow.errors import Dream2FlowError, InvalidInput
from dream2flow.pusht import geometry as G
from dream2flow.pusht.planner import ShootingConfig, decide, pad_flow

NUM_FRAMES = 32
FLOW_POINTS = 256
OBSERVATIONS = ("camera", "privileged")


# ----------------------------------------------------------------------------- flow sources
def flow_privileged(env: Any, generated: Any, seed: int) -> tuple[Any, dict[str, Any]]:
    """The flow stage (``extract_flow``) on the generated video with the simulator's object box and
    the generator's relative depth: privileged inputs."""
    from dream2flow.flow.extract import extract_flow

    rgbd = env.sim.render_rgbd()
    box = tuple(int(v) for v in env.sim.object_box())
    res = extract_flow(generated.video, rgbd, box, generated.rel_depth, num_points=FLOW_POINTS, seed=seed)
    return res, {"inputs": "privileged", "box": list(box), "rgbd": rgbd}


FLOW_SOURCES: dict[str, Callable[[Any, Any, int], tuple[Any, dict[str, Any]]]] = {"privileged": flow_privileged}


@dataclass
class EpisodeConfig:
    shooting: ShootingConfig = field(default_factory=ShootingConfig)
    inputs: str = "privileged"          # flow source (FLOW_SOURCES)
    observation: str = "camera"         # "camera" | "privileged" (simulator's segmentation mask)
    artifacts: str = "clean"
    rate_hz: float = 100.0

    def __post_init__(self) -> None:
        if self.inputs not in FLOW_SOURCES:
            raise InvalidInput(f"unknown flow inputs '{self.inputs}' (choose from {', '.join(FLOW_SOURCES)})")
        if self.observation not in OBSERVATIONS:
            raise InvalidInput(f"unknown observation '{self.observation}' (choose from {', '.join(OBSERVATIONS)})")


def episode_rng(seed: int, initial_state: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(initial_state), zlib.crc32(b"pusht-shoot")]))


def closed_loop(env: Any, model: Any, P: np.ndarray, V: np.ndarray, cfg: EpisodeConfig, rng: np.random.Generator,
                *, recorder: Any = None) -> dict[str, Any]:
    """Observe -> decide -> push until done / budget. Returns the trace (no simulator truth is
    used for any decision)."""
    from dream2flow.pusht.execute import PandaPusher, reachable
    from dream2flow.pusht.observe import fit_pose
    from dream2flow.errors import PerceptionFailed

    pusher = PandaPusher(env, rate_hz=cfg.rate_hz)
    Pp, Vp = pad_flow(P, V)
    sc = cfg.shooting
    steps: list[dict[str, Any]] = []
    stop = f"push budget ({sc.push_budget}) used"
    t_decide, t_exec, n_cand, t_model = [], [], [], []
    for k in range(sc.push_budget + 1):
        try:
            ob = env.observe(sc.points, rng, source=cfg.observation)
        except PerceptionFailed as exc:
            stop = f"lost sight of the block: {exc.message}"
            break
        t0 = time.perf_counter()
        pose = fit_pose(ob.points, ob.normals) if model.kind == "pose" else None  # the pose model's input
        dec = decide(model, ob, Pp, Vp, sc, rng, pose=pose, reachable=reachable)
        t_decide.append(time.perf_counter() - t0)
        if recorder is not None:
            recorder.decision(env, ob, dec, Pp, Vp)
        if dec.done is not None:
            stop = dec.done
            break
        if k == sc.push_budget:
            break
        if "predict" in dec.timings_s:
            n_cand.append(dec.candidates)
            t_model.append(dec.timings_s["predict"] + dec.timings_s["score"])
        t1 = time.perf_counter()
        failed = _push_with_fallback(pusher, dec, recorder, env, Pp, Vp)
        if failed is not None:
            stop = f"push failed: {failed}"
            steps.append({"push": dec.push.to_list()[0], "error": failed})
            break
        t_exec.append(time.perf_counter() - t1)
        steps.append({"push": dec.push.to_list()[0], "t_star": dec.t_star, "t_target": dec.t_target,
                      "cost_now_mm": round(dec.cost_now * 1000, 2), "cost_pred_mm": round(dec.cost_best * 1000, 2),
                      "cost_final_mm": round(dec.cost_final * 1000, 2)})
    pushes = sum(1 for s in steps if "error" not in s)
    return {"pushes": pushes, "stop_reason": stop, "steps": steps,
            "decide_s_mean": round(float(np.mean(t_decide)), 4) if t_decide else None,
            "execute_s_mean": round(float(np.mean(t_exec)), 4) if t_exec else None,
            "candidates_per_s": round(float(np.sum(n_cand) / max(np.sum(t_model), 1e-9)), 1) if n_cand else None}


def _push_with_fallback(pusher: Any, dec: Any, recorder: Any, env: Any, Pp: np.ndarray, Vp: np.ndarray) -> str | None:
    """Execute ``dec.push``; when the arm cannot reach it (refused before anything moves:
    Unreachable / PlanningFailed), the next-best candidates in turn. -> None, or why it failed
    (execution failures are not retried)."""
    from dream2flow.errors import PlanningFailed, Unreachable

    options = [(dec.push, dec.predicted, dec.cost_best)] + list(dec.alternatives)
    why = ""
    for push, pred, cost in options:
        dec.push, dec.predicted, dec.cost_best = push, pred, cost
        try:
            pusher.push(push, on_tick=recorder.on_tick(env, dec, Pp, Vp) if recorder is not None else None)
            return None
        except (Unreachable, PlanningFailed) as exc:
            why = exc.message
            continue
        except Dream2FlowError as exc:
            return exc.message
    return f"{why} (and the {len(options) - 1} next-best pushes)"


def run_episode(initial_state: int, seed: int, dynamics: tuple[str, ...], cfg: EpisodeConfig | None = None, *,
                weights_dir: str | Path | None = None, recorder_factory: Any = None,
                out_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """All ``dynamics`` models on initial state ``initial_state`` (0..9) with ``seed`` -> one
    result dict per model (the eval JSON's episode records)."""
    from dream2flow.pusht.env import make_initial
    from dream2flow.pusht.models import load_model

    cfg = cfg or EpisodeConfig()
    if not 0 <= int(initial_state) < G.NUM_INITIAL_STATES:
        raise InvalidInput(f"initial state must be in 0..{G.NUM_INITIAL_STATES - 1}, got {initial_state}")
    models = {d: load_model(d, weights_dir) for d in dynamics}
    t0 = time.perf_counter()
    base = {"seed": int(seed), "initial_state": int(initial_state), "inputs": cfg.inputs,
            "observation": cfg.observation, "artifacts": cfg.artifacts}
    try:
        env0 = make_initial(initial_state, seed)
        generated = env0.sim.generate_video(cfg.artifacts, num_frames=NUM_FRAMES, seed=seed)
        flow_res, flow_info = FLOW_SOURCES[cfg.inputs](env0, generated, seed)
    except Dream2FlowError as exc:
        return [{**base, "dynamics": d, "success": False, "pushes": 0, "stop_reason": f"flow failed: {exc.message}"}
                for d in dynamics]
    flow = flow_res.flow
    t_flow = time.perf_counter() - t0
    if out_dir is not None:
        _write_inputs(Path(out_dir), env0, generated, flow_res, flow_info)
    env0.close()
    P = flow.points_base.astype(np.float32)
    V = flow.visible.astype(bool)
    flow_end_err = _flow_end_error(P, V)
    out = []
    for d in dynamics:
        env = make_initial(initial_state, seed)
        rec = recorder_factory(d) if recorder_factory is not None else None
        t1 = time.perf_counter()
        try:
            trace = closed_loop(env, models[d], P, V, cfg, episode_rng(seed, initial_state), recorder=rec)
        except Exception as exc:  # noqa: BLE001 - one episode's bug must not end a long evaluation; it is reported
            msg = exc.message if isinstance(exc, Dream2FlowError) else f"internal error: {type(exc).__name__}: {exc}"
            trace = {"pushes": 0, "stop_reason": msg, "steps": [], "error": msg}
        pose = env.block_pose()
        dp, dyaw = G.pose_error(pose)
        ok = G.is_success(pose)
        out.append({**base, "dynamics": d, "success": bool(ok), "pushes": trace["pushes"],
                    "final_position_error_m": round(dp, 4), "final_yaw_error_deg": round(float(np.degrees(dyaw)), 2),
                    "final_pose": [round(float(x), 4) for x in pose], "flow_seconds": round(t_flow, 2),
                    "flow_end_error_m": flow_end_err, "seconds": round(time.perf_counter() - t1, 2),
                    **{k: v for k, v in trace.items() if k != "pushes"}})
        if rec is not None:
            rec.finish(env, out[-1])
        env.close()
    return out


def _flow_end_error(P: np.ndarray, V: np.ndarray) -> float | None:
    """How far the flow's last step is from the goal pose (m): the block's footprint points at the
    goal vs the flow's visible points at the end (2D Chamfer, one way); a diagnostic only."""
    last = P[-1][V[-1]]
    if len(last) == 0:
        return None
    from scipy.spatial import cKDTree

    fp = G.footprint_points(0.005) @ G.rot2(G.GOAL[2]).T + G.GOAL[:2]
    return round(float(np.mean(cKDTree(fp).query(last[:, :2])[0])), 4)


def _write_inputs(out: Path, env: Any, generated: Any, flow_res: Any, info: dict[str, Any]) -> None:
    from dream2flow.config import save_camera
    from dream2flow.flow.pictures import write_flow_png
    from dream2flow.io_utils import write_rgb
    from dream2flow.video.encode import write_video

    out.mkdir(parents=True, exist_ok=True)
    rgbd = info["rgbd"]
    write_rgb(out / "i0.png", rgbd.rgb)
    np.save(out / "d0.npy", rgbd.depth_m)
    save_camera(rgbd.camera, out / "camera.toml", comment="simulated camera, push_t")
    write_video(out / "video.mp4", generated.video.frames, generated.video.fps)
    (out / "box.txt").write_text(",".join(str(v) for v in info["box"]) + "\n")
    flow_res.flow.save(out / "flow.npz")
    write_flow_png(out / "flow.png", flow_res.flow, rgbd.rgb)
