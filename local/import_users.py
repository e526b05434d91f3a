"""`make import-users FILE=...` and `make import-status`.

Imports the Django backend's users (`python manage.py dumpdata
users.CustomUser`, or a CSV with the same columns) into a deployed stack when
STACK_NAME is set (credentials that may write its users table, read its
pepper secret and send to its audit queue), else into the emulator of a
running `make dev`.  With neither, or when the target does not answer, it says
so in one line and exits 2.  See docs/migration.md.

On a terminal a progress bar runs on stderr; the summary (imported, skipped,
refused, with each refused row's number, Django pk and reason, never its
email or hash) goes to stdout.  Exit status: 0 when no row was refused, 1
when some were, 2 when the import could not run or stopped (run it again: it
resumes).

`make import-status` counts the imported accounts still on a Django hash and
those upgraded: the migration guide's upgrade counter.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

from local.audit_tool import Unreachable, _connect


class ProgressBar:
    """Rows read, a bar (when the file's size is known) and the rate, redrawn in place."""

    def __init__(self, stream: TextIO, total_rows: int | None) -> None:
        self.stream, self.total, self.started = stream, total_rows, time.perf_counter()

    def __call__(self, rows: int, summary: Any) -> None:
        rate = rows / max(time.perf_counter() - self.started, 1e-6)
        if self.total:
            done = min(rows / self.total, 1.0)
            bar = "#" * int(done * 30)
            head = f"[{bar:<30}] {rows:,}/{self.total:,}"
        else:
            head = f"{rows:,} rows"
        self.stream.write(
            f"\r{head}  imported {summary.imported:,}  skipped {summary.skipped:,}  refused {len(summary.refused):,}  {rate:,.0f} rows/s "
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _count_rows(path: Path) -> int | None:
    from carekey import legacy_import

    try:
        return sum(1 for _ in legacy_import.read_rows(path))
    except legacy_import.UnreadableFile:
        return None


def _operator() -> str:
    """Who runs the import, for the audit trail: the caller's IAM ARN on AWS."""
    if os.environ.get("STACK_NAME"):
        import boto3

        return str(boto3.client("sts").get_caller_identity()["Arn"])
    return "local"


def run_import(path: Path, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from carekey import legacy_import
    from carekey.api import Client

    out, err = out or sys.stdout, err or sys.stderr
    client = Client(ip="operator", user_agent=f"carekey-import ({_operator()})", request_id=f"import-{uuid.uuid4()}")
    bar = ProgressBar(err, _count_rows(path)) if err.isatty() else None
    started = time.perf_counter()
    try:
        summary = legacy_import.import_file(path, client, progress=bar)
    finally:
        if bar:
            bar.close()
    seconds = time.perf_counter() - started
    for refused in summary.refused:
        out.write(f"refused: row {refused.row} (pk {refused.legacy_id or '?'}): {refused.reason}\n")
    formats = ", ".join(f"{name} {count:,}" for name, count in sorted(summary.formats.items())) or "none"
    out.write(
        f"{summary.rows:,} rows in {seconds:.1f}s ({summary.rows / max(seconds, 1e-6):,.0f} rows/s): "
        f"{summary.imported:,} imported, {summary.skipped:,} skipped (imported before), {len(summary.refused):,} refused. "
        f"Imported hashes: {formats}.\n"
    )
    return 1 if summary.refused else 0


def status(out: TextIO | None = None) -> int:
    from carekey import legacy_import

    out = out or sys.stdout
    counts = legacy_import.upgrade_status()
    total = sum(counts.values())
    upgraded = counts.pop("upgraded", 0)
    waiting = ", ".join(f"{name} {count:,}" for name, count in sorted(counts.items())) or "none"
    share = f" ({upgraded / total:.0%})" if total else ""
    out.write(f"{total:,} imported accounts: {upgraded:,} on the service's own hash{share}; still on a Django hash: {waiting}.\n")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--status"]:
        action = "import-status"
    elif len(argv) == 1 and argv[0]:
        action = "import-users"
        path = Path(argv[0])
        if not path.is_file():
            print(f"import-users: no such file: {path}")
            return 2
    else:
        print("usage: make import-users FILE=users.json | make import-status")
        return 2
    try:
        where = _connect()
    except Unreachable as exc:
        print(f"{action}: {exc}")
        return 2
    try:
        return status() if action == "import-status" else run_import(path)
    except KeyboardInterrupt:
        print(f"{action}: interrupted; run it again to resume (imported rows are skipped)")
        return 2
    except Exception as exc:  # noqa: BLE001 - a failing call becomes one line, not a traceback
        from carekey.legacy_import import UnreadableFile

        first = (str(exc).splitlines() or [""])[0][:200]
        if isinstance(exc, UnreadableFile):
            print(f"{action}: {first}")
        else:
            print(f"{action}: stopped against {where}: {type(exc).__name__}: {first}; run it again to resume (imported rows are skipped)")
        return 2


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv[1:]))
