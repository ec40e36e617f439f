"""Setting up Ray for the ``ray`` executor: the pinned version, the cluster address, the connection.

Ray is optional (``pip install -r requirements-ray.txt``): this module imports it only when asked
(:func:`require_ray`), so the rest of MTL Lab never needs it. Every problem a user can cause while
setting Ray up — a malformed address, Ray missing or at another version, a cluster that does not
answer — raises :class:`RaySetupError` with one line that names the setting, what is allowed and
what came, so the CLI exits 2 with that line and the dashboard shows it as a warning.

Addresses (``--address`` / ``$MTL_LAB_RAY_ADDRESS``, :func:`parse_address`):

* none: a local Ray on this machine with its cores (what the tests use);
* ``auto``: the Ray cluster this machine has joined (``ray start --head`` / ``ray start --address``);
* ``HOST:PORT``: a cluster's head node (its GCS port, 6379 by default) — this process joins as a driver;
* ``ray://HOST:PORT``: a cluster through the Ray Client server of its head node (port 10001 by default).

Logs: a local Ray started here writes under Ray's default temporary folder,
``/tmp/ray/session_latest/logs`` (Ray's unix sockets live there too, and their paths must stay short,
so an MTL Lab home of any length cannot hold them); a cluster keeps its logs on its own nodes.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType

from mtl_core.errors import MTLError

__all__ = [
    "RAY_PIN",
    "RAY_INSTALL_HINT",
    "ADDRESS_SETTING",
    "ALLOWED_ADDRESSES",
    "CONNECT_TIMEOUT",
    "RaySetupError",
    "parse_address",
    "require_ray",
    "connect",
    "split_address",
    "executor_problem",
]

#: The Ray version MTL Lab is tested with; the driver, the bridge and every node must run it.
RAY_PIN = "2.60.0"
RAY_INSTALL_HINT = "pip install -r requirements-ray.txt"
#: How the address is given, for messages.
ADDRESS_SETTING = "`--address` / `MTL_LAB_RAY_ADDRESS`"
ALLOWED_ADDRESSES = "empty (a local Ray), `auto`, `HOST:PORT` or `ray://HOST:PORT` (port 1–65535)"
#: Seconds to wait for a cluster's head node to answer.
CONNECT_TIMEOUT = 5.0

# A DNS name: labels of letters, digits and inner hyphens, separated by dots.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_CLIENT_SCHEME = "ray://"


class RaySetupError(MTLError):
    """Ray cannot be used as asked (bad address, Ray missing or at another version, cluster
    unreachable). The message is one line."""


def _bad_address(text: str, why: str, setting: str) -> RaySetupError:
    return RaySetupError(f"{setting} must be {ALLOWED_ADDRESSES}, got {text!r} ({why})")


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):  # an IPv6 literal, as in [::1]:6379
        host = host[1:-1]
        try:
            return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
        except ValueError:
            return False
    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", host):  # looks like an IPv4 address but is not one (999.1.1.1)
        return False
    return bool(_HOSTNAME.match(host))


def parse_address(text: str | None, setting: str = ADDRESS_SETTING) -> str | None:
    """The normalised Ray address of ``text``: None for none or blank (start a local Ray), ``auto``,
    ``HOST:PORT`` or ``ray://HOST:PORT``. Anything else raises :class:`RaySetupError`, whose message
    names ``setting`` (where the text came from), what is allowed and what came."""
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return None
    if stripped.lower() == "auto":
        return "auto"
    scheme, rest = "", stripped
    if stripped.lower().startswith(_CLIENT_SCHEME):
        scheme, rest = _CLIENT_SCHEME, stripped[len(_CLIENT_SCHEME):]
    elif "://" in stripped:
        raise _bad_address(text, "the only scheme allowed is ray://", setting)
    rest = rest.rstrip("/")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host:
        raise _bad_address(text, "no port" if not sep else "no host", setting)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _bad_address(text, f"port {port_text!r} is not in 1–65535", setting)
    if not _valid_host(host):
        raise _bad_address(text, f"{host!r} is not a host name or IP address", setting)
    return f"{scheme}{host.lower()}:{int(port_text)}"


def split_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of a normalised ``HOST:PORT`` or ``ray://HOST:PORT`` address."""
    rest = address[len(_CLIENT_SCHEME):] if address.startswith(_CLIENT_SCHEME) else address
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port)


def require_ray() -> ModuleType:
    """The ``ray`` module, at :data:`RAY_PIN`. Raises :class:`RaySetupError` when Ray is not
    installed or is another version."""
    try:
        import ray
    except ImportError:
        raise RaySetupError(f"the `ray` executor needs Ray {RAY_PIN}, which is not installed: "
                            f"run `{RAY_INSTALL_HINT}`") from None
    version = getattr(ray, "__version__", "unknown")
    if version != RAY_PIN:
        raise RaySetupError(f"the `ray` executor needs Ray {RAY_PIN}, got Ray {version} installed: "
                            f"run `{RAY_INSTALL_HINT}`")
    return ray


# An HTTP/2 client's connection preface and an empty SETTINGS frame: a Ray head node's GCS and its Ray
# Client server are gRPC servers, which answer with a SETTINGS frame of their own (frame type 4).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_HTTP2_SETTINGS = 4


def _check_reachable(address: str, timeout: float) -> None:
    """Raise :class:`RaySetupError` unless a gRPC server answers at ``address`` within ``timeout``
    seconds. Ray itself retries for minutes against a host that does not answer, or that accepts the
    connection and then stays silent (another service, a firewall's tarpit)."""
    host, port = split_address(address)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            connection.sendall(_HTTP2_PREFACE)
            header = b""
            while len(header) < 9:
                chunk = connection.recv(9 - len(header))
                if not chunk:
                    break
                header += chunk
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or exc.__class__.__name__)
        raise _unreachable(address, f"{reason} after at most {timeout:g} s") from None
    if len(header) < 9 or header[3] != _HTTP2_SETTINGS:
        raise _unreachable(address, "something answers there, but not a Ray head node's gRPC server")


def _unreachable(address: str, why: str) -> RaySetupError:
    return RaySetupError(f"cannot reach the Ray cluster at {address} ({why}; set by {ADDRESS_SETTING}): "
                         "start it with `ray start --head` or fix the address")


@contextmanager
def _gcs_wait(timeout: float) -> Iterator[None]:
    """Bound Ray's retries to reach a cluster's GCS (about 1 s each, 20 by default) to ``timeout``
    seconds while connecting, unless the user set ``RAY_gcs_server_port_wait_time_s`` themselves:
    something may answer at the address (a proxy, another service) without being a Ray head."""
    name = "RAY_gcs_server_port_wait_time_s"
    if name in os.environ:
        yield
        return
    os.environ[name] = str(max(1, math.ceil(timeout)))
    try:
        with _client_wait(timeout):
            yield
    finally:
        os.environ.pop(name, None)


@contextmanager
def _client_wait(timeout: float) -> Iterator[None]:
    """The same for a ``ray://`` address: Ray Client tries 3 times, 5 + 10 + 15 s by default, with
    its module's timeouts (read when it connects; the pinned version has them). Three tries of a
    third of ``timeout`` each here."""
    from ray.util.client import worker as client_worker

    names = ("INITIAL_TIMEOUT_SEC", "MAX_TIMEOUT_SEC")
    if not all(isinstance(getattr(client_worker, n, None), int) for n in names):
        yield
        return
    saved = {n: getattr(client_worker, n) for n in names}
    for n in names:
        setattr(client_worker, n, max(1, math.ceil(timeout / 3)))
    try:
        yield
    finally:
        for n, value in saved.items():
            setattr(client_worker, n, value)


def _reset(ray: ModuleType) -> None:
    """Forget a half-made connection, so that a later :func:`connect` starts afresh."""
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - nothing to shut down is fine
        pass


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "") or exc.__class__.__name__


def connect(address: str | None, num_cpus: int | None = None, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """Connect this process to Ray once (a second call does nothing while Ray is initialised).

    ``address`` is a value of :func:`parse_address` (pass what the user typed through it first):
    None starts a local Ray with ``num_cpus`` (default: this machine's cores) and no dashboard, its
    logs under Ray's default ``/tmp/ray/session_latest/logs``; otherwise this process connects to
    the cluster at ``address``, and a cluster that does not answer raises :class:`RaySetupError`
    ("cannot reach the Ray cluster at …") within about ``timeout`` seconds. Task output is not
    copied to this process's console (``log_to_driver=False``): it stays in the Ray logs.
    """
    ray = require_ray()
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is not None and address != "auto":
        _check_reachable(address, timeout)
    try:
        if address is None:
            _quiet_default_token_notice()
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        else:
            with _gcs_wait(timeout), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # Ray Client's own "connection timed out"
                ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError, OSError) as exc:
        _reset(ray)
        where = "start a local Ray" if address is None else f"reach the Ray cluster at {address}"
        hint = "" if address is None else f" (set by {ADDRESS_SETTING})"
        raise RaySetupError(f"cannot {where}{hint}: {_one_line(exc)}{_token_hint(address)}") from None


class _DropDefaultTokenNotice(logging.Filter):
    """Drops Ray 2.60's notice that a new local Ray turned token authentication on by default: the Ray
    that MTL Lab starts for itself is its own business, and the notice was a stray line on the CLI's
    stderr. Any other message (the warning that authentication is *off*, say) passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _quiet_default_token_notice() -> None:
    auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropDefaultTokenNotice) for f in auth_log.filters):
        auth_log.addFilter(_DropDefaultTokenNotice())


def _token_hint(address: str | None) -> str:
    """What to try when a cluster refused this process: Ray 2.60's ``ray start --head`` turns on
    token authentication, and a driver without ``RAY_AUTH_MODE=token`` (and the head's token) is refused
    with nothing but "failed to connect" in the exception."""
    if address is None or os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token":
        return ""
    return ("; if the cluster was started with `ray start --head`, it wants its token: set RAY_AUTH_MODE=token "
            "and copy the head's ~/.ray/auth_token here (or set RAY_AUTH_TOKEN)")


def executor_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """One sentence for a page when the executor settings cannot work, naming the setting
    (``MTL_LAB_EXECUTOR`` unknown; with ``ray``: ``MTL_LAB_RAY_ADDRESS`` malformed or Ray not
    installed), else None. Cheap (no Ray import, no network): a page may call it on every view."""
    import importlib.util

    from mtl_core.settings import SettingError, settings

    current = settings(environ)
    try:
        if current.executor != "ray":
            return None
        current.ray_address  # noqa: B018 - parsed to check it
    except SettingError as exc:
        return f"Queued runs cannot start: {exc}."
    if importlib.util.find_spec("ray") is None:
        return (f"Queued runs cannot start: `MTL_LAB_EXECUTOR` is `ray`, but Ray is not installed "
                f"(run `{RAY_INSTALL_HINT}`).")
    return None
