"""pylibfranka in child processes: the arm's 1 kHz stream (``RobotProcess``) and the Franka Hand
(``GripperProcess``).

Why processes and not threads: libfranka needs an answer every millisecond, and a Python thread
sharing the interpreter with the control loop, the service's gRPC threads or a perception stage
waits for the GIL whenever another thread holds it — and if the OS preempts that thread while it
holds the GIL, for a whole scheduler slice (priority inversion). Gaps of 10+ ms follow and the
robot stops with a discontinuity reflex. A process of its own has its own GIL and nothing else to
do: ``RobotProcess``'s child owns the ``pylibfranka.Robot`` connection (libfranka puts its thread
under SCHED_FIFO 99 where the OS allows), answers ``read``/``recover`` requests when idle, and
during a motion runs ``franka_stream.StreamPlayer`` at 1 kHz, exchanging only a few numbers with
the parent through shared memory (targets released, stop, and the robot's state back). The
Franka Hand's calls block until the fingers stop while holding the GIL, so they get a process too.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any, Callable

import numpy as np

# Shared-memory slots between the backend and the 1 kHz child (doubles, no lock: a lock the parent
# held while the OS preempted it would stall the 1 kHz loop). The parent writes RELEASED_T,
# ALL_RELEASED and STOP (single aligned doubles: atomic); the child publishes its state under a
# sequence counter SEQ (odd while writing), which the parent re-reads until it is even and unchanged.
RELEASED_T, ALL_RELEASED, STOP, ACTIVE, PATH_T, WALL, ROBOT_T, CYCLES, SEQ = range(9)
Q0, DQ0 = 9, 16
SHM_SIZE = 23


def error_names(errors: Any) -> list[str]:
    """Names of the flags set in a ``pylibfranka.Errors`` (libfranka's own names)."""
    if errors is None:
        return []
    return sorted(n for n in dir(errors) if not n.startswith("_") and getattr(errors, n, False) is True)


def describe_state(st: Any) -> dict[str, Any]:
    """A JSON-able summary of a ``pylibfranka.RobotState``."""
    mode = getattr(st, "robot_mode", None)
    return {"robot_mode": getattr(mode, "name", str(mode)),
            "current_errors": error_names(getattr(st, "current_errors", None)),
            "last_motion_errors": error_names(getattr(st, "last_motion_errors", None)),
            "q": [round(float(x), 5) for x in getattr(st, "q", [])],
            "dq": [round(float(x), 5) for x in getattr(st, "dq", [])],
            "control_command_success_rate": float(getattr(st, "control_command_success_rate", 0.0)),
            "time_s": float(st.time.to_sec()) if hasattr(getattr(st, "time", None), "to_sec") else None}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


class RobotProcess:
    """Parent side of the 1 kHz child. ``call(op, *args)`` for idle requests (``read``,
    ``recover``, ``impedance``) returns the child's answer or raises ``RuntimeError`` with its
    error; ``start_motion(path, q_start, limits, ...)`` hands a checked 1 kHz path over and
    returns at once; ``shm`` carries the rest; ``motion_result(timeout)`` collects the motion's
    outcome (None while it runs). The initial robot state is ``self.initial``."""

    def __init__(self, robot_ip: str, realtime: str, rt_priority: int = 80, start_timeout_s: float = 60.0) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")           # never fork a process that runs threads
        self.shm = ctx.RawArray("d", SHM_SIZE)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_robot_worker, args=(robot_ip, realtime, rt_priority, child, self.shm),
                                 name="d2f-franka-1khz", daemon=True)
        self._proc.start()
        child.close()
        self._lock = threading.Lock()
        self.moving = False
        self.initial = self._recv(start_timeout_s)

    @property
    def pid(self) -> int:
        return int(self._proc.pid)

    def call(self, op: str, *args: Any, timeout_s: float = 30.0) -> dict[str, Any]:
        with self._lock:
            if self.moving:
                raise RuntimeError(f"'{op}' while a motion runs")
            self._conn.send((op, args))
            return self._recv(timeout_s)

    def start_motion(self, path: np.ndarray, q_start: np.ndarray | None, limits: Any, *, stop_fraction: float,
                     max_lead_s: float, released_t: float, all_released: bool,
                     state_now: tuple[np.ndarray, np.ndarray, float] | None = None) -> None:
        """``state_now`` (q, dq, robot time): what ``snapshot()`` reports until the first cycle ran."""
        with self._lock:
            shm = self.shm
            shm[SEQ] += 1.0
            if state_now is not None:
                shm[Q0:Q0 + 7] = [float(x) for x in state_now[0]]
                shm[DQ0:DQ0 + 7] = [float(x) for x in state_now[1]]
                shm[ROBOT_T] = float(state_now[2])
            shm[PATH_T] = 0.0
            shm[WALL] = time.monotonic()
            shm[ACTIVE] = 1.0
            shm[SEQ] += 1.0
            shm[RELEASED_T] = released_t
            shm[ALL_RELEASED] = 1.0 if all_released else 0.0
            shm[STOP] = 0.0
            self.moving = True
            self._conn.send(("move", (path, q_start, limits, stop_fraction, max_lead_s)))

    def release(self, t_s: float, all_released: bool) -> None:
        self.shm[RELEASED_T] = t_s
        if all_released:
            self.shm[ALL_RELEASED] = 1.0

    def request_stop(self) -> None:
        self.shm[STOP] = 1.0

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, float, float, float, bool]:
        """(q [7], dq [7], robot time s, path time s, wall time of that cycle, active)."""
        shm = self.shm
        for _ in range(1000):
            s0 = shm[SEQ]
            v = shm[:]
            if s0 == shm[SEQ] and int(s0) % 2 == 0:
                break
            time.sleep(0)
        return (np.array(v[Q0:Q0 + 7]), np.array(v[DQ0:DQ0 + 7]), v[ROBOT_T], v[PATH_T], v[WALL], v[ACTIVE] > 0.5)

    def motion_result(self, timeout_s: float = 0.0) -> dict[str, Any] | None:
        """The motion's outcome once it ended (``stats``, ``finished``, ``stopped``, ``reason``,
        ``error`` + ``state`` on a libfranka exception), else None."""
        if not self.moving:
            return None
        with self._lock:
            if not self._conn.poll(timeout_s):
                return None
            out = self._recv(0.0)
            self.moving = False
            return out

    def alive(self) -> bool:
        return self._proc.is_alive()

    def _recv(self, timeout_s: float) -> dict[str, Any]:
        if not self._conn.poll(timeout_s):
            if not self._proc.is_alive():
                raise RuntimeError(f"the libfranka process ended (exit code {self._proc.exitcode})")
            raise RuntimeError(f"the libfranka process did not answer within {timeout_s:g} s")
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            raise RuntimeError(f"the libfranka process ended (exit code {self._proc.exitcode})") from None
        if status != "ok":
            raise RuntimeError(payload)
        return payload

    def close(self) -> None:
        if self.moving:
            self.request_stop()
            self.motion_result(1.0)
        _end_child(self._conn, self._proc, join_s=3.0)


def _robot_worker(robot_ip: str, realtime: str, rt_priority: int, conn: Any, shm: Any) -> None:
    """The 1 kHz child: owns ``pylibfranka.Robot``; idle requests, then motions (module docstring).
    libfranka's constructor raises this process to SCHED_FIFO 99 where the OS allows; with
    ``realtime = "ignore"`` the process takes ``rt_priority`` instead (0: normal scheduling)."""
    try:
        import pylibfranka as pf

        rt = pf.RealtimeConfig.kEnforce if realtime == "enforce" else pf.RealtimeConfig.kIgnore
        robot = pf.Robot(robot_ip, rt)
        if realtime != "enforce":
            try:
                if rt_priority > 0:
                    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt_priority))
                else:
                    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            except (OSError, AttributeError):
                pass
        conn.send(("ok", describe_state(robot.read_once())))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {first_line(exc)}"))
        return

    def handle(op: str, args: tuple[Any, ...]) -> dict[str, Any]:
        if op == "read":
            st = robot.read_once()
            out = describe_state(st)
            out["q_arr"], out["dq_arr"] = list(st.q), list(st.dq)
            out["q_d"] = list(st.q_d)
            return out
        if op == "recover":
            robot.automatic_error_recovery()
            return describe_state(robot.read_once())
        if op == "impedance":
            robot.set_joint_impedance(list(args[0]))
            return {}
        if op == "move":
            return _run_motion(pf, robot, shm, *args)
        raise ValueError(f"unknown operation {op!r}")

    _serve(conn, handle)


def _run_motion(pf: Any, robot: Any, shm: Any, path: np.ndarray, q_start: np.ndarray | None, limits: Any,
                stop_fraction: float, max_lead_s: float) -> dict[str, Any]:
    """One motion at 1 kHz (``franka_stream.StreamPlayer``); returns its outcome."""
    from dream2flow.control.franka_stream import DT_S, StreamPlayer

    player: StreamPlayer | None = None
    cycles = 0
    work_max = 0.0
    work_slow = 0
    clock = time.perf_counter
    error: str | None = None
    err_state: dict[str, Any] | None = None
    trace_path = os.environ.get("D2F_LIBFRANKA_TRACE", "")
    trace = np.zeros((int(path.shape[0]) * 2 + 20000, 24)) if trace_path else None
    gc.collect()
    gc.disable()            # a collection mid-motion would cost whole cycles
    try:
        st0 = robot.read_once()                 # the robot holds q_d until the motion starts
        player = StreamPlayer(path, np.asarray(st0.q_d, dtype=np.float64), limits, stop_fraction=stop_fraction,
                              max_lead_s=max_lead_s)
        player.prime()
        ctrl = robot.start_joint_position_control(pf.ControllerMode.JointImpedance)
        while True:
            st, dur = ctrl.readOnce()
            t_read = clock()
            if cycles == 0:
                player.start_at(st.q_d)           # exactly where the robot is (re-primed if it moved)
            n = max(1, int(round(dur.to_sec() / DT_S))) if cycles else 1
            cycles += 1
            # q_d: the reference the robot applied last, so a command it dropped (late) is known
            cmd, finished = player.next(n, shm[RELEASED_T], shm[ALL_RELEASED] > 0.5, shm[STOP] > 0.5,
                                        (st.q_d, st.dq_d, st.ddq_d))
            jp = pf.JointPositions(cmd.tolist())
            if finished:
                jp.motion_finished = True
            work = clock() - t_read
            ctrl.writeOnce(jp)
            player.settle()                       # a rejoin's fade is prepared after the command is out
            if trace is not None and cycles <= trace.shape[0]:
                row = trace[cycles - 1]
                row[0], row[1] = st.time.to_sec(), n
                row[2:9] = cmd
                row[9:16] = st.q_d
                row[16:23] = player.ddq
                row[23] = work
            if work > work_max:
                work_max = work
            if work > 0.0005:
                work_slow += 1
            shm[SEQ] += 1.0                       # odd: being written
            shm[PATH_T] = player.t_s
            shm[WALL] = time.monotonic()
            shm[ROBOT_T] = st.time.to_sec()
            shm[CYCLES] = cycles
            shm[Q0:Q0 + 7] = st.q
            shm[DQ0:DQ0 + 7] = st.dq
            shm[SEQ] += 1.0                       # even: consistent
            if finished:
                break
    except Exception as exc:  # a reflex (ControlException) or a broken connection
        error = f"{type(exc).__name__}: {first_line(exc)}"
        try:
            time.sleep(0.005)
            st = robot.read_once()
            err_state = describe_state(st)
            shm[SEQ] += 1.0
            shm[ROBOT_T] = st.time.to_sec()
            shm[Q0:Q0 + 7] = st.q
            shm[DQ0:DQ0 + 7] = st.dq
            shm[SEQ] += 1.0
        except Exception as exc2:
            err_state = {"state_error": f"{type(exc2).__name__}: {first_line(exc2)}"}
    finally:
        gc.enable()
        shm[ACTIVE] = 0.0
        if trace is not None:
            np.save(trace_path, trace[:cycles])
    try:
        prio = f"SCHED_FIFO {os.sched_getparam(0).sched_priority}" if os.sched_getscheduler(0) == os.SCHED_FIFO \
            else "normal"
    except (OSError, AttributeError):
        prio = "unknown"
    stats = {"cycles": cycles, "late_cycles": player.gaps if player else 0,
             "dropped_commands": player.dropped if player else 0, "unexplained_q_d": player.unexplained if player else 0,
             "max_gap_cycles": player.max_gap if player else 0, "path_samples": int(path.shape[0]),
             "path_time_s": round(player.t_s, 3) if player else 0.0, "stopped": bool(player and player.stopping),
             "stop_reason": player.reason if player else "", "rt_priority": prio,
             "work_max_ms": round(work_max * 1e3, 3), "work_over_half_ms": work_slow}
    return {"stats": stats, "finished": error is None and player is not None and not player.stopping,
            "stopped": bool(player and player.stopping), "reason": player.reason if player else "",
            "error": error, "state": err_state}


class GripperProcess:
    """``pylibfranka.Gripper`` in a child process. Its calls block until the fingers stop and hold
    the GIL while they do (up to seconds for a grasp; ~16 ms even for ``read_once``).
    ``call(op, args)`` runs ``homing | move | grasp | stop | read`` there and returns
    ``{"result", "width", "max_width", "is_grasped"}``; errors come back as ``RuntimeError``."""

    def __init__(self, robot_ip: str, start_timeout_s: float = 30.0) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_gripper_worker, args=(robot_ip, child), name="d2f-franka-gripper",
                                 daemon=True)
        self._proc.start()
        child.close()
        self._lock = threading.Lock()
        self._recv(start_timeout_s)

    @property
    def pid(self) -> int:
        return int(self._proc.pid)

    def call(self, op: str, args: tuple[Any, ...] = (), timeout_s: float = 30.0) -> dict[str, Any]:
        with self._lock:
            self._conn.send((op, tuple(args)))
            return self._recv(timeout_s)

    def _recv(self, timeout_s: float) -> dict[str, Any]:
        if not self._conn.poll(timeout_s):
            raise RuntimeError(f"the gripper did not answer within {timeout_s:g} s")
        status, payload = self._conn.recv()
        if status != "ok":
            raise RuntimeError(payload)
        return payload

    def close(self) -> None:
        _end_child(self._conn, self._proc, join_s=2.0)


def _gripper_worker(robot_ip: str, conn: Any) -> None:
    """Child process of ``GripperProcess``: owns the ``pylibfranka.Gripper`` connection, at normal
    scheduling whatever its parent had (its calls block; it must never compete with the 1 kHz child)."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (OSError, AttributeError):
        pass
    try:
        import pylibfranka as pf

        g = pf.Gripper(robot_ip)
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {first_line(exc)}"))
        return
    conn.send(("ok", {}))

    def handle(op: str, args: tuple[Any, ...]) -> dict[str, Any]:
        result = None
        if op == "homing":
            result = bool(g.homing())
        elif op == "move":
            result = bool(g.move(*args))
        elif op == "grasp":
            result = bool(g.grasp(*args))
        elif op == "stop":
            result = bool(g.stop())
        elif op != "read":
            raise ValueError(f"unknown gripper operation {op!r}")
        gs = g.read_once()
        return {"result": result, "width": float(gs.width), "max_width": float(gs.max_width),
                "is_grasped": bool(gs.is_grasped)}

    _serve(conn, handle)


def _serve(conn: Any, handle: Callable[[str, tuple[Any, ...]], dict[str, Any]]) -> None:
    """A child's request loop: ``(op, args)`` in, ``("ok", result)`` or ``("error", "Type: line")``
    out, until the parent sends ``None`` or the pipe closes. One request at a time, in order."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        op, args = msg
        try:
            reply = ("ok", handle(op, args))
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {first_line(exc)}")
        conn.send(reply)


def _end_child(conn: Any, proc: Any, *, join_s: float) -> None:
    """Ask a child process to end (``None`` on its pipe), wait ``join_s``, then terminate it: a
    child stuck in libfranka must not keep the parent from exiting."""
    try:
        conn.send(None)
    except (OSError, ValueError):
        pass
    proc.join(join_s)
    if proc.is_alive():
        proc.terminate()
        proc.join(1.0)
    conn.close()
