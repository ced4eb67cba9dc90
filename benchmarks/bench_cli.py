"""Command-line benchmark: ``import-leads`` of 100,000 rows, and the demo.

Run: ``python benchmarks/bench_cli.py [--rows N]``.

1. ``salesprocess import-leads`` of a 100,000-row CSV into a new SQLite file, end to end
   (process start included), against a plain ``csv`` + ``sqlite3.executemany`` script loading
   the same rows into one table (target: at most 3x) and ``sqlite-utils insert --csv`` of the
   same file (target: faster).
2. ``salesprocess demo`` with defaults (target: under 10 s).
"""

from __future__ import annotations

import argparse
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


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    csv_file = folder / "leads.csv"
    with csv_file.open("w", encoding="utf-8") as out:
        out.write("name,email,phone\n")
        for i in range(args.rows):
            out.write(f"Lead {i},Lead{i}@List.example,+49 30 {i:07d}\n")
    python = sys.executable
    script = Path(python).with_name("salesprocess")
    ours = timed([str(script), "import-leads", str(csv_file), "--channel", "marketing_list",
                  "--db", str(folder / "ours.db")])  # fmt: skip
    plain = timed([python, "-c", PLAIN, str(csv_file), str(folder / "plain.db")])
    print(f"(1) import-leads of {args.rows:,} rows into a new SQLite file, end to end")
    print(f"    salesprocess import-leads   {ours:7.2f} s")
    print(f"    csv + executemany           {plain:7.2f} s   ours {ours / plain:5.1f}x "
          f"(target <= 3x: {'met' if ours <= 3 * plain else 'MISSED'})")  # fmt: skip
    utils = shutil.which("sqlite-utils") or str(Path(python).with_name("sqlite-utils"))
    if Path(utils).exists():
        theirs = timed([utils, "insert", str(folder / "utils.db"), "leads", str(csv_file), "--csv"])
        print(f"    sqlite-utils insert --csv   {theirs:7.2f} s   ours {ours / theirs:5.2f}x "
              f"(target < 1x: {'met' if ours < theirs else 'MISSED'})")  # fmt: skip
    else:
        print("    sqlite-utils: not installed (pip install sqlite-utils)")
    demo = timed([str(script), "demo", "--db", str(folder / "demo.db")])
    print(
        f"(2) salesprocess demo: {demo:.2f} s (target < 10 s: {'met' if demo < 10 else 'MISSED'})"
    )
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
