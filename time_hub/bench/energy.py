"""Energy counters: read a hardware counter before and after a timed loop, or say that none exists.

- NVML total-energy counter (NVIDIA GPUs since Volta; millijoules since driver load), via `nvidia-ml-py`.
- RAPL package counters under `/sys/class/powercap` (Intel, and AMD on recent kernels; microjoules, wrapping).
- codecarbon's offline tracker when installed: an *estimate* (it models CPU power from TDP when no counter is
  readable); always labelled as such in bench.json.
Never a made-up number: without any of these, `open_counter` returns None and the report says "not available".
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)
POWERCAP = Path("/sys/class/powercap")


class NvmlCounter:
    kind = "measured"

    def __init__(self, device_index: int):
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        self.name = f"NVML total energy, GPU {device_index} ({pynvml.nvmlDeviceGetName(self._handle)})"
        self.read()  # raises NVMLError_NotSupported on GPUs without the counter

    def read(self) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3


class RaplCounter:
    """Sum of the top-level package domains (intel-rapl:N), handling counter wrap-around between reads."""

    kind = "measured"

    def __init__(self, root: Path | None = None):
        root = root or POWERCAP
        self.domains = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not self.domains:
            raise FileNotFoundError(f"no RAPL package domains under {root}")
        self._ranges = [int((d / "max_energy_range_uj").read_text()) for d in self.domains]
        self._last = self._raw()  # PermissionError when only root may read the counters
        self._total = 0.0
        names = ", ".join((d / "name").read_text().strip() for d in self.domains)
        self.name = f"RAPL ({names})"

    def _raw(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def read(self) -> float:
        raw = self._raw()
        for now, last, span in zip(raw, self._last, self._ranges):
            self._total += (now - last if now >= last else now + span - last) / 1e6
        self._last = raw
        return self._total


class CodecarbonEstimate:
    kind = "estimate"

    def __init__(self):
        from codecarbon import OfflineEmissionsTracker

        self._tracker_class = OfflineEmissionsTracker
        self.name = "codecarbon offline tracker (estimate: modelled power, not a hardware counter)"
        self._joules = 0.0
        self._tracker = None

    def read(self) -> float:
        # codecarbon integrates power between start and stop; each read closes one interval and opens the next.
        if self._tracker is not None:
            self._tracker.stop()
            self._joules += float(self._tracker.final_emissions_data.energy_consumed) * 3.6e6  # kWh -> J
        self._tracker = self._tracker_class(
            country_iso_code="DNK", save_to_file=False, log_level="error", measure_power_secs=1
        )
        self._tracker.start()
        return self._joules


def open_counter(device: str, estimate: bool = False):
    """The best energy counter for `device` ("cpu" or "cuda[:N]"), or None (logged with the reason)."""
    attempts = []
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        attempts.append(lambda: NvmlCounter(index))
    else:
        attempts.append(RaplCounter)
    if estimate:
        attempts.append(CodecarbonEstimate)
    reasons = []
    for attempt in attempts:
        try:
            return attempt()
        except Exception as e:  # missing package, unsupported GPU, no powercap, no permission: all mean "absent"
            reasons.append(f"{type(e).__name__}: {e}")
    logger.info("energy: no counter readable on %s (%s), so energy is reported as not available", device,
                "; ".join(reasons).splitlines()[0][:120])  # fmt: skip
    return None
