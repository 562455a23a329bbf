"""``dream2flow serve --init DIR``: one command makes a folder that ``serve --config DIR/service.toml``
starts from with TLS and auth, and the printed token works with ``dream2flow task`` at once."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dream2flow.cli import main
from dream2flow.service.testing import write_test_depth, write_test_video


def _init(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", "serve", "--init", str(folder), *extra],
                          capture_output=True, text=True, timeout=120)


def test_init_writes_a_ready_folder(tmp_path: Path) -> None:
    from cryptography import x509

    d = tmp_path / "svc"
    r = _init(d, "--hosts", "robot.local,10.1.2.3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"token: [A-Za-z0-9_-]{40,}", lines[0]), r.stdout
    token = lines[0].split(": ", 1)[1]
    assert {p.name for p in d.iterdir()} == {"service.toml", "tokens.toml", "ca.crt", "server.crt", "server.key",
                                            "data", "hw"}
    assert (d / "hw" / "robot" / "control.toml").is_file() and (d / "hw" / "cameras" / "sim_d435.toml").is_file()
    # the token is stored hashed only, and the secrets are private
    tokens = (d / "tokens.toml").read_text()
    assert token not in tokens and hashlib.sha256(token.encode()).hexdigest() in tokens
    for name in ("tokens.toml", "server.key"):
        assert (d / name).stat().st_mode & 0o077 == 0, name
    assert not list(d.glob("*ca*.key"))                            # the CA key was discarded
    # the server certificate names the hosts (+ loopback) and is signed by the CA
    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((d / "server.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    assert names == {"robot.local", "10.1.2.3", "localhost", "127.0.0.1", "::1"}
    # never overwrites, and bad host names are one line, exit 2
    again = _init(d)
    assert again.returncode == 2 and "not an empty folder" in again.stderr and again.stderr.count("\n") == 1
    bad = _init(tmp_path / "other", "--hosts", "ok.local,,x")
    assert bad.returncode == 2 and "empty entries" in bad.stderr and not (tmp_path / "other").exists()


def test_init_then_serve_then_submit_with_the_printed_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "svc"
    r = _init(d)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().split(": ", 1)[1]
    (tmp_path / "op.token").write_text(token + "\n")
    os.chmod(tmp_path / "op.token", 0o600)
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "D2F_HW_DIR"}
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "dream2flow.cli", "serve", "--config", str(d / "service.toml"),
                                 "--listen", "127.0.0.1:0"], stdout=f, stderr=subprocess.STDOUT, env=env,
                                cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        port = None
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(TLS\)", log.read_text())
            port = int(m.group(1)) if m else None
            time.sleep(0.2)
        assert port is not None, log.read_text()
        assert f"data {(d / 'data').resolve()}" in log.read_text()
        conn = ["--server", f"127.0.0.1:{port}", "--ca-file", str(d / "ca.crt"), "--token-file", str(tmp_path / "op.token")]
        video = write_test_video(tmp_path / "v.mp4")
        depth = write_test_depth(tmp_path / "d.npy")
        assert main(["task", "submit", *conn, "--instruction", "put the bread in the bowl", "--box", "100,100,300,260",
                     "--video", str(video), "--video-depth", str(depth), "--dry-run"]) == 0
        out = capsys.readouterr().out
        tid = re.search(r"task (t_[0-9a-f]+)", out).group(1)
        assert main(["task", "get", *conn, tid, "--json"]) == 0
        assert f'"task_id": "{tid}"' in capsys.readouterr().out
        assert (d / "data").is_dir() and any((d / "data").iterdir())
        # auth and TLS are really on: a wrong token, a plaintext client
        (tmp_path / "bad.token").write_text("not-the-token-0123456789")
        assert main(["task", "list", "--server", f"127.0.0.1:{port}", "--ca-file", str(d / "ca.crt"),
                     "--token-file", str(tmp_path / "bad.token")]) == 2
        assert "UNAUTHENTICATED" in capsys.readouterr().err
        assert main(["task", "list", "--server", f"127.0.0.1:{port}", "--insecure", "--timeout", "3",
                     "--token-file", str(tmp_path / "op.token")]) != 0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_service_with_a_real_arm_starts_only_with_the_cells_consent(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from dream2flow.commands.serve import use_cell_config
    from dream2flow.config import hw_dir, shipped_hw_dir
    from dream2flow.service.config import load_service_config

    monkeypatch.setenv("D2F_HW_DIR", str(shipped_hw_dir()))   # restored afterwards ([robot] hw_dir sets it)
    cell = tmp_path / "cell"
    shutil.copytree(shipped_hw_dir() / "robot", cell / "robot")
    cfg_file = tmp_path / "service.toml"
    cfg_file.write_text('[server]\ninsecure = true\n[robot]\nbackend = "polymetis"\nhw_dir = "cell"\n'
                        '[camera]\ntype = "mock"\n')
    assert main(["serve", "--config", str(cfg_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backend polymetis moves a real arm" in err[0] and "real_arm_consent = true" in err[0]
    assert str(cell / "robot" / "control.toml") in err[0] and hw_dir() == cell.resolve()
    control = cell / "robot" / "control.toml"
    control.write_text(control.read_text().replace("real_arm_consent = false", "real_arm_consent = true"))
    use_cell_config(load_service_config(cfg_file))             # consent given: the start-up check passes
