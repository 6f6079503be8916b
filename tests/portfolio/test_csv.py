"""CSV of transactions: export from the page, import by command and by page
upload. A file with bad lines is refused whole, every bad line listed by
number with its reason, unless --skip-bad (the page's checkbox)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from marketdata.models import Position, Transaction
from portfolio.services import transaction_add

pytestmark = pytest.mark.django_db


def record(owner, symbol, kind, day, quantity="0", price="0", fee="0", note=""):
    transaction_add(
        owner=owner, symbol=symbol, kind=kind, day=date.fromisoformat(day),
        quantity=Decimal(quantity), price=Decimal(price), fee=Decimal(fee), note=note,
    )  # fmt: skip


def book(owner) -> dict:
    return {
        p.instrument.symbol: (p.quantity, p.average_cost, p.realized_pl)
        for p in Position.objects.filter(owner=owner).select_related("instrument")
    }


def test_export_then_import_gives_the_same_positions(
    user, other_user, instruments, client_for, tmp_path, capsys
):
    record(user, "AAPL", "buy", "2026-01-05", "10", "100", "5", "first, lot")
    record(user, "AAPL", "buy", "2026-01-10", "10", "120", "5")
    record(user, "AAPL", "sell", "2026-02-01", "5", "130", "2.5")
    record(user, "AAPL", "fee", "2026-02-15", fee="10", note="=custody")
    record(user, "BTC/USD", "buy", "2026-01-05", "0.12345678", "61250.5")
    record(user, "BTC/USD", "sell", "2026-01-06", "0.1", "62000", "0.00000001")
    exported = client_for(user).get(reverse("dashboard:transactions_export"))
    assert exported.status_code == 200
    assert exported["Content-Type"].startswith("text/csv")
    assert "attachment" in exported["Content-Disposition"]
    text = exported.content.decode()
    assert text.splitlines() == [
        "date,symbol,type,quantity,price,fee,note",
        '2026-01-05,AAPL,buy,10,100,5,"first, lot"',
        "2026-01-10,AAPL,buy,10,120,5,",
        "2026-02-01,AAPL,sell,5,130,2.5,",
        "2026-02-15,AAPL,fee,0,0,10,'=custody",  # no spreadsheet formula
        "2026-01-05,BTC/USD,buy,0.12345678,61250.5,0,",
        "2026-01-06,BTC/USD,sell,0.1,62000,0.00000001,",
    ]
    path = tmp_path / "tx.csv"
    path.write_text(text)
    call_command("import_transactions", str(path), "--user", other_user.username)
    assert "Imported 6 transaction(s) into 2 position(s)." in capsys.readouterr().out
    assert book(other_user) == book(user)
    assert Transaction.objects.get(position__owner=other_user, kind="fee").note == (
        "=custody"
    )
    again = client_for(other_user).get(reverse("dashboard:transactions_export"))
    assert again.content.decode() == text


BAD_FILE = """\
date,symbol,type,quantity,price,fee,note
2026-01-05,AAPL,buy,10,100,1,ok
2026-13-01,AAPL,buy,1,100,,
2026-01-06,ZZZZ,buy,1,1,,
2026-01-07,AAPL,buy,-3,100,,
2026-01-08,AAPL,sell,25,110,,
2026-01-09,AAPL,swap,1,1,,
2026-01-10,MSFT,buy,"1,000",400.5,,thousands
2026-01-11,MSFT,fee,,,abc,
"""


def test_a_file_with_bad_lines_imports_nothing_and_lists_them(
    user, instruments, tmp_path, capsys
):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_FILE)
    with pytest.raises(CommandError, match="6 bad line"):
        call_command("import_transactions", str(path), "--user", user.username)
    err = capsys.readouterr().err
    assert "line 3: Date '2026-13-01' is not YYYY-MM-DD." in err
    assert "line 4: No instrument 'ZZZZ'." in err
    assert "line 5: Quantity cannot be negative." in err
    assert "line 6: AAPL" not in err  # the sell's own message names it
    assert "line 6: The sell of 25 on 2026-01-08 is more than the 10 held then" in err
    assert "line 7: Type must be buy, sell or fee." in err
    assert "line 9: Fee 'abc' is not a number." in err
    assert not Transaction.objects.exists() and not Position.objects.exists()


def test_skip_bad_imports_the_good_lines(user, instruments, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_FILE)
    call_command(
        "import_transactions", str(path), "--user", user.username, "--skip-bad"
    )
    out = capsys.readouterr()
    assert "Imported 2 transaction(s) into 2 position(s), 6 bad line(s) skipped." in (
        out.out
    )
    assert "line 6:" in out.err
    assert book(user) == {
        "AAPL": (Decimal(10), Decimal("100.1"), Decimal(0)),
        "MSFT": (Decimal(1000), Decimal("400.5"), Decimal(0)),
    }


def test_an_imported_sell_that_breaks_a_recorded_one_is_refused(
    user, instruments, tmp_path, capsys
):
    record(user, "AAPL", "buy", "2026-01-05", "10", "100")
    record(user, "AAPL", "sell", "2026-03-01", "8", "120")
    path = tmp_path / "early.csv"
    path.write_text("date,symbol,type,quantity,price\n2026-02-01,AAPL,sell,5,110\n")
    with pytest.raises(CommandError):
        call_command("import_transactions", str(path), "--user", user.username)
    assert "line 2: It would make the recorded sell of 8 on 2026-03-01" in (
        capsys.readouterr().err
    )
    assert Transaction.objects.count() == 2


def test_command_errors_are_clear(user, tmp_path):
    with pytest.raises(CommandError, match="No user 'ghost'"):
        call_command("import_transactions", "x.csv", "--user", "ghost")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command(
            "import_transactions", str(tmp_path / "none.csv"), "--user", "trader"
        )
    path = tmp_path / "latin.csv"
    path.write_bytes(b"date,symbol,type\n2026-01-01,AAPL,buy \xe9\n")
    with pytest.raises(CommandError, match="1 bad line"):
        call_command("import_transactions", str(path), "--user", "trader")
    path.write_text("when,what\n2026-01-01,AAPL\n")
    with pytest.raises(CommandError, match="1 bad line"):
        call_command("import_transactions", str(path), "--user", "trader")


def test_page_upload_lists_bad_lines_and_skips_them_when_asked(
    user, instruments, client_for
):
    client = client_for(user)
    url = reverse("dashboard:transactions_import")
    response = client.post(
        url, {"file": SimpleUploadedFile("t.csv", BAD_FILE.encode(), "text/csv")}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "Nothing imported: 6 bad lines." in html
    assert "Line 4: No instrument &#x27;ZZZZ&#x27;." in html
    assert not Transaction.objects.exists()
    response = client.post(
        url,
        {
            "file": SimpleUploadedFile("t.csv", BAD_FILE.encode(), "text/csv"),
            "skip_bad": "on",
        },
    )
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert "Imported 2 transaction(s) into 2 position(s). Skipped 6 bad line(s)" in html
    assert Transaction.objects.count() == 2
