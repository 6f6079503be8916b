"""`{% load alerts_tags %}{% instrument_alerts instrument %}`: the signed-in
user's alert rules for one instrument, with links to add, edit, test and
delete them (for the instrument page)."""

from __future__ import annotations

from django import template

from alerts.selectors import rules_for_user

register = template.Library()


@register.inclusion_tag("dashboard/alerts_instrument_panel.html", takes_context=True)
def instrument_alerts(context, instrument) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    rules = []
    if user is not None and user.is_authenticated:
        rules = list(rules_for_user(user=user).filter(instrument=instrument))
    return {"instrument": instrument, "rules": rules, "request": request}
