"""Fault drills: send a known set of notifications through real worker processes, break something, count.

Each drill lends loans (every loan sends its CREATION by email, and by WhatsApp for
borrowers who have a phone) while workers and beat run against a throwaway
PostgreSQL cluster and Redis server of its own, an SMTP sink and a fake Twilio API.
It injects one fault, waits until every notification is in a final state, and
compares the database with what the servers received: sent exactly once, sent
twice, lost, or permanently failed with a reason. Target for every drill: 0 lost,
0 sent twice.

    .venv/bin/python bench/faults/run.py                  # every drill (make faults)
    .venv/bin/python bench/faults/run.py --quick          # the quick ones (run by make test)
    .venv/bin/python bench/faults/run.py worker-killed    # one drill by name

Prints one table and writes it as JSON (default bench/results/fault_drills.json).
Exit status 1 when a drill lost or duplicated a notification or did not settle.

Drill timings are shortened through settings the product reads anyway: retries
after 2 s instead of 60 s, a 15 s task time limit (so a dead worker's claim is
recovered after 45 s), the relay every 5 s (its beat entry, as an admin would edit
it) and a redelivery wait of one minute.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench import report  # noqa: E402
from bench.faults.lab import DRILL_SETTINGS, DRILLS, SETTLE_TIMEOUT, Lab, prepare_database, reset  # noqa: E402
from bench.stack import ROOT, StackError, throwaway_stack  # noqa: E402

# Each bench/faults/drills_*.py module registers its drills with @drill.
for module in sorted(Path(__file__).parent.glob("drills_*.py")):
    importlib.import_module(f"bench.faults.{module.stem}")

# --- Running --------------------------------------------------------------------------------------


def print_table(results: list[dict]) -> None:
    header = (
        f"{'drill':<22} {'notifications':>13} {'once':>6} {'twice':>6} {'lost':>6} {'failed':>6} {'settle':>8}  notes"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if "error" in r:
            print(f"{r['drill']:<22} ERROR: {r['error']}")
            continue
        settle = f"{r['settle_seconds']:.0f} s" if r["settled"] else "never"
        causes = ", ".join(f"{cause} {n}" for cause, n in r.get("failed_causes", {}).items())
        print(
            f"{r['drill']:<22} {r['notifications']:>13} {r['sent_once']:>6} {r['sent_twice']:>6} {r['lost']:>6} "
            f"{r['failed']:>6} {settle:>8}  {f'[failed: {causes}] ' if causes else ''}"
            f"{f'[resent with the same Message-ID: {resent}] ' if (resent := r.get('resent_same_message_id')) else ''}"
            f"{r.get('notes', '')}"
        )


def problems_of(result: dict) -> list[str]:
    if "error" in result:
        return [f"{result['drill']}: {result['error']}"]
    problems = []
    if result["lost"]:
        problems.append(f"{result['drill']}: {result['lost']} lost (rows {result['lost_ids']})")
    if result["sent_twice"]:
        problems.append(f"{result['drill']}: {result['sent_twice']} sent twice (rows {result['twice_ids']})")
    if not result["settled"]:
        problems.append(f"{result['drill']}: did not settle within {SETTLE_TIMEOUT:.0f} s")
    # What a drill itself expected and did not see (e.g. every bad address failed with a reason, the web kept answering).
    problems.extend(f"{result['drill']}: {problem}" for problem in result.get("problems", []))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("drills", nargs="*", help=f"drill names (default: all): {', '.join(DRILLS)}")
    parser.add_argument("--quick", action="store_true", help="only the quick drills")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "fault_drills.json"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory (process logs) afterwards")
    args = parser.parse_args()
    unknown = [name for name in args.drills if name not in DRILLS]
    if unknown:
        print(f"unknown drill {', '.join(unknown)}; known: {', '.join(DRILLS)}", file=sys.stderr)
        return 2
    chosen = [DRILLS[name] for name in args.drills] if args.drills else list(DRILLS.values())
    if args.quick:
        chosen = [d for d in chosen if d.quick]

    results: list[dict] = []
    environment: dict = {}
    try:
        with throwaway_stack("drills", settings=DRILL_SETTINGS, keep=args.keep) as servers:
            servers.stack.use_here()
            import django

            django.setup()
            prepare_database()
            environment = report.environment()
            report.print_environment(environment)
            lab = Lab(servers.stack, servers.postgres, servers.redis)
            for each in chosen:
                reset(lab)
                print(f"== {each.name}: {each.title}", flush=True)
                try:
                    result = {"drill": each.name, "title": each.title, **each.run(lab)}
                except Exception as exc:
                    traceback.print_exc()
                    result = {"drill": each.name, "title": each.title, "error": f"{type(exc).__name__}: {exc}"}
                results.append(result)
                print_table([result])
    except StackError as exc:
        print(f"fault drills: {exc}", file=sys.stderr)
        return 1

    print()
    print_table(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"environment": environment, "drills": results}, indent=2) + "\n")
    problems = [problem for result in results for problem in problems_of(result)]
    for problem in problems:
        print(f"FAILED {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
