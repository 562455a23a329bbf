"""The libfranka backend against franka-sim, a simulator that speaks libfranka's real network
protocol and enforces what the FCI enforces (motion-generator limits, the 1 kHz communication
constraints) with libfranka's own reflexes.

franka-sim pins numpy 1.26 and mujoco < 3.3, so it runs from its own venv, made once by
``tests/fr3_sim/ensure_venv.sh`` (``.ci/run`` calls it and sets ``D2F_FRANKA_SIM_PYTHON``; the fixture
calls it when that is unset; a missing simulator or pylibfranka fails, never skips), started by
``tests/fr3_sim/launch_server.py`` on a free loopback address (libfranka always dials ports 1337/1338) with the vendored FR3 model: nothing is
downloaded. The CLI runs as an operator would run it: ``dream2flow execute --plan P --backend
libfranka --robot 127.0.0.X --yes``.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from fr3_sim.loopback import free_loopback

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "tests" / "fr3_sim" / "launch_server.py"
ENSURE_VENV = ROOT / "tests" / "fr3_sim" / "ensure_venv.sh"
OBJECT_WIDTH_M = 0.03            # the virtual object between the simulated fingers
Q_SIM = np.array([0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785])   # franka-sim's initial pose

pytestmark = pytest.mark.slow


def _skip_on_purpose() -> None:
    if os.environ.get("D2F_SKIP_FRANKA_SIM") == "1":
        pytest.skip("D2F_SKIP_FRANKA_SIM=1: the franka-sim protocol tests were skipped on purpose")


def _sim_python() -> str:
    """franka-sim's python: ``$D2F_FRANKA_SIM_PYTHON`` (CI sets it), else the venv that
    ``tests/fr3_sim/ensure_venv.sh`` makes once (about 30 s) or reuses. A missing simulator fails
    the tests (never a silent skip)."""
    env = os.environ.get("D2F_FRANKA_SIM_PYTHON")
    if env:
        return env
    try:
        out = subprocess.run(["bash", str(ENSURE_VENV)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"could not make franka-sim's venv ({exc}); D2F_SKIP_FRANKA_SIM=1 skips these tests")
    if out.returncode != 0:
        pytest.fail(f"could not make franka-sim's venv: {out.stderr.strip()[-2000:]}\n"
                    "(D2F_SKIP_FRANKA_SIM=1 skips these tests)")
    return out.stdout.strip().splitlines()[-1]


def _need_pylibfranka() -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"pylibfranka has wheels for x86_64 only, not {platform.machine()} (Dockerfile.jetson builds it)")
    try:
        import pylibfranka  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"pylibfranka is not installed ({exc}): pip install -e '.[franka]' "
                    "(D2F_SKIP_FRANKA_SIM=1 skips these tests)")


@pytest.fixture(scope="module")
def fr3_sim(tmp_path_factory):
    """A franka-sim FR3 (+ Franka Hand holding a 30 mm object) on its own loopback address."""
    _skip_on_purpose()
    _need_pylibfranka()
    py = _sim_python()
    host = free_loopback()
    logf = tmp_path_factory.mktemp("fr3sim") / "server.log"
    with open(logf, "w") as log:
        proc = subprocess.Popen([py, str(LAUNCHER), "--host", host, "--object-width", str(OBJECT_WIDTH_M)],
                                stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    deadline = time.monotonic() + 90.0
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        r, _, _ = select.select([proc.stdout], [], [], 0.5)
        if r:
            line = proc.stdout.readline()
            if line.startswith("READY"):
                break
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"franka-sim did not start on {host}: {logf.read_text()[-3000:]}")
    yield {"host": host, "log": logf}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The CLI's environment: the FR3's limits for planning, a private fault-latch folder."""
    e = dict(os.environ)
    e["D2F_STATE_DIR"] = str(tmp_path_factory.mktemp("d2f-state"))
    e["D2F_ROBOT_MODEL"] = "fr3"
    e.setdefault("MUJOCO_GL", "egl")
    return e


def _cli(env: dict, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _json_line(text: str) -> dict:
    return json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])


def _robot_state(env: dict, host: str) -> dict:
    out = _cli(env, "robot", "state", "--robot", host, "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    return _json_line(out.stdout)


# franka-sim, unlike the FCI, *applies* a command that reaches it after its 1 ms window (it rewinds
# its extrapolation of the missed cycles; see franka_sim.limits.checker.rewind_extrapolation). When
# this machine deschedules our 1 kHz process for n cycles mid-motion (a loaded 2-core CI runner) and
# the command just before or after that gap is late, the simulator differences the next command over
# the whole gap: an acceleration step of |ddq|·(n-1)/2 per millisecond (a jerk of 5000 rad/s^3 from
# n = 4 at 3 rad/s^2), a discontinuity reflex the FCI, which drops a late command and keeps
# extrapolating, would not raise. Measured with D2F_LIBFRANKA_TRACE: the jerk the simulator reports
# equals that formula to the printed digits. Such a run (a discontinuity reflex after a gap in our
# stream) is repeated once after an explicit recovery; a second failure, or a reflex without a gap,
# fails. The rejoin itself is tested against the FCI's rule in test_control_franka_stream.py.
SIM_LATE_GAP_CYCLES = 2


def _sim_late_answer_artefact(code: int, stdout: str, stderr: str) -> bool:
    """True when a run failed with a discontinuity reflex right after our 1 kHz process missed
    ``SIM_LATE_GAP_CYCLES`` or more cycles (the stream's own count in the run's JSON)."""
    if code != 7 or "discontinuity" not in stderr:
        return False
    try:
        stream = _json_line(stdout)["robot"]["stream"]
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    return int(stream.get("max_gap_cycles", 0)) >= SIM_LATE_GAP_CYCLES


def _recover_after_artefact(env: dict, host: str, stderr: str) -> None:
    """After the artefact the arm stands where the reflex stopped it, mid-plan: recover and bring it
    home, so that the repeated run starts where the first one did (its move-to-start is bounded)."""
    print(f"\nfranka-sim late-answer artefact (see SIM_LATE_GAP_CYCLES), recovering, going home and running again:\n"
          f"{stderr.strip().splitlines()[-1][:300]}")
    with tempfile.TemporaryDirectory(prefix="d2f-home-") as d:
        _bring_home(env, host, Path(d))


def _bring_home(env: dict, host: str, workdir: Path) -> None:
    """The FR3 at franka-sim's start pose with no latched fault: the operator's explicit recovery, then
    a bounded minimum-jerk move home planned from where the arm is (planned again from wherever the
    simulator's late-answer artefact stopped the first move)."""
    from dream2flow.types import Plan

    for attempt in range(2):
        st = _robot_state(env, host)
        if st["latched_fault"] or st["state"]["robot_mode"] == "Reflex":
            out = _cli(env, "robot", "recover", "--robot", host, "--yes", timeout=60)
            assert out.returncode == 0, out.stderr
            st = _robot_state(env, host)
        here = np.array(st["state"]["q"])
        dist = float(np.abs(Q_SIM - here).max())
        if dist <= 1e-3:
            return
        T = max(1.0, dist / 0.25)                                     # <= ~0.5 rad/s at the peak
        tau = np.linspace(0.0, 1.0, int(round(T / 0.05)) + 1)[:, None]
        home = Plan(q=here + (Q_SIM - here) * tau ** 3 * (10 - 15 * tau + 6 * tau ** 2), dt_s=0.05,
                    gripper=np.zeros(len(tau), np.float32), predicted_points=np.zeros((len(tau), 0, 3), np.float32),
                    meta={})
        out = _cli(env, "execute", "--plan", str(home.save(workdir / f"home{attempt}.npz")), "--backend", "libfranka",
                   "--robot", host, "--yes", "--json")
        if out.returncode == 0:
            return
        if not (attempt == 0 and _sim_late_answer_artefact(out.returncode, out.stdout, out.stderr)):
            break
        print(f"\nfranka-sim late-answer artefact on the way home, planning home again:\n"
              f"{out.stderr.strip().splitlines()[-1][:300]}")
    raise AssertionError(f"could not bring the arm home ({dist:.3f} rad away): {out.stderr[-1500:]}")


def _execute(env: dict, host: str, plan: Path, timeout: float = 180.0) -> subprocess.CompletedProcess:
    """`dream2flow execute --plan P --backend libfranka --robot HOST --yes --json`, once more after
    the simulator's late-answer artefact (never after anything else)."""
    args = ("execute", "--plan", str(plan), "--backend", "libfranka", "--robot", host, "--yes", "--json")
    out = _cli(env, *args, timeout=timeout)
    if _sim_late_answer_artefact(out.returncode, out.stdout, out.stderr):
        _recover_after_artefact(env, host, out.stderr)
        out = _cli(env, *args, timeout=timeout)
    return out


@pytest.fixture(scope="module")
def planned(tmp_path_factory, env) -> Path:
    """A trajectory from the project's own planner: the simulated open_drawer scene's ground-truth
    flow, planned for the FR3 from the joints franka-sim starts at."""
    d = tmp_path_factory.mktemp("planned")
    sim_env = {k: v for k, v in env.items() if k != "D2F_ROBOT_MODEL"}   # the simulated scene is a Panda's
    out = _cli(sim_env, "sim", "render", "--task", "open_drawer", "--seed", "0", "--frames", "24",
               "--out", str(d / "scene"))
    assert out.returncode == 0, out.stderr
    s = d / "scene"
    out = _cli(env, "plan", "--flow", str(s / "gt_flow.npz"), "--rgb", str(s / "i0.png"), "--depth", str(s / "d0.npy"),
               "--camera", str(s / "camera.toml"), "--q0=" + ",".join(repr(float(x)) for x in Q_SIM),
               "--out", str(d / "plan"))
    assert out.returncode == 0, out.stderr
    return d / "plan" / "plan.npz"


@pytest.fixture
def at_start(fr3_sim, env, tmp_path) -> str:
    """The FR3 at franka-sim's start pose with no latched fault, whatever a test before left (a failed
    test must not fail the next ones). Returns the simulator's address."""
    _bring_home(env, fr3_sim["host"], tmp_path)
    return fr3_sim["host"]


def _jump_plan(path: Path) -> Path:
    from dream2flow.types import Plan

    dt = 0.1
    t = np.arange(0.0, 3.0 + 1e-9, dt)
    q = np.repeat(Q_SIM[None], len(t), axis=0)
    q[10:20, 0] += np.arange(1, 11) * dt * 0.8        # joint 1 jumps from rest to 0.8 rad/s at t = 1 s
    q[20:, 0] = q[19, 0]
    Plan(q=q, dt_s=dt, gripper=np.zeros(len(t), np.float32), predicted_points=np.zeros((len(t), 0, 3), np.float32),
         meta={"method": "velocity jump"}).save(path)
    return path


def test_planned_trajectory_runs_end_to_end_on_the_fr3(fr3_sim, at_start, env, planned) -> None:
    """Acceptance 1: a smooth planned trajectory, final joint error < 2 mrad, zero reflexes; the
    gripper grasps the simulated object and the run reports it."""
    host = fr3_sim["host"]
    out = _cli(env, "robot", "home-gripper", "--robot", host)            # bring-up: home the hand once
    assert out.returncode == 2 and "--yes" in out.stderr
    out = _cli(env, "robot", "home-gripper", "--robot", host, "--yes", "--json")
    assert out.returncode == 0, out.stderr
    assert _json_line(out.stdout)["gripper"]["max_width"] > 0.07
    out = _execute(env, host, planned)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    res = _json_line(out.stdout)
    assert res["ok"] and res["commands_sent"] > 0 and res["final_error_rad"] < 2e-3, res
    robot = res["robot"]
    assert robot["fault"] is None and not robot["stream"]["stopped"]
    assert robot["state"]["robot_mode"] == "Idle"
    assert robot["state"]["current_errors"] == [] and robot["state"]["last_motion_errors"] == []   # zero reflexes
    grasps = [g for g in robot["gripper"] if g["action"] == "grasp"]
    assert grasps and grasps[0]["ok"] and grasps[0]["is_grasped"]
    assert abs(grasps[0]["width_m"] - OBJECT_WIDTH_M) < 2e-3
    assert "gripper grasp: held at 0.03" in out.stdout
    st = robot["stream"]
    print(f"\nplanned trajectory on franka-sim: final error {res['final_error_rad']:.2e} rad, max tracking error "
          f"{res['max_tracking_error_rad']:.4f} rad, {st['cycles']} cycles at 1 kHz, {st['late_cycles']} late "
          f"(max gap {st['max_gap_cycles']}), per-cycle work max {st['work_max_ms']} ms "
          f"({st['work_over_half_ms']} cycles over 0.5 ms), {st['rt_priority']}")
    # back to where the next tests expect the arm: a second planned run, from here to franka-sim's start pose
    from dream2flow.types import Plan

    here = np.array(robot["state"]["q"])
    tau = np.linspace(0.0, 1.0, 40)[:, None]
    back = Plan(q=here + (Q_SIM - here) * tau ** 3 * (10 - 15 * tau + 6 * tau ** 2), dt_s=0.1,
                gripper=np.zeros(40, np.float32), predicted_points=np.zeros((40, 0, 3), np.float32), meta={})
    p = back.save(planned.parent / "back.npz")
    trace = planned.parent / "trace.npy"                                   # the 1 kHz diagnosis record
    out = _execute(dict(env, D2F_LIBFRANKA_TRACE=str(trace)), host, p)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = np.load(trace)
    assert rows.shape == (_json_line(out.stdout)["robot"]["stream"]["cycles"], 24)
    np.testing.assert_allclose(rows[-1, 2:9], Q_SIM, atol=1e-9)            # the last command: the plan's end


def test_a_velocity_jump_is_refused_before_any_command(fr3_sim, at_start, env, tmp_path) -> None:
    """Acceptance 2: our pre-flight refuses the stream (exit 6); the robot never moved and raised nothing."""
    host = fr3_sim["host"]
    before = _robot_state(env, host)
    out = _cli(env, "execute", "--plan", str(_jump_plan(tmp_path / "jump.npz")), "--backend", "libfranka",
               "--robot", host, "--yes", "--json")
    assert out.returncode == 6, out.stderr
    assert "pre-flight" in out.stderr and "nothing was sent" in out.stderr and "joint 1" in out.stderr
    res = _json_line(out.stdout)
    assert res["commands_sent"] == 0 and res["failure"] == "safety"
    assert res["robot"]["stream"] == {}                                         # the 1 kHz stream never started
    after = _robot_state(env, host)
    assert after["state"]["q"] == before["state"]["q"]
    assert after["state"]["robot_mode"] == "Idle" and after["state"]["last_motion_errors"] == []


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _cos_plan(tmp_path: Path, name: str, amp: np.ndarray, T: float = 3.0, cycles: float = 1.0) -> Path:
    """From the start pose along ``amp`` and back in ``T`` s (``cycles=0.5``: out only, at rest at ``amp``)."""
    from dream2flow.types import Plan

    t = np.arange(0.0, T + 1e-9, 0.1)
    s = (1 - np.cos(2 * np.pi * cycles * t / T)) / 2
    plan = Plan(q=Q_SIM + s[:, None] * amp, dt_s=0.1, gripper=np.zeros(len(t), np.float32),
                predicted_points=np.zeros((len(t), 0, 3), np.float32), meta={})
    return plan.save(tmp_path / name)


def _run_and_stall(env: dict, host: str, plan: Path, pids: str, stall_s: float) -> tuple[int, str, str]:
    """`execute` the plan; at 1 s of plan time freeze (SIGSTOP) the CLI's own process ("loop") or its
    child processes ("children": the 1 kHz stream and the gripper) for ``stall_s``."""
    def stall(proc: subprocess.Popen) -> None:
        targets = [proc.pid] if pids == "loop" else _children(proc.pid)
        assert targets
        for pid in targets:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(stall_s)
        for pid in targets:
            os.kill(pid, signal.SIGCONT)

    return _run_and_act(env, host, plan, stall)


def _run_and_act(env: dict, host: str, plan: Path, act) -> tuple[int, str, str]:
    """`execute` the plan and ``act(proc)`` at 1 s of plan time; once more after the simulator's
    late-answer artefact ended the run before that point."""
    code, stdout, stderr, acted = _run_and_act_once(env, host, plan, act)
    if not acted and _sim_late_answer_artefact(code, stdout, stderr):
        _recover_after_artefact(env, host, stderr)
        code, stdout, stderr, acted = _run_and_act_once(env, host, plan, act)
    assert acted, f"the run ended (exit {code}) before 1 s of plan time: {stderr}"
    return code, stdout, stderr


def _run_and_act_once(env: dict, host: str, plan: Path, act) -> tuple[int, str, str, bool]:
    """One run of ``_run_and_act``: exit code, stdout, stderr, whether it reached 1 s and acted."""
    proc = subprocess.Popen([sys.executable, "-m", "dream2flow.cli", "execute", "--plan", str(plan), "--backend",
                             "libfranka", "--robot", host, "--yes", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    while True:                                 # mid-motion: the loop reports t = 1 s of plan time
        line = proc.stdout.readline()
        if not line:                            # it ended before (the caller says whether that may repeat)
            stdout, stderr = proc.communicate(timeout=60)
            return proc.returncode, "".join(seen) + stdout, stderr, False
        seen.append(line)
        if line.startswith("execute: t=") and float(line.split("=")[1].split()[0]) >= 1.0:
            break
    act(proc)
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, stderr, True


def test_a_stalled_control_loop_stops_the_arm_smoothly(fr3_sim, at_start, env, tmp_path) -> None:
    """The control loop freezes mid-motion (its process is stopped for 0.3 s) while the 1 kHz stream
    runs on in its own process: the stream stops releasing-starved, smoothly, without a reflex; the
    run ends with exit 7 saying so; nothing is latched (no robot fault)."""
    host = fr3_sim["host"]
    plan = _cos_plan(tmp_path, "cos.npz", np.array([0.3, 0.2, -0.2, 0.3, 0.3, -0.2, 0.4]))
    code, stdout, stderr = _run_and_stall(env, host, plan, "loop", 0.3)
    assert code == 7 and "stopped releasing targets" in stderr and "stopped smoothly" in stderr, stderr
    res = _json_line(stdout)
    assert res["robot"]["fault"] is None and res["robot"]["stream"]["stopped"]
    st = _robot_state(env, host)
    assert st["latched_fault"] is None and st["state"]["current_errors"] == [] and st["state"]["last_motion_errors"] == []


def test_a_reflex_mid_motion_stops_the_run_and_needs_explicit_recovery(fr3_sim, at_start, env, tmp_path) -> None:
    """Acceptance 3: the 1 kHz stream's process stalls mid-motion (SIGSTOP, 100 ms: more than
    libfranka's 20 lost cycles); libfranka stops the arm with communication_constraints_violation;
    the run ends with exit 7 naming it and the robot's state; the arm stays still; the next run
    refuses until `dream2flow robot recover --yes`."""
    host = fr3_sim["host"]
    p = _cos_plan(tmp_path, "cos.npz", np.array([0.3, 0.2, -0.2, 0.3, 0.3, -0.2, 0.4]))
    code, stdout, stderr = _run_and_stall(env, host, p, "children", 0.1)
    assert code == 7, stderr
    assert "communication_constraints_violation" in stderr and "robot mode Reflex" in stderr and "q = [" in stderr
    assert "Traceback" not in stderr
    res = _json_line(stdout)
    assert res["failure"] == "execution" and "communication_constraints_violation" in res["reason"]
    assert res["robot"]["state"]["robot_mode"] == "Reflex"
    assert "communication_constraints_violation" in res["robot"]["state"]["current_errors"]
    # the arm ends stopped and nothing resumes by itself (a settling creep of a few 0.1 mrad is physics)
    stopped_at = np.array(res["robot"]["state"]["q"])
    time.sleep(0.5)
    s1 = _robot_state(env, host)
    time.sleep(0.5)
    s2 = _robot_state(env, host)
    assert np.abs(np.array(s2["state"]["q"]) - stopped_at).max() < 2e-3
    assert np.abs(np.array(s2["state"]["q"]) - np.array(s1["state"]["q"])).max() < 5e-4
    assert np.abs(np.array(s2["state"]["dq"])).max() < 5e-3
    assert s2["latched_fault"] and "communication_constraints_violation" in s2["latched_fault"]["message"]
    out = _cli(env, "execute", "--plan", str(p), "--backend", "libfranka", "--robot", host, "--yes")
    assert out.returncode == 3 and "fault is latched" in out.stderr and "robot recover" in out.stderr
    out = _cli(env, "robot", "recover", "--robot", host)
    assert out.returncode == 2
    out = _cli(env, "robot", "recover", "--robot", host, "--yes", "--json")
    assert out.returncode == 0, out.stderr
    rec = _json_line(out.stdout)
    assert rec["recovered"] and rec["state"]["current_errors"] == [] and rec["cleared_fault"]
    # recovered: runs move the arm again (the plan starts where franka-sim started; the loop adds the move there)
    out = _execute(env, host, p)
    assert out.returncode == 0, out.stderr[-2000:]
    res = _json_line(out.stdout)
    assert res["ok"] and res["final_error_rad"] < 2e-3 and res["robot"]["state"]["last_motion_errors"] == []


def test_an_estop_mid_motion_brakes_smoothly_without_a_reflex(fr3_sim, at_start, env, tmp_path) -> None:
    """Ctrl-C (the CLI's e-stop) near top speed: the backend brakes every joint within libfranka's
    limits and ends the motion at rest — the simulator, which enforces the limits, raises nothing."""
    from dream2flow.types import Plan

    host = fr3_sim["host"]
    t = np.arange(0.0, 2.0 + 1e-9, 0.1)
    s = (1 - np.cos(2 * np.pi * t / 2.0)) / 2
    plan = Plan(q=Q_SIM + s[:, None] * np.array([0.5, 0.4, -0.4, 0.5, 0.6, -0.4, 0.8]), dt_s=0.1,
                gripper=np.zeros(len(t), np.float32), predicted_points=np.zeros((len(t), 0, 3), np.float32), meta={})
    p = plan.save(tmp_path / "fast.npz")
    # Ctrl-C at 1 s: mid-motion, at the cosine's top speed (~1.3 rad/s on joint 7)
    code, stdout, stderr = _run_and_act(env, host, p, lambda proc: proc.send_signal(signal.SIGINT))
    assert code == 7 and "e-stop" in stderr, stderr
    res = _json_line(stdout)
    robot = res["robot"]
    assert res["failure"] == "estop" and robot["fault"] is None
    assert robot["stream"]["stopped"] and robot["state"]["robot_mode"] == "Idle"
    assert robot["state"]["current_errors"] == [] and robot["state"]["last_motion_errors"] == []
    time.sleep(0.3)
    s2 = _robot_state(env, host)
    assert np.abs(np.array(s2["state"]["dq"])).max() < 5e-3                                 # at rest
    assert s2["latched_fault"] is None            # an e-stop is the operator's, not a fault: no recovery needed


def test_a_repeat_after_the_sim_artefact_starts_from_the_start_pose(fr3_sim, at_start, env, tmp_path) -> None:
    """The simulator's late-answer artefact stops a run mid-plan (a reflex); the test's repeat must
    start where the first run did, or the loop's bounded move-to-start refuses it (a CI failure once):
    the recovery brings the arm home from wherever it stopped."""
    host = fr3_sim["host"]
    out = _execute(env, host, _cos_plan(tmp_path, "out.npz", np.array([0.3, 0.2, -0.2, 0.3, 0.3, -0.2, 0.8]), cycles=0.5))
    assert out.returncode == 0, out.stderr[-1500:]
    away = np.array(_robot_state(env, host)["state"]["q"])
    assert np.abs(away - Q_SIM).max() > 0.5                     # farther than move-to-start may go
    _recover_after_artefact(env, host, "dream2flow execute: error [execute]: (a stand-in for the artefact's message)")
    st = _robot_state(env, host)
    assert np.abs(np.array(st["state"]["q"]) - Q_SIM).max() <= 1e-3 and st["latched_fault"] is None


def test_real_time_scheduling_stays_in_the_1khz_process(fr3_sim, env, monkeypatch) -> None:
    """libfranka's Robot() puts its caller under SCHED_FIFO 99 where the OS allows: only the 1 kHz
    child process calls it, so this process (and whatever it starts later) keeps its scheduling and
    the gripper's child runs at normal priority. Runs in this process, through the control loop."""
    from dream2flow.config import load_robot_limits
    from dream2flow.control.backends.libfranka import LibfrankaBackend
    from dream2flow.control.loop import execute_plan
    from dream2flow.types import Plan

    monkeypatch.setenv("D2F_STATE_DIR", env["D2F_STATE_DIR"])
    fr3 = load_robot_limits(model="fr3")
    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    from dataclasses import replace

    from dream2flow.control.backends.libfranka import load_libfranka_config

    # this loop shares the pytest process (and a loaded CI machine): give it 0.5 s of lead before the
    # 1 kHz process stops for lack of targets (the default 0.1 s is tested by the stalled-loop test)
    cfg = replace(load_libfranka_config(None), max_lead_s=0.5)
    b = LibfrankaBackend(cfg, robot_ip=fr3_sim["host"], limits=fr3)
    try:
        if b.latched_fault():
            b.recover()
        b.connect()
        assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
        assert os.sched_getscheduler(b._gripper.pid) == os.SCHED_OTHER
        try:                                  # real-time for the 1 kHz child, where this OS allows it
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            os.sched_setscheduler(0, *before[:1], os.sched_param(before[1]))
            assert os.sched_getscheduler(b._robot.pid) == os.SCHED_FIFO
        except PermissionError:
            pass
        q0 = np.array(b.state().q)
        H = 21
        w = np.sin(np.pi * np.linspace(0, 1, H)) ** 2
        plan = Plan(q=q0 + w[:, None] * np.array([0, 0, 0, 0, 0, 0, 0.05]), dt_s=0.05, gripper=np.zeros(H),
                    predicted_points=np.zeros((H, 0, 3)))
        r = execute_plan(plan, b, rate_hz=100.0, limits=fr3, consent=True)
        assert r.ok, r.reason
        assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    finally:
        b.close()


def test_the_service_holds_after_a_reflex_until_an_operators_reset(fr3_sim, at_start, env, tmp_path, monkeypatch) -> None:
    """The operator service on the libfranka backend (the cell consented in its control.toml): a
    reflex mid-task (the 1 kHz process stalls) fails the task with libfranka's reason and holds
    the service like an e-stop — new motion tasks are refused — until an operator's Reset, which
    runs libfranka's recovery; then a task runs again. Real server, real control loop, franka-sim."""
    import shutil

    import grpc

    from dream2flow.config import shipped_hw_dir
    from dream2flow.control.backends.libfranka import LibfrankaBackend
    from dream2flow.service import client as C
    from dream2flow.service.testing import ServiceThread, loop_only_pipeline, make_config
    from dream2flow.v1 import robot_pb2
    from test_service_api import OP, Harness, _wait_executing

    host = fr3_sim["host"]
    hw = tmp_path / "hw"
    shutil.copytree(shipped_hw_dir(), hw)
    control = hw / "robot" / "control.toml"
    control.write_text(control.read_text().replace("real_arm_consent = false", "real_arm_consent = true"))
    monkeypatch.setenv("D2F_HW_DIR", str(hw))
    monkeypatch.setenv("D2F_STATE_DIR", env["D2F_STATE_DIR"])
    cfg = make_config(tmp_path / "data", robot={"backend": "libfranka", "robot_ip": host})
    with ServiceThread(cfg, pipeline=loop_only_pipeline(3.0)) as st:
        h = Harness(st, tmp_path)
        tid = h.submit().task.task_id
        _wait_executing(h, tid)
        time.sleep(0.5)                                   # mid-motion
        inner = st.service.devices.existing_backends()[0].inner
        pid = inner._robot.pid                            # the 1 kHz process: stalled past libfranka's 20 cycles
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.1)
        os.kill(pid, signal.SIGCONT)
        t = h.wait_state(tid, {"FAILED", "SUCCEEDED", "CANCELLED"})
        assert C.STATE_NAMES[t.state] == "FAILED" and t.failed_stage == "execute", t
        assert "communication_constraints_violation" in t.error_message, t.error_message
        state = h.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=OP).state
        assert state.mode == robot_pb2.MOTION_MODE_ESTOPPED and "communication_constraints_violation" in state.mode_reason
        with pytest.raises(grpc.RpcError) as refused:     # nothing moves by itself, nothing new starts
            h.submit()
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        latch = LibfrankaBackend(robot_ip=host)           # (the file only: the FCI takes one connection, the service's)
        assert "communication_constraints_violation" in latch.latched_fault()["message"]
        h.robot.Reset(robot_pb2.ResetRequest(), metadata=OP)   # the operator's explicit recovery
        state = h.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=OP).state
        assert state.mode == robot_pb2.MOTION_MODE_READY
        assert latch.latched_fault() is None
        tid2 = h.submit().task.task_id
        t2 = h.wait_state(tid2, {"FAILED", "SUCCEEDED", "CANCELLED"}, timeout_s=60)
        assert C.STATE_NAMES[t2.state] == "SUCCEEDED", t2.error_message
        h.channel.close()


def test_the_bench_runs(env) -> None:
    """bench/libfranka_bench.py stays runnable (one quiet run on its own franka-sim; the numbers are
    the bench's business)."""
    _skip_on_purpose()
    _need_pylibfranka()
    e = dict(env, D2F_FRANKA_SIM_PYTHON=_sim_python())
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "libfranka_bench.py"), "--runs", "1", "--hogs", "0"],
                         capture_output=True, text=True, timeout=180, env=e)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(ln) for ln in out.stdout.splitlines() if ln.startswith("{")]
    runs = [r for r in rows if "run" in r]
    assert len(runs) == 1 and runs[0]["ok"] and runs[0]["cycles"] > 3000, runs
    assert [r["summary"] for r in rows if "summary" in r] == ["quiet"]
