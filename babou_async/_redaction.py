"""
Hiding the API key in every form it can take in text: the one redaction of the package.

A server, a proxy or an error page may echo the key back literally, JSON-escaped
(``\\u0073k-...``), URL-encoded (``%73k-...``), as HTML entities, or base64-encoded (an
``Authorization: Basic`` header, a token embedding it). :class:`Redactor` matches each
character of the key in any of those spellings, mixed freely, so no encoding of the key
survives into a message, a repr, a log record or a chained cause.

Anything shaped like a Babou key (``sk-bab-...``) is hidden too, whether or not it is ours:
the command line prints server text, and a key for another account is just as secret.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Final

__all__ = ["REDACTED", "Redactor", "redact"]

#: What a hidden key is replaced with.
REDACTED: Final = "[REDACTED]"

_KEY_SHAPE: Final = re.compile(r"sk-bab-[A-Za-z0-9_\-]+")


def _char_pattern(char: str) -> str:
    """A regex matching ``char`` literally or in any escape a text format may use."""
    code = ord(char)
    forms = [re.escape(char)]
    if code < 0x100:
        forms.append(f"%{code:02x}")  # URL encoding (matched case-insensitively)
        forms.append(f"\\\\x{code:02x}")  # a Python/JS \xNN escape
    forms.append(f"\\\\u{code:04x}")  # a JSON \uNNNN escape
    forms.append(f"&#0*{code};")  # an HTML decimal entity
    forms.append(f"&#x0*{code:x};")  # an HTML hex entity
    if char == "/":
        forms.append(r"\\/")  # JSON may escape the solidus
    if char == " ":
        forms.append(r"\+")  # form encoding
    return "(?:" + "|".join(forms) + ")"


def _base64_cores(secret: bytes) -> list[str]:
    """
    The parts of a base64 encoding of any text containing ``secret`` that are always the same.

    Base64 encodes 3 bytes as 4 characters, so the key's encoding depends on where it falls
    in the 3-byte grid: for each of the three alignments, the characters that only depend on
    the key's own bytes are kept (and the same in the URL-safe alphabet).
    """
    cores: list[str] = []
    for align in range(3):
        encoded = base64.b64encode(b"\0" * align + secret).decode()
        head = (align * 4 + 2) // 3  # characters touched by the padding bytes before
        tail = (len(secret) + align) % 3  # a partial group at the end depends on what follows
        core = encoded[head : len(encoded) - (4 if tail else 0)].rstrip("=")
        if len(core) >= 8:
            cores.append(core)
            cores.append(core.translate(str.maketrans("+/", "-_")))
    return cores


class Redactor:
    """
    Replaces every spelling of the given secrets (and anything key-shaped) with ``[REDACTED]``.

    Built once per session: the pattern is compiled at construction, and :meth:`__call__`
    is one ``re.sub`` (plus a cheap check that skips it when no key-like text is present).
    """

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        alternatives = [_KEY_SHAPE.pattern]
        for secret in secrets:
            if not secret:
                continue
            alternatives.append("".join(_char_pattern(char) for char in secret))
            alternatives.extend(re.escape(core) for core in _base64_cores(secret.encode()))
        # Longest first, so that a whole key wins over a shorter encoded core.
        alternatives.sort(key=len, reverse=True)
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE)

    def __call__(self, text: str) -> str:
        """``text`` with every form of the secrets replaced by ``[REDACTED]``."""
        return self._pattern.sub(REDACTED, text)

    def contains(self, text: str) -> bool:
        """Whether ``text`` holds a form of a secret (or a key-shaped string)."""
        return self._pattern.search(text) is not None


_ANONYMOUS: Final = Redactor()


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with ``secret`` (in any spelling) and anything key-shaped hidden."""
    if not secret:
        return _ANONYMOUS(text)
    return Redactor([secret])(text)
