"""The command line, driven as a user would: files in, exit codes and lines out."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import salesprocess as sp
from salesprocess.cli.app import cli
from salesprocess.storage import SQLiteRepository

COMMANDS = ("migrate", "demo", "import-leads", "import-purchases", "screen", "call-list",
            "record-call", "qualify", "report")  # fmt: skip


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def stored(db: Path) -> list[sp.Account]:
    with SQLiteRepository(db) as repository:
        return list(repository.page())


def test_version_and_help_of_every_command():
    """--version names the version; every subcommand has --help."""
    code, out, _ = run("--version")
    assert code == 0
    assert sp.__version__ in out
    for command in COMMANDS:
        code, out, _ = run(command, "--help")
        assert code == 0, command
        assert "--db" in out, command


def test_the_console_script_runs(tmp_path):
    """``python -m salesprocess`` is the same program."""
    assert run("migrate", "--db", str(tmp_path / "s.db"))[0] == 0
    done = subprocess.run(
        [sys.executable, "-m", "salesprocess", "report", "--db", str(tmp_path / "s.db"), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["funnel"]["ladder"][0]["stage"] == "prospect"


# Run in a fresh interpreter: a finder ahead of the others says the package is not installed,
# as Python does when it is missing (ModuleNotFoundError naming it).
_WITHOUT = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {0!r} or name.startswith({0!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Missing())
"""


@pytest.mark.parametrize("missing", ["click", "rich"])
@pytest.mark.parametrize("how", ["script", "module"])
def test_without_the_cli_extra_one_line_says_what_to_install(missing, how):
    """No Click (or rich): the console script and ``python -m salesprocess`` say it, exit 1."""
    start = (
        "from salesprocess.cli import main; raise SystemExit(main(['report']))"
        if how == "script"
        else "import runpy; sys.argv = ['salesprocess', 'report']; "
        "runpy.run_module('salesprocess', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT.format(missing) + start],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"error: the command line needs {missing}: pip install 'salesprocess[cli]'\n"
    )
    assert done.stdout == ""


def test_the_demo_plays_a_quarter_and_never_mixes_into_real_data(tmp_path):
    """A fresh file gets the quarter and the report; a file with accounts is refused."""
    db = tmp_path / "sales.db"
    code, out, _ = run("demo", "--db", str(db))
    assert code == 0
    assert "leads captured" in out
    assert "Funnel" in out
    assert "Revenue" in out
    first = stored(db)
    assert len(first) >= 60
    # every name given and every card holder is a lead of its own (none merged into another)
    named = sum(1 for a in first if a.name.startswith(("Friend ", "Card holder of ")))
    told = out.split("names given when asked")[0].rsplit("\n", 1)[-1].split()[0]
    cards = out.split("leads brought by business cards")[0].rsplit(", ", 1)[-1].split()[0]
    assert named == int(told) + int(cards)
    assert {a.source.channel for a in first} == set(sp.Channel)
    code, out, err = run("demo", "--db", str(db))
    assert code == 1
    assert err.startswith("error: ")
    assert "already holds" in err
    assert len(err.strip().splitlines()) == 1
    assert stored(db) == first
    other = tmp_path / "again.db"
    run("demo", "--db", str(other))
    # the same seed, the same quarter
    assert sorted((a.name, a.stage) for a in stored(other)) == sorted(
        (a.name, a.stage) for a in first
    )


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def holding_one_lead(folder: Path) -> Path:
    """Return a SQLite file in ``folder`` holding one lead, Kept: what a refused run leaves."""
    db = folder / "s.db"
    kept = write(folder / "first.csv", "name,email\nKept,kept@x.example\n")
    assert run("import-leads", str(kept), "--channel", "referral", "--db", str(db))[0] == 0
    return db


def another_name(path: Path, spelling: str) -> Path:
    """Return ``path`` as it is ("same"), through a folder and back ("dotted"), or a hard link."""
    if spelling == "same":
        return path
    if spelling == "dotted":
        (path.parent / "sub").mkdir(exist_ok=True)
        return path.parent / "sub" / ".." / path.name
    link = path.with_name(f"alias-{path.name}")
    os.link(path, link)
    return link


def test_import_leads_merges_known_contacts_and_is_idempotent(tmp_path):
    """Known contacts are recognised; the same file twice changes nothing; BOM is fine."""
    db = tmp_path / "s.db"
    csv = write(
        tmp_path / "fair.csv",
        "\ufeffname,email,phone,industry\n"
        "Acme,Buyer@Acme.example,,manufacturing\n"
        "Acme again,buyer@acme.example,+49 30 111,\n"
        "Beta,,+49 30 222,logistics\n",
    )
    code, out, _ = run("import-leads", str(csv), "--channel", "marketing_list",
                       "--campaign", "expo", "--db", str(db))  # fmt: skip
    assert code == 0
    assert "2 leads captured, 1 known, 0 rejected" in out
    accounts = {a.name: a for a in stored(db)}
    assert accounts["Acme"].phone == "+4930111"
    assert accounts["Acme"].attributes["industry"] == "manufacturing"
    assert accounts["Beta"].source.campaign == "expo"
    code, out, _ = run("import-leads", str(csv), "--channel", "marketing_list", "--db", str(db))
    assert "0 leads captured, 3 known" in out
    assert {a.id: a for a in stored(db)} == {a.id: a for a in accounts.values()}


def test_bad_rows_import_nothing_and_are_listed_by_line(tmp_path):
    """One bad row: nothing imported, every bad row by file and line, exit 1."""
    db = tmp_path / "s.db"
    csv = write(
        tmp_path / "leads.csv",
        "name,email\nGood,good@x.example\n\n,blank@x.example\nOdd,not-an-email\n",
    )
    code, _, err = run("import-leads", str(csv), "--channel", "cold_outreach", "--db", str(db))
    assert code == 1
    assert f"{csv}:4: " in err
    assert f"{csv}:5: " in err
    assert "Traceback" not in err
    assert stored(db) == []
    rejects = tmp_path / "rejects.csv"
    code, out, _ = run("import-leads", str(csv), "--channel", "cold_outreach", "--db", str(db),
                       "--skip-bad", "--rejects", str(rejects))  # fmt: skip
    assert code == 0  # the good rows are stored; the bad ones listed and written out
    assert "1 leads captured" in out
    lines = rejects.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("line,reason,name,email")
    assert [line.split(",")[0] for line in lines[1:]] == ["4", "5"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read it"),
        ("", "the file is empty"),
        ("title,company\nMr,Acme\n", "no name column"),
        ("name,email\nCafé,caf@x.example\n", "not utf-8"),
        ("name,email\n\n,\n", "a header and no rows"),
    ],
)
def test_unreadable_files_are_one_line_and_exit_1(tmp_path, content, message):
    """A missing, empty, headerless or wrongly encoded file: one clear line naming it."""
    db = tmp_path / "s.db"
    path = tmp_path / "leads.csv"
    if content is not None:
        write(path, content, "latin-1")
    code, _, err = run("import-leads", str(path), "--channel", "referral", "--db", str(db))
    assert code == 1
    assert message in err
    assert str(path) in err
    assert len(err.strip().splitlines()) == 1
    assert stored(db) == []


def test_an_encoding_can_be_named(tmp_path):
    """--encoding reads a Latin-1 export."""
    db = tmp_path / "s.db"
    csv = write(tmp_path / "leads.csv", "name,email\nCafé,caf@x.example\n", "latin-1")
    code, _, _ = run("import-leads", str(csv), "--channel", "referral", "--db", str(db),
                     "--encoding", "latin-1")  # fmt: skip
    assert code == 0
    assert [a.name for a in stored(db)] == ["Café"]


def test_import_purchases_by_reference_and_map(tmp_path):
    """Purchases with references import once; --map renames columns; walk-ins are created."""
    db = tmp_path / "s.db"
    csv = write(
        tmp_path / "shop.csv",
        "customer,total,currency,date,invoice\n"
        "w@in.example,40.00,EUR,2026-03-01,POS-1\n"
        "w@in.example,60.00,EUR,2026-03-09T10:00:00+01:00,POS-2\n",
    )
    maps = ["--map", "customer=email", "--map", "total=amount", "--map", "date=at",
            "--map", "invoice=reference"]  # fmt: skip
    code, out, _ = run("import-purchases", str(csv), *maps, "--db", str(db))
    assert code == 0, out
    assert "2 purchases recorded, 0 already known, 1 new customers" in out
    code, out, _ = run("import-purchases", str(csv), *maps, "--db", str(db))
    assert "0 purchases recorded, 2 already known" in out
    (walk_in,) = stored(db)
    assert walk_in.stage is sp.Stage.REPEAT
    bad = write(
        tmp_path / "bad.csv",
        "email,amount,currency,at,reference\nw@in.example,12;50,EUR,2026-04-01,POS-3\n",
    )
    code, _, err = run("import-purchases", str(bad), "--db", str(db))
    assert code == 1
    assert f"{bad}:2: " in err
    unnamed = write(tmp_path / "unnamed.csv", "email,amount,at\nw@in.example,1.00,2026-04-01\n")
    code, _, err = run("import-purchases", str(unnamed), "--currency", "EUR", "--db", str(db))
    assert (code, "no reference column" in err) == (1, True)  # re-imports must be harmless
    odd = write(tmp_path / "odd.csv", "email,amount,at,Reference\nw@in.example,1.00,2026-04-01,X\n")
    code, _, err = run("import-purchases", str(odd), "--currency", "EUR", "--db", str(db))
    assert (code, "unknown column Reference" in err) == (1, True)
    assert len(stored(db)[0].purchases) == 2


def test_screen_call_record_and_qualify(tmp_path):
    """The qualifying steps, one command each, on the stored leads."""
    db = tmp_path / "s.db"
    criteria = write(tmp_path / "criteria.json", '{">=": [{"var": "employees"}, 50]}')
    leads = write(
        tmp_path / "leads.csv", "name,email,employees\nBig,big@x.example,120\nSmall,s@x.example,3\n"
    )
    run("import-leads", str(leads), "--channel", "cold_outreach", "--db", str(db))
    code, out, err = run("screen", "--criteria", str(criteria), "--db", str(db))
    assert (code, "2 prospects screened, 1 passed" in out) == (0, True)
    assert err == ""  # no progress bar off a terminal
    calls = tmp_path / "calls.csv"
    code, out, _ = run(
        "call-list", "--criteria", str(criteria), "--db", str(db), "--out", str(calls)
    )
    assert code == 0
    (big,) = [a for a in stored(db) if a.name == "Big"]
    assert big.id in calls.read_text(encoding="utf-8")
    code, out, _ = run(
        "record-call", big.id, "interested", "--notes", "needs lathes", "--db", str(db)
    )
    assert code == 0
    code, out, _ = run("qualify", big.id, "--db", str(db))
    assert (code, out.strip().endswith("qualified")) == (0, True)
    (small,) = [a for a in stored(db) if a.name == "Small"]
    code, _, err = run("qualify", small.id, "--db", str(db))
    assert code == 1
    assert "cannot be qualified yet" in err
    assert "give --override REASON" in err  # the option, not the Python argument
    assert "override='" not in err


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"nosuchop": [1]}', "unknown operator 'nosuchop'"),
        ('{">=": [{"var": "employees"}', "malformed JSON"),
        ("", "malformed JSON"),
    ],
)
def test_criteria_that_are_not_json_logic_are_one_line(tmp_path, document, message):
    """A criteria file that is not JSON Logic: exit 1, one line naming the file and fault."""
    db = tmp_path / "s.db"
    leads = write(tmp_path / "leads.csv", "name,email\nBig,big@x.example\n")
    run("import-leads", str(leads), "--channel", "cold_outreach", "--db", str(db))
    before = stored(db)
    criteria = write(tmp_path / "criteria.json", document)
    code, _, err = run("screen", "--criteria", str(criteria), "--db", str(db))
    assert code == 1
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    assert "criteria.json" in err
    assert message in err
    assert stored(db) == before


def test_a_malformed_date_or_amount_names_its_line_and_stores_nothing(tmp_path):
    """Purchase rows with a date or amount that is none: every one by line, nothing stored."""
    db = tmp_path / "s.db"
    good = write(tmp_path / "good.csv", "email,amount,currency,at,reference\n"
                 "w@in.example,40.00,EUR,2026-03-01,POS-1\n")  # fmt: skip
    assert run("import-purchases", str(good), "--db", str(db))[0] == 0
    before = stored(db)
    bad = write(
        tmp_path / "bad.csv",
        "email,amount,currency,at,reference\n"
        "w@in.example,12.00,EUR,yesterday,POS-2\n"
        "w@in.example,12.00,EUR,2026-03-05T10:00,POS-3\n"
        "w@in.example,1O.00,EUR,2026-03-06,POS-4\n"
        "w@in.example,-5,EUR,2026-03-07,POS-5\n"
        "w@in.example,5.00,EUR,2026-03-08,POS-6\n",
    )
    code, _, err = run("import-purchases", str(bad), "--db", str(db))
    assert code == 1
    lines = err.strip().splitlines()
    assert [line.split(": ")[0] for line in lines[:-1]] == [f"{bad}:{n}" for n in (2, 3, 4, 5)]
    assert "at" in lines[0]
    assert "Traceback" not in err
    assert stored(db) == before


def test_a_locked_database_is_one_line_and_left_as_it_was(tmp_path, monkeypatch):
    """Another process holding the write lock: exit 1 once the wait is over, nothing stored."""
    import functools  # noqa: PLC0415
    import sqlite3  # noqa: PLC0415

    from salesprocess.storage import sqlite as adapter  # noqa: PLC0415 - patched below

    db = tmp_path / "s.db"
    first = write(tmp_path / "first.csv", "name,email\nA,a@x.example\n")
    run("import-leads", str(first), "--channel", "referral", "--db", str(db))
    before = stored(db)
    # The wait for the lock is SQLite's busy timeout (5 s by default); a short one here.
    # The command imports the adapter when it runs: the patched class is the one it gets.
    monkeypatch.setattr(
        adapter, "SQLiteRepository", functools.partial(SQLiteRepository, timeout=0.2)
    )
    more = write(tmp_path / "more.csv", "name,email\nB,b@x.example\n")
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        code, _, err = run("import-leads", str(more), "--channel", "referral", "--db", str(db))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1
    assert err.startswith("error: ")
    assert "locked" in err
    assert str(db) in err
    assert len(err.strip().splitlines()) == 1
    assert stored(db) == before


def test_an_unreachable_postgresql_is_one_line():
    """--dsn naming a server nobody answers on: exit 1, one line, no traceback."""
    code, _, err = run("report", "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert code == 1
    assert err.startswith("error: ")
    assert "PostgreSQL" in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_foreign_database_is_refused_without_a_traceback(tmp_path):
    """A file that is not ours: one clear line, exit 1, the file untouched."""
    db = write(tmp_path / "notes.db", "these are my notes" * 100)
    code, _, err = run("report", "--db", str(db))
    assert code == 1
    assert err.startswith("error: ")
    assert db.read_text(encoding="utf-8") == "these are my notes" * 100


def test_usage_errors_exit_2():
    """An unknown option or a missing argument is a usage error."""
    assert run("report", "--nope")[0] == 2
    assert run("report", "--target", "-1")[0] == 2
    assert run("call-list", "--criteria", "c.json", "--limit", "0")[0] == 2
    assert run("import-leads")[0] == 2


def test_report_json_is_the_librarys_json_views(tmp_path):
    """report --json: it parses, and each part is sp.to_json of the library's report."""
    db = tmp_path / "s.db"
    run("demo", "--db", str(db))
    code, out, _ = run("report", "--json", "--db", str(db), "--as-of", "2026-04-12",
                       "--since", "2026-02-01", "--target", "3")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    as_of, since = datetime(2026, 4, 12, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    with SQLiteRepository(db) as repository:
        sales = sp.SalesProcess(repository)
        expected = {
            "as_of": as_of.isoformat(), "since": since.isoformat(), "until": as_of.isoformat(),
            "target": 3,
            "funnel": sp.to_json(sales.funnel(as_of=as_of)),
            "revenue": sp.to_json(sales.revenue(since=since, until=as_of)),
            "lead_flow": sp.to_json(sales.lead_flow(period="week", target=3, as_of=as_of)),
            "referrals": sp.to_json(sales.referral_stats()),
            "referrals_scope": "all time",
        }  # fmt: skip
    assert data == expected
    assert [r["stage"] for r in data["funnel"]["ladder"]] == [
        "prospect", "qualified", "customer", "repeat", "referrer",
    ]  # fmt: skip
    assert data["referrals"]["overall"]["referrals"] > 0  # the demo's quarter refers
    assert isinstance(data["revenue"]["by_currency"]["EUR"]["total"]["amount"], str)
    assert sp.from_json(sp.Funnel, data["funnel"]) == sales_funnel(db, as_of)
    import jsonschema  # noqa: PLC0415

    parts = {"funnel": sp.Funnel, "revenue": sp.RevenueReport,
             "lead_flow": list[sp.FlowPeriod], "referrals": sp.ReferralReport}  # fmt: skip
    for key, kind in parts.items():  # each part is what the library's schema describes
        jsonschema.validate(data[key], sp.json_schema(kind))


def sales_funnel(db: Path, as_of: datetime) -> sp.Funnel:
    with SQLiteRepository(db) as repository:
        return sp.SalesProcess(repository).funnel(as_of=as_of)


def test_a_hundred_thousand_leads_import(tmp_path):
    """A 100,000-row list imports whole, and again changes nothing."""
    db = tmp_path / "s.db"
    rows = "".join(f"Lead {i},lead{i}@list.example\n" for i in range(100_000))
    csv = write(tmp_path / "big.csv", "name,email\n" + rows)
    code, out, _ = run("import-leads", str(csv), "--channel", "marketing_list", "--db", str(db))
    assert code == 0
    assert "100000 leads captured" in out
    with SQLiteRepository(db) as repository:
        assert repository.count_by_stage()[sp.Stage.PROSPECT] == 100_000
    before = dump(db)
    code, out, _ = run("import-leads", str(csv), "--channel", "marketing_list", "--db", str(db))
    assert code == 0
    assert "0 leads captured, 100000 known, 0 rejected" in out
    assert dump(db) == before


def dump(db: Path) -> list[str]:
    """Every table, index and row of ``db``, and its header's version and application id."""
    with sqlite3.connect(db) as connection:
        lines = list(connection.iterdump())
        lines.append(repr(connection.execute("PRAGMA user_version").fetchone()))
        lines.append(repr(connection.execute("PRAGMA application_id").fetchone()))
    connection.close()
    return lines


def test_a_big_list_with_bad_rows_leaves_the_database_exactly_as_before(tmp_path):
    """The bulk path (indexes dropped, built again) undone: bad lines listed, file as it was."""
    db = tmp_path / "s.db"
    assert run("migrate", "--db", str(db))[0] == 0
    before = dump(db)
    rows = [f"Lead {i},lead{i}@list.example,+49 30 {i:07d}" for i in range(3000)]
    rows[0] = "Lead 0,lead0-at-list.example,"  # line 2
    rows[1700] = "Lead 1700,lead1700@list.example,+49 30 12x"  # line 1702
    rows[2999] = "Lead 2999,lead5@list.example,+49 30 9999999"  # line 3001: lead 5's email
    csv = write(tmp_path / "big.csv", "name,email,phone\n" + "\n".join(rows) + "\n")
    code, out, err = run("import-leads", str(csv), "--channel", "marketing_list", "--db", str(db))
    assert code == 1
    assert [line.split(": ")[0] for line in err.splitlines()][:3] == [
        f"{csv}:2", f"{csv}:1702", f"{csv}:3001",
    ]  # fmt: skip
    assert "lead0-at-list.example" in err
    assert "Traceback" not in err
    assert dump(db) == before
    code, out, _ = run("import-leads", str(csv), "--channel", "marketing_list", "--db", str(db),
                       "--skip-bad")  # fmt: skip
    assert code == 0
    assert "2997 leads captured, 0 known, 3 rejected" in out
    with SQLiteRepository(db) as repository:
        assert repository.count_by_stage()[sp.Stage.PROSPECT] == 2997


def test_report_draws_its_charts(tmp_path):
    """--plot writes the four PNG charts."""
    db = tmp_path / "s.db"
    run("demo", "--db", str(db))
    charts = tmp_path / "charts"
    code, _, err = run("report", "--db", str(db), "--plot", str(charts), "--as-of", "2026-04-12")
    assert code == 0, err
    names = sorted(path.name for path in charts.iterdir())
    assert names == ["funnel.png", "lead_flow.png", "new_vs_repeat.png", "revenue.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in charts.iterdir())


def test_report_labels_the_referral_figures_all_time(tmp_path):
    """--as-of before every referral: the figures still count them all, and say so."""
    db = tmp_path / "s.db"
    run("demo", "--db", str(db))  # every referral of the demo is from April
    code, out, err = run("report", "--db", str(db), "--as-of", "2026-02-01")
    assert code == 0, err
    assert "Referrals (all time): 10," in out
    code, out, err = run("report", "--json", "--db", str(db), "--as-of", "2026-02-01")
    assert code == 0, err
    data = json.loads(out)
    assert data["referrals_scope"] == "all time"
    assert data["referrals"]["overall"]["referrals"] == 10
    code, out, _ = run("report", "--help")
    assert "all time" in " ".join(out.split())


def bought(account_id: str, *purchases: tuple[str, str, str]) -> sp.Account:
    """An account with purchases given as (ISO moment, amount, currency), in time order."""
    return sp.Account(
        account_id, account_id, sp.Source("referral"), datetime(2025, 1, 1, tzinfo=UTC),
        purchases=tuple(
            sp.Purchase(sp.Money(amount, currency), datetime.fromisoformat(at))
            for at, amount, currency in purchases
        ),
    )  # fmt: skip


def test_monthly_revenue_keeps_to_the_window_and_sums_exactly():
    """The charts' sums: Decimal, only since <= at < until, repeat as of the whole history."""
    from salesprocess.cli.plots import monthly_revenue  # noqa: PLC0415

    accounts = [
        bought(
            "a",
            ("2026-01-31T23:00+00:00", "5.00", "EUR"),  # before since: not counted
            ("2026-02-03T10:00+00:00", "0.10", "EUR"),  # repeat: a bought in January
            ("2026-02-04T10:00+00:00", "0.20", "EUR"),
        ),
        bought(
            "b",
            ("2026-02-10T10:00+00:00", "0.10", "EUR"),  # first
            ("2026-02-10T12:00+00:00", "0.20", "EUR"),  # the same UTC day: first too
            ("2026-03-01T00:00+00:00", "7.00", "EUR"),  # at until: not counted
        ),
        bought("c", ("2026-02-28T23:59+00:00", "0.30", "USD")),
        bought("d"),
    ]
    since, until = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    months = monthly_revenue(accounts, since=since, until=until)
    assert months == {
        "EUR": {"2026-02": (Decimal("0.30"), Decimal("0.30"))},
        "USD": {"2026-02": (Decimal("0.30"), Decimal(0))},
    }
    first, repeat = months["EUR"]["2026-02"]
    assert type(first) is Decimal
    assert type(repeat) is Decimal
    assert (str(first), str(repeat)) == ("0.30", "0.30")  # not 0.30000000000000004
    everything = monthly_revenue(accounts)
    assert sorted(everything["EUR"]) == ["2026-01", "2026-02", "2026-03"]
    assert everything["EUR"]["2026-03"] == (Decimal(0), Decimal("7.00"))


def test_report_plot_keeps_to_since_and_until(tmp_path, monkeypatch):
    """--plot with --since/--until: the charts are drawn of the report's revenue window."""
    from salesprocess.cli import plots  # noqa: PLC0415

    drawn: list[plots.Months] = []
    real = plots.monthly_revenue

    def spy(*args: object, **kwargs: object) -> plots.Months:
        months = real(*args, **kwargs)  # type: ignore[arg-type]
        drawn.append(months)
        return months

    monkeypatch.setattr(plots, "monthly_revenue", spy)
    db = tmp_path / "s.db"
    run("demo", "--db", str(db))
    charts = tmp_path / "charts"
    code, _, err = run("report", "--db", str(db), "--plot", str(charts), "--since", "2026-02-01",
                       "--until", "2026-03-01", "--as-of", "2026-04-12")  # fmt: skip
    assert code == 0, err
    names = sorted(path.name for path in charts.iterdir())
    assert names == ["funnel.png", "lead_flow.png", "new_vs_repeat.png", "revenue.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in charts.iterdir())
    (months,) = drawn
    assert list(months) == ["EUR"]
    assert list(months["EUR"]) == ["2026-02"]
    with SQLiteRepository(db) as repository:
        figures = sp.SalesProcess(repository).revenue(
            since=datetime(2026, 2, 1, tzinfo=UTC), until=datetime(2026, 3, 1, tzinfo=UTC)
        )
    assert sum(months["EUR"]["2026-02"]) == figures["EUR"].total.amount


def test_report_until_after_as_of_stops_at_as_of(tmp_path):
    """--as-of is the report's moment: a later --until is cut to it, charts included."""
    db = tmp_path / "s.db"
    run("demo", "--db", str(db))
    code, out, err = run("report", "--json", "--db", str(db), "--as-of", "2026-03-01",
                         "--until", "2026-05-01")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["until"] == datetime(2026, 3, 1, tzinfo=UTC).isoformat()


def test_a_bad_option_moment_is_a_usage_error(tmp_path):
    """--as-of, --since and --at take an ISO date or a datetime with its offset."""
    code, _, err = run("report", "--db", str(tmp_path / "s.db"), "--as-of", "2026-04-12T10:00")
    assert code == 2
    assert "--as-of" in err


def test_rejects_go_with_skip_bad_and_must_be_writable(tmp_path):
    """--rejects alone is a usage error; an unwritable one is refused before anything is stored."""
    db = tmp_path / "s.db"
    csv = write(tmp_path / "leads.csv", "name,email\nGood,good@x.example\n,bad@x.example\n")
    assert run("import-leads", str(csv), "--channel", "referral", "--db", str(db),
               "--rejects", str(tmp_path / "r.csv"))[0] == 2  # fmt: skip
    code, _, err = run("import-leads", str(csv), "--channel", "referral", "--db", str(db),
                       "--skip-bad", "--rejects", str(tmp_path / "no" / "r.csv"))  # fmt: skip
    assert code == 1
    assert "cannot write the rejects file" in err
    assert stored(db) == []


def test_a_run_without_bad_rows_leaves_no_older_rejects_in_the_rejects_file(tmp_path):
    """The rejects file says this run's rejects: none, once the rows are fixed."""
    db, rejects = tmp_path / "s.db", tmp_path / "rejects.csv"
    csv = write(tmp_path / "leads.csv", "name,email\nGood,good@x.example\nBad,not-an-email\n")
    args = ["--channel", "referral", "--db", str(db), "--skip-bad", "--rejects", str(rejects)]
    assert run("import-leads", str(csv), *args)[0] == 0
    assert len(rejects.read_text(encoding="utf-8").splitlines()) == 2
    write(csv, "name,email\nGood,good@x.example\nBad,bad@x.example\n")  # fixed
    code, out, _ = run("import-leads", str(csv), *args)
    assert code == 0
    assert "0 rejected" in out
    assert rejects.read_text(encoding="utf-8").splitlines() == ["line,reason,name,email"]


def test_odd_csv_content_is_one_line_naming_the_line(tmp_path):
    """A field past the csv module's limit, or a multi-line row, is reported by its line."""
    db = tmp_path / "s.db"
    huge = write(tmp_path / "huge.csv", "name,email\n" + "x" * 200_000 + ",a@x.example\n")
    code, _, err = run("import-leads", str(huge), "--channel", "referral", "--db", str(db))
    assert code == 1
    assert f"{huge}:" in err
    assert "Traceback" not in err
    multi = write(tmp_path / "multi.csv", 'name,email\n"Two\nLines",bad\n')
    code, _, err = run("import-leads", str(multi), "--channel", "referral", "--db", str(db))
    assert code == 1
    assert f"{multi}:2: " in err  # where the row starts


def test_a_criteria_device_is_refused(tmp_path):
    """screen --criteria /dev/zero: refused at once, never read."""
    code, _, err = run("screen", "--criteria", "/dev/zero", "--db", str(tmp_path / "s.db"))
    assert code == 1
    assert "not a regular file" in err


def test_imports_are_quiet_off_a_terminal_and_draw_a_bar_on_one(tmp_path):
    """No bar in a pipe or a log; on a terminal a bar that follows the rows."""
    import io  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415

    from salesprocess.cli import console  # noqa: PLC0415

    db = tmp_path / "s.db"
    rows = "".join(f"Lead {i},lead{i}@list.example\n" for i in range(2500))
    csv = write(tmp_path / "list.csv", "name,email\n" + rows)
    code, out, err = run("import-leads", str(csv), "--channel", "marketing_list", "--db", str(db))
    assert (code, err) == (0, "")
    assert "2500 leads captured" in out
    with console.progress("quiet", Console(file=io.StringIO())) as progress:
        assert progress is None
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=80)
    with console.progress("importing list.csv", terminal) as progress:
        assert progress is not None
        progress(1000, 2500)
        progress(2500, 2500)
    assert "importing list.csv" in screen.getvalue()
    assert "2500/2500" in screen.getvalue()


def test_a_foreign_sqlite_database_is_left_byte_for_byte(tmp_path):
    """Another application's SQLite file: refused, and not switched to WAL on the way."""
    db = tmp_path / "other.db"
    holder = sqlite3.connect(db)
    holder.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    holder.commit()
    holder.close()
    before = db.read_bytes()
    code, _, err = run("report", "--db", str(db))
    assert code == 1
    assert "another application" in err
    assert db.read_bytes() == before


def test_rejects_naming_the_input_file_is_a_usage_error_and_the_input_is_kept(tmp_path):
    """--rejects FILE.csv with FILE.csv as the input: refused before the input is touched."""
    text = "name,email\nGood,good@x.example\nBad,not-an-email\n"
    csv = write(tmp_path / "leads.csv", text)
    code, _, _ = run("import-leads", str(csv), "--channel", "referral", "--db",
                     str(tmp_path / "s.db"), "--skip-bad", "--rejects", str(csv))  # fmt: skip
    assert code == 2
    assert csv.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("spelling", ["same", "dotted", "link"])
def test_rejects_naming_the_database_or_the_input_by_another_name_is_refused(tmp_path, spelling):
    """--rejects must never overwrite the database, nor the input under another of its names."""
    db = holding_one_lead(tmp_path)
    text = "name,email\nGood,good@x.example\nBad,not-an-email\n"
    csv = write(tmp_path / "leads.csv", text)
    # the database by two of its names; the input by a hard link
    target = another_name(csv if spelling == "link" else db, spelling)
    code, _, err = run("import-leads", str(csv), "--channel", "referral", "--db", str(db),
                       "--skip-bad", "--rejects", str(target))  # fmt: skip
    assert code == 2, err
    assert csv.read_text(encoding="utf-8") == text
    assert [a.name for a in stored(db)] == ["Kept"]


def test_a_purchase_row_without_a_reference_is_a_bad_row(tmp_path):
    """An empty reference would make a re-import record the row again: it names its line."""
    db = tmp_path / "s.db"
    shop = write(tmp_path / "shop.csv", "email,amount,at,reference\nw@x.example,5.00,2026-03-02,\n")
    code, _, err = run("import-purchases", str(shop), "--currency", "EUR", "--db", str(db))
    assert code == 1
    assert f"{shop}:2: " in err
    assert "reference" in err
    assert stored(db) == []


@pytest.mark.parametrize("command", ["import-leads", "import-purchases"])
def test_a_failed_import_into_a_new_path_leaves_no_database(tmp_path, command):
    """A file that cannot be read: no database file is made on the way."""
    db = tmp_path / "new.db"
    args = ["--channel", "referral"] if command == "import-leads" else []
    code, _, err = run(command, str(tmp_path / "missing.csv"), *args, "--db", str(db))
    assert code == 1
    assert "cannot read it" in err
    assert not db.exists()


@pytest.mark.parametrize(
    "command", [["report"], ["qualify", "x"], ["record-call", "x", "voicemail"]]
)
def test_a_misspelt_db_is_refused_not_made(tmp_path, command):
    """Commands that read a database refuse a --db that is not there (exit 1, one line)."""
    db = tmp_path / "sale.db"
    code, _, err = run(*command, "--db", str(db))
    assert code == 1
    assert "no such database" in err
    assert not db.exists()


def test_an_explicit_db_wins_over_the_dsn_variable(tmp_path, monkeypatch):
    """SALESPROCESS_DSN is the default store; --db typed on the command line is the one used."""
    monkeypatch.setenv("SALESPROCESS_DSN", "postgresql://nobody@127.0.0.1:1/none")
    db = tmp_path / "s.db"
    assert run("migrate", "--db", str(db))[0] == 0
    code, out, err = run("report", "--json", "--db", str(db))
    assert code == 0, err
    assert json.loads(out)["target"] == 5
    code, _, err = run("report")  # no --db: the variable's server (nobody answers)
    assert code == 1
    assert "cannot connect to PostgreSQL" in err  # not "sales.db: no such database"


def test_the_demo_refusal_never_prints_the_dsn(monkeypatch):
    """A DSN may hold a password: the demo's refusal names the database without it."""
    from contextlib import contextmanager  # noqa: PLC0415

    from salesprocess.cli import app  # noqa: PLC0415

    @contextmanager
    def holding(*_args, **_kwargs):
        class Held:
            def stage_counts(self):
                return {sp.Stage.PROSPECT: 1}

        yield Held()

    monkeypatch.setattr(app, "_process", holding)
    code, _, err = run("demo", "--dsn", "postgresql://u:s3cret@db.example/crm")
    assert code == 1
    assert "already holds 1 accounts" in err
    assert "s3cret" not in err


def test_rows_that_cannot_be_rows_are_bad_rows_listed_with_the_others(tmp_path):
    """A row with more or fewer values than columns is one bad row, not the end of the import."""
    db = tmp_path / "s.db"
    csv = write(
        tmp_path / "leads.csv",
        "name,email\nGood,good@x.example\nRagged,r@x.example,extra\nOdd,not-an-email\n"
        "Short\nAlso good,also@x.example\n",
    )
    code, _, err = run("import-leads", str(csv), "--channel", "referral", "--db", str(db))
    assert code == 1
    listed = [line.split(": ", 1)[0] for line in err.strip().splitlines()[:-1]]
    assert listed == [f"{csv}:3", f"{csv}:4", f"{csv}:5"]  # every bad row, by line
    assert "3 values for 2 columns" in err
    assert "1 values for 2 columns" in err
    assert "3 bad rows, nothing imported" in err
    assert stored(db) == []  # the trial that found line 4 was rolled back
    rejects = tmp_path / "rejects.csv"
    code, out, _ = run("import-leads", str(csv), "--channel", "referral", "--db", str(db),
                       "--skip-bad", "--rejects", str(rejects))  # fmt: skip
    assert code == 0
    assert "2 leads captured, 0 known, 3 rejected" in out
    assert sorted(a.name for a in stored(db)) == ["Also good", "Good"]
    written = rejects.read_text(encoding="utf-8").splitlines()
    assert written[0] == "line,reason,name,email"
    assert written[1] == "3,3 values for 2 columns,Ragged,r@x.example,extra"
    assert [line.split(",")[0] for line in written[1:]] == ["3", "4", "5"]


@pytest.mark.parametrize(
    ("amount", "at", "message"),
    [
        ("12.00", "2026-13-02", "at '2026-13-02' is no date: write 2026-03-02"),
        ("12.00", "2026-03-02T10:00:00", "at '2026-03-02T10:00:00' has no offset from UTC"),
        ('"12,00"', "2026-03-02", "amount '12,00' is no number"),
        ("12.00", "", "at '' is no date"),
    ],
)
def test_a_purchase_row_says_what_is_wrong_in_the_sheets_terms(tmp_path, amount, at, message):
    """A bad amount or date is named as the spreadsheet has it, not as Python sees it."""
    db = tmp_path / "s.db"
    shop = write(tmp_path / "shop.csv",
                 f"email,amount,at,reference\nw@x.example,{amount},{at},POS-1\n")  # fmt: skip
    code, _, err = run("import-purchases", str(shop), "--currency", "EUR", "--db", str(db))
    assert code == 1
    assert f"{shop}:2: {message}" in err
    assert "datetime" not in err
    assert "Money" not in err
    assert stored(db) == []


def test_an_amount_without_a_currency_asks_for_one(tmp_path):
    """No currency column and no --currency: the row says how to give one."""
    shop = write(tmp_path / "shop.csv", "email,amount,at,reference\nw@x.example,5,2026-03-02,P\n")
    code, _, err = run("import-purchases", str(shop), "--db", str(tmp_path / "s.db"))
    assert code == 1
    assert "has no currency: add a currency column, or give --currency" in err


def test_bad_rows_of_the_sheet_and_of_the_rules_are_listed_together(tmp_path):
    """A date the command line refuses and a row the library refuses: both listed, by line."""
    db = tmp_path / "s.db"
    shop = write(
        tmp_path / "shop.csv",
        "email,amount,at,reference\n"
        "a@x.example,5.00,2026-03-02,\n"  # the library: an empty reference
        "b@x.example,5.00,yesterday,P-2\n"  # the command line: no date
        "c@x.example,5.00,2026-03-02,P-3\n",
    )
    code, _, err = run("import-purchases", str(shop), "--currency", "EUR", "--db", str(db))
    assert code == 1
    assert [line.split(": ", 1)[0] for line in err.strip().splitlines()[:-1]] == [
        f"{shop}:2",
        f"{shop}:3",
    ]
    assert "2 bad rows, nothing imported" in err
    assert stored(db) == []


def test_call_list_out_naming_the_database_is_refused(tmp_path):
    """--out must never overwrite the database the list is read from."""
    db = holding_one_lead(tmp_path)
    rules = write(tmp_path / "c.json", "true")
    code, _, err = run("call-list", "--criteria", str(rules), "--db", str(db), "--out", str(db))
    assert code == 2, err
    assert [a.name for a in stored(db)] == ["Kept"]


def test_since_after_as_of_names_as_of(tmp_path):
    """With --as-of and no --until, a --since after it is refused naming --as-of."""
    db = tmp_path / "s.db"
    assert run("migrate", "--db", str(db))[0] == 0
    code, _, err = run("report", "--db", str(db), "--since", "2026-05-01", "--as-of", "2026-04-12")
    assert code == 2
    assert "not before --as-of" in err


@pytest.mark.parametrize("spelling", ["same", "dotted", "link"])
def test_call_list_out_naming_the_criteria_file_is_refused(tmp_path, spelling):
    """--out must never overwrite the criteria file the list was screened by."""
    db = holding_one_lead(tmp_path)
    rules = write(tmp_path / "c.json", "true")
    target = another_name(rules, spelling)
    code, _, err = run("call-list", "--criteria", str(rules), "--db", str(db),
                       "--out", str(target))  # fmt: skip
    assert code == 2, err
    assert "is the criteria file (--criteria)" in err
    assert rules.read_text(encoding="utf-8") == "true"


@pytest.mark.parametrize("end", ["-wal", "-shm", "-journal"])
def test_rejects_naming_a_file_of_the_database_is_refused(tmp_path, end):
    """The write-ahead log holds committed rows: --rejects over it lost this run's leads."""
    db = holding_one_lead(tmp_path)
    csv = write(tmp_path / "leads.csv", "name,email\nGood,good@x.example\nBad,not-an-email\n")
    code, _, err = run("import-leads", str(csv), "--channel", "referral", "--db", str(db),
                       "--skip-bad", "--rejects", f"{db}{end}")  # fmt: skip
    assert code == 2, err
    assert "is a file of the database" in err
    assert sorted(a.name for a in stored(db)) == ["Kept"]
