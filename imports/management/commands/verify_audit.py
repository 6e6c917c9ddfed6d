from typing import Any

from django.core.management.base import BaseCommand, CommandError

from imports import anchor, audit


class Command(BaseCommand):
    help = (
        "Check both audit histories (requests, admin changes): every event's seal under the audit key, every "
        "link, each chain's head, and, where anchoring is configured, the newest anchor in S3, so that events "
        "changed, re-sealed or cut are named. Events appended while it runs are left for the next run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        reports = {chain.name: audit.verify_chain_report(chain) for chain in audit.CHAINS}
        problems = [(name, p) for name, report in reports.items() for p in report.problems]
        anchored = ""
        if anchor.configured():
            try:
                newest = anchor.newest_anchor()
            except anchor.AnchorError as exc:
                problems.append(("anchor", audit.ChainProblem(None, str(exc))))
            else:
                if newest is None:
                    anchored = "no anchor written yet"
                else:
                    problems += [("anchor", p) for p in anchor.check_against(newest, reports)]
                    anchored = f"matches the newest anchor ({newest.object_key}, written {newest.written_at})"
        else:
            self.stderr.write(
                "warning: no anchor is configured (PORTAL_AUDIT_ANCHOR_BUCKET): the newest events could be cut "
                "together with the chain head without this check noticing"
            )
        for name, problem in problems:
            where = f"event #{problem.seq}" if problem.seq is not None else "chain"
            self.stderr.write(f"{name}, {where}: {problem.message}")
        summary = "; ".join(f"{name}: {r.count} events up to #{r.up_to_seq}" for name, r in reports.items())
        if problems:
            raise CommandError(f"the audit history is NOT intact: {len(problems)} problem(s) ({summary})")
        self.stdout.write(
            self.style.SUCCESS(f"the audit history is intact ({summary}){'; ' + anchored if anchored else ''}")
        )
