"""Alert pages: rules (create/edit/delete/test against history) and history.

Every view requires login and only touches the requesting user's rules and
alerts; someone else's id is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts.backtest import rule_dry_run
from alerts.forms import AlertRuleForm, DryRunForm, HistoryFilterForm
from alerts.models import AlertRule
from alerts.selectors import (
    channels_disabled_for_user,
    events_for_user,
    events_latest_id,
    events_unseen_count,
    rule_for_user,
    rules_for_user,
    since_days,
)
from alerts.services import (
    alert_events_mark_seen,
    alert_payload,
    alert_rule_create,
    alert_rule_delete,
    alert_rule_set_active,
    alert_rule_update,
)
from dashboard.views import _page_context

EVENTS_PER_PAGE = 50
UNSEEN_LIMIT = 20


def _back(request) -> str:
    """Where to return after a POST: `next` when it is a path on this site."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("dashboard:alerts")


def _rule_or_404(request, pk: int) -> AlertRule:
    rule = rule_for_user(user=request.user, rule_id=pk)
    if rule is None:
        raise Http404("No such alert rule.")
    return rule


@login_required
@require_GET
def alerts_index(request):
    filters = HistoryFilterForm(request.GET or None)
    criteria = filters.cleaned_data if filters.is_bound and filters.is_valid() else {}
    events = events_for_user(
        user=request.user,
        symbol=criteria.get("symbol") or "",
        kind=criteria.get("kind") or "",
        unseen=bool(criteria.get("unseen")),
        since=since_days(criteria["days"]) if criteria.get("days") else None,
    )
    events = events.prefetch_related("deliveries__channel", "deliveries__parent")
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    rules = rules_for_user(user=request.user).prefetch_related("channels")
    symbol = (request.GET.get("symbol") or "").strip().upper()
    if symbol:
        rules = rules.filter(instrument__symbol=symbol)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "dashboard/alerts.html",
        {
            **_page_context(request),
            "rules": list(rules),
            "page": page,
            "filters": filters if filters.is_bound else HistoryFilterForm(),
            "unseen_count": events_unseen_count(user=request.user),
            "drawn_through": events_latest_id(user=request.user),
            "symbol": symbol,
            "query": query.urlencode(),
            "dry_run_form": DryRunForm(),
            "disabled_channels": channels_disabled_for_user(user=request.user),
        },
    )


def _rule_form_page(request, form: AlertRuleForm, rule: AlertRule | None, dry_run=None):
    return render(
        request,
        "dashboard/alerts_form.html",
        {
            **_page_context(request),
            "form": form,
            "rule": rule,
            "dry_run": dry_run,
            "dry_run_form": DryRunForm(request.POST or None)
            if request.method == "POST"
            else DryRunForm(),
        },
        status=400 if form.is_bound and form.errors else 200,
    )


def _handle_rule_form(request, rule: AlertRule | None):
    instance = rule if rule is not None else AlertRule(owner=request.user)
    if request.method != "POST":
        initial = {}
        if rule is None and request.GET.get("symbol"):
            initial["symbol"] = request.GET["symbol"].strip().upper()
        return _rule_form_page(
            request, AlertRuleForm(instance=instance, initial=initial), rule
        )

    form = AlertRuleForm(request.POST, instance=instance)
    if not form.is_valid():
        return _rule_form_page(request, form, rule)
    if request.POST.get("action") == "test":
        days_form = DryRunForm(request.POST)
        if not days_form.is_valid():
            return _rule_form_page(request, form, rule)
        # form.instance carries the unsaved values; nothing is stored.
        result = rule_dry_run(rule=form.instance, days=days_form.cleaned_data["days"])
        return _rule_form_page(request, form, rule, dry_run=result)
    fields = form.rule_fields()
    channels = form.cleaned_data.get("channels") or []
    try:
        if rule is None:
            rule = alert_rule_create(
                owner=request.user,
                instrument=form.instrument,
                channels=channels,
                **fields,
            )
            messages.success(request, f"Alert created: {rule}.")
        else:
            rule = alert_rule_update(
                rule=rule, instrument=form.instrument, channels=channels, **fields
            )
            messages.success(request, f"Alert saved: {rule}.")
    except ValidationError as error:
        form.add_error(None, error)
        return _rule_form_page(request, form, rule)
    if rule.notify_email and not request.user.email:
        messages.warning(
            request, "Your account has no email address, so no email will be sent."
        )
    if rule.instrument_id is None:
        return redirect("dashboard:alerts")
    return redirect(reverse("dashboard:alerts") + f"?symbol={rule.instrument.symbol}")


@login_required
@require_http_methods(["GET", "POST"])
def alert_create(request):
    return _handle_rule_form(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def alert_edit(request, pk: int):
    return _handle_rule_form(request, _rule_or_404(request, pk))


@login_required
@require_http_methods(["GET", "POST"])
def alert_delete(request, pk: int):
    rule = _rule_or_404(request, pk)
    if request.method == "POST":
        text = str(rule)
        alert_rule_delete(rule=rule)
        messages.success(request, f"Alert deleted: {text}. Its history is kept.")
        return redirect("dashboard:alerts")
    return render(
        request,
        "dashboard/alerts_confirm_delete.html",
        {**_page_context(request), "rule": rule},
    )


@login_required
@require_POST
def alert_toggle(request, pk: int):
    rule = _rule_or_404(request, pk)
    alert_rule_set_active(rule=rule, active=not rule.active)
    state = "activated" if rule.active else "paused"
    messages.success(request, f"Alert {state}: {rule}.")
    return redirect(_back(request))


@login_required
@require_GET
def alert_dry_run(request, pk: int):
    rule = _rule_or_404(request, pk)
    form = DryRunForm(request.GET or None)
    result = None
    if form.is_bound and form.is_valid():
        result = rule_dry_run(rule=rule, days=form.cleaned_data["days"])
    return render(
        request,
        "dashboard/alerts_dry_run.html",
        {**_page_context(request), "rule": rule, "form": form, "dry_run": result},
        status=400 if form.is_bound and form.errors else 200,
    )


@login_required
@require_GET
def alerts_unseen(request):
    """JSON: the user's unseen alerts, newest first (for toasts on a visit)."""
    events = list(events_for_user(user=request.user, unseen=True)[:UNSEEN_LIMIT])
    return JsonResponse(
        {
            "count": events_unseen_count(user=request.user),
            "alerts": [alert_payload(event=e) for e in events],
        }
    )


@login_required
@require_POST
def alerts_seen(request):
    """Mark alerts seen: `ids=1,2,3` (the user's own only) or all of them."""
    raw = (request.POST.get("ids") or "").strip()
    ids = None
    if raw and raw != "all":
        try:
            ids = [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            return JsonResponse(
                {"error": "ids must be comma-separated integers"}, status=400
            )
    marked = alert_events_mark_seen(user=request.user, ids=ids)
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"marked": marked})
    messages.success(request, f"{marked} alert(s) marked as seen.")
    return redirect(_back(request))
