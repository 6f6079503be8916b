"""The portfolio pages: positions valued live, their transactions, CSV in and
out. Adapters only: portfolio.selectors reads and values, portfolio.services
writes. Someone else's position or transaction is a 404 on every path."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard.portfolio_forms import CloseForm, ImportForm, TransactionForm
from dashboard.quotes import fmt_pct, fmt_price, fmt_signed
from dashboard.views import live_snapshots
from marketdata.calendar import market_date
from marketdata.models import AssetClass
from portfolio import services
from portfolio.csv_io import transactions_csv, transactions_parse
from portfolio.ledger import ZERO
from portfolio.selectors import (
    portfolio_value,
    position_get_for_owner,
    positions_for_owner,
    recent_transactions,
    transaction_get_for_owner,
    transactions_export_rows,
)


def _row(valued) -> dict:
    decimals = valued.instrument.price_decimals
    holding = valued.holding
    return {
        "v": valued,
        "position": valued.position,
        "instrument": valued.instrument,
        "decimals": decimals,
        "quantity": format(holding.quantity.normalize(), "f"),
        "average_cost": fmt_price(holding.average_cost, max(decimals, 2)),
        "last": fmt_price(valued.last, decimals),
        "value": fmt_price(valued.value, 2),
        "day": fmt_signed(valued.day, 2),
        "unrealized": fmt_signed(valued.unrealized, 2),
        "realized": fmt_signed(holding.realized, 2),
        "total": fmt_signed(valued.total, 2),
        "return_pct": fmt_pct(valued.return_pct),
        "weight": "—" if valued.weight is None else f"{fmt_price(valued.weight, 1)}%",
    }


def _valuation(owner, positions=None):
    positions = list(
        positions if positions is not None else positions_for_owner(owner=owner)
    )
    snapshots, live = live_snapshots(p.instrument for p in positions)
    return portfolio_value(positions=positions, snapshots=snapshots), live


def _new_transaction_form() -> TransactionForm:
    """The portfolio page's form, for any instrument: its date offers a
    stock's "today" (the form's default), and names each asset class's day and
    where to look up a typed symbol's class, so the page's script can offer the
    day where that instrument trades (portfolio.js; a day P/L counts that date)."""
    days = {cls: market_date(cls).isoformat() for cls in AssetClass.values}
    form = TransactionForm()
    form.fields["date"].widget.attrs.update(
        {"data-days": json.dumps(days), "data-search-url": reverse("dashboard:search")}
    )
    return form


def _portfolio_page(request, *, form=None, import_form=None, result=None, status=200):
    valuation, live = _valuation(request.user)
    open_rows = [_row(v) for v in valuation.open]
    return render(
        request,
        "dashboard/portfolio.html",
        {
            "rows": open_rows,
            "closed": [_row(v) for v in valuation.closed],
            "totals": {
                "value": fmt_price(valuation.value, 2),
                "day": fmt_signed(valuation.day, 2),
                "unrealized": fmt_signed(valuation.unrealized, 2),
                "realized": fmt_signed(valuation.realized, 2),
                "realized_raw": valuation.realized,
                "total": fmt_signed(valuation.total, 2),
            },
            "symbols": [row["instrument"].symbol for row in open_rows],
            "recent": recent_transactions(owner=request.user, limit=10),
            "form": form or _new_transaction_form(),
            "import_form": import_form or ImportForm(),
            "result": result,
            **({} if live else {"live_unavailable": True}),
        },
        status=status,
    )


@login_required
@require_GET
def portfolio(request):
    return _portfolio_page(request)


def _position_page(request, position, *, form=None, close_form=None, status=200):
    valuation, live = _valuation(request.user, [position])
    (valued,) = valuation.open or valuation.closed
    # "Today" where the instrument trades: its day P/L counts that date.
    today = {"date": market_date(position.instrument.asset_class)}
    return render(
        request,
        "dashboard/portfolio_position.html",
        {
            "row": _row(valued),
            "position": position,
            "transactions": list(position.transactions.order_by("date", "id")),
            "form": form or TransactionForm(symbol_required=False, initial=today),
            "close_form": close_form or CloseForm(prefix="close", initial=today),
            "symbols": [position.instrument.symbol] if position.quantity else [],
            **({} if live else {"live_unavailable": True}),
        },
        status=status,
    )


def _owned_position(request, pk: int):
    position = position_get_for_owner(owner=request.user, position_id=pk)
    if position is None:
        raise Http404("No such position.")
    return position


@login_required
@require_GET
def position_detail(request, pk: int):
    return _position_page(request, _owned_position(request, pk))


def _refused(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@login_required
@require_POST
def transaction_add(request):
    """From the portfolio page (with a symbol) or a position's page."""
    position_id = request.POST.get("position")
    position = None
    if position_id:
        if not position_id.isdigit():
            raise Http404("No such position.")
        position = _owned_position(request, int(position_id))
    form = TransactionForm(request.POST, symbol_required=position is None)
    if form.is_valid():
        try:
            row = services.transaction_add(
                owner=request.user,
                symbol=position.instrument.symbol
                if position
                else form.cleaned_data["symbol"],
                **form.entry(),
            )
        except ValidationError as exc:
            _refused(form, exc)
        else:
            messages.success(request, f"Recorded: {row.position.instrument} {row}.")
            return redirect("dashboard:position", pk=row.position_id)
    if position is not None:
        return _position_page(request, position, form=form, status=400)
    return _portfolio_page(request, form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def transaction_edit(request, pk: int):
    row = transaction_get_for_owner(owner=request.user, transaction_id=pk)
    if row is None:
        raise Http404("No such transaction.")
    initial = {
        "kind": row.kind,
        "date": row.date,
        "quantity": row.quantity.normalize(),
        "price": row.price.normalize(),
        "fee": row.fee.normalize(),
        "note": row.note,
    }
    form = TransactionForm(
        request.POST if request.method == "POST" else None,
        initial=initial,
        symbol_required=False,
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.transaction_update(
                owner=request.user, transaction_id=pk, **form.entry()
            )
        except ValidationError as exc:
            _refused(form, exc)
        else:
            messages.success(request, "Transaction changed.")
            return redirect("dashboard:position", pk=row.position_id)
    return render(
        request,
        "dashboard/portfolio_transaction.html",
        {"form": form, "transaction": row, "position": row.position},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def transaction_delete(request, pk: int):
    row = transaction_get_for_owner(owner=request.user, transaction_id=pk)
    if row is None:
        raise Http404("No such transaction.")
    try:
        position = services.transaction_delete(owner=request.user, transaction_id=pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("dashboard:position", pk=row.position_id)
    except ObjectDoesNotExist as exc:
        raise Http404("No such transaction.") from exc
    messages.success(request, "Transaction deleted.")
    if position is None:
        return redirect("dashboard:portfolio")
    return redirect("dashboard:position", pk=position.pk)


@login_required
@require_POST
def position_close(request, pk: int):
    position = _owned_position(request, pk)
    form = CloseForm(request.POST, prefix="close")
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.position_close(
                owner=request.user,
                position_id=pk,
                day=data["date"],
                price=data["price"],
                fee=data["fee"] or ZERO,
            )
        except ValidationError as exc:
            _refused(form, exc)
        else:
            messages.success(request, f"{position.instrument} closed.")
            return redirect("dashboard:position", pk=pk)
    return _position_page(request, position, close_form=form, status=400)


@login_required
@require_POST
def position_delete(request, pk: int):
    position = _owned_position(request, pk)
    services.position_delete(owner=request.user, position_id=pk)
    messages.success(
        request, f"{position.instrument} and its transactions were deleted."
    )
    return redirect("dashboard:portfolio")


@login_required
@require_POST
def transactions_import(request):
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _portfolio_page(request, import_form=form, status=400)
    rows, bad = transactions_parse(form.cleaned_data["file"].read())
    result = services.transactions_import(
        owner=request.user,
        rows=rows,
        bad=bad,
        skip_bad=form.cleaned_data["skip_bad"],
    )
    if not result.applied:
        return _portfolio_page(request, import_form=form, result=result, status=400)
    summary = (
        f"Imported {result.imported} transaction(s) into "
        f"{len(result.positions)} position(s)."
    )
    if result.bad:
        listed = "; ".join(f"line {line}: {why}" for line, why in result.bad[:20])
        more = f" (and {len(result.bad) - 20} more)" if len(result.bad) > 20 else ""
        summary += f" Skipped {len(result.bad)} bad line(s): {listed}{more}"
    messages.success(request, summary)
    return redirect("dashboard:portfolio")


@login_required
@require_GET
def transactions_export(request):
    position_id = request.GET.get("position")
    name = "transactions"
    if position_id:
        position = _owned_position(
            request, int(position_id) if position_id.isdigit() else 0
        )
        name = f"transactions-{position.instrument.symbol.replace('/', '-')}"
    rows = transactions_export_rows(
        owner=request.user, position_id=int(position_id) if position_id else None
    )
    response = HttpResponse(
        transactions_csv(rows), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response
