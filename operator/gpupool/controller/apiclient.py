"""The operator's own client of the Kubernetes REST API: credentials and one pool of connections.

The operator speaks JSON to the REST API (`Kube`, the Lease store) and never used the generated
models of the official `kubernetes` package, which cost 35 MiB of resident memory once imported
(kopf imports that package whenever it is installed). What it needs of a client is here:

- credentials, in a pod from its service account (the API server at $KUBERNETES_SERVICE_HOST and
  $KUBERNETES_SERVICE_PORT, the token file re-read every minute since the kubelet rotates it);
  otherwise from the current context of the kubeconfig (`--kubeconfig`, $KUBECONFIG as a list
  of files merged the way kubectl merges them, or ~/.kube/config): a token or token file, a client
  certificate, basic auth, or an exec credential plugin (client.authentication.k8s.io
  ExecCredential, run again before its token expires and after a 401); the CA by path or data, or
  insecure-skip-tls-verify; relative paths resolved against the file that names them;
- one urllib3 pool, safe to share between the work queue's threads, with no retries of its own
  (a failed request fails its pass, and the work queue retries it with backoff) and a timeout on
  every request, so that a connection the network dropped silently cannot hold a worker forever;
- `ApiError` for an answer outside 2xx, with the status, reason and body the callers read.

The same credentials log kopf in (`connection_info`), so the watches and the writes are one user.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# client-go re-reads a projected token file at most once a minute (transport/token_source.go);
# the kubelet refreshes the file well before the token expires.
TOKEN_FILE_REREAD_SECONDS = 60.0
# An exec plugin's token is fetched again this long before its expirationTimestamp.
EXEC_EXPIRY_MARGIN_SECONDS = 30.0
EXEC_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 10.0
# A page of 250 objects or a status apply answers within seconds even on a loaded API server.
READ_TIMEOUT_SECONDS = 120.0
# Connections kept open: more than the threads that make requests at once (8 workers by default,
# the resync, the autoscaler, the Lease), since one past the pool is opened, used once and closed,
# a TLS handshake each time.
POOL_CONNECTIONS = 16


class ApiError(Exception):
    """The API server answered outside 2xx (`status` 0: no answer was read)."""

    def __init__(self, status: int = 0, reason: str | None = None, body: str | None = None) -> None:
        self.status = status
        self.reason = reason or ""
        self.body = body
        super().__init__(status, self.reason)

    def __str__(self) -> str:
        text = f"({self.status})\nReason: {self.reason}"
        return f"{text}\nHTTP response body: {self.body}" if self.body else text


class ConfigError(Exception):
    """No usable credentials: not in a pod, and no kubeconfig (or one that does not parse)."""


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are. PEM data is text; paths are absolute."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    cert_data: str | None = None
    key_file: str | None = None
    key_data: str | None = None
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    exec_plugin: Mapping[str, Any] | None = None
    namespace: str | None = None
    tls_server_name: str | None = None
    # The exec plugin's working directory: the kubeconfig's own (as kubectl runs it).
    base_dir: str | None = field(default=None, compare=False)


def load_credentials(
    kubeconfig: str | None = None, service_account: Path = SERVICE_ACCOUNT_DIR
) -> Credentials:
    """In-cluster credentials when running in a pod (they win over a kubeconfig, as the operator's
    settings document), else the kubeconfig's current context."""
    incluster = in_cluster_credentials(service_account)
    return incluster if incluster is not None else kubeconfig_credentials(kubeconfig)


def in_cluster_credentials(service_account: Path = SERVICE_ACCOUNT_DIR) -> Credentials | None:
    """The pod's service account, or None outside a pod (client-go's rest.InClusterConfig)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    token = service_account / "token"
    if not host or not port or not token.is_file():
        return None
    if ":" in host and not host.startswith("["):  # an IPv6 address
        host = f"[{host}]"
    ca = service_account / "ca.crt"
    namespace = service_account / "namespace"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_file=str(ca) if ca.is_file() else None,
        token_file=str(token),
        namespace=namespace.read_text().strip() if namespace.is_file() else None,
    )


def kubeconfig_credentials(kubeconfig: str | None = None) -> Credentials:
    """The current context of `kubeconfig`, else of the files $KUBECONFIG lists, merged as kubectl
    merges them (for each name the first file that defines it wins, as does the first
    current-context; a listed file that does not exist is skipped), else of ~/.kube/config."""
    if kubeconfig is not None:
        paths = [Path(kubeconfig).expanduser()]
    else:
        paths = [
            Path(p).expanduser() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p.strip()
        ]
    if not paths:
        default = Path("~/.kube/config").expanduser()
        if not default.is_file():
            raise ConfigError(
                "no Kubernetes credentials: not running in a pod, and no kubeconfig "
                "(--kubeconfig, $KUBECONFIG or ~/.kube/config)"
            )
        paths = [default]
    current: str | None = None
    sections: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {
        "clusters": {},
        "users": {},
        "contexts": {},
    }
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            if kubeconfig is not None:
                raise ConfigError(f"kubeconfig {path} does not exist") from None
            continue  # kubectl skips missing files of a $KUBECONFIG list
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"kubeconfig {path} cannot be read: {err}") from err
        if not isinstance(document, dict):
            raise ConfigError(f"kubeconfig {path} is not a mapping")
        current = current or document.get("current-context") or None
        for section, held in sections.items():
            singular = section[:-1]
            for entry in document.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") and entry["name"] not in held:
                    held[entry["name"]] = (entry.get(singular) or {}, path.parent)
    if not any(held for held in sections.values()) and current is None:
        raise ConfigError(
            f"none of the kubeconfig files {os.pathsep.join(map(str, paths))} exists or defines anything"
        )
    if not current:
        raise ConfigError(f"kubeconfig {os.pathsep.join(map(str, paths))} sets no current-context")
    context, _ = _entry(sections, "contexts", current)
    cluster, cluster_dir = _entry(sections, "clusters", context.get("cluster"))
    user, user_dir = (
        _entry(sections, "users", context.get("user")) if context.get("user") else ({}, cluster_dir)
    )
    server = cluster.get("server")
    if not server:
        raise ConfigError(f"kubeconfig cluster {context.get('cluster')!r} has no server")
    provider = (user.get("auth-provider") or {}).get("config") or {}
    return Credentials(
        server=str(server).rstrip("/"),
        ca_file=_path(cluster.get("certificate-authority"), cluster_dir),
        ca_data=_pem(cluster.get("certificate-authority-data"), "certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        cert_file=_path(user.get("client-certificate"), user_dir),
        cert_data=_pem(user.get("client-certificate-data"), "client-certificate-data"),
        key_file=_path(user.get("client-key"), user_dir),
        key_data=_pem(user.get("client-key-data"), "client-key-data"),
        token=user.get("token") or provider.get("access-token") or None,
        token_file=_path(user.get("tokenFile"), user_dir),
        username=user.get("username") or None,
        password=user.get("password") or None,
        exec_plugin=user.get("exec") or None,
        namespace=context.get("namespace") or None,
        base_dir=str(user_dir),
    )


def _entry(
    sections: dict[str, dict[str, tuple[dict[str, Any], Path]]], section: str, name: Any
) -> tuple[dict[str, Any], Path]:
    held = sections[section].get(str(name)) if name else None
    if held is None:
        raise ConfigError(f"kubeconfig names {section[:-1]} {name!r}, which none of its files defines")
    return held


def _path(value: Any, base: Path) -> str | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else base / path)


def _pem(value: Any, name: str) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as err:
        raise ConfigError(f"kubeconfig {name} is not base64-encoded PEM: {err}") from err


@dataclass(frozen=True)
class _Issued:
    """What an exec plugin or a token file last gave, and until when to trust it."""

    token: str | None
    cert_data: str | None
    key_data: str | None
    fresh_until: float
    expires: datetime.datetime | None = None


class ApiClient:
    """Requests to one API server with one set of credentials, from any thread."""

    def __init__(self, credentials: Credentials, user_agent: str) -> None:
        self.credentials = credentials
        self.user_agent = user_agent
        self._lock = threading.Lock()
        self._issued: _Issued | None = None
        self._pool: urllib3.PoolManager | None = None
        self._pool_cert: tuple[str | None, str | None] = (None, None)

    # ----------------------------------------------------------------------------------------
    # credentials

    def _current(self, *, renew: bool = False) -> _Issued:
        """The token and client certificate to send now, fetched again when stale or `renew`."""
        creds = self.credentials
        with self._lock:
            issued = self._issued
            if issued is not None and not renew and time.monotonic() < issued.fresh_until:
                return issued
            if creds.exec_plugin is not None:
                issued = _run_exec_plugin(creds.exec_plugin, creds.base_dir)
            elif creds.token_file is not None:
                token = _read_token_file(creds.token_file)
                issued = _Issued(token, None, None, time.monotonic() + TOKEN_FILE_REREAD_SECONDS)
            else:
                issued = _Issued(creds.token, None, None, float("inf"))
            self._issued = issued
            return issued

    def connection_info(self) -> dict[str, Any]:
        """The keyword arguments of kopf's ConnectionInfo for the same user (kopf logs in again
        on a 401, and an exec token's expiration tells it when)."""
        creds = self.credentials
        issued = self._current(renew=True)
        return {
            "server": creds.server,
            "ca_path": creds.ca_file,
            "ca_data": creds.ca_data,
            "insecure": creds.insecure or None,
            "certificate_path": None if issued.cert_data else creds.cert_file,
            "certificate_data": issued.cert_data or creds.cert_data,
            "private_key_path": None if issued.key_data else creds.key_file,
            "private_key_data": issued.key_data or creds.key_data,
            "token": issued.token,
            "username": creds.username,
            "password": creds.password,
            "default_namespace": creds.namespace,
            "expiration": issued.expires,
        }

    # ----------------------------------------------------------------------------------------
    # transport

    def _connections(self, issued: _Issued) -> urllib3.PoolManager:
        creds = self.credentials
        cert = (issued.cert_data or creds.cert_data, issued.key_data or creds.key_data)
        with self._lock:
            if self._pool is not None and self._pool_cert == cert:
                return self._pool
            options: dict[str, Any] = {}
            if creds.server.startswith("https:"):
                options["ssl_context"] = _ssl_context(creds, *cert)
                if creds.tls_server_name:
                    options["server_hostname"] = creds.tls_server_name
            self._pool = urllib3.PoolManager(
                num_pools=2,
                maxsize=POOL_CONNECTIONS,
                block=False,
                retries=False,
                **options,
            )
            self._pool_cert = cert
            return self._pool

    def _headers(self, issued: _Issued, content_type: str) -> dict[str, str]:
        creds = self.credentials
        headers = {"Accept": "application/json", "Content-Type": content_type, "User-Agent": self.user_agent}
        if issued.token:
            headers["Authorization"] = f"Bearer {issued.token}"
        elif creds.username is not None and creds.password is not None:
            pair = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        """The decoded JSON answer (None when empty); ApiError outside 2xx. A 401 with credentials
        that can be renewed (an exec plugin, a token file) renews them and tries once more."""
        url = self.credentials.server + path + (f"?{urlencode(query)}" if query else "")
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        renewable = self.credentials.exec_plugin is not None or self.credentials.token_file is not None
        limit = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=timeout or READ_TIMEOUT_SECONDS)
        issued = self._current()
        for attempt in range(2):
            response = self._connections(issued).request(
                method, url, body=payload, headers=self._headers(issued, content_type), timeout=limit
            )
            if response.status == 401 and renewable and attempt == 0:
                issued = self._current(renew=True)
                continue
            break
        data = response.data
        if not 200 <= response.status <= 299:
            raise ApiError(
                response.status, response.reason, data.decode("utf-8", "replace") if data else None
            )
        return json.loads(data) if data else None


def _ssl_context(creds: Credentials, cert_data: str | None, key_data: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=creds.ca_file, cadata=creds.ca_data)
    if creds.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert_file, key_file = creds.cert_file, creds.key_file
    # The ssl module loads a certificate chain only from files: data is written to a private
    # directory, loaded, and removed at once.
    with tempfile.TemporaryDirectory(prefix="gpupool-tls-") as scratch:
        if cert_data:
            cert_file = os.path.join(scratch, "client.crt")
            Path(cert_file).write_text(cert_data)
        if key_data:
            key_file = os.path.join(scratch, "client.key")
            Path(key_file).write_text(key_data)
        if cert_file:
            context.load_cert_chain(certfile=cert_file, keyfile=key_file)
    return context


def _read_token_file(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as err:
        raise ConfigError(f"token file {path} cannot be read: {err}") from err


def _run_exec_plugin(plugin: Mapping[str, Any], base_dir: str | None) -> _Issued:
    """Run a client-go credential plugin and read its ExecCredential (client-go
    plugin/pkg/client/auth/exec/exec.go): the token or client certificate, and its expiry."""
    command = plugin.get("command")
    if not command:
        raise ConfigError("kubeconfig exec plugin has no command")
    api_version = plugin.get("apiVersion") or "client.authentication.k8s.io/v1"
    env = dict(os.environ)
    for item in plugin.get("env") or []:
        env[str(item["name"])] = str(item["value"])
    request = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(request)
    try:
        done = subprocess.run(
            [str(command), *map(str, plugin.get("args") or [])],
            env=env,
            cwd=base_dir,
            capture_output=True,
            text=True,
            timeout=EXEC_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"kubeconfig exec plugin {command!r} did not run: {err}") from err
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        raise ConfigError(f"kubeconfig exec plugin {command!r} exited {done.returncode}: {last}")
    try:
        status = json.loads(done.stdout).get("status") or {}
    except (json.JSONDecodeError, AttributeError) as err:
        raise ConfigError(f"kubeconfig exec plugin {command!r} printed no ExecCredential: {err}") from err
    token = status.get("token") or None
    cert, key = status.get("clientCertificateData") or None, status.get("clientKeyData") or None
    if token is None and (cert is None or key is None):
        raise ConfigError(f"kubeconfig exec plugin {command!r} gave neither a token nor a client certificate")
    expires: datetime.datetime | None = None
    fresh_until = float("inf")
    if status.get("expirationTimestamp"):
        expires = datetime.datetime.fromisoformat(str(status["expirationTimestamp"]).replace("Z", "+00:00"))
        left = (expires - datetime.datetime.now(datetime.UTC)).total_seconds()
        fresh_until = time.monotonic() + max(0.0, left - EXEC_EXPIRY_MARGIN_SECONDS)
    return _Issued(token, cert, key, fresh_until, expires)
