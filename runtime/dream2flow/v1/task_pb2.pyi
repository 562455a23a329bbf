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

class UploadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_STATE_UNSPECIFIED: _ClassVar[UploadState]
    UPLOAD_STATE_PARTIAL: _ClassVar[UploadState]
    UPLOAD_STATE_COMPLETE: _ClassVar[UploadState]

class OutcomeVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_VERDICT_UNSPECIFIED: _ClassVar[OutcomeVerdict]
    OUTCOME_VERDICT_NOT_CHECKED: _ClassVar[OutcomeVerdict]
    OUTCOME_VERDICT_ACHIEVED: _ClassVar[OutcomeVerdict]
    OUTCOME_VERDICT_NOT_ACHIEVED: _ClassVar[OutcomeVerdict]
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
UPLOAD_STATE_UNSPECIFIED: UploadState
UPLOAD_STATE_PARTIAL: UploadState
UPLOAD_STATE_COMPLETE: UploadState
OUTCOME_VERDICT_UNSPECIFIED: OutcomeVerdict
OUTCOME_VERDICT_NOT_CHECKED: OutcomeVerdict
OUTCOME_VERDICT_ACHIEVED: OutcomeVerdict
OUTCOME_VERDICT_NOT_ACHIEVED: OutcomeVerdict

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
    __slots__ = ("size_bytes", "sha256_hex", "container", "purpose", "filename", "offset_bytes")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    sha256_hex: str
    container: Container
    purpose: UploadPurpose
    filename: str
    offset_bytes: int
    def __init__(self, size_bytes: _Optional[int] = ..., sha256_hex: _Optional[str] = ..., container: _Optional[_Union[Container, str]] = ..., purpose: _Optional[_Union[UploadPurpose, str]] = ..., filename: _Optional[str] = ..., offset_bytes: _Optional[int] = ...) -> None: ...

class UploadVideoRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[UploadMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadVideoResponse(_message.Message):
    __slots__ = ("upload_id", "size_bytes", "sha256_hex", "num_frames", "width_px", "height_px", "fps", "expires_unix_s", "deduplicated", "received_bytes", "resumed_from_bytes")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_PX_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_PX_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_BYTES_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    size_bytes: int
    sha256_hex: str
    num_frames: int
    width_px: int
    height_px: int
    fps: float
    expires_unix_s: float
    deduplicated: bool
    received_bytes: int
    resumed_from_bytes: int
    def __init__(self, upload_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256_hex: _Optional[str] = ..., num_frames: _Optional[int] = ..., width_px: _Optional[int] = ..., height_px: _Optional[int] = ..., fps: _Optional[float] = ..., expires_unix_s: _Optional[float] = ..., deduplicated: _Optional[bool] = ..., received_bytes: _Optional[int] = ..., resumed_from_bytes: _Optional[int] = ...) -> None: ...

class Upload(_message.Message):
    __slots__ = ("upload_id", "state", "sha256_hex", "purpose", "container", "size_bytes", "received_bytes", "filename", "owner", "created_unix_s", "last_used_unix_s", "expires_unix_s", "num_frames", "width_px", "height_px", "fps")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_PX_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_PX_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    state: UploadState
    sha256_hex: str
    purpose: UploadPurpose
    container: Container
    size_bytes: int
    received_bytes: int
    filename: str
    owner: str
    created_unix_s: float
    last_used_unix_s: float
    expires_unix_s: float
    num_frames: int
    width_px: int
    height_px: int
    fps: float
    def __init__(self, upload_id: _Optional[str] = ..., state: _Optional[_Union[UploadState, str]] = ..., sha256_hex: _Optional[str] = ..., purpose: _Optional[_Union[UploadPurpose, str]] = ..., container: _Optional[_Union[Container, str]] = ..., size_bytes: _Optional[int] = ..., received_bytes: _Optional[int] = ..., filename: _Optional[str] = ..., owner: _Optional[str] = ..., created_unix_s: _Optional[float] = ..., last_used_unix_s: _Optional[float] = ..., expires_unix_s: _Optional[float] = ..., num_frames: _Optional[int] = ..., width_px: _Optional[int] = ..., height_px: _Optional[int] = ..., fps: _Optional[float] = ...) -> None: ...

class GetUploadRequest(_message.Message):
    __slots__ = ("upload_id", "sha256_hex", "purpose")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    sha256_hex: str
    purpose: UploadPurpose
    def __init__(self, upload_id: _Optional[str] = ..., sha256_hex: _Optional[str] = ..., purpose: _Optional[_Union[UploadPurpose, str]] = ...) -> None: ...

class GetUploadResponse(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: Upload
    def __init__(self, upload: _Optional[_Union[Upload, _Mapping]] = ...) -> None: ...

class ListUploadsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "include_partial")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    include_partial: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_partial: _Optional[bool] = ...) -> None: ...

class ListUploadsResponse(_message.Message):
    __slots__ = ("uploads", "next_page_token")
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    uploads: _containers.RepeatedCompositeFieldContainer[Upload]
    next_page_token: str
    def __init__(self, uploads: _Optional[_Iterable[_Union[Upload, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteUploadRequest(_message.Message):
    __slots__ = ("upload_id", "sha256_hex", "purpose")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    sha256_hex: str
    purpose: UploadPurpose
    def __init__(self, upload_id: _Optional[str] = ..., sha256_hex: _Optional[str] = ..., purpose: _Optional[_Union[UploadPurpose, str]] = ...) -> None: ...

class DeleteUploadResponse(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: Upload
    def __init__(self, upload: _Optional[_Union[Upload, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("instruction", "object_prompt", "box", "video_upload_id", "video_url", "generate", "video_sha256_hex", "video_depth_upload_id", "video_depth_url", "video_depth_sha256_hex", "options", "idempotency_key")
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_PROMPT_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    VIDEO_UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_URL_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    VIDEO_DEPTH_UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_DEPTH_URL_FIELD_NUMBER: _ClassVar[int]
    VIDEO_DEPTH_SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    instruction: str
    object_prompt: str
    box: BoxPx
    video_upload_id: str
    video_url: str
    generate: GenerateVideo
    video_sha256_hex: str
    video_depth_upload_id: str
    video_depth_url: str
    video_depth_sha256_hex: str
    options: TaskOptions
    idempotency_key: str
    def __init__(self, instruction: _Optional[str] = ..., object_prompt: _Optional[str] = ..., box: _Optional[_Union[BoxPx, _Mapping]] = ..., video_upload_id: _Optional[str] = ..., video_url: _Optional[str] = ..., generate: _Optional[_Union[GenerateVideo, _Mapping]] = ..., video_sha256_hex: _Optional[str] = ..., video_depth_upload_id: _Optional[str] = ..., video_depth_url: _Optional[str] = ..., video_depth_sha256_hex: _Optional[str] = ..., options: _Optional[_Union[TaskOptions, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class OutcomeCheck(_message.Message):
    __slots__ = ("verdict", "checker", "detail", "value")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    CHECKER_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    verdict: OutcomeVerdict
    checker: str
    detail: str
    value: float
    def __init__(self, verdict: _Optional[_Union[OutcomeVerdict, str]] = ..., checker: _Optional[str] = ..., detail: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

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
    __slots__ = ("task_id", "state", "instruction", "object_prompt", "box", "video_source", "options", "submitted_by", "idempotency_key", "created_unix_s", "started_unix_s", "finished_unix_s", "failed_stage", "error_code", "error_message", "cancel_requested", "artifacts", "metrics", "last_sequence", "error_kind", "outcome_check")
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
    OUTCOME_CHECK_FIELD_NUMBER: _ClassVar[int]
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
    outcome_check: OutcomeCheck
    def __init__(self, task_id: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., instruction: _Optional[str] = ..., object_prompt: _Optional[str] = ..., box: _Optional[_Union[BoxPx, _Mapping]] = ..., video_source: _Optional[str] = ..., options: _Optional[_Union[TaskOptions, _Mapping]] = ..., submitted_by: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., created_unix_s: _Optional[float] = ..., started_unix_s: _Optional[float] = ..., finished_unix_s: _Optional[float] = ..., failed_stage: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., cancel_requested: _Optional[bool] = ..., artifacts: _Optional[_Mapping[str, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., last_sequence: _Optional[int] = ..., error_kind: _Optional[str] = ..., outcome_check: _Optional[_Union[OutcomeCheck, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("event", "heartbeat")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    event: TaskEvent
    heartbeat: Heartbeat
    def __init__(self, event: _Optional[_Union[TaskEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("time_unix_s", "state", "last_sequence")
    TIME_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    time_unix_s: float
    state: TaskState
    last_sequence: int
    def __init__(self, time_unix_s: _Optional[float] = ..., state: _Optional[_Union[TaskState, str]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

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

class Artifact(_message.Message):
    __slots__ = ("name", "file_name", "size_bytes", "sha256_hex", "media_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    file_name: str
    size_bytes: int
    sha256_hex: str
    media_type: str
    def __init__(self, name: _Optional[str] = ..., file_name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256_hex: _Optional[str] = ..., media_type: _Optional[str] = ...) -> None: ...

class ListArtifactsRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class ListArtifactsResponse(_message.Message):
    __slots__ = ("artifacts",)
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    def __init__(self, artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ...) -> None: ...

class GetArtifactRequest(_message.Message):
    __slots__ = ("task_id", "name", "offset_bytes", "chunk_bytes")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    name: str
    offset_bytes: int
    chunk_bytes: int
    def __init__(self, task_id: _Optional[str] = ..., name: _Optional[str] = ..., offset_bytes: _Optional[int] = ..., chunk_bytes: _Optional[int] = ...) -> None: ...

class ArtifactChunk(_message.Message):
    __slots__ = ("offset_bytes", "data", "sha256_hex")
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_HEX_FIELD_NUMBER: _ClassVar[int]
    offset_bytes: int
    data: bytes
    sha256_hex: str
    def __init__(self, offset_bytes: _Optional[int] = ..., data: _Optional[bytes] = ..., sha256_hex: _Optional[str] = ...) -> None: ...

class GetArtifactResponse(_message.Message):
    __slots__ = ("artifact", "chunk")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    chunk: ArtifactChunk
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., chunk: _Optional[_Union[ArtifactChunk, _Mapping]] = ...) -> None: ...
