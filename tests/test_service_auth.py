"""Security: token tables, the interceptor's codes, the audit trail, TLS and mutual TLS (with
certificates made by the openssl command in the test), the transport rules and the config."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dream2flow.errors import InvalidInput
from dream2flow.service import client as C
from dream2flow.service.auth import token_sha256, tokens_from_entries
from dream2flow.service.config import check_transport, config_from_dict, load_service_config
from dream2flow.service.testing import (OPERATOR_TOKEN, VIEWER_TOKEN, FakeArm, ServiceThread, make_config,
                                        make_test_certs)
from dream2flow.v1 import robot_pb2, task_pb2

ROOT = Path(__file__).resolve().parents[1]


def test_token_table() -> None:
    t = tokens_from_entries([{"name": "a", "role": "operator", "sha256": token_sha256("secret-token-aaaaaaaa")},
                             {"name": "b", "role": "viewer", "token": "secret-token-bbbbbbbb"}], "t")
    assert t.lookup("secret-token-aaaaaaaa").role == "operator"
    assert t.lookup("secret-token-bbbbbbbb").name == "b"
    assert t.lookup("secret-token-cccccccc") is None
    bad = [
        [{"name": "a", "role": "admin", "token": "x" * 20}],  # unknown role
        [{"name": "a", "role": "viewer", "token": "short"}],  # too short
        [{"name": "a", "role": "viewer", "sha256": "zz"}],  # not a digest
        [{"name": "a", "role": "viewer", "token": "x" * 20, "sha256": "0" * 64}],  # both
        [{"name": "a", "role": "viewer", "token": "x" * 20}, {"name": "a", "role": "viewer", "token": "y" * 20}],
        [{"name": "a", "role": "viewer", "token": "x" * 20, "extra": 1}],
    ]
    for entries in bad:
        with pytest.raises(InvalidInput):
            tokens_from_entries(entries, "t")


def test_example_config_loads_and_rejects_typos(tmp_path: Path) -> None:
    cfg = load_service_config(ROOT / "hw" / "service.example.toml")
    assert cfg.server.listen.startswith("127.0.0.1:") and not cfg.server.insecure
    assert cfg.backends == ["kinematic"] and cfg.camera["type"] == "sim"
    with pytest.raises(InvalidInput, match="unknown key 'lisen'"):
        config_from_dict({"server": {"lisen": "x"}})
    with pytest.raises(InvalidInput, match="unknown section"):
        config_from_dict({"srever": {}})
    with pytest.raises(InvalidInput, match="must be a int"):
        config_from_dict({"limits": {"max_queued_tasks": "8"}})
    with pytest.raises(InvalidInput, match="mujoco backend needs"):
        config_from_dict({"robot": {"backend": "mujoco"}, "camera": {"type": "mock"}})
    # Transport: TLS files required; plaintext only on loopback unless explicitly allowed.
    with pytest.raises(InvalidInput, match="cert_file"):
        check_transport(config_from_dict({}))
    with pytest.raises(InvalidInput, match="refusing plaintext"):
        check_transport(config_from_dict({"server": {"insecure": True, "listen": "0.0.0.0:50051"}}))
    check_transport(config_from_dict({"server": {"insecure": True, "listen": "127.0.0.1:50051"}}))
    check_transport(config_from_dict({"server": {"insecure": True, "listen": "0.0.0.0:1",
                                                 "allow_insecure_non_loopback": True}}))


def test_tokens_file_and_health_without_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'[[tokens]]\nname = "alice"\nrole = "operator"\nsha256 = "{token_sha256(OPERATOR_TOKEN)}"\n')
    tokens.chmod(0o600)
    cfg = make_config(tmp_path / "data")
    cfg.auth.tokens = []
    cfg.auth.tokens_file = str(tokens)
    from dream2flow.service.auth import load_tokens

    table = load_tokens(cfg)
    assert table.lookup(OPERATOR_TOKEN).name == "alice" and len(table) == 1
    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm()) as st:
        with grpc.insecure_channel(st.address) as ch:
            h = health_pb2_grpc.HealthStub(ch)
            assert h.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
            assert h.Check(health_pb2.HealthCheckRequest(service="dream2flow.v1.TaskService")).status == \
                health_pb2.HealthCheckResponse.SERVING


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@needs_openssl
def test_tls_and_mutual_tls(tmp_path: Path) -> None:
    certs = make_test_certs(tmp_path / "certs")
    cfg = make_config(tmp_path / "data", server={"insecure": False},
                      tls={"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)})
    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm()) as st:
        with C.connect(st.address, token=VIEWER_TOKEN, ca_file=certs.ca_cert) as conn:
            st_pb = C.call(conn, conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest(), 10).state
            assert st_pb.mode == robot_pb2.MOTION_MODE_READY
        # A client that does not trust the server's CA cannot talk to it at all.
        with C.connect(st.address, token=VIEWER_TOKEN, ca_file=certs.other_ca_cert) as conn:
            with pytest.raises(grpc.RpcError) as ei:
                conn.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=conn.metadata, timeout=5)
            assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
        # Plaintext to a TLS port fails too.
        with grpc.insecure_channel(st.address) as ch:
            from dream2flow.v1 import robot_pb2_grpc

            with pytest.raises(grpc.RpcError):
                robot_pb2_grpc.RobotServiceStub(ch).GetRobotState(robot_pb2.GetRobotStateRequest(), timeout=5)

    mcfg = make_config(tmp_path / "data2", server={"insecure": False},
                       tls={"cert_file": str(certs.server_cert), "key_file": str(certs.server_key),
                            "client_ca_file": str(certs.ca_cert)})
    with ServiceThread(mcfg, backend_factory=lambda n, d: FakeArm()) as st:
        with C.connect(st.address, token=OPERATOR_TOKEN, ca_file=certs.ca_cert, cert_file=certs.client_cert,
                       key_file=certs.client_key) as conn:
            r = C.call(conn, conn.tasks.ListTasks, task_pb2.ListTasksRequest(), 10)
            assert list(r.tasks) == []
            # mTLS does not replace the token: a certified client without one is still refused.
            with pytest.raises(grpc.RpcError) as ei:
                conn.tasks.ListTasks(task_pb2.ListTasksRequest(), timeout=5)
            assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for cert, key in ((None, None), (certs.other_client_cert, certs.other_client_key)):
            with C.connect(st.address, token=OPERATOR_TOKEN, ca_file=certs.ca_cert, cert_file=cert,
                           key_file=key) as conn:
                with pytest.raises(grpc.RpcError) as ei:
                    conn.tasks.ListTasks(task_pb2.ListTasksRequest(), metadata=conn.metadata, timeout=5)
                assert ei.value.code() == grpc.StatusCode.UNAVAILABLE, "a client without a trusted cert got in"
        audit = st.service.store.audit_rows()
        assert [a["code"] for a in audit] == ["OK", "UNAUTHENTICATED"]
        assert audit[0]["principal"] == "op" and audit[0]["rpc"] == "ListTasks"
