"""The operator service (issue 5): gRPC API (``dream2flow.v1``), job store, auth and the video
path from the cloud.

Modules: ``server`` (grpc.aio servicers, start/stop), ``auth`` (bearer tokens, roles, audit
interceptor, TLS), ``store`` (SQLite WAL job store), ``runner`` (the one task-running thread),
``devices`` (camera + robot backends behind the e-stop gate), ``uploads`` / ``probe`` (client
streamed uploads, out-of-process decode probe), ``video_sources`` (URL download, video-generator
endpoint), ``config`` (the service TOML), ``client`` / ``task_cli`` (operator client),
``protogen`` (regenerates the stubs), ``testing`` (loopback harness for tests and benches).
"""
