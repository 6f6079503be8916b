"""The preferences page (/preferences/) and the header's theme toggle."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from marketdata.selectors import watchlists_for_user
from preferences.display import zone_title
from preferences.forms import PreferencesForm, zone_names
from preferences.models import Theme
from preferences.selectors import preferences_get
from preferences.services import preferences_update

# Pages other apps add under /preferences/; each is linked once its URL exists.
SECTIONS = [
    ("API tokens", "/preferences/tokens/", "Personal tokens for the JSON API."),
    (
        "Security events",
        "/preferences/security/",
        "Your recent sign-ins, password and token changes.",
    ),
]


def _sections() -> list[dict]:
    found = []
    for title, path, text in SECTIONS:
        try:
            resolve(path)
        except Resolver404:
            continue
        found.append({"title": title, "url": path, "text": text})
    return found


@login_required
@require_http_methods(["GET", "POST"])
def preferences_page(request):
    preferences = preferences_get(user=request.user)
    watchlists = list(watchlists_for_user(user=request.user))
    if request.method == "POST":
        form = PreferencesForm(request.POST, watchlists=watchlists)
        if form.is_valid():
            try:
                preferences_update(user=request.user, **form.model_fields())
            except ValidationError as exc:
                form.add_error(None, " ".join(exc.messages))
            else:
                messages.success(request, "Preferences saved.")
                return redirect("preferences:page")
    else:
        form = PreferencesForm(
            initial=PreferencesForm.initial_for(preferences), watchlists=watchlists
        )
    now = timezone.now()
    return render(
        request,
        "preferences/page.html",
        {
            "form": form,
            "zone_names": zone_names(),
            "new_york": zone_title("America/New_York", now),
            "sections": _sections(),
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def theme_set(request):
    """The header's toggle: JSON for its fetch, a redirect back without JS."""
    theme = request.POST.get("theme", "")
    wants_json = "application/json" in request.headers.get("Accept", "")
    if theme not in Theme.values:
        error = f"Unknown theme “{theme[:20]}”: choose system, light or dark."
        if wants_json:
            return JsonResponse({"ok": False, "error": error}, status=400)
        messages.error(request, error)
    else:
        preferences_update(user=request.user, theme=theme)
        if wants_json:
            return JsonResponse({"ok": True, "theme": theme})
    back = request.POST.get("next") or "/"
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    return redirect(back)
