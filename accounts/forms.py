from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.core.exceptions import ValidationError

from accounts import services, throttle
from accounts.services import STARTER_WATCHLISTS


class ThrottledLoginMixin:
    """Asks `accounts.throttle` before checking a password and tells it how
    the check went. `refusal` is set when the attempt was not even tried (the
    view answers 429 with Retry-After)."""

    refusal: throttle.Refusal | None = None
    verification_resent = False

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()
        ip = throttle.client_ip(self.request)
        self.refusal = throttle.login_refusal(ip=ip, username=username)
        if self.refusal is not None:
            raise ValidationError(self.refusal.message, code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if self.user_cache is None:
                self._failed(error, ip=ip, username=username, password=password)
            raise
        throttle.login_succeeded(username=username)
        return cleaned

    def _failed(self, error, *, ip: str, username: str, password: str) -> None:
        # An open sign-up not yet confirmed gets a fresh link instead of a
        # failure: the right password proves it is theirs.
        user = get_user_model().objects.filter(username=username).first()
        if (
            user is not None
            and services.awaiting_verification(user)
            and user.check_password(password)
        ):
            self.verification_resent = services.verification_email_send(
                user=user, request=self.request
            )
            raise ValidationError(
                "Confirm your email address first: a new confirmation link was "
                f"sent to {user.email}."
                if self.verification_resent
                else "Confirm your email address first; a new link could not be "
                "sent just now, try again in a few minutes.",
                code="unverified",
            ) from None
        next_refusal = throttle.login_failed(
            ip=ip, username=username, request=self.request
        )
        if next_refusal is not None:
            raise ValidationError(
                [*error.error_list, ValidationError(next_refusal.message)]
            ) from None


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Your username and password didn't match. Please try again.",
    }


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


class SignUpForm(UserCreationForm):
    email = forms.EmailField(
        help_text="For password resets and alert emails.", max_length=254
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def __init__(self, *args, invite=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.invite = invite
        if invite is not None and invite.email:
            self.fields["email"].initial = invite.email
            self.fields["email"].widget.attrs["readonly"] = True

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if self.invite is not None and self.invite.email:
            if email.casefold() != self.invite.email.casefold():
                raise ValidationError(f"This invite is for {self.invite.email}.")
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise ValidationError(
                "An account with this address exists already: log in, or use "
                "“Forgot your password?”."
            )
        return email


class InviteForm(forms.Form):
    email = forms.EmailField(
        required=False, help_text="Optional: the address the account must use."
    )
    note = forms.CharField(
        required=False, max_length=200, help_text="Who it is for (staff only)."
    )
    days = forms.IntegerField(min_value=1, max_value=365, label="Valid for (days)")


class OnboardingForm(forms.Form):
    starters = forms.MultipleChoiceField(
        choices=[(name, name) for name in STARTER_WATCHLISTS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Starter watchlists",
        help_text="None chosen: you start with no watchlist and add your own.",
    )
    time_zone = forms.CharField(
        max_length=64,
        initial="exchange",
        label="Show times in",
        help_text="exchange (each instrument's own exchange time), local (this "
        "browser's), UTC, or a zone name such as Europe/Berlin.",
    )

    def clean_time_zone(self):
        from preferences.services import time_zone_validate

        try:
            return time_zone_validate(self.cleaned_data["time_zone"])
        except ValidationError as error:
            raise ValidationError(
                f"Unknown time zone {self.cleaned_data['time_zone']!r}: use "
                "exchange, local, UTC or a zone name such as America/New_York."
            ) from error
