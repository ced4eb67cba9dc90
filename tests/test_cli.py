"""The command line, driven as a user would: files in, exit codes and lines out."""

from __future__ import annotations

import json
import subprocess
import sys
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
    done = subprocess.run(
        [sys.executable, "-m", "salesprocess", "report", "--db", str(tmp_path / "s.db"), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["funnel"]["ladder"][0]["stage"] == "prospect"


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
    code, out, _ = run("screen", "--criteria", str(criteria), "--db", str(db))
    assert (code, "2 prospects screened, 1 passed" in out) == (0, True)
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


def test_criteria_that_are_not_json_logic_are_one_line(tmp_path):
    """A criteria file that is not JSON Logic: exit 1, naming the fault."""
    db = tmp_path / "s.db"
    criteria = write(tmp_path / "criteria.json", '{"nosuchop": [1]}')
    code, _, err = run("screen", "--criteria", str(criteria), "--db", str(db))
    assert code == 1
    assert err.startswith("error: ")


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
    assert run("import-leads")[0] == 2


def test_report_json_has_the_documented_shape(tmp_path):
    """report --json: funnel, revenue, lead_flow and referrals, amounts as strings."""
    db = tmp_path / "s.db"
    run("demo", "--db", str(db))
    code, out, _ = run("report", "--json", "--db", str(db))
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"as_of", "funnel", "revenue", "lead_flow", "referrals"}
    assert [r["stage"] for r in data["funnel"]["ladder"]] == [
        "prospect", "qualified", "customer", "repeat", "referrer",
    ]  # fmt: skip
    assert isinstance(data["revenue"]["EUR"]["total"], str)


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
