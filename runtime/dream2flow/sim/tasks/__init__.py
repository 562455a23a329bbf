"""Task registry: name -> Task class (scene, scripted path, success check)."""

from __future__ import annotations

from dream2flow.sim.tasks.articulated import OpenCabinetDrawer, OpenDoor, OpenDrawer, OpenOven, OpenToasterOven
from dream2flow.sim.tasks.base import SceneParts, SuccessResult, Task
from dream2flow.sim.tasks.bread_in_bowl import BreadInBowl
from dream2flow.sim.tasks.cover_bowl import CoverBowl

TASK_CLASSES: dict[str, type[Task]] = {cls.name: cls for cls in (BreadInBowl, OpenDrawer, OpenOven, OpenDoor, CoverBowl,
                                                                    OpenToasterOven, OpenCabinetDrawer)}

__all__ = ["TASK_CLASSES", "SceneParts", "SuccessResult", "Task", "BreadInBowl", "CoverBowl", "OpenDrawer", "OpenOven", "OpenDoor",
           "OpenToasterOven", "OpenCabinetDrawer"]
