"""The flow stage: depth alignment (``align``), lifting (``lift``), optional filtering
(``filtering``), the end-to-end ``extract.extract_flow`` and the ``pictures`` of a flow.
Import submodules explicitly (they pull in OpenCV / matplotlib lazily where they can)."""

MAX_NUM_POINTS = 8192   # most query points a flow may track (the CLI's --points bound; the tracker handles all)
