"""Render the figures the reliability tests measured (build/reliability/figures.json) into
the figures part of docs/reliability.md, between its two markers.

    python -m tests.reliability.report      (make reliability-report)
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.reliability.figures import FILE, REPO

DOC = REPO / "docs" / "reliability.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def _sum(entry: dict[str, Any], prefix: str = "") -> int:
    return sum(v for k, v in entry.items() if isinstance(v, int) and not isinstance(v, bool)
               and k.startswith(prefix) and "status" not in k)


CASES = {
    "fuzz.events": ("webhook_headers", "webhook_bodies", "tampered_bodies", "s3_keys",
                    "execution_names"),
    "fuzz.scoring_in_process": ("requests",),
    "fuzz.receiver": ("raw_requests", "schemathesis_cases", "signed_deliveries"),
    "fuzz.scoring_http": ("schemathesis_cases", "raw_requests"),
    "fuzz.lambdas": ("webhook_any_event", "webhook_unsigned", "webhook_signed",
                     "data_trigger_events", "data_trigger_refused_at_the_edge",
                     "data_trigger_other_shapes", "glue_accepted", "glue_refused"),
}


def _cases(figures: dict[str, dict[str, Any]], key: str) -> int:
    entry = figures.get(key, {})
    return sum(int(entry.get(field, 0)) for field in CASES[key.removesuffix("@soak")])


def _statuses(entry: dict[str, Any], prefix: str) -> str:
    found = {k.rsplit("_", 1)[1]: v for k, v in entry.items()
             if k.startswith(prefix) and k.rsplit("_", 1)[1].isdigit()}
    return ", ".join(f"{code}: {n}" for code, n in sorted(found.items())) or "-"


def render(figures: dict[str, dict[str, Any]]) -> str:
    f = lambda key: figures.get(key, {})  # noqa: E731
    lines = ["### Cases fuzzed", "",
             "| target | cases | answers |", "|---|---|---|"]
    lines.append(f"| event edge in process (webhook headers and bodies, tampered signatures, "
                 f"S3 keys, execution names) | {_cases(figures, 'fuzz.events')} | typed refusal (400/401/413) or a "
                 "well-formed event, never another exception |")
    scoring = f("fuzz.scoring_in_process")
    lines.append(f"| scoring path in process (6 models, batches of 1-3 requests) | "
                 f"{scoring.get('requests', 0)} | {_statuses(scoring, 'status_')} |")
    receiver = f("fuzz.receiver")
    lines.append(f"| control centre receiver, raw HTTP | {receiver.get('raw_requests', 0)} | "
                 f"{_statuses(receiver, 'raw_status_')} |")
    lines.append(f"| control centre receiver, schemathesis (docs/openapi/control-centre.yaml) | "
                 f"{receiver.get('schemathesis_cases', 0)} | "
                 f"{_statuses(receiver, 'schemathesis_status_')} |")
    lines.append(f"| control centre receiver, correctly signed bodies | "
                 f"{receiver.get('signed_deliveries', 0)} | "
                 f"{_statuses(receiver, 'signed_status_')} |")
    http = f("fuzz.scoring_http")
    lines.append(f"| scoring server, schemathesis (docs/openapi/scoring.yaml) | "
                 f"{http.get('schemathesis_cases', 0)} | "
                 f"{_statuses(http, 'schemathesis_status_')} |")
    lines.append(f"| scoring server, raw HTTP | {http.get('raw_requests', 0)} | "
                 f"{_statuses(http, 'raw_status_')} |")
    lines.append(f"| Lambda handlers (webhook, data trigger, finish step) with moto | "
                 f"{_cases(figures, 'fuzz.lambdas')} | webhook: only "
                 "200/400/401/413; executions only for what the registry wants |")
    total = sum(_cases(figures, key) for key in CASES)
    lines += [f"| **total** | **{total}** | no 5xx other than 500 MODEL_ERROR (the model "
              "itself raised), no crash, nothing started by invalid input |", ""]
    soak = {k: v for k, v in figures.items() if k.endswith("@soak") and k.startswith("fuzz.")}
    if soak:
        cases = sum(_cases(figures, key) for key in soak)
        lines += [f"With ten times these budgets (`make test-soak`): {cases} cases, the same "
                  "properties held.", ""]

    lines += ["### Oversized bodies", "",
              f"- receiver: {receiver.get('oversized_bodies', '-')} requests announcing 100 MB "
              f"each: all 413, process grew {receiver.get('rss_growth_mb', '-')} MB;",
              f"- scoring server: {http.get('oversized_bodies', '-')} oversized requests "
              f"({http.get('oversized_bytes_sent_mb', '-')} MB actually sent, "
              f"{http.get('oversized_claimed_mb', '-')} MB announced): all 413, server RSS "
              f"{http.get('server_rss_before_mb', '-')} MB before, "
              f"{http.get('server_rss_after_mb', '-')} MB after; a request that stops "
              f"arriving is answered and dropped after "
              f"{http.get('stalled_request_dropped_after_s', '-')} s (the test's setting; 60 s "
              "by default).", ""]

    crash = f("faults.crash")
    survived = sorted(k.removeprefix("survived_") for k in crash if k.startswith("survived_"))
    killed = f("faults.serving_killed")
    lines += ["### Faults injected and survived", "", "| fault | outcome |", "|---|---|"]
    for point in survived:
        lines.append(f"| control centre SIGKILLed at `{point}`, then restarted | converged in "
                     f"{crash.get('seconds_' + point, '-')} s (whole scenario); left behind "
                     f"before restart: {', '.join(crash.get('left_behind_' + point, [])) or '-'}"
                     "; none after |")
    for victim in ("supervisor", "whole_group"):
        if f"recovery_seconds_{victim}" in killed:
            lines.append(f"| serving process killed under load ({victim.replace('_', ' ')}) | "
                         f"back with the same version in {killed[f'recovery_seconds_{victim}']}"
                         f" s; {killed[f'failed_during_outage_{victim}']} requests failed "
                         f"while it was down, {killed[f'served_{victim}']} served |")
    if "survived" in f("faults.mlflow_down"):
        lines.append(f"| MLflow down when the event arrived | deployed "
                     f"{f('faults.mlflow_down').get('deployed_seconds_after_mlflow_back')} s "
                     "after MLflow came back, exactly once |")
    if f("faults.model_raises"):
        raises = f("faults.model_raises")
        lines.append(f"| model raising on some rows, under load | {raises['failing_requests']} "
                     f"requests got 500 MODEL_ERROR, {raises['good_requests']} others 200, "
                     f"{raises['transport_errors']} transport errors |")
    for key, text in (("faults.training_fails", "new data that breaks training"),
                      ("faults.artifacts_gone", "model artifacts gone from the store")):
        if f(key):
            reason = f(key).get("reason") or f(key).get("message", "")
            lines.append(f"| {text} | nothing registered or switched; recorded: "
                         f"`{reason[:120]}` |")
    disk = f("faults.disk")
    if disk:
        lines.append("| inbox file unreadable; state folder not writable | reported once, "
                     "other files taken; one-line error, exit 2 |")
    lines.append("")

    lines += ["### Version switches under load", "",
              "| run | duration | switches | requests | failed | req/s | tag to new version "
              "(median / max) | swap | request latency p50 / p99 / max |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key, name in (("load.switch_short", "make test"), ("load.switch_soak",
                                                          "make test-soak")):
        run = f(key)
        if run:
            lines.append(f"| {name} | {run['seconds']} s | {run['switches']} | "
                         f"{run['requests']} | {run['failed']} | {run['requests_per_second']} | "
                         f"{run['tag_to_new_version_s_median']} s / "
                         f"{run['tag_to_new_version_s_max']} s | {run['swap_s_max']} s | "
                         f"{run['request_latency_ms_p50']} / {run['request_latency_ms_p99']} / "
                         f"{run['request_latency_ms_max']} ms |")
    lines.append("")

    idem = f("idempotency")
    security = f("security")
    iam = f("security.iam")
    lines += ["### Idempotency and security", "",
              f"- idempotency cases, each ending in exactly one outcome: {_sum(idem)};",
              f"- webhook secret found in {security.get('secret_leaks', '-')} of "
              f"{security.get('logs_and_outputs_scanned', '-')} outputs and logs of a real "
              "`mlops up` run and the CLI; listening addresses: "
              f"{', '.join(security.get('listening_addresses', [])) or '-'};",
              f"- committed secrets found in {security.get('tracked_files_scanned', '-')} "
              f"tracked files: {security.get('committed_secrets', '-')};",
              f"- IAM: {iam.get('allow_statements', '-')} Allow statements, "
              f"{iam.get('wildcard_actions', '-')} with a wildcard action; "
              f"{iam.get('sagemaker_scoped_resources', '-')} SageMaker resources named by "
              "project prefix.", ""]
    stamps = sorted({v.get("measured_at", "") for v in figures.values()} - {""})
    if stamps:
        lines.append(f"Measured between {stamps[0]} and {stamps[-1]} (UTC) on a 2-core "
                     "machine, by `make test` and `make test-soak`.")
    return "\n".join(lines)


def main() -> int:
    figures = json.loads(FILE.read_text())
    text = DOC.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{START}\n{render(figures)}\n{END}{tail}")
    print(f"{DOC.relative_to(REPO)} updated from {FILE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
