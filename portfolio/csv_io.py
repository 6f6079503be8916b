"""Transactions as CSV: one header line, then one transaction per line.

    date,symbol,type,quantity,price,fee,note
    2026-01-05,AAPL,buy,10,150.00,1.00,first lot
    2026-02-10,AAPL,sell,4,170,1,
    2026-03-01,AAPL,fee,,,2.50,data fee

`date` is YYYY-MM-DD (a full ISO timestamp is read as its date); `type` is
buy, sell or fee (also read from columns named kind, side or action);
`quantity` and `price` are blank or 0 on fee lines; `fee` and `note` may be
left out. Numbers may carry thousands separators ("1,234.50") but not signs
or currencies. Export writes the same columns, so an export imports back into
the same positions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from core.storable import unstorable_reason
from portfolio.services import ImportRow, transaction_check

COLUMNS = ("date", "symbol", "type", "quantity", "price", "fee", "note")
ALIASES = {
    "kind": "type",
    "side": "type",
    "action": "type",
    "qty": "quantity",
    "shares": "quantity",
    "commission": "fee",
    "fees": "fee",
    "trade date": "date",
    "ticker": "symbol",
    "notes": "note",
}
REQUIRED = ("date", "symbol", "type")
NOTE_LENGTH = 200
# Cells a spreadsheet would run as a formula get a leading quote on export
# (and lose it again on import).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _number(text: str, *, name: str) -> Decimal:
    cleaned = text.replace(",", "").replace(" ", "")
    if not cleaned:
        return Decimal(0)
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{name} {text!r} is not a number.") from None
    if not value.is_finite():
        raise ValueError(f"{name} {text!r} is not a number.")
    return value


def _date(text: str) -> date:
    try:
        if len(text) > 10:
            return datetime.fromisoformat(text).date()
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"Date {text!r} is not YYYY-MM-DD.") from None


def _row(line: int, cells: dict[str, str]) -> ImportRow:
    for name in REQUIRED:
        if not cells.get(name):
            raise ValueError(f"{name.capitalize()} is empty.")
    kind = cells["type"].lower()
    quantity = _number(cells.get("quantity", ""), name="Quantity")
    price = _number(cells.get("price", ""), name="Price")
    fee = _number(cells.get("fee", ""), name="Fee")
    day = _date(cells["date"])
    errors = transaction_check(
        kind=kind, day=day, quantity=quantity, price=price, fee=fee
    )
    if errors:
        raise ValueError(" ".join(errors.values()))
    note = cells.get("note", "")
    if note.startswith("'") and note[1:].startswith(FORMULA_START):
        note = note[1:]
    if len(note) > NOTE_LENGTH:
        raise ValueError(f"Note is longer than {NOTE_LENGTH} characters.")
    return ImportRow(
        line=line,
        symbol=cells["symbol"].upper(),
        kind=kind,
        date=day,
        quantity=quantity,
        price=price,
        fee=fee,
        note=note,
    )


def transactions_parse(data: bytes) -> tuple[list[ImportRow], list[tuple[int, str]]]:
    """Rows read from a CSV file and (line, reason) for every line refused."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [(1, f"The file is not UTF-8 text (byte {exc.start}).")]
    reason = unstorable_reason(text)
    if reason:
        line = text[: text.index("\x00")].count("\n") + 1 if "\x00" in text else 1
        return [], [(line, f"The file contains {reason}.")]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [(1, "The file is empty.")]
    except csv.Error as exc:
        return [], [(1, f"Unreadable header: {exc}.")]
    names = [ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        return [], [
            (
                1,
                f"The header lacks {', '.join(missing)}; expected {','.join(COLUMNS)}.",
            )
        ]
    rows: list[ImportRow] = []
    bad: list[tuple[int, str]] = []
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad.append((start, f"Unreadable line: {exc}."))
            line = reader.line_num
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(names):
            bad.append((start, f"{len(cells)} cells, the header names {len(names)}."))
            continue
        values = {name: cell.strip() for name, cell in zip(names, cells, strict=False)}
        try:
            rows.append(_row(start, values))
        except ValueError as exc:
            bad.append((start, str(exc)))
    if not rows and not bad:
        bad.append((1, "The file has no transactions."))
    return rows, bad


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _safe_note(note: str) -> str:
    return f"'{note}" if note.startswith(FORMULA_START) else note


def transactions_csv(rows: Iterable[tuple]) -> str:
    """CSV text of (date, symbol, kind, quantity, price, fee, note) rows
    (`portfolio.selectors.transactions_export_rows`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for day, symbol, kind, quantity, price, fee, note in rows:
        writer.writerow(
            [
                day.isoformat(),
                symbol,
                kind,
                _plain(quantity),
                _plain(price),
                _plain(fee),
                _safe_note(note),
            ]
        )
    return out.getvalue()
