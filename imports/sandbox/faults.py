"""Faults the sandbox injects into AWS calls: throttling, latency and BYOL switched off.

Set at run time with ``POST /_sandbox/faults`` so tests and benchmarks can see how the portal
copes with a slow or throttling AWS, and cleared with ``POST /_sandbox/reset``.
"""

import math
import threading
from dataclasses import dataclass, replace
from typing import Any

# A latency above this is a typo, not a test: one call would outlive any client timeout.
MAX_LATENCY_MS = 60_000

FAULT_KEYS = ("throttle_rate", "latency_ms", "byol_enabled", "operations")


class InvalidFaults(ValueError):
    """A fault update the sandbox refuses; the message says which key is wrong and why."""


@dataclass(frozen=True)
class Faults:
    throttle_rate: float = 0.0
    latency_ms: float = 0.0
    byol_enabled: bool = True
    # None means every operation; otherwise throttling and latency hit only these.
    operations: frozenset[str] | None = None

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations

    def as_json(self) -> dict[str, Any]:
        return {
            "throttle_rate": self.throttle_rate,
            "latency_ms": self.latency_ms,
            "byol_enabled": self.byol_enabled,
            "operations": sorted(self.operations) if self.operations is not None else None,
        }


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one AWS call before it is answered."""

    latency_seconds: float
    throttle: bool


def _number(payload: dict[str, Any], key: str, *, low: float, high: float) -> float:
    value = payload[key]
    # bool is an int in Python; `true` is not a rate.
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidFaults(f"{key} must be a number from {low:g} to {high:g}, not {value!r}")
    return float(value)


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
    if "throttle_rate" in payload:
        changes["throttle_rate"] = _number(payload, "throttle_rate", low=0.0, high=1.0)
    if "latency_ms" in payload:
        changes["latency_ms"] = _number(payload, "latency_ms", low=0.0, high=MAX_LATENCY_MS)
    if "byol_enabled" in payload:
        if not isinstance(payload["byol_enabled"], bool):
            raise InvalidFaults(f"byol_enabled must be true or false, not {payload['byol_enabled']!r}")
        changes["byol_enabled"] = payload["byol_enabled"]
    if "operations" in payload:
        changes["operations"] = _operations(payload["operations"])
    return replace(current, **changes)


class FaultInjector:
    """Thread-safe holder of the current faults, deciding the fate of each AWS call.

    Throttling is deterministic rather than random: with a rate r, call n (counting only calls
    the faults apply to) is throttled when floor(n * r) grows, so exactly that share of calls
    fails and a test or benchmark gives the same result on every run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = Faults()
        self._eligible_calls = 0
        self._throttled_calls = 0

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def update(self, payload: Any) -> Faults:
        with self._lock:
            self._faults = merge_faults(self._faults, payload)
            self._eligible_calls = self._throttled_calls = 0
            return self._faults

    def reset(self) -> None:
        with self._lock:
            self._faults = Faults()
            self._eligible_calls = self._throttled_calls = 0

    def decide(self, operation: str) -> FaultDecision:
        with self._lock:
            faults = self._faults
            if not faults.applies_to(operation):
                return FaultDecision(latency_seconds=0.0, throttle=False)
            self._eligible_calls += 1
            # The epsilon keeps 10 * 0.1 from flooring to 0.999... -> 0.
            due = math.floor(self._eligible_calls * faults.throttle_rate + 1e-9)
            throttle = due > self._throttled_calls
            if throttle:
                self._throttled_calls += 1
            return FaultDecision(latency_seconds=faults.latency_ms / 1000.0, throttle=throttle)
