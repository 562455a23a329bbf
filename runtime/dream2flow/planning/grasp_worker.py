"""The grasp-proposal worker process: ``python -m dream2flow.planning.grasp_worker``.

Reads jobs from stdin and answers on stdout, each a length-prefixed pickle: a job is (rgbd, mask,
config), an answer ("ok", (object points, normals, scene points, camera centre, grasps)) or
("error", exception). It ends at the end of its input (its parent closed the pipe or died).
A plain subprocess rather than ``multiprocessing``: spawning with ``multiprocessing`` re-imports
the parent's main script, which then needs a ``__main__`` guard; this needs nothing of its parent.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

_HEADER = struct.Struct("<Q")


def write_message(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_message(stream: BinaryIO) -> Any:
    """The next message; EOFError at the end of the stream."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("grasp worker stream closed")
    n = _HEADER.unpack(head)[0]
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("grasp worker stream closed mid-message")
    return pickle.loads(data)


def compute(rgbd: Any, mask: Any, config: Any) -> tuple:
    """Exactly what ``plan_from_flow`` computes from D0 and the mask."""
    from dream2flow.planning.grasps import MIN_POINTS_BETWEEN, clouds_from_rgbd, propose_grasps

    obj, normals, scene, cam = clouds_from_rgbd(rgbd, mask)
    grasps = propose_grasps(obj, normals, scene, camera_pos=cam, config=config) if len(obj) >= MIN_POINTS_BETWEEN else []
    return obj, normals, scene, cam, grasps


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the answers
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer
    import dream2flow.planning.grasps  # noqa: F401  (numpy, SciPy's k-d tree loaded before the first job)

    while True:
        try:
            job = read_message(inp)
        except EOFError:
            return 0
        try:
            answer: tuple = ("ok", compute(*job))
        except Exception as exc:  # noqa: BLE001 (sent back: the planner raises it or computes itself)
            answer = ("error", exc)
        write_message(out, answer)


if __name__ == "__main__":
    sys.exit(main())
