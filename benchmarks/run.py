"""fwprep's benchmarks: fwprep against the tools a user would pick instead, in one run.

    pip install -e '.[bench]'          # adds fireworks-ai and matplotlib
    python benchmarks/run.py           # every scenario; about an hour
    python benchmarks/run.py --quick   # a seconds-long smoke run
    python benchmarks/run.py --only throttled   # one scenario; the others' figures are kept
    python benchmarks/run.py --from-json        # rewrite RESULTS.md and the plots, run nothing

Writes benchmarks/results/RESULTS.md (a table per scenario, with the machine, date, Python and
package versions), benchmarks/results/throughput.png (requests/s against concurrency, one
line per tool) and benchmarks/results/throttled.png (wall time over the ideal of whole jobs on
one rate-limited account, by limit, Retry-After and number of processes). Servers and clients
run in separate processes on loopback. nginx (Debian's package: apt-get install nginx-light)
answers `{}` for the client-overhead scenario when it is installed, the fwprep emulator
otherwise; GNU parallel with curl (apt-get install parallel curl) is measured when installed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from plotting import pyplot
from request_path import markdown as request_path_markdown
from request_path import scenario as scenario_request_path
from state import (
    markdown_check,
    markdown_journal,
    markdown_listing,
    scenario_check,
    scenario_journal,
    scenario_listing,
)
from throttled import markdown as throttled_markdown
from throttled import markdown_shapes, scenario_shapes, scenario_throttled
from throttled import plot as throttled_plot
from waiting import markdown as wait_markdown
from waiting import scenario_wait

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CLIENTS = HERE / "clients.py"
KEY = "bench-key"


# -- servers ----------------------------------------------------------------------------


@contextmanager
def nginx_server() -> Iterator[str]:
    """nginx answering 200 {} to everything, one worker, on a free loopback port."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            f"worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n"
            "events { worker_connections 8192; }\n"
            "http { access_log off; client_body_temp_path " + tmp + ";\n"
            f"  server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;\n"
            "    location / { default_type application/json; return 200 '{}'; } } }\n"
        )
        proc = subprocess.Popen(["nginx", "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_listening(url)
            yield url
        finally:
            proc.terminate()
            proc.wait()


@contextmanager
def emulator_server(*args: str) -> Iterator[str]:
    """The fwprep emulator in its own process."""
    command = [
        sys.executable,
        "-m",
        "fwprep",
        "emulator",
        "--port",
        "0",
        "--api-key",
        KEY,
        "--prepare-delay",
        "0",
        *args,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        match = re.search(r"(http://\S+)", proc.stdout.readline())
        if not match:
            raise RuntimeError("the emulator did not start")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(url: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def emulator_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_emulator/stats", timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


# -- clients --------------------------------------------------------------------------------


def run_client(tool: str, url: str, concurrency: int, count: int) -> dict[str, Any]:
    """One client run in its own process; adds peak RSS (MB) from wait4."""
    if tool == "curl":
        return run_curl(url, concurrency, count)
    proc = subprocess.Popen(
        [sys.executable, str(CLIENTS), tool, url, KEY, str(concurrency), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["rss_mb"] = usage.ru_maxrss / 1024
    return result


def children_cpu() -> float:
    """CPU seconds of every child process reaped so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_curl(url: str, concurrency: int, count: int) -> dict[str, Any]:
    """GNU parallel running one curl per request; CPU is that of parallel and every curl."""
    command = [
        "parallel",
        "-q",
        "-j",
        str(concurrency),
        "--halt",
        "never",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\\n",
        "-X",
        "POST",
        "-H",
        f"Authorization: Bearer {KEY}",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"precision":"FP8"}',
        f"{url}/v1/accounts/bench/models/bench-model-{{}}:prepare",
        ":::",
        *map(str, range(count)),
    ]
    cpu_before = children_cpu()
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True).stdout
    elapsed = time.perf_counter() - started
    ok = sum(code == "200" for code in out.split())
    return {
        "elapsed": elapsed,
        "ok": ok,
        "failed": count - ok,
        "throttles": None,
        "cpu": children_cpu() - cpu_before,
        "rss_mb": None,
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median requests/s, with req/s and CPU per 1,000 requests added."""
    for run in runs:
        run["requests"] = run["ok"] + run["failed"]
        run["rps"] = run["ok"] / run["elapsed"]
        run["cpu_per_1000"] = run["cpu"] / max(run["ok"], 1) * 1000
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


# -- scenarios ------------------------------------------------------------------------------


def scenario_overhead(quick: bool) -> dict[str, Any]:
    concurrencies = [1, 16, 64, 256]
    count = 300 if quick else 3000
    curl_count = 100 if quick else 600
    reps = 1 if quick else 3
    tools = ["fwprep", "aiohttp"]
    if have_module("fireworks"):
        tools.append("sdk")
    if shutil.which("parallel") and shutil.which("curl"):
        tools.append("curl")
    server = "nginx" if shutil.which("nginx") else "fwprep emulator"
    rows = []
    with nginx_server() if server == "nginx" else emulator_server() as url:
        run_client("aiohttp", url, 16, 200)  # warm the server up
        for concurrency in concurrencies:
            # Repetitions interleave the tools, so a slow spell of the machine hits all alike.
            runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
            for _ in range(reps):
                for tool in tools:
                    n = curl_count if tool == "curl" else count
                    client = "fwprep-warm" if tool == "fwprep" else tool  # see clients.py
                    runs[tool].append(run_client(client, url, concurrency, n))
            for tool in tools:
                result = median_of(runs[tool])
                rows.append({"tool": tool, "concurrency": concurrency, **result})
                print(
                    f"  overhead {tool:8} c={concurrency:<4} {result['rps']:8.0f} req/s "
                    f"{result['cpu_per_1000']:6.3f} CPU s/1000",
                    flush=True,
                )
    return {"server": server, "rows": rows, "reps": reps}


def scenario_rate_limited(quick: bool) -> dict[str, Any]:
    rpm = 1200
    items = 60 if quick else 600
    ideal = items / (rpm / 60)
    tools = [("fwprep, max_rps=20", "fwprep-rps=20"), ("fwprep, adaptive", "fwprep")]
    if have_module("fireworks"):
        tools.append(("fireworks-ai SDK", "sdk"))
    rows = []
    for label, tool in tools:
        with emulator_server("--rpm", str(rpm)) as url:
            result = run_client(tool, url, 32, items)
            stats = emulator_stats(url)
        row = {
            "tool": label,
            "items": items,
            "wall_s": result["elapsed"],
            "ideal_s": ideal,
            "ratio": result["elapsed"] / ideal,
            "throttled": stats["statuses"].get("429", 0),
            "failed": result["failed"],
        }
        rows.append(row)
        print(
            f"  rate-limited {label:22} {row['wall_s']:6.1f} s ({row['ratio']:.2f}x ideal) "
            f"429s={row['throttled']} failed={row['failed']}",
            flush=True,
        )
    return {"rpm": rpm, "rows": rows}


def scenario_scale(quick: bool) -> dict[str, Any]:
    small, large = (2_000, 10_000) if quick else (20_000, 100_000)
    latency_ms, concurrency = 50, 100
    with emulator_server("--latency-ms", str(latency_ms)) as url:
        latency_run = run_client("fwprep-batch", url, concurrency, small)
    with emulator_server("--latency-ms", str(latency_ms)) as url:
        reference = run_client("aiohttp", url, concurrency, small)  # what the server allows
    ideal = small * latency_ms / 1000 / concurrency
    with emulator_server() as url:
        rss_small = run_client("fwprep-batch", url, concurrency, small)
    with emulator_server() as url:
        rss_large = run_client("fwprep-batch", url, concurrency, large)
    result = {
        "items": small,
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "wall_s": latency_run["elapsed"],
        "ideal_s": ideal,
        "fraction_of_ideal": ideal / latency_run["elapsed"],
        "raw_wall_s": reference["elapsed"],
        "raw_fraction_of_ideal": ideal / reference["elapsed"],
        "peak_rss_mb": latency_run["rss_mb"],
        "rss_small_mb": rss_small["rss_mb"],
        "rss_large_mb": rss_large["rss_mb"],
        "large": large,
        "rss_growth_mb": rss_large["rss_mb"] - rss_small["rss_mb"],
        "failed": latency_run["failed"] + rss_small["failed"] + rss_large["failed"],
        "large_rps": rss_large["ok"] / rss_large["elapsed"],
    }
    print(
        f"  scale {small} items @ {latency_ms} ms: {result['fraction_of_ideal']:.2f} of ideal, "
        f"peak RSS {result['peak_rss_mb']:.1f} MB; RSS {small}->{large}: "
        f"+{result['rss_growth_mb']:.1f} MB",
        flush=True,
    )
    return result


def scenario_startup(quick: bool) -> dict[str, Any]:
    reps = 3 if quick else 15
    fwprep_bin = Path(sys.executable).with_name("fwprep")
    commands = {
        "fwprep --help": [str(fwprep_bin), "--help"],
        'python -c "import aiohttp"': [sys.executable, "-c", "import aiohttp"],
    }
    times: dict[str, float] = {}
    for label, command in commands.items():
        samples = []
        for _ in range(reps):
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            samples.append(time.perf_counter() - started)
        times[label] = statistics.median(samples)
    ratio = times["fwprep --help"] / times['python -c "import aiohttp"']
    print(
        f"  start-up: fwprep --help {times['fwprep --help'] * 1000:.0f} ms, "
        f"{ratio:.2f}x import aiohttp",
        flush=True,
    )
    return {"times": times, "ratio": ratio, "reps": reps}


def scenario_emulator(quick: bool) -> dict[str, Any]:
    """The emulator's own throughput on one core, driven by wrk (or aiohttp) from another."""
    count = 2000 if quick else 30000
    with emulator_server() as url:
        if shutil.which("wrk"):
            rps = run_wrk(url, 2 if quick else 10)
            driver = "wrk (1 thread, 64 connections)"
        else:
            rps = median_of([run_client("aiohttp", url, 64, count)])["rps"]
            driver = "aiohttp, 64 in flight"
    print(f"  emulator: {rps:.0f} prepares/s ({driver})", flush=True)
    return {"rps": rps, "driver": driver}


def run_wrk(url: str, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.body = \'{"precision":"FP8"}\'\n'
            f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                "-c64",
                f"-d{seconds}s",
                "-s",
                script.name,
                f"{url}/v1/accounts/bench/models/bench-model-1:prepare",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(match.group(1))


def have_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# -- the report --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("fwprep", "aiohttp", "fireworks-ai", "httpx", "attrs", "cattrs", "anyio"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    for tool, flag in (
        ("nginx", "-v"),
        ("curl", "--version"),
        ("parallel", "--version"),
        ("wrk", "-v"),
    ):
        if shutil.which(tool):
            out = subprocess.run([tool, flag], capture_output=True, text=True)
            text = (out.stdout or out.stderr).strip().splitlines()
            versions[tool] = text[0] if text else "installed"
    mem_kb = 0
    with suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def write_results(data: dict[str, Any], quick: bool, results: Path = RESULTS) -> None:
    results.mkdir(parents=True, exist_ok=True)
    m = data["machine"]
    lines = [
        "# fwprep benchmark results",
        "",
        f"Produced by `python benchmarks/run.py{' --quick' if quick else ''}`; each scenario "
        "says when it ran.",
        "",
        f"- Machine: {m['cpu']}; {m['os']}",
        f"- Python {m['python']}; {m['versions']}",
        "",
    ]
    if quick:
        lines += ["**Quick run**: small counts, one repetition; figures are rough.", ""]
    ov = data.get("overhead")
    if ov:
        lines += [
            "## 1. Client overhead",
            "",
            f"Run: {ov.get('run_at', 'unknown')}.",
            "",
            f"Server: {ov['server']} answering `{{}}` on loopback (its own process). Median of "
            f"{ov['reps']} runs. CPU is the client process's, for the timed part only. "
            "fwprep's adaptive limiter starts so fast that its pace never holds a request back, "
            "as it is once its start has doubled far enough on a server with no limit: that "
            "start (10 requests a second, doubling at most every quarter second) is policy for "
            "accounts of at most 6,000 requests a minute, measured in 2a, not the client's "
            "overhead.",
            "",
            "| tool | concurrency | requests | req/s | CPU s / 1,000 req | vs raw aiohttp req/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        base = {r["concurrency"]: r for r in ov["rows"] if r["tool"] == "aiohttp"}
        for r in ov["rows"]:
            ref = base.get(r["concurrency"])
            ratio = f"{r['rps'] / ref['rps']:.2f}x" if ref else ""
            lines.append(
                f"| {LABELS[r['tool']]} | {r['concurrency']} | {r['requests']} | {r['rps']:.0f} | "
                f"{r['cpu_per_1000']:.3f} | {ratio} |"
            )
        ours = {r["concurrency"]: r for r in ov["rows"] if r["tool"] == "fwprep"}
        f64, a64 = ours.get(64), base.get(64)
        if f64 and a64:
            speed = f64["rps"] / a64["rps"]
            cpu = f64["cpu_per_1000"] / a64["cpu_per_1000"]
            lines += [
                "",
                f"At concurrency 64, fwprep runs at **{speed:.2f}x** the raw aiohttp loop's "
                f"requests/s, using **{cpu:.2f}x** its CPU per request "
                "(targets: >= 0.95x and <= 1.10x; the paired rounds of 1b are the steadier "
                "measure).",
            ]
        lines.append("")
    if data.get("request_path"):
        lines += request_path_markdown(data["request_path"])
    rl = data.get("rate_limited")
    if rl:
        lines += [
            "## 2. Rate-limited goodput",
            "",
            f"Run: {rl.get('run_at', 'unknown')}.",
            "",
            f"The emulator enforces {rl['rpm']} requests/minute (a token bucket one second deep); "
            "32 requests in flight at most. Ideal = items / limit.",
            "",
            "| tool | items | wall s | ideal s | wall / ideal | 429s received | items failed |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in rl["rows"]:
            lines.append(
                f"| {r['tool']} | {r['items']} | {r['wall_s']:.1f} | {r['ideal_s']:.1f} | "
                f"{r['ratio']:.2f}x | {r['throttled']} | {r['failed']} |"
            )
        lines += [
            "",
            "Targets: fwprep with the limit within 1.05x of ideal, adaptive within "
            "1.25x, both with zero failed items.",
            "",
        ]
    sc = data.get("scale")
    if sc:
        lines += [
            "## 3. Latency-bound scale",
            "",
            f"Run: {sc.get('run_at', 'unknown')}.",
            "",
            "`fwprep.run_batch` over a CSV manifest, writing its report, against the emulator; "
            "its adaptive limiter starts past its ramp (see section 1).",
            "",
            "| measure | value |",
            "| --- | ---: |",
            f"| items, server latency, concurrency | {sc['items']}, {sc['latency_ms']} ms, "
            f"{sc['concurrency']} |",
            f"| wall time (ideal) | {sc['wall_s']:.1f} s ({sc['ideal_s']:.1f} s) |",
            f"| throughput as a fraction of ideal | {sc['fraction_of_ideal']:.2f} |",
            f"| the raw aiohttp loop, same load: wall time, fraction of ideal | "
            f"{sc['raw_wall_s']:.1f} s, {sc['raw_fraction_of_ideal']:.2f} |",
            f"| peak RSS | {sc['peak_rss_mb']:.1f} MB |",
            f"| peak RSS, {sc['items']} items, no latency | {sc['rss_small_mb']:.1f} MB |",
            f"| peak RSS, {sc['large']} items, no latency | {sc['rss_large_mb']:.1f} MB |",
            f"| RSS growth from {sc['items']} to {sc['large']} items | "
            f"{sc['rss_growth_mb']:+.1f} MB |",
            f"| throughput at {sc['large']} items, no latency | {sc['large_rps']:.0f} items/s |",
            f"| items failed | {sc['failed']} |",
            "",
            "Targets: >= 0.9 of ideal; RSS growth under 10 MB from 20k to 100k items. The raw "
            "loop's row shows what the emulator itself delivers at this rate on this machine: "
            "its 50 ms is a sleep on a busy event loop, so no client reaches the ideal.",
            "",
        ]
    if data.get("throttled"):
        lines += throttled_markdown(data["throttled"])
    if data.get("wait"):
        lines += wait_markdown(data["wait"])
    if data.get("check"):
        lines += markdown_check(data["check"])
    if data.get("journal"):
        lines += markdown_journal(data["journal"])
    if data.get("listing"):
        lines += markdown_listing(data["listing"])
    if data.get("shapes", {}).get("rows"):
        lines += markdown_shapes(data["shapes"])
    su = data.get("startup")
    if su:
        lines += [
            "## 4. Start-up",
            "",
            f"Run: {su.get('run_at', 'unknown')}.",
            "",
            f"Median wall time of {su['reps']} runs.",
            "",
            "| command | ms |",
            "| --- | ---: |",
        ]
        for label, seconds in su["times"].items():
            lines.append(f"| `{label}` | {seconds * 1000:.0f} |")
        lines += ["", f"Ratio: **{su['ratio']:.2f}x** (target <= 1.5x).", ""]
    em = data.get("emulator")
    if em:
        lines += [
            "## The emulator",
            "",
            f"Run: {em.get('run_at', 'unknown')}.",
            "",
            f"The emulator in its own process served **{em['rps']:.0f} trivial prepares/s** "
            f"on one core, driven by {em['driver']} from the other.",
            "",
        ]
    (results / "RESULTS.md").write_text("\n".join(lines))
    (results / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    if ov:
        plot(ov, results)
    if data.get("throttled"):
        throttled_plot(data["throttled"], results)


LABELS = {
    "fwprep": "fwprep prepare_many",
    "aiohttp": "raw aiohttp loop",
    "sdk": "fireworks-ai SDK",
    "curl": "GNU parallel + curl",
}


def plot(overhead: dict[str, Any], results: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tool in dict.fromkeys(r["tool"] for r in overhead["rows"]):
        rows = [r for r in overhead["rows"] if r["tool"] == tool]
        ax.plot(
            [r["concurrency"] for r in rows],
            [r["rps"] for r in rows],
            marker="o",
            label=LABELS[tool],
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 16, 64, 256], labels=["1", "16", "64", "256"])
    ax.set_xlabel("requests in flight (concurrency)")
    ax.set_ylabel("requests per second")
    ax.set_title(f"Prepare requests against {overhead['server']} on loopback")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(results / "throughput.png", dpi=120)
    plt.close(fig)


def scenario_throttled_here(quick: bool) -> dict[str, Any]:
    return scenario_throttled(quick, emulator_server, emulator_stats, KEY)


def scenario_shapes_here(quick: bool) -> dict[str, Any]:
    return scenario_shapes(quick, emulator_server, emulator_stats, KEY)


def scenario_wait_here(quick: bool) -> dict[str, Any]:
    return scenario_wait(quick, emulator_server, emulator_stats, KEY)


def scenario_check_here(quick: bool) -> dict[str, Any]:
    return scenario_check(quick, emulator_server, emulator_stats, KEY)


def scenario_listing_here(quick: bool) -> dict[str, Any]:
    return scenario_listing(quick, emulator_server, emulator_stats, KEY)


SCENARIOS = {
    "overhead": scenario_overhead,
    "request_path": scenario_request_path,
    "rate_limited": scenario_rate_limited,
    "throttled": scenario_throttled_here,
    "shapes": scenario_shapes_here,
    "wait": scenario_wait_here,
    "check": scenario_check_here,
    "journal": scenario_journal,
    "listing": scenario_listing_here,
    "scale": scenario_scale,
    "startup": scenario_startup,
    "emulator": scenario_emulator,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run these only")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where to write (default: benchmarks/results)"
    )
    parser.add_argument(
        "--from-json",
        action="store_true",
        help="run nothing: rewrite RESULTS.md and the plots from the results' results.json",
    )
    args = parser.parse_args()
    if args.from_json:
        kept = json.loads((args.results / "results.json").read_text())
        write_results(kept, kept.get("quick", False), args.results)
        print(f"wrote {args.results / 'RESULTS.md'}")
        return
    data: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    previous = args.results / "results.json"
    if args.only and previous.exists():
        # Re-running some scenarios keeps the others' figures (and says when each was run).
        kept = json.loads(previous.read_text())
        if kept.get("quick") == args.quick:
            data = {**kept, "machine": data["machine"]}
    for name in args.only or list(SCENARIOS):
        print(f"{name}:", flush=True)
        data[name] = SCENARIOS[name](args.quick)
        data[name]["run_at"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    write_results(data, args.quick, args.results)
    print(f"wrote {args.results / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
