"""Autoscaling: from Prometheus signals to an instance count, calm and fast.

Pure: no Kubernetes, no HTTP, no clock. The operator (or the simulator) gathers a `MetricsWindow`,
keeps a `ScalerState` in status, and calls `decide_replicas` every evaluation interval.
"""

from gpupool.scaling.decide import (
    Direction,
    ScalingDecision,
    SignalValues,
    decide_replicas,
    instances_for,
)
from gpupool.scaling.forecast import Forecast, forecast_demand
from gpupool.scaling.policy import AutoscalingPolicy
from gpupool.scaling.state import Recommendation, ScaleEvent, ScalerState
from gpupool.scaling.window import MetricsWindow, Reading, Signal, SignalStatus, read_signal

__all__ = [
    "AutoscalingPolicy",
    "Direction",
    "Forecast",
    "MetricsWindow",
    "Reading",
    "Recommendation",
    "ScaleEvent",
    "ScalerState",
    "ScalingDecision",
    "Signal",
    "SignalStatus",
    "SignalValues",
    "decide_replicas",
    "forecast_demand",
    "instances_for",
    "read_signal",
]
