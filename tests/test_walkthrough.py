"""The README's first command: ``python docs/examples/walkthrough.py --db sales.db``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import salesprocess as sp
from salesprocess.storage import SQLiteRepository

SCRIPT = Path(__file__).parents[1] / "docs" / "examples" / "walkthrough.py"
_spec = importlib.util.spec_from_file_location("walkthrough", SCRIPT)
assert _spec is not None
assert _spec.loader is not None
walkthrough = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(walkthrough)
main = walkthrough.main


def test_walkthrough_runs_the_process_and_stores_it(tmp_path, capsys):
    """The walkthrough screens, calls, qualifies and sells, and leaves the accounts in SQLite."""
    db = tmp_path / "sales.db"
    assert main(["--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "FAIL  employees >= 50  (employees: 12)" in out
    assert "Acme Tools GmbH  -> qualified" in out
    assert "Beta Logistics   refused: a confirming call" in out
    assert "800.00 EUR -> repeat" in out
    assert "named Epsilon Metal -> prospect, referrer" in out
    assert "referrals 2, converted 0" in out
    assert "decided: repair 9000.00 EUR <= limit 11200.00 EUR" in out
    with SQLiteRepository(db) as repository:
        counts = repository.count_by_stage()
        acme = repository.find_by_email("buyer@acme.example")
        zeta = repository.find_by_email("info@zeta.example")
    assert counts[sp.Stage.PROSPECT] == 4
    assert counts[sp.Stage.REFERRER] == 1
    assert counts[sp.Stage.CUSTOMER] == 1
    assert acme is not None
    assert zeta is not None
    assert [str(c.to_stage) for c in acme.history] == [
        "prospect",
        "qualified",
        "customer",
        "repeat",
        "referrer",
    ]
    assert zeta.source.referred_by == acme.id
    assert acme.referral_code is not None
    assert acme.preference("equipment_strategy") is not None
    assert [asset.model for asset in acme.assets] == ["Lathe L-200"]


def test_second_run_finds_the_leads_known(tmp_path, capsys):
    """Run twice on one file, the walkthrough captures no duplicates and shows the stored funnel.

    Six accounts: the four leads and the two that Acme referred.
    """
    db = tmp_path / "sales.db"
    assert main(["--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "captured by an earlier run" in out
    with SQLiteRepository(db) as repository:
        assert sum(repository.count_by_stage().values()) == 6


def test_a_foreign_file_is_reported_not_a_traceback(tmp_path, capsys):
    """A file that is not a salesprocess database gets one clear error line and exit status 1."""
    db = tmp_path / "notes.db"
    db.write_bytes(b"these are my notes, not a database" * 100)
    assert main(["--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("error: ")
    assert "Traceback" not in out


def test_the_script_runs_as_a_program(tmp_path):
    """``python docs/examples/walkthrough.py --db FILE`` runs the walkthrough to the end."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--db", str(tmp_path / "sales.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "domain events published" in done.stdout
