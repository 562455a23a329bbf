"""The service's TOML config (``hw/service.example.toml`` documents every key).

Why strict: the server runs unattended next to a robot, so a typo in a key must stop it at
start-up with the file and key named, not be silently ignored. Relative paths resolve against
the config file's folder. ``dream2flow serve`` flags override the file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dream2flow.config import coerce_like
from dream2flow.errors import InvalidInput

MiB = 1024 * 1024


@dataclass
class ServerSection:
    listen: str = "127.0.0.1:50051"
    data_dir: str = "./d2f-data"
    insecure: bool = False  # plaintext (no TLS): only by the explicit --insecure flag or this key
    allow_insecure_non_loopback: bool = False  # plaintext on a non-loopback address sends tokens in the clear
    # Calls in progress at once, not counting the priority path (EmergencyStop, Reset: never
    # limited; GetRobotState, grpc.health Check: max_priority_rpcs) nor long-lived streams (the
    # stream limits in [limits]). Beyond it: RESOURCE_EXHAUSTED, reason RPC_LIMIT, RetryInfo.
    max_concurrent_rpcs: int = 64
    max_priority_rpcs: int = 32  # GetRobotState + health Check in progress at once
    max_message_bytes: int = 8 * MiB  # per gRPC message, both directions
    grace_s: float = 5.0  # shutdown grace for in-flight RPCs
    reflection: bool = True
    warm_up: bool = True  # compile the planner before the first task (the server listens meanwhile)


@dataclass
class TlsSection:
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""  # set → mutual TLS: clients must present a certificate signed by this CA


@dataclass
class AuthSection:
    tokens_file: str = ""  # TOML with [[tokens]] name, role, sha256 (or token)
    tokens: list[dict[str, Any]] = field(default_factory=list)  # inline, same format
    viewer_can_estop: bool = True  # anyone watching may stop the robot; only operators Reset


@dataclass
class RobotSection:
    backend: str = "kinematic"
    allowed_backends: list[str] = field(default_factory=list)  # empty → [backend]
    rate_hz: float = 100.0
    realtime: bool = False  # pace simulated backends at wall-clock speed (demos; e-stop tests)
    hw_dir: str = ""  # the cell's configuration folder (control.toml, cameras, ...); empty: D2F_HW_DIR or shipped
    model: str = ""  # the arm: "panda" | "fr3"; empty → fr3 with the libfranka backend, else panda
    robot_ip: str = ""  # libfranka: the FR3's FCI address (empty → the hw folder's robot/libfranka.toml robot_ip)

    @property
    def arm_model(self) -> str:
        return self.model or ("fr3" if "libfranka" in (self.allowed_backends or [self.backend]) else "panda")


@dataclass
class VideoSourcesSection:
    url_allowed_hosts: list[str] = field(default_factory=list)  # empty → any host (every redirect hop checked)
    # Non-public addresses (loopback, link-local, private, …) a fetch may connect to, as CIDRs
    # (e.g. "10.1.2.0/24" for a LAN video server); empty → public addresses only. Checked on the
    # resolved address of every hop, and the connection goes to that checked address.
    url_allowed_networks: list[str] = field(default_factory=list)
    max_redirects: int = 5
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    download_deadline_s: float = 300.0  # a whole download, retries included
    retries: int = 3
    backoff_s: float = 0.5  # first retry waits this, then doubles
    generator_url: str = ""  # empty → SubmitTask(generate) is FAILED_PRECONDITION
    generator_token_env: str = ""  # env var holding a bearer token for the generator
    generator_poll_interval_s: float = 2.0
    generator_timeout_s: float = 900.0
    generator_num_frames: int = 48


@dataclass
class PerceptionSection:
    # --perception SPEC of the server: "" = hw/perception.toml; "classical", "models" or a perception TOML
    # (relative to this file). A task without a box needs its detector; without a video depth, its video-depth model.
    config: str = ""
    # I0's detection (a task without a box) and segmentation, and the grasp proposals, start right after
    # observe, while the video is fetched / generated / decoded (issue 21); same results as false
    early: bool = True
    video_depth_model: str = ""  # removed (issue 13): refused with a pointer to [perception] config


@dataclass
class LimitsSection:
    max_video_bytes: int = 256 * MiB
    max_depth_bytes: int = 512 * MiB
    max_chunk_bytes: int = 1 * MiB
    max_upload_store_bytes: int = 4096 * MiB  # all kept uploads together
    max_concurrent_uploads: int = 8
    upload_ttl_s: float = 3600.0
    max_video_frames: int = 300
    max_video_width_px: int = 1920
    max_video_height_px: int = 1080
    max_instruction_chars: int = 1000
    max_object_prompt_chars: int = 200
    max_url_chars: int = 2048
    max_num_points: int = 2048
    max_queued_tasks: int = 8
    max_watchers: int = 64  # WatchTask streams open at once (all callers)
    max_streams_per_token: int = 32  # long-lived streams (watch, reflection) of one token
    max_streams_per_peer: int = 64  # long-lived streams from one IP address, authenticated or not
    max_unauthenticated_streams: int = 16  # grpc.health Watch streams (no token) at once
    watch_heartbeat_s: float = 10.0  # a WatchTask stream with no event sends a heartbeat this often
    upload_idle_timeout_s: float = 30.0  # an upload stream silent this long is ended (resumable)
    max_artifact_chunk_bytes: int = 1 * MiB  # GetArtifact chunk size (callers may ask for less)
    max_list_page_size: int = 100
    observation_timeout_s: float = 10.0


@dataclass
class ServiceConfig:
    server: ServerSection = field(default_factory=ServerSection)
    tls: TlsSection = field(default_factory=TlsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    robot: RobotSection = field(default_factory=RobotSection)
    # The camera table of dream2flow.camera.configs: type = "sim"|"recorded"|"realsense"|"mock" + its keys.
    camera: dict[str, Any] = field(default_factory=lambda: {"type": "sim", "task": "bread_in_bowl", "seed": 0})
    video_sources: VideoSourcesSection = field(default_factory=VideoSourcesSection)
    perception: PerceptionSection = field(default_factory=PerceptionSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    base_dir: str = "."  # folder relative paths resolve against (the config file's)

    def path(self, p: str) -> Path:
        """``p`` resolved against the config file's folder (absolute paths unchanged)."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else (Path(self.base_dir) / q).resolve()

    @property
    def data_path(self) -> Path:
        return self.path(self.server.data_dir)

    @property
    def backends(self) -> list[str]:
        return list(self.robot.allowed_backends) or [self.robot.backend]


_SECTIONS = {f.name: f.type for f in dataclasses.fields(ServiceConfig) if f.name != "base_dir"}
_FREE_SECTIONS = ("camera",)  # validated by their own module


def config_from_dict(d: dict[str, Any], where: str = "service config", base_dir: str | Path = ".") -> ServiceConfig:
    cfg = ServiceConfig(base_dir=str(Path(base_dir).resolve()))
    for name, value in d.items():
        if name not in _SECTIONS:
            raise InvalidInput(f"{where}: unknown section [{name}] (known: {', '.join(_SECTIONS)})")
        if not isinstance(value, dict):
            raise InvalidInput(f"{where}: [{name}] must be a table")
        if name in _FREE_SECTIONS:
            setattr(cfg, name, dict(value))
            continue
        section = getattr(cfg, name)
        known = {f.name for f in dataclasses.fields(section)}
        for key, v in value.items():
            if key not in known:
                raise InvalidInput(f"{where}: unknown key '{key}' in [{name}] (known: {', '.join(sorted(known))})")
            setattr(section, key, coerce_like(f"{where} [{name}]", key, getattr(section, key), v))
    validate(cfg, where)
    return cfg


def load_service_config(path: str | Path | None) -> ServiceConfig:
    """The config at ``path`` (``None``: all defaults, relative paths against the working folder)."""
    if path is None:
        cfg = ServiceConfig(base_dir=str(Path.cwd()))
        validate(cfg, "defaults")
        return cfg
    from dream2flow.config import load_toml

    p = Path(path)
    return config_from_dict(load_toml(p), where=str(p), base_dir=p.resolve().parent)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port); port 0 picks a free one."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host:
        raise InvalidInput(f"listen address must be HOST:PORT, got {listen!r}")
    try:
        port_i = int(port)
    except ValueError:
        raise InvalidInput(f"listen port must be a number, got {port!r}") from None
    if not 0 <= port_i <= 65535:
        raise InvalidInput(f"listen port must be 0..65535, got {port_i}")
    return host.strip("[]"), port_i


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate(cfg: ServiceConfig, where: str) -> None:
    """Cross-field checks: values in range, names known, TLS files given unless insecure."""
    parse_listen(cfg.server.listen)
    lim = cfg.limits
    for f in dataclasses.fields(lim):
        if getattr(lim, f.name) <= 0:
            raise InvalidInput(f"{where} [limits]: '{f.name}' must be positive")
    if lim.max_chunk_bytes + 1024 > cfg.server.max_message_bytes:
        raise InvalidInput(f"{where}: [limits] max_chunk_bytes must be below [server] max_message_bytes")
    if lim.max_artifact_chunk_bytes + 1024 > cfg.server.max_message_bytes:
        raise InvalidInput(f"{where}: [limits] max_artifact_chunk_bytes must be below [server] max_message_bytes")
    for key in ("max_concurrent_rpcs", "max_priority_rpcs"):
        if getattr(cfg.server, key) <= 0:
            raise InvalidInput(f"{where} [server]: '{key}' must be positive")
    if cfg.robot.rate_hz <= 0:
        raise InvalidInput(f"{where} [robot]: 'rate_hz' must be positive")
    cam = camera_config(cfg, where)
    if "mujoco" in cfg.backends and getattr(cam, "type", "") != "sim":
        raise InvalidInput(f"{where}: the mujoco backend needs [camera] type = \"sim\" (they share one simulation)")
    if cfg.robot.backend not in cfg.backends:
        raise InvalidInput(f"{where} [robot]: 'backend' {cfg.robot.backend!r} is not in 'allowed_backends'")
    for b in cfg.backends:
        if b not in ("kinematic", "mujoco", "polymetis", "libfranka"):
            raise InvalidInput(f"{where} [robot]: unknown backend {b!r} (kinematic, mujoco, polymetis, libfranka)")
    if cfg.robot.hw_dir and not cfg.path(cfg.robot.hw_dir).is_dir():
        raise InvalidInput(f"{where} [robot]: 'hw_dir' folder not found: {cfg.path(cfg.robot.hw_dir)}")
    model = cfg.robot.arm_model
    if model not in ("panda", "fr3"):
        raise InvalidInput(f"{where} [robot]: 'model' must be \"panda\" or \"fr3\", got {model!r}")
    if "libfranka" in cfg.backends and model != "fr3":
        raise InvalidInput(f"{where} [robot]: the libfranka backend drives an FR3 (model = \"fr3\"); a Panda runs "
                           "with the polymetis backend")
    if model == "fr3" and ({"mujoco", "polymetis"} & set(cfg.backends)):
        raise InvalidInput(f"{where} [robot]: model \"fr3\" does not go with the mujoco/polymetis backends (Panda)")
    vs = cfg.video_sources
    for net in vs.url_allowed_networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise InvalidInput(f"{where} [video_sources]: url_allowed_networks entry {net!r} is not a CIDR "
                               "network (e.g. \"10.0.0.0/8\", \"127.0.0.1/32\")") from None
    if not 0 <= vs.max_redirects <= 20:
        raise InvalidInput(f"{where} [video_sources]: 'max_redirects' must be 0..20")
    if vs.retries < 0 or vs.backoff_s < 0:
        raise InvalidInput(f"{where} [video_sources]: 'retries' and 'backoff_s' must be >= 0")
    for key in ("connect_timeout_s", "read_timeout_s", "download_deadline_s", "generator_poll_interval_s",
                "generator_timeout_s", "generator_num_frames"):
        if getattr(vs, key) <= 0:
            raise InvalidInput(f"{where} [video_sources]: '{key}' must be positive")
    if vs.generator_url and not vs.generator_url.startswith(("http://", "https://")):
        raise InvalidInput(f"{where} [video_sources]: 'generator_url' must be an http(s) URL")
    if cfg.perception.video_depth_model:
        raise InvalidInput(f"{where} [perception]: 'video_depth_model' was replaced by 'config', a perception "
                           "configuration (hw/perception.toml: [video_depth] use = \"model:NAME\")")


def perception_spec(cfg: ServiceConfig) -> str | None:
    """The server's ``--perception`` spec: None (the default file), a built-in name, or a path
    resolved against the config file's folder."""
    spec = cfg.perception.config.strip()
    if not spec:
        return None
    if spec in ("classical", "models"):
        return spec
    return str(cfg.path(spec))


def camera_config(cfg: ServiceConfig, where: str = "service config") -> Any:
    """The [camera] table as a ``dream2flow.camera.configs`` config (paths against the config's folder)."""
    from dream2flow.camera.configs import camera_config_from_dict

    return camera_config_from_dict(cfg.camera, base_dir=cfg.base_dir, where=f"{where} [camera]")


def check_transport(cfg: ServiceConfig) -> None:
    """Refuse unsafe transports at start-up: TLS files must exist unless insecure; plaintext only
    on loopback unless explicitly allowed."""
    host, _ = parse_listen(cfg.server.listen)
    if cfg.server.insecure:
        if not is_loopback(host) and not cfg.server.allow_insecure_non_loopback:
            raise InvalidInput(
                f"refusing plaintext on non-loopback address {host}: bearer tokens would travel in the clear "
                "(configure [tls], or set [server] allow_insecure_non_loopback = true)")
        return
    init = "`dream2flow serve --init DIR --hosts NAME` writes a ready folder with them"
    if not cfg.tls.cert_file or not cfg.tls.key_file:
        raise InvalidInput(f"TLS needs [tls] cert_file and key_file ({init}; or run with --insecure on loopback)")
    for key in ("cert_file", "key_file", "client_ca_file"):
        v = getattr(cfg.tls, key)
        if v and not cfg.path(v).is_file():
            raise InvalidInput(f"[tls] {key}: file not found: {cfg.path(v)} ({init})")
