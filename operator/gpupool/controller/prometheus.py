"""Read a pool's engine metrics from Prometheus: the signals' windows, the seasonal QPS history and
each pod's in-flight requests.

One range query per pool and signal each evaluation, grouped by `namespace` and `model_deployment`
(the pods' `gpupool.io/model-deployment` label, relabelled onto the series), never one per model.
Every series is placed on the range's step grid; a model without a series for a signal gets NaN
there, which the policy reads as missing. When Prometheus cannot be queried every window is empty
and `PoolMetrics.error` says why: the policy then holds (it never scales down on missing metrics).

Two more reads, each one query per pool whatever its engines: the coarse QPS history the seasonal
forecast needs (`history_plan`, `read_history`; the caller caches it for minutes), and, only before
a scale-down, the in-flight requests of every pod (`read_in_flight`).

`Connection` carries what reaching Prometheus takes beyond its URL: an Authorization header from a
Secret (`spec.prometheus.basicAuth` or `bearerToken`) and the CA to trust (`spec.prometheus.tls`).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gpupool.api.conditions import Reason
from gpupool.api.v1alpha1 import EngineType, PrometheusSpec
from gpupool.catalog.types import Vendor
from gpupool.controller.apiclient import ApiError
from gpupool.scaling import MetricsWindow, Signal

log = logging.getLogger(__name__)

BY = "namespace, model_deployment"
TIMEOUT_SECONDS = 5.0
# Prometheus refuses a range query whose (end - start) / step exceeds 11,000
# (web/api/v1/api.go, queryRange: "exceeded maximum resolution of 11,000 points per timeseries").
MAX_RANGE_INTERVALS = 11_000
# The seasonal history: about 288 points per period (5-minute steps over a day), never finer than
# a common scrape interval nor coarser than 5 minutes unless Prometheus' limit asks for it.
HISTORY_POINTS_PER_PERIOD = 288
HISTORY_MIN_STEP_SECONDS = 15
HISTORY_MAX_STEP_SECONDS = 300
# The history only moves by a step in that time and covers a day; re-reading it every evaluation
# (15 s) would cost Prometheus a day of samples per pool for nothing.
HISTORY_REFRESH_SECONDS = 300
# Rates shorter than a minute need a scrape interval below 15 s to have two samples.
MIN_RATE_WINDOW_SECONDS = 60

# Engine series counting finished requests (vLLM: every finished_reason; Triton: success and
# failure), and those counting requests in flight on a pod (vLLM: in the batch and queued; Triton:
# queued, its only in-flight gauge). A pod runs one engine, so one selector covers every engine.
FINISHED_SERIES = (
    "vllm:request_success_total",
    "nv_inference_request_success",
    "nv_inference_request_failure",
)
IN_FLIGHT_SERIES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "nv_inference_pending_request_count",
)

ModelKey = tuple[str, str]
PodKey = tuple[str, str]


# --------------------------------------------------------------------------------------------------
# Reaching Prometheus


class PrometheusError(Exception):
    """A query that failed; `reason` is the MetricsAvailable reason it leads to."""

    def __init__(self, message: str, reason: Reason = Reason.PROMETHEUS_UNREACHABLE) -> None:
        super().__init__(message)
        self.reason = reason


class CredentialsError(PrometheusError):
    """A Secret or key that spec.prometheus names cannot be read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Reason.PROMETHEUS_SECRET_MISSING)


@dataclass(frozen=True)
class Connection:
    """How to reach one Prometheus: its URL, an Authorization header, the CA to trust."""

    url: str
    authorization: str | None = field(default=None, repr=False)
    # Where the credentials came from, for messages ("Secret ns/name (spec.prometheus.basicAuth)").
    credentials: str | None = None
    ca_pem: str | None = field(default=None, repr=False)
    ca_source: str | None = None
    insecure_skip_verify: bool = False
    # The operator's namespace, where the Secrets must be, for messages.
    namespace: str = ""

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https://"):
            return None
        if self.insecure_skip_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cadata=self.ca_pem) if self.ca_pem else None
        except (ssl.SSLError, ValueError) as err:
            raise CredentialsError(
                f"the CA bundle in {self.ca_source} is not PEM certificates: {err}"
            ) from err


# Reads a Secret of the operator's namespace: its decoded data, or None when it does not exist.
SecretReader = Callable[[str], Mapping[str, str] | None]


def secret_reader(
    read_secret: Callable[[str, str], Mapping[str, str] | None], namespace: str
) -> SecretReader:
    """A SecretReader over the API client's `read_secret(namespace, name)`; a refused read says
    which permission the operator lacks."""

    def read(name: str) -> Mapping[str, str] | None:
        try:
            return read_secret(namespace, name)
        except ApiError as err:
            raise CredentialsError(
                f"the operator cannot read Secret {namespace}/{name} ({err.status} {err.reason}): it "
                f"needs get on secrets in its own namespace {namespace}, which the chart's Role grants"
            ) from err

    return read


def connect(spec: PrometheusSpec, namespace: str, read_secret: SecretReader) -> Connection:
    """The connection spec.prometheus describes, its Secrets read from the operator's namespace.

    Raises CredentialsError, saying which Secret or key to create, when one is missing.
    """

    def value(secret: str, key: str, where: str, keys_hint: str) -> str:
        data = read_secret(secret)
        if data is None:
            raise CredentialsError(
                f"Secret {namespace}/{secret} named in spec.prometheus.{where} does not exist: create it "
                f"in the operator's namespace {namespace} with {keys_hint}"
            )
        if key not in data:
            raise CredentialsError(
                f"Secret {namespace}/{secret} named in spec.prometheus.{where} has no key {key!r}: add it, "
                f"or name the right key in spec.prometheus.{where}"
            )
        return data[key]

    authorization = credentials = None
    if spec.basic_auth is not None:
        auth = spec.basic_auth
        keys = f"keys {auth.username_key!r} and {auth.password_key!r}"
        user = value(auth.secret_name, auth.username_key, "basicAuth", keys)
        password = value(auth.secret_name, auth.password_key, "basicAuth", keys)
        authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        credentials = f"Secret {namespace}/{auth.secret_name} (spec.prometheus.basicAuth)"
    elif spec.bearer_token is not None:
        bearer = spec.bearer_token
        token = value(bearer.secret_name, bearer.key, "bearerToken", f"key {bearer.key!r}").strip()
        authorization = f"Bearer {token}"
        credentials = f"Secret {namespace}/{bearer.secret_name} (spec.prometheus.bearerToken)"
    ca_pem = ca_source = None
    insecure = False
    if spec.tls is not None:
        insecure = spec.tls.insecure_skip_verify
        if spec.tls.ca_secret_name is not None:
            ca_pem = value(spec.tls.ca_secret_name, spec.tls.ca_key, "tls", f"key {spec.tls.ca_key!r}")
            ca_source = f"Secret {namespace}/{spec.tls.ca_secret_name} (spec.prometheus.tls)"
    conn = Connection(
        url=spec.url,
        authorization=authorization,
        credentials=credentials,
        ca_pem=ca_pem,
        ca_source=ca_source,
        insecure_skip_verify=insecure,
        namespace=namespace,
    )
    conn.ssl_context()  # a CA bundle that does not parse is the Secret's fault: say so now
    return conn


def _refused(conn: Connection, code: int) -> PrometheusError:
    what = {401: "401 Unauthorized", 403: "403 Forbidden"}[code]
    if conn.credentials is None:
        where = f" {conn.namespace}" if conn.namespace else ""
        fix = (
            "it asks for credentials: set spec.prometheus.basicAuth or bearerToken to a Secret in "
            f"the operator's namespace{where}"
        )
    elif code == 401:
        fix = f"check the credentials in {conn.credentials}"
    else:
        fix = f"the credentials in {conn.credentials} may not query its HTTP API"
    return PrometheusError(f"Prometheus at {conn.url} answered {what}: {fix}", Reason.PROMETHEUS_UNAUTHORIZED)


def _get(conn: Connection, path: str, params: Mapping[str, str]) -> object:
    full = f"{conn.url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(full, headers={"Accept": "application/json"})
    if conn.authorization is not None:
        request.add_unredirected_header("Authorization", conn.authorization)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=conn.ssl_context()) as response:
            body = json.load(response)
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            raise _refused(conn, err.code) from err
        try:
            detail = json.load(err).get("error", err.reason)
        except (ValueError, AttributeError):
            detail = err.reason
        raise PrometheusError(f"Prometheus at {conn.url} answered {err.code}: {detail}") from err
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            trust = conn.ca_source or "the system's trusted CAs"
            raise PrometheusError(
                f"Prometheus at {conn.url} presented a certificate {trust} does not verify "
                f"({reason.verify_message}): set spec.prometheus.tls.caSecretName to the CA that signed it"
            ) from err
        raise PrometheusError(f"Prometheus at {conn.url} cannot be queried: {reason}") from err
    except (OSError, ValueError) as err:
        raise PrometheusError(f"Prometheus at {conn.url} cannot be queried: {err}") from err
    if not isinstance(body, dict) or body.get("status") != "success":
        raise PrometheusError(f"Prometheus at {conn.url} answered {body!r:.200}")
    return body.get("data")


def _results(data: object) -> list[dict[str, object]]:
    result = data.get("result", []) if isinstance(data, dict) else []
    return [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []


def _number(raw: object) -> float:
    try:
        return float(str(raw))
    except ValueError:
        return math.nan


# --------------------------------------------------------------------------------------------------
# The signals


def queries(pool: str, engine: EngineType, vendor: Vendor) -> dict[Signal, str]:
    """PromQL per signal for one pool and engine, each grouped by model (docs/autoscaling.md)."""
    sel = f'{{pool="{pool}"}}'
    if engine is EngineType.VLLM:
        engine_running = f"vllm:num_requests_running{sel}"
        result = {
            Signal.QPS: f"sum by ({BY}) (rate(vllm:request_success_total{sel}[1m]))",
            Signal.WAITING_REQUESTS: f"sum by ({BY}) (vllm:num_requests_waiting{sel})",
            Signal.RUNNING_REQUESTS: f"sum by ({BY}) ({engine_running})",
            # vllm:gpu_cache_usage_perc: the same gauge before vLLM 0.9.
            Signal.KV_CACHE_USAGE: f"avg by ({BY}) "
            f"(vllm:kv_cache_usage_perc{sel} or vllm:gpu_cache_usage_perc{sel})",
            Signal.TTFT_P99_SECONDS: "histogram_quantile(0.99, sum by "
            f"({BY}, le) (rate(vllm:time_to_first_token_seconds_bucket{sel}[1m])))",
            Signal.ERROR_RATE: f'sum by ({BY}) (rate(vllm:request_success_total{{pool="{pool}", '
            f'finished_reason="abort"}}[1m])) / sum by ({BY}) (rate(vllm:request_success_total{sel}[1m]))',
        }
    else:
        engine_running = f"nv_inference_pending_request_count{sel}"
        # One selector for both counters: nv_inference_request_failure carries a `reason` label
        # that nv_inference_request_success lacks, so `success + failure` would match nothing.
        both = (
            f"sum by ({BY}) (rate({{__name__=~"
            f'"nv_inference_request_success|nv_inference_request_failure", pool="{pool}"}}[1m]))'
        )
        result = {
            Signal.QPS: both,
            Signal.WAITING_REQUESTS: f"sum by ({BY}) (nv_inference_pending_request_count{sel})",
            Signal.ERROR_RATE: f"sum by ({BY}) (rate(nv_inference_request_failure{sel}[1m])) / {both}",
        }
    # Utilisation of the pods that run the engine: join the exporter's per-pod series on the
    # engine's own series, which carry the model label.
    if vendor is Vendor.NVIDIA:
        util = "DCGM_FI_DEV_GPU_UTIL"
    else:
        util = 'label_replace(npu_chip_info_utilization, "pod", "$1", "pod_name", "(.+)")'
    result[Signal.ACCELERATOR_UTILIZATION] = (
        f"avg by ({BY}) ({util} * on (namespace, pod) group_left (model_deployment) "
        f"group by (namespace, pod, model_deployment) ({engine_running})) / 100"
    )
    return result


@dataclass
class PoolMetrics:
    """Windows by (namespace, name); `error` when Prometheus could not be queried."""

    timestamps: list[float]
    series: dict[Signal, dict[ModelKey, list[float]]] = field(default_factory=dict)
    exported: frozenset[Signal] = frozenset()
    error: str | None = None
    error_reason: Reason = Reason.PROMETHEUS_UNREACHABLE
    # The seasonal forecast's coarse QPS history, by model: (times, QPS), finite points only.
    history: Mapping[ModelKey, tuple[list[float], list[float]]] = field(default_factory=dict)

    def window(self, namespace: str, name: str) -> MetricsWindow:
        model = f"{namespace}/{name}"
        if self.error is not None:
            # Expected but absent: every signal the engine exports reads as missing.
            return MetricsWindow(model=model, **{s.value: [] for s in self.exported})
        values: dict[str, list[float] | None] = {}
        for signal in Signal:
            if signal not in self.exported:
                continue
            by_model = self.series.get(signal, {})
            values[signal.value] = by_model.get((namespace, name)) or [math.nan] * len(self.timestamps)
        times, qps = self.history.get((namespace, name), ([], []))
        return MetricsWindow(
            model=model,
            timestamps=list(self.timestamps),
            qps_history_timestamps=list(times),
            qps_history=list(qps),
            **values,
        )

    def has_series(self, namespace: str, name: str) -> bool:
        return any((namespace, name) in by_model for by_model in self.series.values())


def unavailable(
    engine: EngineType, vendor: Vendor, reason: str, kind: Reason = Reason.PROMETHEUS_UNREACHABLE
) -> PoolMetrics:
    """Metrics that could not be read at all: every signal of the engine is missing."""
    return PoolMetrics(
        timestamps=[], exported=frozenset(queries("", engine, vendor)), error=reason, error_reason=kind
    )


def read_pool(
    conn: Connection,
    pool: str,
    engine: EngineType,
    vendor: Vendor,
    now: float,
    range_seconds: float,
    step_seconds: float,
) -> PoolMetrics:
    """One range query per signal over [now - range_seconds, now], every model of the pool at once."""
    step = max(1.0, step_seconds)
    points = max(1, int(range_seconds // step))
    end = math.floor(now / step) * step
    start = end - (points - 1) * step
    timestamps = [start + i * step for i in range(points)]
    result = PoolMetrics(timestamps=timestamps)
    exprs = queries(pool, engine, vendor)
    result.exported = frozenset(exprs)
    index = {round(t, 3): i for i, t in enumerate(timestamps)}
    for signal, expr in exprs.items():
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        try:
            data = _get(conn, "/api/v1/query_range", params)
        except PrometheusError as err:
            log.warning("autoscaler: %s", err, extra={"obj_kind": "InferencePool", "obj_name": pool})
            result.error = str(err)
            result.error_reason = err.reason
            return result
        by_model: dict[ModelKey, list[float]] = {}
        for series in _results(data):
            labels = series.get("metric")
            labels = labels if isinstance(labels, dict) else {}
            key = (str(labels.get("namespace", "")), str(labels.get("model_deployment", "")))
            if not key[1]:
                continue
            values = [math.nan] * len(timestamps)
            raw_values = series.get("values")
            for time, raw in raw_values if isinstance(raw_values, list) else []:
                slot = index.get(round(float(time), 3))
                if slot is not None:
                    values[slot] = _number(raw)
            by_model[key] = values
        result.series[signal] = by_model
    return result


# --------------------------------------------------------------------------------------------------
# The seasonal history


@dataclass(frozen=True)
class HistoryPlan:
    """One coarse range query for a pool's QPS history, and how long its answer stays useful."""

    span_seconds: int
    step_seconds: int
    refresh_seconds: int

    @property
    def rate_window_seconds(self) -> int:
        return max(self.step_seconds, MIN_RATE_WINDOW_SECONDS)


def history_plan(models: Iterable[tuple[int, float]]) -> HistoryPlan | None:
    """The history query for models given as (seasonal period, forecast horizon) in seconds.

    The range is the longest period plus one step, so that the forecast can interpolate at
    `now - period` and at `now + horizon - period`; the step is the finest any model wants (a
    period / 288, within [15 s, 5 min]) unless Prometheus' 11,000-intervals limit needs a coarser
    one. A model whose horizon reaches a whole period has nothing to read from a period ago and
    asks for nothing; None when no model asks.

    The answer stays useful while `now + horizon - period` is inside it, i.e. for `period -
    horizon` seconds: it is refreshed after at most half of that, at most every
    HISTORY_REFRESH_SECONDS, at least one step apart.
    """
    wanted = [(period, horizon) for period, horizon in models if horizon < period]
    if not wanted:
        return None
    longest = max(period for period, _ in wanted)
    preferred = min(
        max(HISTORY_MIN_STEP_SECONDS, math.ceil(period / HISTORY_POINTS_PER_PERIOD)) for period, _ in wanted
    )
    preferred = min(preferred, HISTORY_MAX_STEP_SECONDS)
    # (longest + step) / step <= MAX_RANGE_INTERVALS  <=>  step >= longest / (MAX_RANGE_INTERVALS - 1)
    step = max(preferred, math.ceil(longest / (MAX_RANGE_INTERVALS - 1)))
    usable = min(period - horizon for period, horizon in wanted)
    refresh = max(step, min(HISTORY_REFRESH_SECONDS, math.floor(usable / 2)))
    return HistoryPlan(span_seconds=longest + step, step_seconds=step, refresh_seconds=refresh)


def history_query(pool: str, rate_window_seconds: int) -> str:
    """Requests finished per second by model, every engine of the pool in one selector."""
    names = "|".join(FINISHED_SERIES)
    return f'sum by ({BY}) (rate({{__name__=~"{names}", pool="{pool}"}}[{rate_window_seconds}s]))'


@dataclass(frozen=True)
class QpsHistory:
    """A pool's coarse QPS history by model, as read at `read_at`."""

    read_at: float
    by_model: Mapping[ModelKey, tuple[list[float], list[float]]]


def read_history(conn: Connection, pool: str, plan: HistoryPlan, now: float) -> QpsHistory:
    """One range query over the plan's span for every model of the pool; raises PrometheusError."""
    step = plan.step_seconds
    end = math.floor(now / step) * step
    start = end - plan.span_seconds
    params = {
        "query": history_query(pool, plan.rate_window_seconds),
        "start": f"{start:.0f}",
        "end": f"{end:.0f}",
        "step": f"{step}",
    }
    data = _get(conn, "/api/v1/query_range", params)
    by_model: dict[ModelKey, tuple[list[float], list[float]]] = {}
    for series in _results(data):
        labels = series.get("metric")
        labels = labels if isinstance(labels, dict) else {}
        key = (str(labels.get("namespace", "")), str(labels.get("model_deployment", "")))
        raw_values = series.get("values")
        points = [
            (float(t), v)
            for t, raw in (raw_values if isinstance(raw_values, list) else [])
            if math.isfinite(v := _number(raw)) and v >= 0
        ]
        if key[1] and points:
            by_model[key] = ([t for t, _ in points], [v for _, v in points])
    return QpsHistory(read_at=now, by_model=by_model)


# --------------------------------------------------------------------------------------------------
# In-flight requests per pod


def in_flight_query(pool: str) -> str:
    """Requests in flight on each pod of the pool (running plus queued), every engine at once."""
    names = "|".join(IN_FLIGHT_SERIES)
    return f'sum by (namespace, pod) ({{__name__=~"{names}", pool="{pool}"}})'


def in_flight_from_vector(data: object) -> dict[PodKey, float]:
    """{(namespace, pod): requests} from an instant-query answer; unusable samples are left out."""
    loads: dict[PodKey, float] = {}
    for series in _results(data):
        labels = series.get("metric")
        labels = labels if isinstance(labels, dict) else {}
        value = series.get("value")
        if not isinstance(value, list) or len(value) != 2 or not labels.get("pod"):
            continue
        number = _number(value[1])
        if math.isfinite(number) and number >= 0:
            loads[(str(labels.get("namespace", "")), str(labels["pod"]))] = number
    return loads


def read_in_flight(conn: Connection, pool: str, now: float) -> dict[PodKey, float]:
    """One instant query for every pod of the pool; raises PrometheusError."""
    data = _get(conn, "/api/v1/query", {"query": in_flight_query(pool), "time": f"{now:.3f}"})
    return in_flight_from_vector(data)


# --------------------------------------------------------------------------------------------------
# A canary's step


# Prometheus needs two samples in a window for `increase`; shorter steps are read over this.
MIN_STEP_WINDOW_SECONDS = 30


def step_queries(namespace: str, model: str, revisions: Sequence[str], window_seconds: int) -> dict[str, str]:
    """PromQL for the versions of a model over a step, each grouped by version: requests finished,
    those aborted, and the p99 time to first token (vLLM's series, by the pods'
    `gpupool.io/revision` relabelled as `revision`)."""
    versions = "|".join(revisions)
    sel = f'namespace="{namespace}", model_deployment="{model}", revision=~"{versions}"'
    window = f"[{max(MIN_STEP_WINDOW_SECONDS, window_seconds)}s]"
    return {
        "requests": f"sum by (revision) (increase(vllm:request_success_total{{{sel}}}{window}))",
        "errors": "sum by (revision) "
        f'(increase(vllm:request_success_total{{{sel}, finished_reason="abort"}}{window}))',
        "ttft_p99": "histogram_quantile(0.99, sum by (le, revision) "
        f"(increase(vllm:time_to_first_token_seconds_bucket{{{sel}}}{window})))",
    }


def _by_revision(conn: Connection, expr: str, now: float) -> dict[str, float]:
    """An instant query's finite values, by their `revision` label."""
    values: dict[str, float] = {}
    for series in _results(_get(conn, "/api/v1/query", {"query": expr, "time": f"{now:.3f}"})):
        labels, value = series.get("metric"), series.get("value")
        number = _number(value[1]) if isinstance(value, list) and len(value) == 2 else math.nan
        if isinstance(labels, dict) and math.isfinite(number):
            values[str(labels.get("revision", ""))] = number
    return values


@dataclass(frozen=True)
class StepReading:
    """What Prometheus holds of one version over the step (None: no series)."""

    requests: float | None
    errors: float | None
    ttft_p99_seconds: float | None


def read_step(
    conn: Connection, namespace: str, model: str, revisions: Sequence[str], since: float, now: float
) -> dict[str, StepReading]:
    """Each version's figures since the step began, one query per figure for all of them.
    Raises PrometheusError."""
    exprs = step_queries(namespace, model, revisions, math.ceil(max(0.0, now - since)))
    requests = _by_revision(conn, exprs["requests"], now)
    errors = _by_revision(conn, exprs["errors"], now)
    ttft = _by_revision(conn, exprs["ttft_p99"], now)
    # No aborted series while none failed: zero errors once any request was counted.
    return {
        r: StepReading(requests.get(r), errors.get(r, 0.0) if r in requests else errors.get(r), ttft.get(r))
        for r in revisions
    }
