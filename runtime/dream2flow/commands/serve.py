"""``dream2flow serve``: run the gRPC operator service (issue 5)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the gRPC operator service (--init DIR: make its config, certificates and token)",
        description="Run the gRPC operator service (TaskService, RobotService, grpc.health.v1, reflection) "
                    "until SIGINT/SIGTERM. Settings come from --config (see hw/service.example.toml); the flags "
                    "below override the file. Without --insecure the server needs [tls] cert_file/key_file; "
                    "every call needs a bearer token from [auth]. First time: `dream2flow serve --init DIR "
                    "--hosts NAME` writes DIR/service.toml, DIR/tokens.toml (one operator token, stored hashed, "
                    "printed once as `token: ...`), DIR/ca.crt, DIR/server.crt, DIR/server.key, DIR/data and "
                    "DIR/hw (the cell's config); then `dream2flow serve --config DIR/service.toml`.")
    p.add_argument("--init", metavar="DIR", help="write a ready service folder (see above) and exit")
    p.add_argument("--hosts", metavar="H1,H2",
                   help="--init: names/addresses clients dial, for the server certificate (default: this "
                        "machine's host name; localhost, 127.0.0.1 and ::1 are always added)")
    p.add_argument("--config", metavar="FILE", help="service TOML (default: built-in defaults)")
    p.add_argument("--listen", metavar="HOST:PORT", help="address to bind (default 127.0.0.1:50051)")
    p.add_argument("--data-dir", metavar="DIR", help="job store + artifacts folder")
    p.add_argument("--backend", metavar="NAME", choices=("kinematic", "mujoco", "polymetis", "libfranka"),
                   help="robot backend: kinematic | mujoco | polymetis (Panda) | libfranka (FR3; needs [robot] "
                        "real_arm_consent = true)")
    p.add_argument("--insecure", action="store_true",
                   help="plaintext gRPC (no TLS); refused on non-loopback addresses unless the config allows it")
    p.add_argument("--perception", metavar="SPEC",
                   help="classical | models | a perception TOML (default: the config's [perception] config, "
                        "else hw/perception.toml)")
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
    if getattr(args, "perception", None):
        spec = args.perception
        cfg.perception.config = spec if spec in ("classical", "models") else str(Path(spec).resolve())
    validate(cfg, args.config or "defaults")
    return cfg


def use_cell_config(cfg) -> None:  # type: ignore[no-untyped-def]
    """Select the config's hw folder (``[robot] hw_dir``) and refuse at start-up a real-arm backend
    the cell has not consented to: the control loop would refuse every task's first motion."""
    from dream2flow.config import hw_dir, set_hw_dir
    from dream2flow.control.backends import backend_moves_real_arm
    from dream2flow.control.settings import load_loop_config
    from dream2flow.errors import InvalidInput

    if cfg.robot.hw_dir:
        set_hw_dir(cfg.path(cfg.robot.hw_dir))
    real = [b for b in cfg.backends if backend_moves_real_arm(b)]
    if real:
        loop = load_loop_config()
        if not loop.real_arm_consent:
            raise InvalidInput(f"backend {real[0]} moves a real arm and the service has no --yes: set [safety] "
                               f"real_arm_consent = true in {loop.source} (hw folder {hw_dir()}) once the cell is "
                               "safe to run unattended (e-stop wired, workspace guarded)")


def run_init(args: argparse.Namespace) -> int:
    import sys

    from dream2flow.errors import InvalidInput
    from dream2flow.service.bringup import init_service_folder, parse_hosts
    from dream2flow.service.config import parse_listen

    if args.config or args.data_dir or args.backend or args.insecure:
        raise InvalidInput("--init takes only --hosts (and --listen for the port): edit DIR/service.toml afterwards")
    port = parse_listen(args.listen)[1] if args.listen else 50051
    res = init_service_folder(args.init, parse_hosts(args.hosts), port=port or 50051)
    # stdout carries exactly one line, `token: ...` (scripts read it); the rest goes to stderr
    print(f"serve --init: wrote {res.folder}: service.toml, tokens.toml (operator token, stored as its sha256), "
             f"ca.crt, server.crt + server.key for {', '.join(res.hosts)}, data/, hw/; start it with "
             f"`dream2flow serve --config {res.folder / 'service.toml'}`; clients pass --ca-file "
             f"{res.folder / 'ca.crt'} and the token below (shown only now: keep it in a file, mode 600)",
          file=sys.stderr, flush=True)
    print(f"token: {res.token}", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.init:
        return run_init(args)
    if args.hosts:
        from dream2flow.errors import InvalidInput

        raise InvalidInput("--hosts applies to --init only")
    from dream2flow.config import set_default_robot_model
    from dream2flow.log import progress
    from dream2flow.service.config import load_service_config
    from dream2flow.service.server import serve

    cfg = apply_overrides(load_service_config(args.config), args)
    use_cell_config(cfg)
    set_default_robot_model(cfg.robot.arm_model)  # planning and the control loop check this arm's limits
    if "libfranka" in cfg.backends and not cfg.robot.robot_ip:
        from dream2flow.control.backends.libfranka import load_libfranka_config
        from dream2flow.errors import InvalidInput

        if not load_libfranka_config().robot_ip:
            raise InvalidInput("the libfranka backend needs the FR3's FCI address: [robot] robot_ip in the service "
                               "config, or robot_ip in the hw folder's robot/libfranka.toml")
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
        perception = svc.runner.perception
        progress(f"dream2flow serve: perception {perception.config.source}: "
                 + ", ".join(f"{r}={n or 'none'}" for r, n in perception.backends().items()))

    return serve(cfg, on_ready=ready)
