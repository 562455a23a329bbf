"""Dream2Flow Edge: generated task video -> 3D object flow -> robot motion.

Import submodules explicitly (``from dream2flow.flow import align``); this package
root stays import-light so the CLI starts fast.
"""

__version__ = "0.1.0"
