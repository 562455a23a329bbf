from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MotionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MOTION_MODE_UNSPECIFIED: _ClassVar[MotionMode]
    MOTION_MODE_READY: _ClassVar[MotionMode]
    MOTION_MODE_ESTOPPED: _ClassVar[MotionMode]
    MOTION_MODE_HELD: _ClassVar[MotionMode]
MOTION_MODE_UNSPECIFIED: MotionMode
MOTION_MODE_READY: MotionMode
MOTION_MODE_ESTOPPED: MotionMode
MOTION_MODE_HELD: MotionMode

class RobotState(_message.Message):
    __slots__ = ("q_rad", "dq_rad_s", "gripper_width_m", "backend_time_s", "backend", "simulated", "mode", "mode_reason", "running_task_id", "queued_tasks", "motion_commands_sent")
    Q_RAD_FIELD_NUMBER: _ClassVar[int]
    DQ_RAD_S_FIELD_NUMBER: _ClassVar[int]
    GRIPPER_WIDTH_M_FIELD_NUMBER: _ClassVar[int]
    BACKEND_TIME_S_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MODE_REASON_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUED_TASKS_FIELD_NUMBER: _ClassVar[int]
    MOTION_COMMANDS_SENT_FIELD_NUMBER: _ClassVar[int]
    q_rad: _containers.RepeatedScalarFieldContainer[float]
    dq_rad_s: _containers.RepeatedScalarFieldContainer[float]
    gripper_width_m: float
    backend_time_s: float
    backend: str
    simulated: bool
    mode: MotionMode
    mode_reason: str
    running_task_id: str
    queued_tasks: int
    motion_commands_sent: int
    def __init__(self, q_rad: _Optional[_Iterable[float]] = ..., dq_rad_s: _Optional[_Iterable[float]] = ..., gripper_width_m: _Optional[float] = ..., backend_time_s: _Optional[float] = ..., backend: _Optional[str] = ..., simulated: _Optional[bool] = ..., mode: _Optional[_Union[MotionMode, str]] = ..., mode_reason: _Optional[str] = ..., running_task_id: _Optional[str] = ..., queued_tasks: _Optional[int] = ..., motion_commands_sent: _Optional[int] = ...) -> None: ...

class GetRobotStateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRobotStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: RobotState
    def __init__(self, state: _Optional[_Union[RobotState, _Mapping]] = ...) -> None: ...

class EmergencyStopRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class EmergencyStopResponse(_message.Message):
    __slots__ = ("state", "stopped_task_id", "cancelled_queued_tasks")
    STATE_FIELD_NUMBER: _ClassVar[int]
    STOPPED_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_QUEUED_TASKS_FIELD_NUMBER: _ClassVar[int]
    state: RobotState
    stopped_task_id: str
    cancelled_queued_tasks: int
    def __init__(self, state: _Optional[_Union[RobotState, _Mapping]] = ..., stopped_task_id: _Optional[str] = ..., cancelled_queued_tasks: _Optional[int] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: RobotState
    def __init__(self, state: _Optional[_Union[RobotState, _Mapping]] = ...) -> None: ...
