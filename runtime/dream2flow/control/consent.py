"""Real-arm consent: a backend that moves a real arm (``moves_real_arm = True``) moves only
after an operator said so -- ``--yes`` on the command line, or the cell's consent flag
(``control.toml [safety] real_arm_consent = true``, for an unattended cell such as the service's).

Why one function, called by the control loop: every motion (``execute``, ``camera calibrate``, the
service's tasks, a replayed log) goes through ``control.loop``, so checking there covers every
caller, and a new real backend is covered by setting the attribute, not by remembering callers.
"""

from __future__ import annotations

from typing import Any

from dream2flow.errors import InvalidInput


def moves_real_arm(backend: Any) -> bool:
    """True for a backend that drives a real arm (its ``moves_real_arm`` attribute)."""
    return bool(getattr(backend, "moves_real_arm", False))


def require_consent(backend: Any, *, yes: bool, config_consent: bool = False, how: str = "--yes") -> None:
    """Raise ``InvalidInput`` (exit 2) if ``backend`` moves a real arm and neither ``yes`` nor
    ``config_consent`` is given. ``how`` names the way to consent in the message."""
    if moves_real_arm(backend) and not (yes or config_consent):
        name = getattr(backend, "name", "?")
        raise InvalidInput(f"backend '{name}' moves a real arm: clear the workspace, keep the e-stop in reach, "
                           f"then confirm with {how}")
