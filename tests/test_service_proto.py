"""The committed gRPC stubs match protos/dream2flow/v1/*.proto, and the API follows its style
rules (one Request/Response per RPC, *_UNSPECIFIED = 0 enums, documented units)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dream2flow.service import protogen

ROOT = Path(__file__).resolve().parents[1]
STUB_DIR = ROOT / "runtime" / "dream2flow" / "v1"


def test_regenerated_stubs_equal_committed(tmp_path: Path) -> None:
    grpc_tools = pytest.importorskip("grpc_tools", reason="grpcio-tools (dev dependency) is not installed")
    import grpc

    tools_version = getattr(grpc_tools, "__version__", None)
    if tools_version is None:
        from importlib.metadata import version

        tools_version = version("grpcio-tools")
    files = protogen.generate(tmp_path)
    assert [f.name for f in files] == protogen.generated_names()
    committed_version = next(line for line in (STUB_DIR / "task_pb2_grpc.py").read_text().splitlines()
                             if line.startswith("GRPC_GENERATED_VERSION"))
    if tools_version not in committed_version:
        pytest.skip(f"grpcio-tools {tools_version} differs from the one that made the stubs ({committed_version}); "
                    "the descriptor test below still checks the content")
    for f in files:
        assert f.read_bytes() == (STUB_DIR / f.name).read_bytes(), (
            f"{f.name} is stale: run `python -m dream2flow.service.protogen` (grpcio {grpc.__version__})")


def test_descriptors_equal_proto_sources(tmp_path: Path) -> None:
    """Independent of the generator's version: the compiled .proto equals the committed descriptor."""
    pytest.importorskip("grpc_tools")
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    from dream2flow.v1 import robot_pb2, task_pb2

    out = tmp_path / "set.pb"
    rc = protoc.main(["protoc", f"-I{ROOT / 'protos'}", f"--descriptor_set_out={out}",
                      *[str(ROOT / "protos" / p) for p in protogen.PROTO_FILES]])
    assert rc == 0
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    compiled = {f.name: f for f in fds.file}
    for mod in (task_pb2, robot_pb2):
        committed = descriptor_pb2.FileDescriptorProto()
        mod.DESCRIPTOR.CopyToProto(committed)
        fresh = compiled[mod.DESCRIPTOR.name]
        fresh.ClearField("source_code_info")
        for fdp in (committed, fresh):  # CopyToProto omits json_name; it is derived from the name anyway
            _clear_json_names(fdp.message_type)
        assert committed == fresh, f"{mod.DESCRIPTOR.name}: stubs differ from the .proto: regenerate them"


def _clear_json_names(messages) -> None:  # type: ignore[no-untyped-def]
    for m in messages:
        for f in m.field:
            f.ClearField("json_name")
        _clear_json_names(m.nested_type)


def test_api_style_rules() -> None:
    from dream2flow.v1 import robot_pb2, task_pb2

    for mod in (task_pb2, robot_pb2):
        fd = mod.DESCRIPTOR
        assert fd.package == "dream2flow.v1"
        for enum in fd.enum_types_by_name.values():
            zero = enum.values_by_number[0]
            assert zero.name.endswith("_UNSPECIFIED"), enum.name
        used: set[str] = set()
        for svc in fd.services_by_name.values():
            for m in svc.methods:
                assert m.input_type.name == f"{m.name}Request", m.full_name
                assert m.output_type.name == f"{m.name}Response", m.full_name
                assert m.input_type.name not in used and m.output_type.name not in used
                used |= {m.input_type.name, m.output_type.name}
    # Streaming shapes the issue asks for.
    ts = task_pb2.DESCRIPTOR.services_by_name["TaskService"]
    assert ts.methods_by_name["UploadVideo"].client_streaming
    assert ts.methods_by_name["WatchTask"].server_streaming
    # Units are in the names of physical quantities.
    rs = robot_pb2.RobotState.DESCRIPTOR.fields_by_name
    assert {"q_rad", "dq_rad_s", "gripper_width_m", "backend_time_s"} <= set(rs)
