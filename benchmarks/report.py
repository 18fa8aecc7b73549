"""The results table (Markdown) and its place in README.md, between the bench markers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from benchmarks import machine

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _met(r: dict[str, Any]) -> str:
    if r.get("status") != "measured":
        return "—"
    return "**yes**" if r.get("met") else "**no**"


def _b1(r: dict[str, Any]) -> str:
    return (f"xtwizard {r['app_median_s']} s, bare frozen QWizard {r['baseline_median_s']} s: **ratio {r['ratio']}** "
            f"({r['mode']}, median of {r['runs']}; {r['build']})")


def _b2(r: dict[str, Any]) -> str:
    c, s = r["concurrent"], r["sequential"]
    return (f"{c['requests']} requests ({c['writes']} writes), critical path {c['critical_path']} requests "
            f"(= {c['critical_path'] * r['latency_ms'] / 1000:.2f} s at {r['latency_ms']} ms): xtwizard {c['wall_s']} s, "
            f"**ratio {c['ratio']}** (up to {c['peak_in_flight']} requests in flight); one request at a time like "
            f"Microsoft's scripts: {s['wall_s']} s, ratio {s['ratio']}")


def _b3(r: dict[str, Any]) -> str:
    return (f"{r['done']:,} of {r['users']:,} MailUsers in {r['wall_s']} s: {r['requests']:,} requests, "
            f"{r['requests_per_s']}/s of the limit's {r['capacity_per_s']}/s ({r['limit']} concurrent × "
            f"{r['latency_ms']} ms) = **{r['share'] * 100:.0f} %**; {r['lost']} lost, {r['duplicated']} duplicated, "
            f"{r['failed']} failed, {r['throttled']} throttled answers, peak {r['peak_in_flight']} in flight")


def _b4(r: dict[str, Any]) -> str:
    return (f"{r['users']:,} users: **{r['requests_per_refresh']} requests** per refresh (goal ≤ "
            f"{r['requests_goal']}); worst GUI-thread stall during a refresh **{r['worst_stall_ms']} ms** (goal ≤ "
            f"{r['stall_goal_ms']}); peak resident memory **{r['peak_rss_mb']} MB** (goal ≤ {r['rss_goal_mb']})")


def _b5(r: dict[str, Any]) -> str:
    return (f"`dist/xtwizard/`: **{r['mb']} MB** ({r['mib']} MiB); the bare-QWizard baseline: {r['baseline_mb']} MB "
            f"({r['build']})")


ROWS = [("B1", "cold start", "ratio ≤ 1.3", _b1), ("B2", "setup, 50 ms per request", "ratio ≤ 1.5", _b2),
        ("B3", "preparation under a throttle", "≥ 80 %, nothing lost", _b3),
        ("B4", "monitoring", "see row", _b4), ("B5", "size", "≤ 150 MB", _b5)]


def render(doc: dict[str, Any]) -> str:
    lines = [f"Machine: {machine.line(doc['machine'])}.", "",
             "| | benchmark | measured | goal | met |", "|---|---|---|---|---|"]
    for key, title, goal, fmt in ROWS:
        r = doc["results"].get(key)
        if r is None:
            text = "not run"
        elif r.get("status") == "measured":
            text = fmt(r)
        else:
            text = f"{r['status']}: {r.get('why', '')}"
        when = f" ({r['measured_at']})" if r and r.get("measured_at") else ""
        lines.append(f"| {key} | {title} | {text}{when} | {goal} | {_met(r or {})} |")
    return "\n".join(lines)


def write_readme(readme: Path, table: str) -> None:
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} block")
    block = f"{START}\n{table}\n{END}"
    readme.write_text(re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S),
                      encoding="utf-8")
