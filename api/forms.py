from __future__ import annotations

from django import forms

from api.models import Scope


class TokenForm(forms.Form):
    name = forms.CharField(max_length=60, help_text="e.g. “laptop script”.")
    scope = forms.ChoiceField(choices=Scope.choices, initial=Scope.READ)
