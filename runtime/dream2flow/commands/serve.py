"""``dream2flow serve``: run the gRPC operator service (issue 5)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the gRPC operator service",
        description="Run the gRPC operator service (TaskService, RobotService, grpc.health.v1, reflection) "
                    "until SIGINT/SIGTERM. Settings come from --config (see hw/service.example.toml); the flags "
                    "below override the file. Without --insecure the server needs [tls] cert_file/key_file; "
                    "every call needs a bearer token from [auth].")
    p.add_argument("--config", metavar="FILE", help="service TOML (default: built-in defaults)")
    p.add_argument("--listen", metavar="HOST:PORT", help="address to bind (default 127.0.0.1:50051)")
    p.add_argument("--data-dir", metavar="DIR", help="job store + artifacts folder")
    p.add_argument("--backend", metavar="NAME", choices=("kinematic", "mujoco", "polymetis"),
                   help="robot backend: kinematic | mujoco | polymetis")
    p.add_argument("--insecure", action="store_true",
                   help="plaintext gRPC (no TLS); refused on non-loopback addresses unless the config allows it")
    p.set_defaults(func=run)


def apply_overrides(cfg, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Flags over the config file, then the same validation as the file."""
    from pathlib import Path

    from dream2flow.service.config import validate

    if args.listen:
        cfg.server.listen = args.listen
    if args.data_dir:
        cfg.server.data_dir = str(Path(args.data_dir).resolve())
    if args.backend:
        cfg.robot.backend = args.backend
        if cfg.robot.allowed_backends and args.backend not in cfg.robot.allowed_backends:
            cfg.robot.allowed_backends = [*cfg.robot.allowed_backends, args.backend]
    if args.insecure:
        cfg.server.insecure = True
    validate(cfg, args.config or "defaults")
    return cfg


def run(args: argparse.Namespace) -> int:
    from dream2flow.log import progress
    from dream2flow.service.config import load_service_config
    from dream2flow.service.server import serve

    cfg = apply_overrides(load_service_config(args.config), args)
    host = cfg.server.listen.rpartition(":")[0]

    def ready(svc) -> None:  # type: ignore[no-untyped-def]
        transport = "plaintext" if cfg.server.insecure else ("mutual TLS" if cfg.tls.client_ca_file else "TLS")
        rec = svc.recovered
        if rec.get("interrupted"):
            progress(f"dream2flow serve: {len(rec['interrupted'])} task(s) were running when the server stopped: "
                     f"INTERRUPTED, not resumed ({', '.join(rec['interrupted'])})")
        if rec.get("queued"):
            progress(f"dream2flow serve: {len(rec['queued'])} queued task(s) kept; they wait for an operator's "
                     "Reset (dream2flow task reset)")
        progress(f"dream2flow serve: listening on {host}:{svc.port} ({transport}); data {cfg.data_path}; "
                 f"backend {cfg.robot.backend}; camera {cfg.camera.get('type', '?')}")

    return serve(cfg, on_ready=ready)
