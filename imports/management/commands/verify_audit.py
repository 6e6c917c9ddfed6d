from typing import Any

from django.core.management.base import BaseCommand, CommandError

from imports.audit import verify_chain


class Command(BaseCommand):
    help = "Recompute the audit history's hash chain and report any event that was changed or removed."

    def handle(self, *args: Any, **options: Any) -> None:
        count, problems = verify_chain()
        for problem in problems:
            where = f"event #{problem.seq}" if problem.seq is not None else "chain"
            self.stderr.write(f"{where}: {problem.message}")
        if problems:
            raise CommandError(f"the audit history is NOT intact: {len(problems)} problem(s) in {count} events")
        self.stdout.write(self.style.SUCCESS(f"the audit history is intact: {count} events verified"))
