"""Writes of the accounts app: invites, sign-ups, email confirmation and
onboarding. Each sends its `accounts.signals` signal inside its transaction."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import signals
from accounts.models import Invite, SignUp
from marketdata.demo import DEMO_WATCHLISTS
from marketdata.models import Watchlist
from marketdata.services import watchlist_create
from preferences.services import preferences_update, time_zone_validate

logger = logging.getLogger(__name__)

# The starter watchlists onboarding offers: the demo's lists, one source.
STARTER_WATCHLISTS = DEMO_WATCHLISTS
_VERIFY_SALT = "accounts.verify"


# --- Invites ---------------------------------------------------------------------
def invite_create(
    *,
    created_by,
    email: str = "",
    note: str = "",
    days: int | None = None,
    expires_at: datetime | None = None,
    request=None,
) -> Invite:
    """A single-use invite, valid for `days` (default ACCOUNTS_INVITE_DAYS)
    or until `expires_at`."""
    if expires_at is None:
        days = settings.ACCOUNTS_INVITE_DAYS if days is None else days
        if not 1 <= days <= 365:
            raise ValidationError("An invite lasts from 1 to 365 days.", code="days")
        expires_at = timezone.now() + timedelta(days=days)
    invite = Invite(email=email or "", note=note or "", expires_at=expires_at)
    return invite_issue(invite=invite, created_by=created_by, request=request)


def invite_issue(*, invite: Invite, created_by, request=None) -> Invite:
    """Save a new invite (admin's add form builds one) with a fresh token."""
    invite.token = secrets.token_urlsafe(24)
    invite.email = invite.email.strip()
    invite.note = invite.note.strip()[:200]
    invite.created_by = created_by
    with transaction.atomic():
        invite.save()
        signals.invite_created.send(
            sender=Invite, invite=invite, created_by=created_by, request=request
        )
    return invite


def invite_revoke(*, invite_id: int, revoked_by, request=None) -> Invite:
    """Withdraw an invite nobody used yet; a used one stays as it is."""
    with transaction.atomic():
        invite = Invite.objects.select_for_update().get(pk=invite_id)
        if invite.used_at is None and invite.revoked_at is None:
            invite.revoked_at = timezone.now()
            invite.save(update_fields=["revoked_at"])
            signals.invite_revoked.send(
                sender=Invite, invite=invite, revoked_by=revoked_by, request=request
            )
    return invite


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def invite_usable(invite: Invite | None) -> Invite:
    """The invite if it can still make an account, else a ValidationError
    saying why (unknown, used, withdrawn or expired)."""
    if invite is None:
        raise ValidationError(
            "This invite link is not valid: check that it was copied whole, "
            "or ask for a new one.",
            code="invite_unknown",
        )
    if invite.used_at:
        raise ValidationError(
            f"This invite was already used (on {_when(invite.used_at)}): each "
            "invite makes one account. Ask for a new one, or log in if it was you.",
            code="invite_used",
        )
    if invite.revoked_at:
        raise ValidationError(
            "This invite was withdrawn by staff. Ask for a new one.",
            code="invite_revoked",
        )
    if invite.expires_at <= timezone.now():
        raise ValidationError(
            f"This invite expired on {_when(invite.expires_at)}. Ask for a new one.",
            code="invite_expired",
        )
    return invite


def invite_check(*, token: str) -> Invite:
    return invite_usable(Invite.objects.filter(token=token or "").first())


# --- Sign-up -----------------------------------------------------------------------
def user_sign_up(
    *, username: str, email: str, password: str, invite_token: str = "", request=None
):
    """Make an account as TAPELINE_SIGNUP allows: with a usable invite
    (active at once), or openly (inactive until the address is confirmed).
    Raises ValidationError when sign-up is closed, the invite cannot be used,
    or the username was taken meanwhile."""
    mode = settings.TAPELINE_SIGNUP
    if mode == "closed":
        raise ValidationError(
            "Sign-up is closed: an administrator makes accounts.", code="closed"
        )
    User = get_user_model()
    with transaction.atomic():
        invite = None
        if mode == "invite":
            # Locked, so two people racing with one link make one account.
            invite = invite_usable(
                Invite.objects.select_for_update()
                .filter(token=invite_token or "")
                .first()
            )
            if invite.email and invite.email.casefold() != email.casefold():
                raise ValidationError(
                    {"email": f"This invite is for {invite.email}."},
                    code="invite_email",
                )
        try:
            with transaction.atomic():
                user = User.objects.create_user(
                    username=username,
                    email=email,
                    password=password,
                    is_active=mode == "invite",
                )
        except IntegrityError as exc:
            raise ValidationError(
                {"username": "A user with that username already exists."},
                code="username_taken",
            ) from exc
        now = timezone.now()
        SignUp.objects.create(
            user=user,
            mode=mode,
            invite=invite,
            email_verified_at=now if invite else None,
        )
        if invite is not None:
            invite.used_at, invite.used_by = now, user
            invite.save(update_fields=["used_at", "used_by"])
            signals.invite_used.send(
                sender=Invite, invite=invite, user=user, request=request
            )
        signals.user_signed_up.send(
            sender=User, user=user, mode=mode, invite=invite, request=request
        )
    return user


# --- Email confirmation (open sign-up) -------------------------------------------
def verification_token_make(*, user) -> str:
    return signing.TimestampSigner(salt=_VERIFY_SALT).sign_object(
        {"u": user.pk, "e": user.email}
    )


def verification_email_send(*, user, request) -> bool:
    """Mail the confirmation link; False (logged) when mail could not go out,
    since logging in with the password sends a fresh one."""
    path = reverse("accounts:verify", args=[verification_token_make(user=user)])
    context = {
        "user": user,
        "link": request.build_absolute_uri(path),
        "hours": settings.ACCOUNTS_VERIFY_SECONDS // 3600,
    }
    try:
        send_mail(
            "Confirm your Tapeline account",
            render_to_string("accounts/email/verify.txt", context),
            None,
            [user.email],
        )
    except Exception as exc:  # SMTP and socket errors alike: the account stays
        logger.warning("Confirmation email to user %s not sent: %s", user.pk, exc)
        return False
    return True


class VerifyError(Exception):
    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def email_verify(*, token: str, request=None):
    """Confirm an open sign-up's address and activate the account. Raises
    VerifyError (code `bad`, `used` or `expired`)."""
    signer = signing.TimestampSigner(salt=_VERIFY_SALT)
    expired = False
    try:
        data = signer.unsign_object(token, max_age=settings.ACCOUNTS_VERIFY_SECONDS)
    except signing.SignatureExpired:
        expired = True
        data = signer.unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise VerifyError(
            "This confirmation link is not valid: check that it was copied whole.",
            code="bad",
        ) from exc
    User = get_user_model()
    with transaction.atomic():
        signup = (
            SignUp.objects.select_for_update()
            .select_related("user")
            .filter(user_id=data.get("u"))
            .first()
        )
        if signup is None or signup.user.email != data.get("e"):
            raise VerifyError(
                "This confirmation link belongs to no account (it may have been "
                "removed).",
                code="bad",
            )
        if signup.email_verified_at is not None:
            raise VerifyError(
                "This address is already confirmed: the link works once. Log in.",
                code="used",
            )
        if expired:
            hours = settings.ACCOUNTS_VERIFY_SECONDS // 3600
            raise VerifyError(
                f"This confirmation link expired (links last {hours} hours). Log "
                "in with your username and password to get a new one.",
                code="expired",
            )
        user = signup.user
        signup.email_verified_at = timezone.now()
        signup.save(update_fields=["email_verified_at"])
        user.is_active = True
        user.save(update_fields=["is_active"])
        signals.email_verified.send(sender=User, user=user, request=request)
    return user


def signups_unconfirmed_remove() -> int:
    """Remove open sign-ups whose confirmation link has expired unopened, so
    an abandoned sign-up does not hold its username and address forever.
    Returns how many accounts went."""
    cutoff = timezone.now() - timedelta(seconds=settings.ACCOUNTS_VERIFY_SECONDS)
    stale = list(
        SignUp.objects.filter(
            mode=SignUp.Mode.OPEN,
            email_verified_at__isnull=True,
            created_at__lt=cutoff,
            user__is_active=False,
            user__last_login__isnull=True,
        ).values_list("user_id", flat=True)
    )
    if stale:
        get_user_model().objects.filter(pk__in=stale).delete()
    return len(stale)


def awaiting_verification(user) -> bool:
    """An open sign-up whose address is not confirmed yet."""
    signup = SignUp.objects.filter(user=user).first()
    return (
        signup is not None and signup.email_verified_at is None and not user.is_active
    )


# --- Onboarding ----------------------------------------------------------------------
def onboarding_complete(*, user, starters: list[str], time_zone: str = "") -> list:
    """Give the user the chosen starter watchlists (ones they already have by
    name are left alone) and the display time zone, and mark onboarding done.
    An unknown zone is refused before anything is written."""
    fields = {"onboarded_at": timezone.now()}
    if time_zone:
        fields["time_zone"] = time_zone_validate(time_zone)
    unknown = [name for name in starters if name not in STARTER_WATCHLISTS]
    if unknown:
        raise ValidationError(f"No starter watchlist named {unknown[0]!r}.")
    made = []
    with transaction.atomic():
        have = set(Watchlist.objects.filter(owner=user).values_list("name", flat=True))
        for name in starters:
            if name not in have:
                made.append(
                    watchlist_create(
                        owner=user, name=name, symbols=STARTER_WATCHLISTS[name]
                    )
                )
        preferences_update(user=user, **fields)
    return made


def onboarding_skip(*, user) -> None:
    preferences_update(user=user, onboarded_at=timezone.now())
