"""The learned send time against the fixed rule, on a synthetic population whose borrowers respond at known hours.

Each borrower has a true best hour band (09:00–09:59, 12:00–12:59 or 17:00–17:59, a third
each; peak response at its middle) and a base on-time rate (35–55 %). A loan comes back on
time with probability

    base + LIFT × mean over its reminders of exp(−(hour − best − 0.5)² / (2 × WIDTH²))

so a reminder near the borrower's hour helps, one far from it does little. Every week
each borrower may borrow a long loan (three reminders at 08:00 by the rule) and a short
one (one reminder at due − 2 h, due between 10:00 and 19:00, so the history has other
hours too). Two worlds run side by side on the same random draws: the rule's, and the
learner's (`notifications.send_time.choose` with the project's default settings, its
history being the previous weeks of its own world). Nothing touches a database: the
history is counted in memory exactly as `send_time.history_for` counts it (per local
hour band of sending, reminders / on time / read).

A third world, the oracle, reminds every borrower at their true best allowed hour: the
ceiling any learner could reach. Prints, per week: loans, the on-time rate under the rule,
the learner and the oracle, how many
long-loan reminders were learned (not the rule, not exploring), and of those how often
the chosen hour is the borrower's best band (and within an hour of it). Also written to
``bench/results/send_time.json``.

    .venv/bin/python bench/send_time.py [--borrowers 300] [--weeks 16] [--frequency 1] [--seed 8]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radgestmat.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from assets.models import Attribution, Duree  # noqa: E402
from notifications import send_time, timeline  # noqa: E402
from notifications.send_time import Counts, History  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")
BEST_HOURS = (9, 12, 17)
LIFT, WIDTH = 0.35, 1.5
FIRST_MONDAY = datetime(2026, 3, 2, tzinfo=PARIS)


@dataclass
class Borrower:
    id: int
    best: int
    base: float


def effect(hour: float, best: int) -> float:
    """How much a reminder at ``hour`` helps a borrower whose best band is ``best`` (peak at its middle, best:30)."""
    return math.exp(-((hour - best - 0.5) ** 2) / (2 * WIDTH**2))


def hour_of(moment: datetime) -> float:
    local = moment.astimezone(PARIS)
    return local.hour + local.minute / 60


class World:
    """One world's history, counted per (borrower, band) and per band, as the learner reads it."""

    def __init__(self) -> None:
        self.overall: dict[int, Counts] = defaultdict(Counts)
        self.mine: dict[int, dict[int, Counts]] = defaultdict(lambda: defaultdict(Counts))
        self.loans = self.on_time = 0

    def history(self) -> History:
        return History(dict(self.overall), {client: dict(bands) for client, bands in self.mine.items()})

    def record(self, borrower: Borrower, sent: list[datetime], on_time: bool, reads: list[bool]) -> None:
        self.loans += 1
        self.on_time += on_time
        for moment, read in zip(sent, reads, strict=False):
            band = send_time.band_of(moment)
            counts = Counts(1, int(on_time), int(read))
            self.overall[band] = self.overall[band] + counts
            self.mine[borrower.id][band] = self.mine[borrower.id][band] + counts


def loans_of_week(rng: random.Random, monday: datetime) -> list[tuple[str, datetime, datetime]]:
    """Maybe a long loan (due Friday to Sunday 17:00), maybe a short one (3 h, due 10:00 to 19:00)."""
    plans: list[tuple[str, datetime, datetime]] = []
    if rng.random() < 0.6:
        start = monday + timedelta(hours=rng.randint(9, 17))
        due = datetime.combine((monday + timedelta(days=rng.randint(4, 6))).date(), time(17, 0), tzinfo=PARIS)
        plans.append((Duree.LONG, start, due))
    if rng.random() < 0.5:
        day = monday + timedelta(days=rng.randint(0, 4))
        due = datetime.combine(day.date(), time(rng.randint(10, 19), 0), tzinfo=PARIS)
        plans.append((Duree.COURT, due - timedelta(hours=3), due))
    return plans


def best_allowed(type_notification: str, rule_at: datetime, loan: Attribution, borrower: Borrower) -> datetime:
    """What an oracle knowing the borrower's hour would pick among the learner's allowed times."""
    options = send_time.candidates(
        type_notification,
        rule_at,
        date_debut=loan.date_debut,
        date_retour_prevue=loan.date_retour_prevue,
        not_before=loan.date_debut,
    ) + [rule_at]
    return max(options, key=lambda moment: effect(hour_of(moment), borrower.best))


def simulate(borrowers: int, weeks: int, seed: int, frequency: int = 1) -> list[dict]:
    rng = random.Random(seed)
    population = [Borrower(i + 1, BEST_HOURS[i % 3], rng.uniform(0.35, 0.55)) for i in range(borrowers)]
    rule, learner, oracle = World(), World(), World()
    rows, loan_id = [], 0
    for week in range(weeks):
        monday = FIRST_MONDAY + timedelta(weeks=week)
        snapshot = learner.history()  # the learner sees the weeks before this one
        before = (rule.loans, rule.on_time, learner.loans, learner.on_time, oracle.loans, oracle.on_time)
        learned = right = near = exploring = 0
        for borrower in population:
            plans = []
            for _ in range(frequency):
                plans.extend(loans_of_week(rng, monday))
            for duree, start, due in plans:
                loan_id += 1
                loan = Attribution(
                    pk=loan_id, client_id=borrower.id, date_debut=start, date_retour_prevue=due, duree=duree
                )
                rule_times = [ideal for _, ideal in timeline.reminder_times(start, due, duree)]
                chosen, ideal_times = [], []
                for type_notification, ideal in timeline.reminder_times(start, due, duree):
                    choice = send_time.choose(type_notification, ideal, loan, snapshot, not_before=start)
                    chosen.append(choice.chosen_at)
                    ideal_times.append(best_allowed(type_notification, ideal, loan, borrower))
                    if duree == Duree.LONG and choice.why == "EXPLORING":
                        exploring += 1
                    elif duree == Duree.LONG and choice.why == "LEARNED":
                        learned += 1
                        band = send_time.band_of(choice.chosen_at)
                        right += band == borrower.best
                        near += abs(band - borrower.best) <= 1
                # The same draws in both worlds: only the hours differ.
                draw, read_draws = rng.random(), [rng.random() for _ in rule_times]
                for world, sent in ((rule, rule_times), (learner, chosen), (oracle, ideal_times)):
                    mean_effect = sum(effect(hour_of(m), borrower.best) for m in sent) / len(sent)
                    on_time = draw < borrower.base + LIFT * mean_effect
                    reads = [
                        r < 0.4 + 0.4 * effect(hour_of(m), borrower.best)
                        for r, m in zip(read_draws, sent, strict=False)
                    ]
                    world.record(borrower, sent, on_time, reads)
        loans = rule.loans - before[0]
        rows.append(
            {
                "week": week + 1,
                "loans": loans,
                "on_time_rule": (rule.on_time - before[1]) / loans,
                "on_time_learned": (learner.on_time - before[3]) / (learner.loans - before[2]),
                "on_time_oracle": (oracle.on_time - before[5]) / (oracle.loans - before[4]),
                "learned_reminders": learned,
                "exploring_reminders": exploring,
                "right_hour": right / learned if learned else None,
                "within_an_hour": near / learned if learned else None,
            }
        )
    return rows


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--borrowers", type=int, default=300)
    parser.add_argument("--weeks", type=int, default=16)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--frequency", type=int, default=1, help="loan opportunities per borrower and week")
    args = parser.parse_args(argv)
    if args.borrowers < 3 or args.weeks < 1 or args.frequency < 1:
        parser.error("need at least 3 borrowers, 1 week and a frequency of 1")
    rows = simulate(args.borrowers, args.weeks, args.seed, args.frequency)
    header = f"{'week':>4} {'loans':>6} {'on time (rule)':>15} {'on time (learned)':>18} {'(oracle)':>9} {'learned':>8} {'exploring':>10} {'right hour':>11} {'± 1 h':>8}"
    print(
        f"send time: {args.borrowers} borrowers, {args.frequency} loan opportunity(ies) a week, {args.weeks} weeks, "
        f"seed {args.seed}; best hours {BEST_HOURS}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['week']:>4} {row['loans']:>6} {percent(row['on_time_rule']):>15} {percent(row['on_time_learned']):>18} {percent(row['on_time_oracle']):>9} "
            f"{row['learned_reminders']:>8} {row['exploring_reminders']:>10} {percent(row['right_hour']):>11} "
            f"{percent(row['within_an_hour']):>8}"
        )
    last = rows[len(rows) // 2 :]
    rule = sum(r["on_time_rule"] * r["loans"] for r in last) / sum(r["loans"] for r in last)
    learned = sum(r["on_time_learned"] * r["loans"] for r in last) / sum(r["loans"] for r in last)
    best = sum(r["on_time_oracle"] * r["loans"] for r in last) / sum(r["loans"] for r in last)
    print(
        f"second half: on time {percent(rule)} by the rule, {percent(learned)} learned, {percent(best)} at the true best hours"
    )
    out = ROOT / "bench" / "results" / "send_time.json"
    summary = {"borrowers": args.borrowers, "frequency": args.frequency, "weeks": args.weeks, "seed": args.seed}
    out.write_text(json.dumps({**summary, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
