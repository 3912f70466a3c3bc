"""The A/B mode of scripts/bench: the previous release against this tree, on this machine, in
one run, next to the bare relay's limit.

Builds this tree's chat-server and chatsim and the baseline's chat-server (a git tag, by
default the latest; unpacked with `git archive` into a scratch folder and built there once).
Then, ROUNDS times, runs each A/B scenario against the baseline and against this tree,
alternating, each on a fresh PostgreSQL database and with this tree's chatsim, and runs the bare
WebSocket relay (../shared/bench-limit/run) once per round. Writes the tables between the A/B
markers of docs/benchmarks.md (below its analysis marker, which scripts/bench keeps) and the
JSON reports in docs/benchmarks/ab/.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from datetime import datetime, timezone

from harness import ROOT, Postgres, Server, build, chatsim_report, log

ROUNDS = 2
BEGIN = "<!-- A/B: written by scripts/bench --ab -->"
END = "<!-- end of A/B -->"

FANOUT = ["--users", "50", "--senders", "10", "--warmup", "3", "--duration", "20"]
# The A/B scenarios: chatsim arguments, full and --quick.
SCENARIOS = {
    "fanout closed loop": (["fanout", *FANOUT, "--window", "10"],
                           ["fanout", "--users", "20", "--senders", "4", "--window", "10", "--warmup", "1",
                            "--duration", "3"]),
    "fanout 500 msg/s": (["fanout", *FANOUT, "--rate", "50"],
                         ["fanout", "--users", "20", "--senders", "4", "--rate", "25", "--warmup", "1",
                          "--duration", "3"]),
    "history paging": (["history", "--messages", "1000000", "--page-size", "100", "--requests", "200"],
                       ["history", "--messages", "20000", "--requests", "20"]),
    "connections": (["connections", "--connections", "19000", "--duration", "10"],
                    ["connections", "--connections", "1000", "--duration", "2"]),
    "reconnect": (["reconnect", "--users", "5000", "--chat-size", "50", "--rate", "2", "--warmup", "3",
                   "--duration", "5"],
                  ["reconnect", "--users", "300", "--chat-size", "30", "--rate", "2", "--warmup", "1",
                   "--duration", "2"]),
}
# Scenarios that fill their database through the store before they measure.
FILLED = {"history"}
LIMIT_ARGUMENTS = (["50", "10", "10", "20"], ["20", "4", "10", "3"])


def latest_tag():
    return subprocess.run(["git", "describe", "--tags", "--abbrev=0"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def build_baseline(ref):
    """The baseline's chat-server, built in a scratch folder that later runs reuse."""
    folder = os.path.join(tempfile.gettempdir(), "chat-bench-baseline", ref)
    if not os.path.exists(os.path.join(folder, "Package.swift")):
        os.makedirs(folder, exist_ok=True)
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    (server,) = build(root=folder, products=("chat-server",))
    return server


def measure_limit(limit_script, quick):
    """The bare relay's RESULT lines (fast and direct modes) as dictionaries."""
    command = [limit_script, *LIMIT_ARGUMENTS[1 if quick else 0]]
    log("$ " + " ".join(command))
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    results = {}
    for line in output.splitlines():
        if "RESULT" in line:
            fields = dict(re.findall(r"(\w+)=(\S+)", line))
            results[fields["label"]] = {key: float(value) for key, value in fields.items() if key != "label"}
    if set(results) != {"fast", "direct"}:
        raise SystemExit(f"the bare relay printed no RESULT for both modes:\n{output}")
    return results


def run_one(chatsim, server_binary, postgres, workdir, environment, scenario, arguments, name, results):
    database_url = postgres.create_database(re.sub(r"\W", "_", name))
    server = Server(server_binary, database_url, workdir, name, environment)
    json_path = os.path.join(results, f"{name}.json")
    try:
        filled = ["--database-url", database_url] if arguments[0] in FILLED else []
        command = [chatsim, arguments[0], "--url", server.url, "--seed", "1", "--json", json_path, *arguments[1:],
                   *filled, "--server-pid", str(server.process.pid), "--server-pid", str(postgres.pid)]
        return chatsim_report(command, json_path, name)
    finally:
        server.stop()


def figures(scenario, report):
    """The figures the A/B compares for one report."""
    server = (report.get("server") or [{}])[0]
    if scenario.startswith("fanout"):
        p99 = (report.get("latencies", {}).get("send_to_delivery") or {}).get("p99")
        return {"delivered frames/s": report["rates"]["delivered_frames_per_second"],
                "server CPU µs per delivered frame": server.get("cpu_microseconds_per_delivered_frame"),
                "p99 send→delivery ms": p99}
    if scenario == "history paging":
        depths = {depth["query"].split("&")[0]: depth["latency"] for depth in report.get("history") or []}
        deepest = [latency for query, latency in depths.items() if query.startswith("offset=") and query != "offset=0"]
        return {"p50 ms, newest page (offset=0)": (depths.get("offset=0") or {}).get("p50"),
                "p50 ms, deepest offset": deepest[-1]["p50"] if deepest else None,
                "p99 ms, worst depth": max((latency["p99"] for latency in depths.values()), default=None)}
    if scenario == "connections":
        cost = report.get("connections") or {}
        per = cost.get("server_rss_bytes_per_connection")
        return {"connected": cost.get("connected"), "server RSS KiB per idle connection": per / 1024 if per else None}
    recovery = report.get("recovery") or {}
    return {"all recovered in s": recovery.get("all_recovered_seconds"), "recovered": recovery.get("recovered")}


def number(value):
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def mean(values):
    values = [value for value in values if value is not None]
    return statistics.mean(values) if values else None


def document(baseline_ref, head, started, runs, limits, commands, limit_command):
    lines = [BEGIN, "", f"## A/B: {baseline_ref} against {head}, on this machine in one run", "",
             f"Run started {started:%Y-%m-%d %H:%M} UTC with `scripts/bench --ab --baseline {baseline_ref}`: "
             f"{ROUNDS} rounds, each scenario on the baseline then on this tree, each on a fresh PostgreSQL "
             "database, measured by this tree's chatsim; the bare relay once per round.", ""]
    lines += ["| scenario | figure | " + " | ".join(f"{baseline_ref} r{r}" for r in range(1, ROUNDS + 1)) + " | "
              + " | ".join(f"{head} r{r}" for r in range(1, ROUNDS + 1)) + " | new ÷ old (means) | check |",
              "| --- | --- | " + " | ".join(["---:"] * (2 * ROUNDS + 1)) + " | --- |"]
    for scenario in SCENARIOS:
        measured = {side: [figures(scenario, run["report"]) for run in runs
                           if run["scenario"] == scenario and run["side"] == side] for side in ("old", "new")}
        passed = all(run["report"]["passed"] for run in runs if run["scenario"] == scenario)
        for figure in measured["new"][0]:
            old = [values[figure] for values in measured["old"]]
            new = [values[figure] for values in measured["new"]]
            ratio = mean(new) / mean(old) if mean(old) and mean(new) is not None else None
            lines.append(f"| {scenario} | {figure} | " + " | ".join(number(v) for v in old + new)
                         + f" | {number(ratio)} | {'pass' if passed else '**FAIL**'} |")
    lines += ["", "The bare relay (`../shared/bench-limit/run`, no storage, no JSON), in the same run:", "",
              "| round | mode | frames/s | server CPU µs per frame | p99 µs |", "| ---: | --- | ---: | ---: | ---: |"]
    for index, limit in enumerate(limits, 1):
        for mode in ("fast", "direct"):
            result = limit[mode]
            lines.append(f"| {index} | {mode} | {number(result['fps'])} | {number(result['server_us_per_frame'])} | "
                         f"{number(result['p99_us'])} |")
    direct = mean([limit["direct"]["server_us_per_frame"] for limit in limits])
    new_cost = mean([figures(run["scenario"], run["report"])["server CPU µs per delivered frame"]
                     for run in runs if run["scenario"] == "fanout closed loop" and run["side"] == "new"])
    if direct and new_cost:
        lines += ["", f"This tree's fan-out (closed loop) costs {new_cost / direct:.1f}× the bare relay's `direct` "
                      "mode per delivered frame (means of the rounds)."]
    lines += ["", "Commands (PORT is each server's free port; `<chat-server>` and `<postmaster>` their pids):", "",
              "```", *commands, limit_command, "```", "", END]
    return "\n".join(lines)


def write_section(path, section):
    text = open(path).read() if os.path.exists(path) else ""
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        text = before + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as file:
        file.write(text)


def main(baseline_ref, limit_script, quick, server_environment):
    if not os.access(limit_script, os.X_OK):
        raise SystemExit(f"the bare relay's script {limit_script} is missing: pass --limit PATH")
    baseline_ref = baseline_ref or latest_tag()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()
    started = datetime.now(timezone.utc)
    new_server, chatsim = build()
    old_server = build_baseline(baseline_ref)
    output = "/tmp/chat-bench-quick" if quick else os.path.join(ROOT, "docs")
    results = os.path.join(output, "benchmarks", "ab")
    os.makedirs(results, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="chat-bench-ab-")
    postgres = Postgres(workdir)
    runs, limits = [], []
    try:
        for round_number in range(1, ROUNDS + 1):
            for scenario, arguments in SCENARIOS.items():
                for side, binary in (("old", old_server), ("new", new_server)):
                    name = f"{re.sub(r'[^a-z0-9]+', '-', scenario)}-{side}-round-{round_number}"
                    report = run_one(chatsim, binary, postgres, workdir, server_environment, scenario,
                                     arguments[1 if quick else 0], name, results)
                    runs.append({"scenario": scenario, "side": side, "round": round_number, "report": report})
            limits.append(measure_limit(limit_script, quick))
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    commands = [f"chatsim {' '.join(arguments[1 if quick else 0][:1])} --url http://127.0.0.1:PORT --seed 1 "
                f"{' '.join(arguments[1 if quick else 0][1:])}"
                f"{' --database-url postgres://…/DATABASE' if arguments[0][0] in FILLED else ''}"
                " --server-pid <chat-server> --server-pid <postmaster>"
                for arguments in SCENARIOS.values()]
    limit_command = "../shared/bench-limit/run " + " ".join(LIMIT_ARGUMENTS[1 if quick else 0])
    with open(os.path.join(results, "summary.json"), "w") as file:
        json.dump({"started_at": started.isoformat(), "baseline": baseline_ref, "head": head, "limits": limits,
                   "commands": commands + [limit_command]}, file, indent=2)
    path = os.path.join(output, "benchmarks.md")
    write_section(path, document(baseline_ref, head, started, runs, limits, commands, limit_command))
    log(f"wrote the A/B tables into {path}")
