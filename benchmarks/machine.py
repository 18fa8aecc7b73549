"""The machine a benchmark ran on: CPU, cores, RAM, Python, OS."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def describe() -> dict[str, Any]:
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "ram_gib": _ram_gib(),
            "python": sys.version.split()[0], "os": platform.platform(terse=True)}


def line(m: dict[str, Any]) -> str:
    ram = f", {m['ram_gib']} GiB RAM" if m.get("ram_gib") else ""
    return f"{m['cpu']}, {m['cores']} cores{ram}, Python {m['python']}, {m['os']}"
