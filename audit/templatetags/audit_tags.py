"""`{% load audit_tags %}{% security_events_recent %}`: the user's latest
security events and a link to all of them, for the preferences page."""

from __future__ import annotations

from django import template

from audit.selectors import security_events_for_user

register = template.Library()


@register.inclusion_tag("audit/_security_recent.html", takes_context=True)
def security_events_recent(context, count: int = 5) -> dict:
    user = context["request"].user
    if not user.is_authenticated:
        return {"events": []}
    return {
        "events": list(security_events_for_user(user=user)[:count]),
        # The inclusion's own context: `{% show_time %}` reads the zone here,
        # as the page has it (`preferences.context_processors.display`).
        "display_time_zone": context.get("display_time_zone"),
    }
