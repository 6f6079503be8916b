"""Log-in, sign-up, email confirmation, onboarding, the staff invites page,
and Django's password views with this project's templates and signals."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services, signals, throttle
from accounts.forms import InviteForm, LoginForm, OnboardingForm, SignUpForm
from accounts.models import Invite

BACKEND = "django.contrib.auth.backends.ModelBackend"


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            "signup": settings.TAPELINE_SIGNUP,
        }

    def get_success_url(self):
        if selectors.onboarding_due(user=self.request.user):
            url = reverse("accounts:welcome")
            target = self.get_redirect_url()
            return f"{url}?{urlencode({'next': target})}" if target else url
        return super().get_success_url()

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.refusal is not None:
            # Not even tried: say so to scripts too.
            response.status_code = 429
            response["Retry-After"] = str(form.refusal.retry_after)
        return response


# --- Sign-up ---------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
def signup(request, token: str = ""):
    mode = settings.TAPELINE_SIGNUP
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    if mode == "closed":
        return render(
            request, "accounts/signup_closed.html", {"mode": mode}, status=403
        )
    invite = None
    if mode == "invite":
        token = token or request.GET.get("invite", "")
        if not token:
            return render(
                request, "accounts/signup_closed.html", {"mode": mode}, status=403
            )
        try:
            invite = services.invite_check(token=token)
        except ValidationError as error:
            return render(
                request,
                "accounts/invite_invalid.html",
                {"reason": error.messages[0]},
                status=410 if error.code != "invite_unknown" else 404,
            )
    if request.method == "POST" and mode == "open":
        services.signups_unconfirmed_remove()
    form = SignUpForm(request.POST or None, invite=invite)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_sign_up(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                invite_token=token,
                request=request,
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                form.add_error(None, error)
            else:
                return render(
                    request,
                    "accounts/invite_invalid.html",
                    {"reason": error.messages[0]},
                    status=410,
                )
        else:
            if user.is_active:
                login(request, user, backend=BACKEND)
                return redirect("accounts:welcome")
            sent = services.verification_email_send(user=user, request=request)
            return render(
                request,
                "accounts/signup_sent.html",
                {"email": user.email, "sent": sent},
            )
    return render(
        request, "accounts/signup.html", {"form": form, "invite": invite, "mode": mode}
    )


def verify(request, token: str):
    try:
        user = services.email_verify(token=token, request=request)
    except services.VerifyError as error:
        status = {"used": 409, "expired": 410}.get(error.code, 404)
        return render(
            request,
            "accounts/verify_failed.html",
            {"reason": str(error)},
            status=status,
        )
    login(request, user, backend=BACKEND)
    messages.success(request, "Your address is confirmed. Welcome to Tapeline.")
    return redirect("accounts:welcome")


# --- Onboarding ----------------------------------------------------------------------
@login_required
@require_http_methods(["GET", "POST"])
def welcome(request):
    target = _safe_next(request, reverse(settings.LOGIN_REDIRECT_URL))
    form = OnboardingForm(request.POST or None)
    if request.method == "POST":
        if "skip" in request.POST:
            services.onboarding_skip(user=request.user)
            return redirect(target)
        if form.is_valid():
            made = services.onboarding_complete(
                user=request.user,
                starters=form.cleaned_data["starters"],
                time_zone=form.cleaned_data["time_zone"],
            )
            if made:
                names = ", ".join(w.name for w in made)
                messages.success(request, f"Watchlists added: {names}.")
            return redirect(target)
    return render(
        request,
        "accounts/welcome.html",
        {
            "form": form,
            "next": target,
            "starters": services.STARTER_WATCHLISTS,
            "zones": selectors.time_zone_names(),
            "existing": selectors.watchlist_names(user=request.user),
        },
    )


# --- Staff: invites ------------------------------------------------------------------
def _staff(request) -> None:
    if not request.user.is_staff:
        raise Http404("No such page.")


@login_required
@require_http_methods(["GET", "POST"])
def invites(request):
    _staff(request)
    form = InviteForm(
        request.POST or None, initial={"days": settings.ACCOUNTS_INVITE_DAYS}
    )
    if request.method == "POST" and form.is_valid():
        invite = services.invite_create(
            created_by=request.user,
            email=form.cleaned_data["email"],
            note=form.cleaned_data["note"],
            days=form.cleaned_data["days"],
            request=request,
        )
        messages.success(
            request,
            f"Invite made: {selectors.invite_link(invite=invite, request=request)}",
        )
        return redirect("accounts:invites")
    rows = [
        (invite, selectors.invite_link(invite=invite, request=request))
        for invite in selectors.invites_recent()
    ]
    return render(
        request,
        "accounts/invites.html",
        {"form": form, "rows": rows, "mode": settings.TAPELINE_SIGNUP},
    )


@login_required
@require_POST
def invite_revoke(request, pk: int):
    _staff(request)
    try:
        invite = services.invite_revoke(
            invite_id=pk, revoked_by=request.user, request=request
        )
    except Invite.DoesNotExist as exc:
        raise Http404("No such invite.") from exc
    if invite.status == "revoked":
        messages.success(request, "Invite withdrawn.")
    else:
        messages.error(request, f"This invite is {invite.status}: nothing to withdraw.")
    return redirect("accounts:invites")


# --- Passwords ------------------------------------------------------------------------
class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")

    def form_valid(self, form):
        response = super().form_valid(form)
        signals.password_changed.send(
            sender=type(form.user), user=form.user, how="change", request=self.request
        )
        return response


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"

    def get_context_data(self, **kwargs):
        hours = settings.PASSWORD_RESET_TIMEOUT / 3600
        return {**super().get_context_data(**kwargs), "hours": f"{hours:g}"}


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if not context.get("validlink"):
            context["reason"] = self._reason(self.kwargs.get("token", ""))
        return context

    def _reason(self, token: str) -> str:
        # Django's token does not say why it fails; its timestamp does tell
        # a late link from one already used (or mangled).
        generator = self.token_generator
        hours = f"{settings.PASSWORD_RESET_TIMEOUT / 3600:g}"
        if token == self.reset_url_token:
            token = self.request.session.get(
                auth_views.INTERNAL_RESET_SESSION_TOKEN, ""
            )
        try:
            stamp = int(token.split("-")[0], 36)
        except ValueError:
            stamp = None
        if stamp is not None and self.user is not None:
            age = generator._num_seconds(generator._now()) - stamp
            if age > settings.PASSWORD_RESET_TIMEOUT:
                return (
                    f"This reset link expired: links last {hours} hours. "
                    "Ask for a new one below."
                )
            return (
                "This reset link was already used: each link sets a password "
                "once. If that was not you, ask for a new one below."
            )
        return (
            "This reset link is not valid: check that it was copied whole, or "
            "ask for a new one below."
        )

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.user
        # Proving the address is enough to lift a lock on the username.
        throttle.username_release(username=user.get_username())
        signals.password_changed.send(
            sender=type(user), user=user, how="reset", request=self.request
        )
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"
