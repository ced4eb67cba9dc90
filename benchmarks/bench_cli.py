"""Command-line benchmark: ``import-leads`` of 100,000 rows, and the demo.

Run: ``python benchmarks/bench_cli.py [--rows N] [--runs N]``. Each command is timed
``--runs`` times (default 3, each import into a new file) and its best run is compared: on a
shared machine one run of the plain script alone varied from 0.40 to 0.75 s.

1. ``salesprocess import-leads`` of a 100,000-row CSV into a new SQLite file, end to end
   (process start included), against a plain ``csv`` + ``sqlite3.executemany`` script loading
   the same rows into one table (target: at most 3x) and ``sqlite-utils insert --csv`` of the
   same file (target: faster).
2. ``salesprocess demo`` with defaults (target: under 10 s).
3. ``salesprocess report`` (tables, and ``--json``) on a SQLite file of 1,000,000 accounts and
   2,000,000 purchases, end to end (target: under 3 s). The file is
   ``bench_reports.py``'s, cached under the temporary directory (built on first use, which
   takes minutes); ``--report-only`` runs this part alone, ``--no-report`` skips it.

Wall times drift with the machine's load; each line also gives the CPU time the process used
(user + system), which does not.

The package is byte-compiled first (``compileall``), as pip compiles an installed wheel, so
every command starts as it does for a user. This matters on machines that set
``PYTHONDONTWRITEBYTECODE`` (ours do): there an editable install keeps no bytecode, and each
command compiled all of its modules anew, 0.1 to 0.15 s of every start, which neither the
plain script (the standard library comes compiled) nor ``sqlite-utils`` (a wheel) pays.

Part 1 also measures the floor under our schema, in the same run: SQLite alone storing the very
rows our import wrote (read back from its file, so no Python builds them) into a new file by
the bulk path (the statement a new lead is stored with, secondary indexes built once, at
commit), and the start of the command (Python, the CLI, the facade and the SQLite adapter
imported: what a command loads before its first row). Their
sum is what an import would cost with no per-row Python work at all; the ratio of that sum to
the plain script says how close to 3x the schema itself allows (a row of ~28 columns with the
account's JSON and a dozen indexes, where the plain script writes three columns and one index).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = """
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[2])
db.execute("CREATE TABLE leads (name TEXT, email TEXT UNIQUE, phone TEXT)")
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = csv.DictReader(f)
    db.executemany("INSERT INTO leads VALUES (?, ?, ?)",
                   ((r["name"], r["email"].strip().lower(), r["phone"] or None) for r in rows))
db.commit()
"""


FLOOR = """
import os, sqlite3, sys, time
from salesprocess.storage import SQLiteRepository
from salesprocess.storage.sqlite import _ADD_STATES, _INSERT_CAPTURE, _LAST_ROWID, _SECONDARY
SQLiteRepository(sys.argv[2]).close()  # a new file with our schema
# The parameters of the statement our import stores a new lead with, read back from its file.
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT id, name, email, phone, stage, created_at, data, referral_code, channel, campaign, "
    "created_zone, created_wall, first_qualified_at IS NOT NULL, mask FROM accounts"
).fetchall()
db = sqlite3.connect(sys.argv[2], isolation_level=None)
db.execute("PRAGMA synchronous = FULL")
db.execute("PRAGMA cache_size = -65536")
start = time.process_time()
db.execute("BEGIN IMMEDIATE")
indexes = db.execute(_SECONDARY).fetchall()
for name, _ in indexes:
    db.execute(f'DROP INDEX "{name}"')
for at in range(0, len(rows), 1000):
    (last,) = db.execute(_LAST_ROWID).fetchone()
    db.executemany(_INSERT_CAPTURE, rows[at : at + 1000])
    db.execute(_ADD_STATES, (last,))
for _, sql in indexes:
    db.execute(sql)
db.execute("COMMIT")
db.close()
print(time.process_time() - start)
"""


# What a command has imported before it reads its first row.
STARTED = (
    "import salesprocess as sp, salesprocess.cli.app; sp.SalesProcess; "
    "from salesprocess.storage.sqlite import SQLiteRepository"
)


def compiled() -> None:
    """Byte-compile the salesprocess package where it is installed (see the module's docstring)."""
    spec = importlib.util.find_spec("salesprocess")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    for folder in spec.submodule_search_locations:
        if not compileall.compile_dir(folder, quiet=1):
            raise SystemExit(f"cannot byte-compile {folder}")


def timed(command: list[str]) -> tuple[float, float]:
    """Return the wall and CPU (user + system) seconds of running ``command``."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def best(runs: int, command: list[str]) -> tuple[float, float]:
    return min(timed(command) for _ in range(runs))


def best_into(runs: int, command: list[str], target: Path) -> tuple[float, float]:
    """Best of ``runs`` runs of ``command``, each writing the new file ``target`` afresh."""
    times = []
    for _ in range(runs):
        for path in (target, target.with_name(target.name + "-wal")):
            path.unlink(missing_ok=True)
        times.append(timed(command))
    return min(times)


def bench_report(script: str, runs: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_reports import sqlite_file  # noqa: PLC0415 - the reports benchmark's data set

    path = sqlite_file(1_000_000, 2_000_000)
    start = best(runs, [sys.executable, "-c", "pass"])
    version = best(runs, [script, "--version"])
    tables = best(runs, [script, "report", "--db", str(path)])
    as_json = best(runs, [script, "report", "--json", "--db", str(path)])
    print("(3) report on 1,000,000 accounts and 2,000,000 purchases, end to end (best of "
          f"{runs})")  # fmt: skip
    for label, (wall, cpu) in (
        ("python -c pass", start), ("salesprocess --version", version),
        ("salesprocess report", tables), ("salesprocess report --json", as_json),
    ):  # fmt: skip
        verdict = "" if "report" not in label else (
            f"  (target < 3 s: {'met' if wall < 3 else 'MISSED'})"
        )  # fmt: skip
        print(f"    {label:28} {wall:6.2f} s wall {cpu:6.2f} s CPU{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs of each")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    compiled()
    python = sys.executable
    script = str(Path(python).with_name("salesprocess"))
    if not args.report_only:
        bench_import(script, args.rows, args.runs)
    if not args.no_report:
        bench_report(script, args.runs)


def bench_import(script: str, rows: int, runs: int) -> None:
    python = sys.executable
    folder = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    csv_file = folder / "leads.csv"
    with csv_file.open("w", encoding="utf-8") as out:
        out.write("name,email,phone\n")
        for i in range(rows):
            out.write(f"Lead {i},Lead{i}@List.example,+49 30 {i:07d}\n")
    ours = best_into(runs, [script, "import-leads", str(csv_file), "--channel", "marketing_list",
                            "--db", str(folder / "ours.db")], folder / "ours.db")  # fmt: skip
    plain = best_into(runs, [python, "-c", PLAIN, str(csv_file), str(folder / "plain.db")],
                      folder / "plain.db")  # fmt: skip
    print(f"(1) import-leads of {rows:,} rows into a new SQLite file, end to end (best of {runs})")
    print(f"    salesprocess import-leads   {ours[0]:7.2f} s wall {ours[1]:6.2f} s CPU")
    print(f"    csv + executemany           {plain[0]:7.2f} s wall {plain[1]:6.2f} s CPU   "
          f"ours {ours[0] / plain[0]:5.1f}x wall, {ours[1] / plain[1]:5.1f}x CPU "
          f"(target <= 3x: {'met' if ours[0] <= 3 * plain[0] else 'MISSED'})")  # fmt: skip
    start = timed([python, "-c", STARTED])
    run = subprocess.run([python, "-c", FLOOR, str(folder / "ours.db"), str(folder / "floor.db")],
                         check=True, capture_output=True, text=True)  # fmt: skip
    sqlite_cpu = float(run.stdout)
    floor = start[1] + sqlite_cpu
    print(f"    floor: start + imports {start[1]:.2f} s CPU, SQLite alone storing our rows "
          f"(bulk path) {sqlite_cpu:.2f} s CPU = {floor:.2f} s CPU, "
          f"{floor / plain[1]:.1f}x the plain script's CPU")  # fmt: skip
    utils = shutil.which("sqlite-utils") or str(Path(python).with_name("sqlite-utils"))
    if Path(utils).exists():
        theirs = best_into(runs, [utils, "insert", str(folder / "utils.db"), "leads",
                                  str(csv_file), "--csv"], folder / "utils.db")  # fmt: skip
        print(f"    sqlite-utils insert --csv   {theirs[0]:7.2f} s wall {theirs[1]:6.2f} s CPU   "
              f"ours {ours[0] / theirs[0]:5.2f}x wall, {ours[1] / theirs[1]:5.2f}x CPU "
              f"(target < 1x: {'met' if ours[0] < theirs[0] else 'MISSED'})")  # fmt: skip
    else:
        print("    sqlite-utils: not installed (pip install sqlite-utils)")
    demo = timed([script, "demo", "--db", str(folder / "demo.db")])
    print(f"(2) salesprocess demo: {demo[0]:.2f} s wall {demo[1]:.2f} s CPU "
          f"(target < 10 s: {'met' if demo[0] < 10 else 'MISSED'})")  # fmt: skip
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
