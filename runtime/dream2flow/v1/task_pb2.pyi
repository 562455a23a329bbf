from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_QUEUED: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_SUCCEEDED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_CANCELLED: _ClassVar[TaskState]
    TASK_STATE_INTERRUPTED: _ClassVar[TaskState]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_STATE: _ClassVar[EventKind]
    EVENT_KIND_STAGE_STARTED: _ClassVar[EventKind]
    EVENT_KIND_PROGRESS: _ClassVar[EventKind]
    EVENT_KIND_STAGE_FINISHED: _ClassVar[EventKind]
    EVENT_KIND_ERROR: _ClassVar[EventKind]

class UploadPurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_PURPOSE_UNSPECIFIED: _ClassVar[UploadPurpose]
    UPLOAD_PURPOSE_VIDEO: _ClassVar[UploadPurpose]
    UPLOAD_PURPOSE_VIDEO_DEPTH: _ClassVar[UploadPurpose]

class Container(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTAINER_UNSPECIFIED: _ClassVar[Container]
    CONTAINER_MP4: _ClassVar[Container]
    CONTAINER_AVI: _ClassVar[Container]
    CONTAINER_MKV: _ClassVar[Container]
    CONTAINER_WEBM: _ClassVar[Container]
    CONTAINER_NPY: _ClassVar[Container]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_QUEUED: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_SUCCEEDED: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_CANCELLED: TaskState
TASK_STATE_INTERRUPTED: TaskState
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_STATE: EventKind
EVENT_KIND_STAGE_STARTED: EventKind
EVENT_KIND_PROGRESS: EventKind
EVENT_KIND_STAGE_FINISHED: EventKind
EVENT_KIND_ERROR: EventKind
UPLOAD_PURPOSE_UNSPECIFIED: UploadPurpose
UPLOAD_PURPOSE_VIDEO: UploadPurpose
UPLOAD_PURPOSE_VIDEO_DEPTH: UploadPurpose
CONTAINER_UNSPECIFIED: Container
CONTAINER_MP4: Container
CONTAINER_AVI: Container
CONTAINER_MKV: Container
CONTAINER_WEBM: Container
CONTAINER_NPY: Container

class CameraModel(_message.Message):
    __slots__ = ("width_px", "height_px", "k_px", "t_base_cam_m")
    WIDTH_PX_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_PX_FIELD_NUMBER: _ClassVar[int]
    K_PX_FIELD_NUMBER: _ClassVar[int]
    T_BASE_CAM_M_FIELD_NUMBER: _ClassVar[int]
    width_px: int
    height_px: int
    k_px: _containers.RepeatedScalarFieldContainer[float]
    t_base_cam_m: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, width_px: _Optional[int] = ..., height_px: _Optional[int] = ..., k_px: _Optional[_Iterable[float]] = ..., t_base_cam_m: _Optional[_Iterable[float]] = ...) -> None: ...

class BoxPx(_message.Message):
    __slots__ = ("x0_px", "y0_px", "x1_px", "y1_px")
    X0_PX_FIELD_NUMBER: _ClassVar[int]
    Y0_PX_FIELD_NUMBER: _ClassVar[int]
    X1_PX_FIELD_NUMBER: _ClassVar[int]
    Y1_PX_FIELD_NUMBER: _ClassVar[int]
    x0_px: int
    y0_px: int
    x1_px: int
    y1_px: int
    def __init__(self, x0_px: _Optional[int] = ..., y0_px: _Optional[int] = ..., x1_px: _Optional[int] = ..., y1_px: _Optional[int] = ...) -> None: ...

class GetObservationRequest(_message.Message):
    __slots__ = ("include_depth",)
    INCLUDE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    include_depth: bool
    def __init__(self, include_depth: _Optional[bool] = ...) -> None: ...

class GetObservationResponse(_message.Message):
    __slots__ = ("rgb_png", "depth_m_npy", "camera", "captured_unix_s", "q_rad")
    RGB_PNG_FIELD_NUMBER: _ClassVar[int]
    DEPTH_M_NPY_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    Q_RAD_FIELD_NUMBER: _ClassVar[int]
    rgb_png: bytes
    depth_m_npy: bytes
    camera: CameraModel
    captured_unix_s: float
    q_rad: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, rgb_png: _Optional[bytes] = ..., depth_m_npy: _Optional[bytes] = ..., camera: _Optional[_Union[CameraModel, _Mapping]] = ..., captured_unix_s: _Optional[float] = ..., q_rad: _Optional[_Iterable[float]] = ...) -> None: ...

class UploadMetadata(_message.Message):
    __slots__ = ("size_bytes", "sha256_hex", "container", "purpose", "filename")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    sha256_hex: str
    container: Container
    purpose: UploadPurpose
    filename: str
    def __init__(self, size_bytes: _Optional[int] = ..., sha256_hex: _Optional[str] = ..., container: _Optional[_Union[Container, str]] = ..., purpose: _Optional[_Union[UploadPurpose, str]] = ..., filename: _Optional[str] = ...) -> None: ...

class UploadVideoRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[UploadMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadVideoResponse(_message.Message):
    __slots__ = ("upload_id", "size_bytes", "sha256_hex", "num_frames", "width_px", "height_px", "fps", "expires_unix_s")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_PX_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_PX_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    size_bytes: int
    sha256_hex: str
    num_frames: int
    width_px: int
    height_px: int
    fps: float
    expires_unix_s: float
    def __init__(self, upload_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256_hex: _Optional[str] = ..., num_frames: _Optional[int] = ..., width_px: _Optional[int] = ..., height_px: _Optional[int] = ..., fps: _Optional[float] = ..., expires_unix_s: _Optional[float] = ...) -> None: ...

class GenerateVideo(_message.Message):
    __slots__ = ("num_frames",)
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    num_frames: int
    def __init__(self, num_frames: _Optional[int] = ...) -> None: ...

class TaskOptions(_message.Message):
    __slots__ = ("dry_run", "backend", "seed", "method", "num_points")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    NUM_POINTS_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    backend: str
    seed: int
    method: str
    num_points: int
    def __init__(self, dry_run: _Optional[bool] = ..., backend: _Optional[str] = ..., seed: _Optional[int] = ..., method: _Optional[str] = ..., num_points: _Optional[int] = ...) -> None: ...

class SubmitTaskRequest(_message.Message):
    __slots__ = ("instruction", "object_prompt", "box", "video_upload_id", "video_url", "generate", "video_depth_upload_id", "video_depth_url", "options", "idempotency_key")
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_PROMPT_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    VIDEO_UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_URL_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_DEPTH_UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_DEPTH_URL_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    instruction: str
    object_prompt: str
    box: BoxPx
    video_upload_id: str
    video_url: str
    generate: GenerateVideo
    video_depth_upload_id: str
    video_depth_url: str
    options: TaskOptions
    idempotency_key: str
    def __init__(self, instruction: _Optional[str] = ..., object_prompt: _Optional[str] = ..., box: _Optional[_Union[BoxPx, _Mapping]] = ..., video_upload_id: _Optional[str] = ..., video_url: _Optional[str] = ..., generate: _Optional[_Union[GenerateVideo, _Mapping]] = ..., video_depth_upload_id: _Optional[str] = ..., video_depth_url: _Optional[str] = ..., options: _Optional[_Union[TaskOptions, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("task_id", "sequence", "time_unix_s", "kind", "state", "stage", "progress_fraction", "message", "metrics", "error_code")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FRACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    sequence: int
    time_unix_s: float
    kind: EventKind
    state: TaskState
    stage: str
    progress_fraction: float
    message: str
    metrics: _containers.ScalarMap[str, float]
    error_code: str
    def __init__(self, task_id: _Optional[str] = ..., sequence: _Optional[int] = ..., time_unix_s: _Optional[float] = ..., kind: _Optional[_Union[EventKind, str]] = ..., state: _Optional[_Union[TaskState, str]] = ..., stage: _Optional[str] = ..., progress_fraction: _Optional[float] = ..., message: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., error_code: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "state", "instruction", "object_prompt", "box", "video_source", "options", "submitted_by", "idempotency_key", "created_unix_s", "started_unix_s", "finished_unix_s", "failed_stage", "error_code", "error_message", "cancel_requested", "artifacts", "metrics", "last_sequence", "error_kind")
    class ArtifactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_PROMPT_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SOURCE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    FAILED_STAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_KIND_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    state: TaskState
    instruction: str
    object_prompt: str
    box: BoxPx
    video_source: str
    options: TaskOptions
    submitted_by: str
    idempotency_key: str
    created_unix_s: float
    started_unix_s: float
    finished_unix_s: float
    failed_stage: str
    error_code: str
    error_message: str
    cancel_requested: bool
    artifacts: _containers.ScalarMap[str, str]
    metrics: _containers.ScalarMap[str, float]
    last_sequence: int
    error_kind: str
    def __init__(self, task_id: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., instruction: _Optional[str] = ..., object_prompt: _Optional[str] = ..., box: _Optional[_Union[BoxPx, _Mapping]] = ..., video_source: _Optional[str] = ..., options: _Optional[_Union[TaskOptions, _Mapping]] = ..., submitted_by: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., created_unix_s: _Optional[float] = ..., started_unix_s: _Optional[float] = ..., finished_unix_s: _Optional[float] = ..., failed_stage: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., cancel_requested: _Optional[bool] = ..., artifacts: _Optional[_Mapping[str, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., last_sequence: _Optional[int] = ..., error_kind: _Optional[str] = ...) -> None: ...

class SubmitTaskResponse(_message.Message):
    __slots__ = ("task", "deduplicated", "queue_position")
    TASK_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    task: Task
    deduplicated: bool
    queue_position: int
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., deduplicated: _Optional[bool] = ..., queue_position: _Optional[int] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("states", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[TaskState]
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[TaskState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchTaskRequest(_message.Message):
    __slots__ = ("task_id", "after_sequence")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    after_sequence: int
    def __init__(self, task_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchTaskResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: TaskEvent
    def __init__(self, event: _Optional[_Union[TaskEvent, _Mapping]] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("task_id", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...
