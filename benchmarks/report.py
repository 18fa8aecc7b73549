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
    cpu = f", the GUI thread's own CPU for showing it {r['gui_cpu_ms']} ms" if r.get("gui_cpu_ms") is not None else ""
    return (f"{r['users']:,} users: **{r['requests_per_refresh']} requests** per refresh (goal ≤ "
            f"{r['requests_goal']}); worst GUI-thread stall during a refresh **{r['worst_stall_ms']} ms** (goal ≤ "
            f"{r['stall_goal_ms']}){cpu}; peak resident memory of the test process (app + pytest; the 10,000-user sandbox runs apart) "
            f"**{r['peak_rss_mb']} MB** (goal ≤ {r['rss_goal_mb']})")


def _b5(r: dict[str, Any]) -> str:
    return (f"`dist/xtwizard/`: **{r['mb']} MB** ({r['mib']} MiB); the bare-QWizard baseline: {r['baseline_mb']} MB "
            f"({r['build']})")


ROWS = [("B1", "cold start", "ratio ≤ 1.3", _b1), ("B2", "setup, 50 ms per request", "ratio ≤ 1.5", _b2),
        ("B3", "preparation under a throttle", "≥ 80 %, nothing lost", _b3),
        ("B4", "monitoring", "see row", _b4), ("B5", "size", "≤ 150 MB", _b5)]


# Why a goal is not met and what would close it (shown under the table for the goals a run did not meet).
NOTES = {
    "B1": "the gap is import time before the first paint (the wizard's own modules and PySide6's extra widgets; "
          "see \"Size and start time\" above); on this shared 2-core machine single runs vary by ±30 %. "
          "Closing it: defer more of what is imported before the first paint (open work).",
    "B2": "the setup sends 49 requests in 22 rounds for a critical path of 21 (each change is followed by one "
          "round re-reading only what it touched); the one round not on the critical path is the verification's "
          "(15 reads at the depth of the last change's re-read). The rest of the wall time is CPU on the two "
          "shared cores: the client's and the in-process sandbox's work per request, the TLS handshakes of the "
          "first rounds and the journal's two fsyncs per change; the ratio is 1.3-1.4 on a quiet machine and up "
          "to about 1.7 while other test runs share the cores. Closing it: measure with the sandbox in its own "
          "process, as B3 and B4 suggest.",
    "B3": "nothing was lost or duplicated and no request was throttled: the app keeps 4 requests in flight per "
          "tenant (its HTTP policy's gate, equal to the limit here), but each took about 110 ms instead of 50. "
          "Part is the in-process sandbox, whose time per request grows with the tenant (median 53 ms at 1,000 "
          "users, 59 ms at 2,500, latency included; the share was 69 % and 61 % there), part the client on the "
          "same 2 cores: httpcore tries `import sniffio` (not installed) on every request, and with it stubbed "
          "300 users went from 36 % to 45 %. Closing it: install sniffio, measure against the sandbox in its own "
          "process, and size the gate to the tenant's limit.",
    "B4": "requests per refresh and memory meet their goals; the stall (the longest gap of a 10 ms timer on the "
          "GUI thread while a refresh is read, built and shown) does not: the worst came with the refresh right "
          "after the sandbox clock passed the validation of all 10,000 users (the first refresh stalled less), "
          "work the in-process sandbox does once, in about 2 s of Python in the GUI's own process (docs/sandbox/exchange.md, "
          "\"Large scenarios\"); the GUI thread's own CPU for showing a refresh is the figure given. Closing it: "
          "measure with the sandbox in its own process, as the real service is.",
}


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
            text = " ".join(f"{r['status']}: {r.get('why', '')}".replace("|", "/").split())[:400]
        when = f" ({r['measured_at']})" if r and r.get("measured_at") else ""
        lines.append(f"| {key} | {title} | {text}{when} | {goal} | {_met(r or {})} |")
    unmet = [k for k, *_ in ROWS if doc["results"].get(k, {}).get("status") == "measured"
             and not doc["results"][k].get("met")]
    if unmet:
        lines += ["", "Not met:", ""] + [f"* {k}: {NOTES[k]}" for k in unmet]
    return "\n".join(lines)


def write_readme(readme: Path, table: str) -> None:
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} block")
    block = f"{START}\n{table}\n{END}"
    readme.write_text(re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S),
                      encoding="utf-8")
