"""Outbound HTTP that cannot be pointed at the robot's own network: every hop of a fetch
(the first URL and each redirect) is checked, and the connection goes to the address that
was checked.

Why this shape: the server fetches URLs that operators (and video generators) name. A URL on
an allowed host can redirect to ``localhost`` or to the cloud metadata address
(169.254.169.254), and a host name can resolve to a public address when checked and to a
private one a moment later (DNS rebinding). So for each hop: the scheme must be http(s), the
host must be in the allow-list (when one is configured), the name is resolved once, every
candidate address is classified (loopback, link-local, private, … are refused unless inside an
explicitly allowed network), and the TCP connection is opened to the checked address itself
(``Host`` header and TLS server name stay the URL's host). Redirects are followed here, one
checked hop at a time, never by the HTTP library; credentials are dropped when a redirect
leaves the origin.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

from dream2flow.errors import InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
_REDIRECTS = (301, 302, 303, 307, 308)


class UrlRefused(InvalidInput):
    """A URL (or a redirect hop) the policy refuses; nothing was sent to its target."""

    def __init__(self, message: str, **kw: Any) -> None:
        kw.setdefault("reason", "URL_REFUSED")
        super().__init__(message, **kw)


@dataclass(frozen=True)
class NetPolicy:
    """``allowed_hosts``: host names a URL may name (empty: any); ``allowed_networks``: CIDRs of
    non-public addresses that may be reached (empty: public addresses only); ``trusted_origins``:
    ``scheme://host:port`` origins from the server's own configuration (the video generator),
    exempt from both checks; ``resolver(host, port) → [ip]`` (tests; default getaddrinfo)."""

    allowed_hosts: tuple[str, ...] = ()
    allowed_networks: tuple[str, ...] = ()
    max_redirects: int = 5
    trusted_origins: tuple[str, ...] = ()
    resolver: Resolver | None = field(default=None, compare=False)

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.allowed_networks]


def origin(url: str) -> str:
    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return f"{u.scheme}://{(u.hostname or '').lower()}:{port}"


def address_class(ip: Address) -> str | None:
    """Why ``ip`` is not a public address ("loopback", "link-local (cloud metadata lives here)",
    …), or None for a public one."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_class(ip.ipv4_mapped)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata services live here)"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not a public address"
    return None


def check_address(ip: Address, policy: NetPolicy) -> str | None:
    """None if ``ip`` may be connected to, else why not."""
    why = address_class(ip)
    if why is None:
        return None
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    for net in policy.networks():
        if ip in net or (mapped is not None and mapped in net):
            return None
    return f"{ip} is {why}; only public addresses are fetched unless [video_sources] url_allowed_networks allows it"


def check_static(url: str, policy: NetPolicy, max_chars: int = 2048) -> str:
    """Checks that need no network: scheme, host, allow-list, and a literal IP address."""
    if not isinstance(url, str) or not url or len(url) > max_chars:
        raise InvalidInput(f"URL must be 1..{max_chars} characters")
    try:
        u = urlsplit(url)
        _ = u.port
    except ValueError:
        raise UrlRefused(f"URL {url[:200]!r} is malformed") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UrlRefused(f"URL must be http(s)://host/..., got {url[:200]!r}")
    if origin(url) in policy.trusted_origins:
        return url
    host = u.hostname.lower()
    if policy.allowed_hosts and host not in {h.lower() for h in policy.allowed_hosts}:
        raise UrlRefused(f"URL host {host!r} is not in [video_sources] url_allowed_hosts")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return url
    why = check_address(ip, policy)
    if why:
        raise UrlRefused(f"URL {url[:200]} refused: {why}")
    return url


def resolve_checked(url: str, policy: NetPolicy) -> str:
    """The address to connect to for ``url`` (after ``check_static``): the first resolved
    address the policy allows; UrlRefused when none is."""
    u = urlsplit(url)
    host = u.hostname or ""
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        if policy.resolver is not None:
            addrs = list(policy.resolver(host, port))
        else:
            addrs = list(dict.fromkeys(str(ai[4][0]) for ai in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
    except OSError as exc:
        raise ConnectFailed(f"cannot resolve {host}: {exc}") from None
    trusted = origin(url) in policy.trusted_origins
    reasons = []
    for a in addrs:
        ip = ipaddress.ip_address(a.split("%", 1)[0])
        why = None if trusted else check_address(ip, policy)
        if why is None:
            return str(ip)
        reasons.append(why)
    raise UrlRefused(f"URL {url[:200]} refused: {host} resolves to " + ("; ".join(reasons) or "no address"))


class ConnectFailed(Exception):
    """Network trouble worth a retry (DNS, refused, reset, timeout, short body)."""


@dataclass
class Response:
    """A streamed response: ``status``, ``headers``, ``url`` (after redirects), ``hops``."""

    status: int
    reason: str
    headers: Any
    url: str
    hops: list[str]
    _raw: Any
    _pool: Any

    def stream(self, chunk_bytes: int) -> Any:
        """The body in pieces of at most ``chunk_bytes``, each as soon as it arrives (a slow
        source does not hold a cancel back until a whole chunk is there)."""
        import urllib3

        try:
            while True:
                data = self._raw.read1(chunk_bytes)
                if not data:
                    return
                yield data
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError,
                urllib3.exceptions.IncompleteRead, OSError) as exc:
            raise ConnectFailed(f"{type(exc).__name__}") from None

    def read(self, max_bytes: int) -> bytes:
        out = bytearray()
        for chunk in self.stream(64 * 1024):
            out += chunk
            if len(out) > max_bytes:
                raise InvalidInput(f"{self.url[:200]} answered with more than {max_bytes} bytes")
        return bytes(out)

    def close(self) -> None:
        try:
            self._raw.release_conn()
        finally:
            self._pool.close()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _pool(url: str, ip: str, connect_s: float, read_s: float) -> Any:
    import urllib3

    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    timeout = urllib3.Timeout(connect=connect_s, read=read_s)
    if u.scheme == "https":
        try:
            import certifi

            ca = certifi.where()
        except ImportError:  # pragma: no cover - requests brings certifi
            ca = None
        return urllib3.HTTPSConnectionPool(ip, port, timeout=timeout, retries=False, maxsize=1,
                                           server_hostname=u.hostname, assert_hostname=u.hostname,
                                           cert_reqs="CERT_REQUIRED", ca_certs=ca)
    return urllib3.HTTPConnectionPool(ip, port, timeout=timeout, retries=False, maxsize=1)


def open_url(method: str, url: str, policy: NetPolicy, *, headers: dict[str, str] | None = None,
             body: bytes | None = None, connect_timeout_s: float = 5.0, read_timeout_s: float = 30.0,
             on_hop: Callable[[str, str], None] | None = None) -> Response:
    """Send ``method url`` following redirects hop by hop, each hop checked (``check_static`` +
    ``resolve_checked``) and connected to its checked address → the final ``Response`` (any
    status; the caller reads and closes it). UrlRefused for a refused hop (nothing is sent to
    it), ConnectFailed for network trouble. ``on_hop(url, ip)`` before each connection."""
    import urllib3

    hops: list[str] = []
    cur = url
    hdrs = dict(headers or {})
    first_origin = origin(url)
    for _ in range(policy.max_redirects + 1):
        check_static(cur, policy)
        ip = resolve_checked(cur, policy)
        hops.append(cur)
        if on_hop is not None:
            on_hop(cur, ip)
        u = urlsplit(cur)
        default_port = 443 if u.scheme == "https" else 80
        host_hdr = u.hostname if (u.port or default_port) == default_port else f"{u.hostname}:{u.port}"
        if ":" in (u.hostname or "") and not host_hdr.startswith("["):  # IPv6 literal
            host_hdr = f"[{u.hostname}]" + ("" if (u.port or default_port) == default_port else f":{u.port}")
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        pool = _pool(cur, ip, connect_timeout_s, read_timeout_s)
        try:
            raw = pool.urlopen(method, path, body=body, headers={**hdrs, "Host": host_hdr}, redirect=False,
                               retries=False, preload_content=False, assert_same_host=False,
                               enforce_content_length=True)
        except urllib3.exceptions.SSLError as exc:
            pool.close()
            raise InvalidInput(f"TLS with {u.hostname} failed: {exc}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            pool.close()
            raise ConnectFailed(f"{type(exc).__name__}") from None
        loc = raw.headers.get("Location")
        if raw.status in _REDIRECTS and loc:
            raw.drain_conn()
            raw.release_conn()
            pool.close()
            nxt = urljoin(cur, loc)
            if origin(nxt) != first_origin:  # never forward credentials to another origin
                hdrs = {k: v for k, v in hdrs.items() if k.lower() not in ("authorization", "cookie")}
            if raw.status == 303 or (raw.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                hdrs = {k: v for k, v in hdrs.items() if k.lower() != "content-type"}
            cur = nxt
            continue
        return Response(raw.status, raw.reason or "", raw.headers, cur, hops, raw, pool)
    raise UrlRefused(f"{url[:200]} redirects more than {policy.max_redirects} times")
