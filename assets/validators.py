"""What may be typed into the names, codes and texts that end up in emails and messages.

A line break in a client's name or a material code once cut the email subject and put
fake header lines in the text; other control characters (NUL, escape, vertical tab, the
Unicode line and paragraph separators) are invisible and break exports and terminals.
One validator refuses them wherever such text is entered; `one_line` renders rows saved
before the rule harmlessly.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _

# Unicode's categories Cc (C0 and C1 controls, DEL), Zl (U+2028) and Zp (U+2029), whole.
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_RUN = re.compile(CONTROL_CHARACTER.pattern + "+")
TEXT_LAYOUT = frozenset("\n\r\t")


@deconstructible
class NoControlCharacters:
    """Refuse control characters; with ``multiline``, line breaks and tabs are allowed (a free text)."""

    def __init__(self, multiline: bool = False) -> None:
        self.multiline = multiline

    def __call__(self, value: str) -> None:
        allowed = TEXT_LAYOUT if self.multiline else frozenset()
        if any(char not in allowed for char in CONTROL_CHARACTER.findall(value or "")):
            message = (
                _("Control characters (other than line breaks and tabs) are not allowed here.")
                if self.multiline
                else _("Line breaks and other control characters are not allowed here.")
            )
            raise ValidationError(message, code="control_character")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoControlCharacters) and other.multiline == self.multiline


validate_single_line = NoControlCharacters()
validate_text = NoControlCharacters(multiline=True)


def one_line(text: str) -> str:
    """``text`` on one line: every run of control characters and whitespace becomes one space."""
    return " ".join(_CONTROL_RUN.sub(" ", text or "").split())


def refuse_control_characters(instance) -> None:
    """Run the model's `NoControlCharacters` field validators, so a save outside any form is refused too."""
    errors = {}
    for model_field in instance._meta.concrete_fields:
        for validator in model_field.validators:
            if isinstance(validator, NoControlCharacters):
                try:
                    validator(getattr(instance, model_field.attname) or "")
                except ValidationError as error:
                    errors[model_field.name] = error.error_list
    if errors:
        raise ValidationError(errors)
