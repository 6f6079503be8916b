"""Alert rules (create, update, delete, dry run) and alert history.

Rules go through the dashboard's `AlertRuleForm` and the alerts services, so
a rule made here is checked, cleaned and stored exactly like one made on the
alerts page. JSON fields a request leaves out keep their current value (a new
rule: the model's defaults), so a PATCH of `level` alone keeps the rest.
"""

from __future__ import annotations

from enum import Enum

from django.core.exceptions import ValidationError
from django.http import Http404
from ninja import Field as F
from ninja import Query, Router, Schema, Status

from alerts.backtest import rule_dry_run
from alerts.forms import AlertRuleForm
from alerts.models import RULE_FIELDS, AlertRule, RuleKind
from alerts.selectors import events_for_user, rule_for_user, rules_for_user, since_days
from alerts.services import (
    alert_events_mark_seen,
    alert_rule_create,
    alert_rule_delete,
    alert_rule_update,
)
from api.schemas import (
    DryRunIn,
    DryRunOut,
    DryRunRuleIn,
    Error,
    EventOut,
    RuleIn,
    RuleOut,
    SeenIn,
    SeenOut,
)

router = Router(tags=["alerts"])


def _rule_or_404(request, rule_id: int) -> AlertRule:
    rule = rule_for_user(user=request.auth, rule_id=rule_id)
    if rule is None:
        raise Http404("No such alert rule.")
    return rule


def _valid_form(*, request, rule: AlertRule | None, payload: RuleIn) -> AlertRuleForm:
    """The alert form bound to the rule's current values overlaid with the
    request's; a ValidationError naming the fields when it does not pass."""
    base = rule if rule is not None else AlertRule(owner=request.auth)
    data = {name: getattr(base, name) for name in RULE_FIELDS}
    data["symbol"] = base.instrument.symbol if base.instrument_id else ""
    sent = payload.dict(exclude_unset=True)
    sent.pop("days", None)
    data.update(sent)
    data = {
        name: "" if value is None else value.value if isinstance(value, Enum) else value
        for name, value in data.items()
    }
    form = AlertRuleForm(data=data, instance=base)
    if not form.is_valid():
        raise ValidationError(
            {name: [str(m) for m in messages] for name, messages in form.errors.items()}
        )
    return form


def _dry_run_out(result) -> dict:
    return {
        "days": result.days,
        "start": result.start,
        "end": result.end,
        "bars": result.bars,
        "warmup_bars": result.warmup_bars,
        "first_bar": result.first_bar,
        "last_bar": result.last_bar,
        "fired": [
            {"ts": f.ts, "price": f.price, "value": f.value, "message": f.message}
            for f in result.fired
        ],
    }


@router.get("/alerts/rules", response=list[RuleOut])
def rules_list(request, symbol: str = ""):
    rules = rules_for_user(user=request.auth)
    if symbol.strip():
        rules = rules.filter(instrument__symbol=symbol.strip().upper())
    return list(rules)


@router.post("/alerts/rules", response={201: RuleOut, 400: Error})
def rules_create(request, payload: RuleIn):
    form = _valid_form(request=request, rule=None, payload=payload)
    rule = alert_rule_create(
        owner=request.auth, instrument=form.instrument, **form.rule_fields()
    )
    return Status(201, rule)


@router.post("/alerts/dry-run", response={200: DryRunOut, 400: Error})
def rules_dry_run_unsaved(request, payload: DryRunRuleIn):
    """Test a rule that is not stored against the last `days` of minutes
    (nothing is saved), like the form's "Test" button."""
    form = _valid_form(request=request, rule=None, payload=payload)
    return _dry_run_out(rule_dry_run(rule=form.instance, days=payload.days))


@router.get("/alerts/rules/{int:rule_id}", response={200: RuleOut, 404: Error})
def rules_detail(request, rule_id: int):
    return _rule_or_404(request, rule_id)


@router.patch(
    "/alerts/rules/{int:rule_id}", response={200: RuleOut, 400: Error, 404: Error}
)
def rules_update(request, rule_id: int, payload: RuleIn):
    rule = _rule_or_404(request, rule_id)
    form = _valid_form(request=request, rule=rule, payload=payload)
    return alert_rule_update(
        rule=rule, instrument=form.instrument, **form.rule_fields()
    )


@router.delete("/alerts/rules/{int:rule_id}", response={204: None, 404: Error})
def rules_delete(request, rule_id: int):
    alert_rule_delete(rule=_rule_or_404(request, rule_id))
    return Status(204, None)


@router.post(
    "/alerts/rules/{int:rule_id}/dry-run",
    response={200: DryRunOut, 400: Error, 404: Error},
)
def rules_dry_run(request, rule_id: int, payload: DryRunIn):
    """Replay the last `days` days of stored minute bars through the rule."""
    rule = _rule_or_404(request, rule_id)
    return _dry_run_out(rule_dry_run(rule=rule, days=payload.days))


class EventFilter(Schema):
    symbol: str = ""
    kind: RuleKind | None = None
    rule_id: int | None = None
    unseen: bool = False
    days: int | None = F(default=None, ge=1, le=3650)
    limit: int = F(default=100, ge=1, le=1000)
    offset: int = F(default=0, ge=0)


@router.get("/alerts/events", response=list[EventOut])
def events_list(request, filters: Query[EventFilter]):
    """Alert history, newest first."""
    events = events_for_user(
        user=request.auth,
        symbol=filters.symbol.strip(),
        kind=filters.kind.value if filters.kind else "",
        rule_id=filters.rule_id,
        unseen=filters.unseen,
        since=since_days(filters.days) if filters.days else None,
    )
    return list(events[filters.offset : filters.offset + filters.limit])


@router.post("/alerts/events/seen", response=SeenOut)
def events_seen(request, payload: SeenIn):
    """Mark alerts seen (the caller's own only), or all of them."""
    return {"marked": alert_events_mark_seen(user=request.auth, ids=payload.ids)}
