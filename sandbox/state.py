"""What one running sandbox knows besides moto's backends: counters, faults and settings."""

import threading
from typing import Any

from .calls import CallCounter
from .faults import FaultInjector
from .workspaces import ImportSettings

CONFIG_KEYS = ("import_delay", "image_quota")
# A delay past a day is a typo: AWS itself takes 90 minutes to 3 hours for a BYOL import.
MAX_IMPORT_DELAY = 86_400.0


class InvalidConfig(ValueError):
    """A config update the sandbox refuses; the message says which key is wrong and why."""


def _import_delay(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_IMPORT_DELAY:
        raise InvalidConfig(f"import_delay must be a number of seconds from 0 to {MAX_IMPORT_DELAY:g}, not {value!r}")
    return float(value)


def _image_quota(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfig(f"image_quota must be a whole number of at least 1, or null for no quota, not {value!r}")
    return value


class SandboxState:
    """Thread-safe: the server answers each request on its own thread."""

    def __init__(self, *, import_delay: float, image_quota: int | None = None) -> None:
        self.calls = CallCounter()
        self.faults = FaultInjector()
        self._lock = threading.Lock()
        self._import_delay = _import_delay(import_delay)
        # None: no quota. AWS's default is 40 images per Region, but a benchmark that imports
        # more than that should not stall, so the quota is opt-in through /_sandbox/config.
        self._image_quota = _image_quota(image_quota)

    def import_settings(self) -> ImportSettings:
        with self._lock:
            return ImportSettings(
                import_delay=self._import_delay,
                byol_enabled=self.faults.faults.byol_enabled,
                image_quota=self._image_quota,
            )

    def config(self) -> dict[str, Any]:
        with self._lock:
            return {"import_delay": self._import_delay, "image_quota": self._image_quota}

    def update_config(self, payload: Any) -> dict[str, Any]:
        """Apply ``{"import_delay": 5}`` and the like; the delay counts for imports made after."""
        if not isinstance(payload, dict):
            raise InvalidConfig('the body must be a JSON object such as {"import_delay": 5}')
        unknown = sorted(set(payload) - set(CONFIG_KEYS))
        if unknown:
            raise InvalidConfig(f"unknown config keys {unknown}; known keys are {list(CONFIG_KEYS)}")
        # Check every key before changing any, so a refused update changes nothing.
        delay = _import_delay(payload["import_delay"]) if "import_delay" in payload else None
        quota = _image_quota(payload["image_quota"]) if "image_quota" in payload else None
        with self._lock:
            if "import_delay" in payload:
                self._import_delay = delay  # type: ignore[assignment]
            if "image_quota" in payload:
                self._image_quota = quota
        return self.config()

    def reset(self) -> None:
        """Clear counters and faults; settings and images stay."""
        self.calls.reset()
        self.faults.reset()
