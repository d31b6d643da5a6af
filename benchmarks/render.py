"""Turn benchmarks/results/*.json into results/table.md, performance.png and issue13.png.

Also judges each target of the issue from figures of the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS  # noqa: E402


def main() -> None:
    """Read what exists, write the table and the plot."""
    data = {path.stem: json.loads(path.read_text()) for path in RESULTS.glob("*.json")}
    (RESULTS / "table.md").write_text(table(data))
    plot(data, RESULTS / "performance.png")
    plot_issue13(data, RESULTS / "issue13.png")


def table(data: dict[str, Any]) -> str:
    """The markdown of the figures in docs/performance.md."""
    rows = ["| run | submit→start p50 / p95 (ms) | submit→done p50 (ms) | jobs/s | "
            "CPU s/job | queries/job |", "|---|---|---|---|---|---|"]  # fmt: skip
    for label, seq, burst in _lifecycle_rows(data):
        rows.append(
            f"| {label} | {_lat(seq, 'submit_to_start')} | {_p50(seq, 'submit_to_done')} | "
            f"{_cell(burst, 'jobs_per_s')} | {_cell(burst, 'cpu_s_per_job')} | "
            f"{_cell(burst, 'steps', 'total', 'queries_per_job')} |"
        )
    out = ["Latency columns: one job at a time (no queueing). Throughput, CPU and queries: a "
           "burst of N jobs with the same concurrency (floor threads = local workers).", "",
           *rows, ""]  # fmt: skip
    out += _steps_table(data) + _mock_table(data) + _sweep_table(data) + _peer_table(data)
    out += _cold_table(data) + _scale_table(data) + _statements_table(data)
    out += _tasks_db_table(data) + _metrics_table(data) + _stops_table(data)
    out += _events_table(data)
    out += ["## Targets", "", *[f"- {t}" for t in targets(data)], ""]
    return "\n".join(out)


def targets(data: dict[str, Any]) -> list[str]:
    """Each target of the issue: met or missed, by how much."""
    out = []
    floor = data.get("floor", {})
    floor_p50 = _get(floor, "sequential", "submit_to_start", "p50_ms")
    peer_p50 = _peer_seq_p50(data)
    for db in ("sqlite", "postgres"):
        ours = data.get(f"ours_docker_{db}")
        if not ours or floor_p50 is None:
            continue
        p50 = ours["sequential"]["submit_to_start"]["p50_ms"]
        gap = p50 - floor_p50
        out.append(f"{_ok(gap <= 100)} submit→start p50 on {db}: {p50} ms vs floor {floor_p50} ms "
                   f"(+{gap:.0f} ms, target ≤ +100 ms)")  # fmt: skip
        if peer_p50:
            ratio = peer_p50 / p50
            out.append(f"{_ok(ratio >= 10)} {ratio:.1f}× lower than the peer's {peer_p50} ms on "
                       f"{db} (target ≥ 10×)")  # fmt: skip
        rate, floor_rate = ours["bursts"][0]["jobs_per_s"], _get(floor, "threaded", "jobs_per_s")
        if floor_rate:
            out.append(f"{_ok(rate >= 0.8 * floor_rate)} throughput on {db}: {rate} jobs/s = "
                       f"{rate / floor_rate:.2f}× the threaded floor's {floor_rate} "
                       "(target ≥ 0.8×)")  # fmt: skip
    mock = data.get("ours_mock_sqlite")
    if mock:
        best = max(b["jobs_per_s"] for b in mock["bursts"])
        out.append(f"{_ok(best >= 300)} mock executor on SQLite: {best} jobs/s at best "
                   f"(target ≥ 300)")  # fmt: skip
        per_job = [b["steps"]["total"]["queries_per_job"] for b in mock["bursts"]]
        sizes = [b["jobs"] for b in mock["bursts"]]
        out.append(f"{_ok(max(per_job) - min(per_job) < 0.5)} queries per job for N = {sizes}: "
                   f"{per_job} (target: constant)")  # fmt: skip
    sweep = data.get("sweep_scale")
    if sweep:
        runs = sweep["runs"]
        big = runs[-1]
        same = len({r["queries"] for r in runs}) == 1
        out.append(f"{_ok(same)} sweep queries: {[r['queries'] for r in runs]} at "
                   f"{[r['rows'] for r in runs]} rows (target: fixed)")  # fmt: skip
        out.append(f"{_ok(big['sweep_ms_median'] < 100 and big['plans_use_index'])} sweep at "
                   f"{big['rows']} rows: {big['sweep_ms_median']} ms median, indexes used: "
                   f"{big['plans_use_index']} (target < 100 ms)")  # fmt: skip
    return out


def plot(data: dict[str, Any], path: Path) -> None:
    """Two panels: submit→start latency (p50, p95) and throughput, per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _lifecycle_rows(data)
    labels = [label for label, _, _ in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    xs = range(len(rows))
    p50 = [_get(seq, "submit_to_start", "p50_ms") or 0 for _, seq, _ in rows]
    p95 = [_get(seq, "submit_to_start", "p95_ms") or 0 for _, seq, _ in rows]
    left.bar([x - 0.2 for x in xs], p50, 0.4, label="p50")
    left.bar([x + 0.2 for x in xs], p95, 0.4, label="p95")
    left.set_yscale("log")
    left.set_ylim(bottom=100)
    left.set_title("create_job → container started, one job at a time (ms, log)")
    right.bar(xs, [_get(b, "jobs_per_s") or 0 for _, _, b in rows], color="tab:green")
    right.set_title(f"jobs/s, burst of {_burst_n(data)} trivial containers")
    for axis in (left, right):
        axis.set_xticks(list(xs), labels, rotation=25, ha="right", fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_issue13(data: dict[str, Any], path: Path) -> None:
    """Scale-out, slots in use, statements per job, django-tasks-db, stops and events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    _plot_scale(axes[0][0], axes[0][1], data)
    _plot_statements(axes[0][2], data.get("statements"))
    _plot_tasks_db(axes[1][0], data)
    _plot_stops(axes[1][1], data.get("stops"))
    _plot_events(axes[1][2], data.get("events"))
    for axis in (a for row in axes for a in row):
        axis.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _scale_label(run: dict[str, Any]) -> str:
    return f"{run['hosts']}h K={run['k']}"


def _plot_scale(rate: Any, slots: Any, data: dict[str, Any]) -> None:
    after, before = data.get("scale_out"), data.get("scale_out_before")
    if not after:
        return
    keys = [(r["hosts"], r["k"]) for r in after["runs"] if not r["backlog"]]
    xs = list(range(len(keys)))
    series = [("no backlog", after, False, "tab:blue"), ("backlog", after, True, "tab:green")]
    if before:
        series.append(("backlog, before", before, True, "tab:gray"))
    width = 0.8 / len(series)
    for index, (label, result, backlog, color) in enumerate(series):
        by = {(r["hosts"], r["k"]): r for r in result["runs"] if r["backlog"] == backlog}
        values = [_get(by.get(key), "jobs_per_s") or 0 for key in keys]
        rate.bar([x + (index - 1) * width for x in xs], values, width, label=label, color=color)
    rate.set_title(f"scale-out: jobs/s, N = {after['n']} mock jobs, {after['capacity']} slots")
    rate.set_xticks(xs, [f"{h}h K={k}" for h, k in keys], fontsize=8)
    rate.legend(fontsize=8)
    backlog = [r for r in after["runs"] if r["backlog"]]
    bx = list(range(len(backlog)))
    whole = [r.get("slots_in_use_pct") or 0 for r in backlog]
    busy = [r.get("slots_in_use_pct_while_more_pending_than_free") or 0 for r in backlog]
    slots.bar([x - 0.2 for x in bx], whole, 0.4, label="whole run")
    slots.bar([x + 0.2 for x in bx], busy, 0.4, label="while more pending than free slots")
    slots.axhline(90, color="red", linewidth=0.8, label="target 90 %")
    slots.set_ylim(0, 105)
    slots.set_title("scale-out with a backlog: slots in use (%)")
    slots.set_xticks(bx, [_scale_label(r) for r in backlog], fontsize=8)
    slots.legend(fontsize=8, loc="lower right")


def _plot_statements(axis: Any, result: dict[str, Any] | None) -> None:
    if not result:
        return
    runs = [r for r in result["runs"] if r["n"] == max(x["n"] for x in result["runs"])]
    steps = sorted({label.split(":")[0] for r in runs for label in r["by_step"]})
    bottoms = [0.0] * len(runs)
    for step in steps:
        values = [sum(v for k, v in r["by_step"].items() if k.split(":")[0] == step) for r in runs]
        axis.bar(range(len(runs)), values, 0.5, bottom=bottoms, label=step)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    axis.axhline(14, color="red", linewidth=0.8, label="target 14")
    axis.set_xticks(range(len(runs)), ["backlog" if r["backlog"] else "no backlog" for r in runs])
    axis.set_title(f"statements per job by step (PostgreSQL, N = {runs[0]['n']})")
    axis.legend(fontsize=7)


def _plot_tasks_db(axis: Any, data: dict[str, Any]) -> None:
    result = data.get("tasks_db_compare")
    if not result:
        return
    rows = [row for row in result["medians"] if row["mode"] == "submit"]
    xs = range(len(rows))
    sides = [side for side in ("theirs", "ours") if side in result["sides"]]
    for offset, side in zip((-0.2, 0.2), sides, strict=False):
        axis.bar([x + offset for x in xs], [_get(row, side, "jobs_per_s") or 0 for row in rows],
                 0.4, label=f"{side}: jobs/s (median)")  # fmt: skip
    axis.set_xticks(list(xs), [f"K={row['k']}" for row in rows])
    axis.set_title("django-tasks-db against ours, same server, alternated rounds (loaded)")
    axis.legend(fontsize=8)


def _plot_stops(axis: Any, stops: dict[str, Any] | None) -> None:
    if not stops:
        return
    kinds = ["timeouts", "cancels"]
    for offset, stat in ((-0.2, "p50_ms"), (0.2, "max_ms")):
        values = [(_get(stops, kind, "after_request_s", stat) or 0) / 1000 for kind in kinds]
        axis.bar([x + offset for x in range(len(kinds))], values, 0.4, label=stat[:-3])
    grace = stops.get("stop_grace_seconds") or 0
    axis.axhline(grace + 1, color="red", linewidth=0.8, label="target grace + 1 s")
    axis.set_xticks(range(len(kinds)), ["deadline → timeout", "cancel → cancelled"])
    axis.set_title("stops on Docker (s)")
    axis.legend(fontsize=8)


def _plot_events(axis: Any, events: dict[str, Any] | None) -> None:
    if not events:
        return
    modes = [m for m in ("floor", "polling", "events", "events_dropped", "floor_again")
             if m in events]  # fmt: skip
    values = [_get(events, m, "submit_to_done", "p50_ms") or 0 for m in modes]
    axis.bar(range(len(modes)), values, 0.5, color="tab:purple")
    interleaved = _get(events, "events", "floor_interleaved", "p50_ms")
    if interleaved:
        axis.axhline(interleaved, color="gray", linewidth=0.8, label="floor, interleaved")
        axis.legend(fontsize=8)
    axis.set_xticks(range(len(modes)), [m.replace("_", " ") for m in modes], fontsize=8)
    axis.set_title("Docker submit → done p50 (ms): platform events")


def _scale_table(data: dict[str, Any]) -> list[str]:
    out = []
    for name in ("scale_out_before", "scale_out"):
        result = data.get(name)
        if not result:
            continue
        out += [f"## {name}.json (N = {result['n']}, sweep {result['sweep_interval']} s)", "",
                "| hosts | K | backlog | jobs/s | per CPU-s | slots in use, whole run | while "
                "more pending than free | hold s | new connections/job | lock waits |",
                "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in result["runs"]:
            out.append(f"| {r['hosts']} | {r['k']} | {r['backlog']} | {r['jobs_per_s']} | "
                       f"{r['jobs_per_cpu_s']} | {_cell(r, 'slots_in_use_pct')} | "
                       f"{_cell(r, 'slots_in_use_pct_while_more_pending_than_free')} | "
                       f"{_cell(r, 'mean_hold_s')} | {_cell(r, 'new_connections_per_job')} | "
                       f"{r['mean_backends_waiting_on_locks']} |")  # fmt: skip
        out.append("")
        if result.get("backlog_ratios"):
            out += ["| hosts | K | jobs/s with a backlog / without, each pair | median |",
                    "|---|---|---|---|"]  # fmt: skip
            for r in result["backlog_ratios"]:
                pairs = ", ".join(str(ratio) for ratio in r["ratios"])
                out.append(f"| {r['hosts']} | {r['k']} | {pairs} | {r['median']} |")
            out.append("")
    return out


def _statements_table(data: dict[str, Any]) -> list[str]:
    result = data.get("statements")
    if not result:
        return []
    out = ["## Statements per job (statements.py, PostgreSQL)", "",
           "| N | backlog | statements/job |", "|---|---|---|"]  # fmt: skip
    for r in result["runs"]:
        out.append(f"| {r['n']} | {r['backlog']} | {r['statements_per_job']} |")
    return [*out, ""]


def _tasks_db_table(data: dict[str, Any]) -> list[str]:
    out = []
    for name in ("tasks_db_compare", "pg_floor"):
        result = data.get(name)
        if result:
            out += _compare_table(name, result)
    return out


def _compare_table(name: str, result: dict[str, Any]) -> list[str]:
    """Medians of the alternated rounds of ``tasks_db.py`` (or ``pg_floor.py``), by K and window."""
    label = {"ours": "this project, mock jobs", "floor": "floor: psycopg, 3 statements a job",
             "theirs": f"{result['package']} {result['version']}, no-op tasks"}  # fmt: skip
    out = [f"## {name}.json: medians of {result['rounds']} alternated rounds (loaded machine)", "",
           "Windows: `submit` = first submit → last final state, workers running; `queued` = "
           "everything submitted first, go → last final state. Per CPU-s: the worker processes "
           "from the go (start-up apart, in the last column).", "",
           "| K | window | side | jobs/s | per process | per CPU-s | CPU ms/job | "
           "ours × this side: jobs/s / per CPU-s | "
           "load (lowest–highest) | start-up CPU s/process |",
           "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in result["medians"]:
        for side in ("theirs", "floor", "ours"):
            m = row.get(side)
            if not m:
                continue
            ratios = row.get(f"ours_over_{side}")
            ratio = f"{ratios['jobs_per_s']}× / {ratios['jobs_per_cpu_s']}×" if ratios else ""
            loads = [value for pair in m["loads"] for value in pair]
            load = f"{min(loads)}–{max(loads)}"
            out.append(f"| {row['k']} | {row['mode']} | {label[side]} | {m['jobs_per_s']} | "
                       f"{m['jobs_per_s_per_process']} | {m['jobs_per_cpu_s']} | "
                       f"{m['cpu_ms_per_job']} | {ratio} | "
                       f"{load} | {m['start_up_cpu_s_per_process']} |")  # fmt: skip
    return [*out, ""]


def _metrics_table(data: dict[str, Any]) -> list[str]:
    result = data.get("metrics_scale")
    if not result:
        return []
    out = ["## The metrics scrape at scale (metrics_scale.py, PostgreSQL, loaded machine)", "",
           "| job rows | queries | ms (median) | × the smallest | first scrape ms | "
           "load before–after |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["runs"]:
        out.append(f"| {r['rows']} | {r['queries']} | {r['scrape_ms_median']} | "
                   f"{r['over_first_size']}× | {r['scrape_ms_first']} | "
                   f"{r['load_before']}–{r['load_after']} |")  # fmt: skip
    return [*out, ""]


def _stops_table(data: dict[str, Any]) -> list[str]:
    result = data.get("stops")
    if not result:
        return []
    out = ["## Stops (stops.py)", "", "| what | p50 ms | max ms | statuses |", "|---|---|---|---|"]
    for kind in ("timeouts", "cancels"):
        after = result[kind]["after_request_s"]
        out.append(f"| {kind} | {after['p50_ms']} | {after['max_ms']} | "
                   f"{result[kind]['statuses']} |")  # fmt: skip
    return [*out, ""]


def _events_table(data: dict[str, Any]) -> list[str]:
    result = data.get("events")
    if not result:
        return []
    out = [
        "## Platform events (events.py, Docker)",
        "",
        "| mode | submit→done p50 ms | checks/job | harvests/job |",
        "|---|---|---|---|",
    ]
    for mode in ("polling", "events", "events_dropped"):
        r = result.get(mode) or {}
        out.append(f"| {mode} | {_get(r, 'submit_to_done', 'p50_ms')} | "
                   f"{_cell(r, 'checks_per_job')} | {_cell(r, 'harvests_per_job')} |")  # fmt: skip
    return [*out, ""]


# -- helpers --------------------------------------------------------------------


def _lifecycle_rows(data: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    rows = []
    floor = data.get("floor")
    if floor:
        rows.append(("floor: docker-py, sequential", floor["sequential"], floor["sequential"]))
        # Latency is taken one job at a time: the threaded run has only its throughput here.
        rows.append((f"floor: docker-py, {floor['threads']} threads", None, floor["threaded"]))
    for db in ("sqlite", "postgres"):
        ours = data.get(f"ours_docker_{db}")
        if ours:
            rows.append((f"this project, Docker, {db}", ours.get("sequential"), ours["bursts"][0]))
    for db in ("sqlite", "postgres"):
        mock = data.get(f"ours_mock_{db}")
        if mock:
            burst = next((b for b in mock["bursts"] if b["jobs"] == _burst_n(data)), None)
            rows.append((f"this project, mock (0 s), {db}", None, burst or mock["bursts"][-1]))
    peer = data.get("peer")
    if peer:
        seq = next((s for s in peer["scenarios"] if s.get("sequential")), None)
        legacy = next((s for s in peer["scenarios"] if "legacy" in s["name"]
                       and not s.get("sequential")), None)  # fmt: skip
        rows.append(("peer 1.0.14 (--legacy-mode, poll 1 s)", seq,
                     {"jobs_per_s": legacy and legacy["jobs_per_s"]}))  # fmt: skip
    return rows


def _steps_table(data: dict[str, Any]) -> list[str]:
    out = ["## Cost of every step (burst, per call)", "",
           "| run | step | calls/job | queries/call | ms/call | DB ms | engine ms | own ms |",
           "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in ("ours_docker_sqlite", "ours_docker_postgres", "ours_mock_sqlite"):
        run = data.get(name)
        if not run:
            continue
        burst = run["bursts"][0]
        for step, s in burst["steps"].items():
            if step == "total":
                continue
            out.append(f"| {name[5:]} N={burst['jobs']} | {step} | {s['calls_per_job']} | "
                       f"{s['queries_per_call']} | {s['ms_per_call']} | {s['db_ms_per_call']} | "
                       f"{s['engine_ms_per_call']} | {s['own_ms_per_call']} |")  # fmt: skip
    return [*out, ""]


def _mock_table(data: dict[str, Any]) -> list[str]:
    out = ["## Pure overhead: mock executor, zero duration", "",
           "| db | N | jobs/s | submit s | CPU s/job | queries/job |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for db in ("sqlite", "postgres"):
        for b in (data.get(f"ours_mock_{db}") or {}).get("bursts", []):
            queries = b["steps"]["total"]["queries_per_job"]
            out.append(f"| {db} | {b['jobs']} | {b['jobs_per_s']} | {b['submit_seconds']} | "
                       f"{b['cpu_s_per_job']} | {queries} |")  # fmt: skip
    return [*out, ""]


def _sweep_table(data: dict[str, Any]) -> list[str]:
    sweep = data.get("sweep_scale")
    if not sweep:
        return []
    out = ["## One sweep on PostgreSQL (plans in results/sweep_scale.json)", "",
           "| rows | running | due | queries (of which BEGIN / COMMIT) | ms (median) | sent | "
           "indexes only | load before–after |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in sweep["runs"]:
        load = f"{r['load_before']}–{r['load_after']}" if "load_before" in r else ""
        out.append(f"| {r['rows']} | {r['running']} | {r['due']} | {r['queries']} "
                   f"({r.get('transaction_control', 0)}) | {r['sweep_ms_median']} | "
                   f"{r['messages_per_sweep']} | {r['plans_use_index']} | {load} |")  # fmt: skip
    return [*out, ""]


def _peer_table(data: dict[str, Any]) -> list[str]:
    peer = data.get("peer")
    if not peer:
        return []
    out = [f"## The peer: {peer['package']}, its `process_container_jobs`", "",
           "| how it was run | finished | statuses at the end | seconds | stuck | "
           "submit→start p50 (ms) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for s in peer["scenarios"]:
        finished = s.get("finished", s.get("jobs"))
        out.append(f"| {s['name']} | {finished} | {s['statuses']} | {s.get('seconds', '')} | "
                   f"{s.get('stuck', '')} | {s['submit_to_start']['p50_ms']} |")  # fmt: skip
    return [*out, ""]


def _cold_table(data: dict[str, Any]) -> list[str]:
    cold = data.get("cold_start")
    if not cold or "targets" not in cold:
        return []
    out = ["## Cold start (benchmarks/cold_start.py)", "", "| target | median ms | × bare |",
           "|---|---|---|"]  # fmt: skip
    for name, t in cold["targets"].items():
        out.append(f"| {name} | {t.get('median_ms')} | {t.get('ratio_to_bare')} |")
    return [*out, ""]


def _peer_seq_p50(data: dict[str, Any]) -> float | None:
    for s in (data.get("peer") or {}).get("scenarios", []):
        if s.get("sequential"):
            return s["submit_to_start"]["p50_ms"]
    return None


def _burst_n(data: dict[str, Any]) -> int | None:
    return _get(data.get("floor"), "threaded", "jobs")


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _cell(obj: Any, *keys: str) -> str:
    value = _get(obj, *keys)
    return "–" if value is None else str(value)


def _lat(obj: Any, key: str) -> str:
    p50, p95 = _get(obj, key, "p50_ms"), _get(obj, key, "p95_ms")
    return "–" if p50 is None else f"{p50} / {p95}"


def _p50(obj: Any, key: str) -> str:
    value = _get(obj, key, "p50_ms")
    return "–" if value is None else str(value)


def _ok(flag: bool) -> str:
    return "**met**" if flag else "**missed**"


if __name__ == "__main__":
    main()
