"""The tokens page (/preferences/tokens/): list, create (the token is shown
on the response page once, never again) and revoke."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from api.forms import TokenForm
from api.models import ApiToken
from api.selectors import api_tokens_for_user
from api.services import api_token_create, api_token_revoke


def _page(request, form: TokenForm, *, created=None, plain: str = "", status=200):
    return render(
        request,
        "api/tokens.html",
        {
            "form": form,
            "tokens": list(api_tokens_for_user(user=request.user)),
            "created": created,
            "plain": plain,
        },
        status=status,
    )


@never_cache  # the one response carrying a new token must not be cached
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    if request.method != "POST":
        return _page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        token, plain = api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
        )
    except ValidationError as exc:
        form.add_error(None, exc)
        return _page(request, form, status=400)
    return _page(request, TokenForm(), created=token, plain=plain)


@login_required
@require_POST
def token_revoke(request, pk: int):
    try:
        token = api_token_revoke(user=request.user, token_id=pk)
    except ApiToken.DoesNotExist:
        raise Http404("No such token.") from None
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens:tokens")
