from typing import Any

from django.core.management.base import BaseCommand, CommandError

from imports.audit import verify_chain_report


class Command(BaseCommand):
    help = (
        "Recompute the audit history's hash chain up to its head as read at the start, and report any event "
        "that was changed or removed. Events appended while it runs are left for the next run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain_report()
        for problem in report.problems:
            where = f"event #{problem.seq}" if problem.seq is not None else "chain"
            self.stderr.write(f"{where}: {problem.message}")
        if report.problems:
            raise CommandError(
                f"the audit history is NOT intact: {len(report.problems)} problem(s) in {report.count} events "
                f"up to #{report.up_to_seq}"
            )
        self.stdout.write(
            self.style.SUCCESS(f"the audit history is intact: {report.count} events verified up to #{report.up_to_seq}")
        )
