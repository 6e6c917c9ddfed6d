"""Faults the sandbox injects into AWS calls: throttling, server errors, latency, AWS out of
reach and BYOL switched off.

Set at run time with ``POST /_sandbox/faults`` so tests and benchmarks can see how the portal
copes with a slow, throttling, failing or unreachable AWS, and cleared with ``POST /_sandbox/reset``.
"""

import math
import threading
from dataclasses import dataclass, replace
from typing import Any

# A latency above this is a typo, not a test: one call would outlive any client timeout.
MAX_LATENCY_MS = 60_000

FAULT_KEYS = ("throttle_rate", "server_error_rate", "latency_ms", "down", "byol_enabled", "operations")


class InvalidFaults(ValueError):
    """A fault update the sandbox refuses; the message says which key is wrong and why."""


@dataclass(frozen=True)
class Faults:
    throttle_rate: float = 0.0
    server_error_rate: float = 0.0
    latency_ms: float = 0.0
    # True: every call the faults apply to has its connection dropped without an answer.
    down: bool = False
    byol_enabled: bool = True
    # None means every operation; otherwise throttling, server errors, latency and down hit only these.
    operations: frozenset[str] | None = None

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations

    def as_json(self) -> dict[str, Any]:
        return {
            "throttle_rate": self.throttle_rate,
            "server_error_rate": self.server_error_rate,
            "latency_ms": self.latency_ms,
            "down": self.down,
            "byol_enabled": self.byol_enabled,
            "operations": sorted(self.operations) if self.operations is not None else None,
        }


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one AWS call: wait, then at most one of drop, throttle or server error."""

    latency_seconds: float = 0.0
    drop: bool = False
    throttle: bool = False
    server_error: bool = False


def _number(payload: dict[str, Any], key: str, *, low: float, high: float) -> float:
    value = payload[key]
    # bool is an int in Python; `true` is not a rate.
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidFaults(f"{key} must be a number from {low:g} to {high:g}, not {value!r}")
    return float(value)


def _flag(payload: dict[str, Any], key: str) -> bool:
    value = payload[key]
    if not isinstance(value, bool):
        raise InvalidFaults(f"{key} must be true or false, not {value!r}")
    return value


def _operations(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InvalidFaults(f"operations must be a list of operation names or null, not {value!r}")
    return frozenset(value)


def merge_faults(current: Faults, payload: Any) -> Faults:
    """The faults after applying ``payload``: keys left out keep their current value."""
    if not isinstance(payload, dict):
        raise InvalidFaults('the body must be a JSON object such as {"throttle_rate": 0.5}')
    unknown = sorted(set(payload) - set(FAULT_KEYS))
    if unknown:
        raise InvalidFaults(f"unknown fault keys {unknown}; known keys are {list(FAULT_KEYS)}")
    changes: dict[str, Any] = {}
    for rate in ("throttle_rate", "server_error_rate"):
        if rate in payload:
            changes[rate] = _number(payload, rate, low=0.0, high=1.0)
    if "latency_ms" in payload:
        changes["latency_ms"] = _number(payload, "latency_ms", low=0.0, high=MAX_LATENCY_MS)
    for flag in ("down", "byol_enabled"):
        if flag in payload:
            changes[flag] = _flag(payload, flag)
    if "operations" in payload:
        changes["operations"] = _operations(payload["operations"])
    return replace(current, **changes)


class FaultInjector:
    """Thread-safe holder of the current faults, deciding the fate of each AWS call.

    Throttling and server errors are deterministic rather than random: with a rate r, call n
    (counting only calls the faults apply to) fails when floor(n * r) grows past the failures
    already given, so exactly that share of calls fails and a test or benchmark gives the same
    result on every run. When both are due on one call the throttle wins and the server error
    moves to the next call, so each rate keeps its share while the two add up to at most 1.
    While ``down`` is on, calls are dropped and take no turn from either rate.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = Faults()
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._eligible_calls = 0
        self._throttled_calls = 0
        self._server_errors = 0

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def update(self, payload: Any) -> Faults:
        with self._lock:
            self._faults = merge_faults(self._faults, payload)
            self._reset_counters()
            return self._faults

    def reset(self) -> None:
        with self._lock:
            self._faults = Faults()
            self._reset_counters()

    def _due(self, rate: float, given: int) -> bool:
        # The epsilon keeps 10 * 0.1 from flooring to 0.999... -> 0.
        return math.floor(self._eligible_calls * rate + 1e-9) > given

    def decide(self, operation: str) -> FaultDecision:
        with self._lock:
            faults = self._faults
            if not faults.applies_to(operation):
                return FaultDecision()
            latency_seconds = faults.latency_ms / 1000.0
            if faults.down:
                return FaultDecision(latency_seconds=latency_seconds, drop=True)
            self._eligible_calls += 1
            throttle = self._due(faults.throttle_rate, self._throttled_calls)
            server_error = not throttle and self._due(faults.server_error_rate, self._server_errors)
            if throttle:
                self._throttled_calls += 1
            if server_error:
                self._server_errors += 1
            return FaultDecision(latency_seconds=latency_seconds, throttle=throttle, server_error=server_error)
