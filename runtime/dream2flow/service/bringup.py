"""``dream2flow serve --init DIR``: a ready service folder in one command.

Why: a service that refuses to start without TLS and tokens (as it must, next to a robot) is
only usable if making them is one step. The folder holds everything ``dream2flow serve --config
DIR/service.toml`` needs and nothing a client must not see:

- ``service.toml``: listens on all interfaces with TLS and bearer-token auth, data in ``data/``,
  the cell's configuration in ``hw/`` (a copy of the shipped defaults, to be edited);
- ``tokens.toml`` (mode 600): one operator token, stored as its SHA-256 only; the token itself
  is printed once (``token: <TOKEN>``) and nowhere kept;
- ``ca.crt``: a fresh certificate authority that clients trust (``dream2flow task --ca-file``);
  its private key is discarded after signing, so nobody can mint more certificates from it;
- ``server.crt`` / ``server.key`` (mode 600): the server's certificate for the named hosts
  (DNS names and IP addresses in subjectAltName) plus the loopback names.

Keys are ECDSA P-256 (``cryptography``), which gRPC's TLS accepts.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from dream2flow.errors import InvalidInput

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
CA_DAYS = 3650
SERVER_DAYS = 825   # the longest server-certificate life browsers and most TLS stacks accept


@dataclass
class InitResult:
    folder: Path
    token: str
    hosts: list[str]
    files: list[Path]


def parse_hosts(text: str | None) -> list[str]:
    """``a,b`` -> the names the server certificate must carry: those (default: this machine's host
    name), then the loopback names, which are always included."""
    import socket

    if text is None:
        given = [socket.gethostname()] if _HOSTNAME.match(socket.gethostname() or "") else []
    else:
        given = [h.strip() for h in text.split(",")]
        if any(not h for h in given):
            raise InvalidInput(f"--hosts must be comma-separated names without empty entries, got {text!r}")
    names: list[str] = []
    for h in given + list(LOOPBACK_HOSTS):
        try:
            h = str(ipaddress.ip_address(h.strip("[]")))
        except ValueError:
            if not _HOSTNAME.match(h):
                raise InvalidInput(f"--hosts: {h!r} is neither a host name nor an IP address") from None
        if h not in names:
            names.append(h)
    return names


def _san(hosts: list[str]):  # type: ignore[no-untyped-def]
    from cryptography import x509

    entries = []
    for h in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            entries.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(entries)


def make_certificates(hosts: list[str]) -> tuple[bytes, bytes, bytes]:
    """(ca.crt PEM, server.crt PEM, server.key PEM) for ``hosts``; the CA key is not returned."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)   # tolerate small clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"dream2flow service CA {secrets.token_hex(4)}")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + _dt.timedelta(days=CA_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + _dt.timedelta(days=SERVER_DAYS))
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


def service_toml(hosts: list[str], port: int) -> str:
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    return f'''# dream2flow serve --config service.toml   (written by `dream2flow serve --init` on {when})
# TLS + bearer tokens. Clients: dream2flow task ... --server HOST:{port} --ca-file ca.crt --token-file FILE
# (the certificate names: {", ".join(hosts)}). Every key is documented in the shipped
# hw/service.example.toml; relative paths resolve against this folder.

[server]
listen = "0.0.0.0:{port}"
data_dir = "data"

[tls]
cert_file = "server.crt"
key_file = "server.key"

[auth]
tokens_file = "tokens.toml"       # [[tokens]] name, role (operator|viewer), sha256 of the token

[robot]
hw_dir = "hw"                     # this cell's configuration (a copy of the shipped defaults: edit it)
backend = "kinematic"             # the real Franka: "polymetis" (and [safety] real_arm_consent = true
                                  # in hw/robot/control.toml once the cell may run unattended)

[camera]
# Starts anywhere: the simulator's camera. The real cell, e.g.:
#   type = "realsense"
#   serial = "123456789012"
#   calibration_file = "hw/cameras/<your camera>.toml"   (dream2flow camera calibrate)
type = "sim"
task = "bread_in_bowl"
seed = 0
'''


def tokens_toml(name: str, token: str) -> str:
    from dream2flow.service.auth import token_sha256

    return ("# Bearer tokens of `dream2flow serve` (keep this file mode 600). Add one with:\n"
            "#   python -c 'import secrets; print(secrets.token_urlsafe(32))'   then its sha256:\n"
            "#   printf %s \"$TOKEN\" | sha256sum\n"
            f'[[tokens]]\nname = "{name}"\nrole = "operator"\nsha256 = "{token_sha256(token)}"\n')


def _write(path: Path, data: str | bytes, private: bool = False) -> Path:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


def init_service_folder(folder: str | Path, hosts: list[str], *, port: int = 50051,
                        token_name: str = "operator") -> InitResult:
    """Write the folder (module docstring). Refuses a non-empty folder: nothing is overwritten."""
    from dream2flow.config import shipped_hw_dir

    d = Path(folder).expanduser()
    if d.exists() and (not d.is_dir() or any(d.iterdir())):
        raise InvalidInput(f"{d} exists and is not an empty folder: serve --init never overwrites keys or tokens; "
                           "choose a new folder")
    if not 0 < port < 65536:
        raise InvalidInput(f"port must be 1..65535, got {port}")
    tmp = d.parent / f".{d.name}.init-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        token = secrets.token_urlsafe(32)
        ca, cert, key = make_certificates(hosts)
        files = [_write(tmp / "service.toml", service_toml(hosts, port)),
                 _write(tmp / "tokens.toml", tokens_toml(token_name, token), private=True),
                 _write(tmp / "ca.crt", ca), _write(tmp / "server.crt", cert),
                 _write(tmp / "server.key", key, private=True)]
        (tmp / "data").mkdir(mode=0o700)
        shipped = shipped_hw_dir()
        for sub in ("robot", "cameras"):
            shutil.copytree(shipped / sub, tmp / "hw" / sub)
        if d.exists():
            d.rmdir()
        tmp.rename(d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return InitResult(folder=d.resolve(), token=token, hosts=hosts,
                      files=[d / f.name for f in files] + [d / "data", d / "hw"])
