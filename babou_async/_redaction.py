r"""
Hiding the API key in every form it can take in text: the one redaction of the package.

A server, a proxy or an error page may echo the key back literally, JSON-escaped
(``\u0073k-...``), URL-encoded (``%73k-...``), as HTML entities, or base64-encoded (an
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
    r"""
    A regex matching ``char`` literally or in any escape a text format may use.

    Backslash escapes may come with their backslash escaped again (``\\u0073``): a JSON
    string holding an escaped text, which becomes ``\u0073`` once decoded.
    """
    code = ord(char)
    forms = [re.escape(char)]
    if code < 0x100:
        forms.append(f"%{code:02x}")  # URL encoding (matched case-insensitively)
        forms.append(f"\\\\+x{code:02x}")  # a Python/JS \xNN escape
    forms.append(f"\\\\+u{code:04x}")  # a JSON \uNNNN escape
    forms.append(f"&#0*{code};")  # an HTML decimal entity
    forms.append(f"&#x0*{code:x};")  # an HTML hex entity
    if char == "/":
        forms.append(r"\\+/")  # JSON may escape the solidus
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


_ESCAPE: Final = re.compile(
    r"%[0-9A-Fa-f]{2}|\\+[xX][0-9A-Fa-f]{2}|\\+[uU][0-9A-Fa-f]{4}|&#0*[0-9]{1,12};"
    r"|&#[xX]0*[0-9A-Fa-f]{1,12};|\\+/"
)


def _unescape(match: re.Match[str]) -> str:
    """The character one escape of :data:`_ESCAPE` stands for (a prefilter, never shown)."""
    escape = match[0]
    if escape.endswith("\\/"):
        return "/"
    if escape.startswith("&#") and escape[2] not in "xX":
        code = int(escape[2:-1])
    else:
        code = int(escape.lstrip("%\\&#").lstrip("xXuU").rstrip(";"), 16)
    return chr(code) if code <= 0x10FFFF else "\ufffd"


class Redactor:
    """
    Replaces every spelling of the given secrets (and anything key-shaped) with ``[REDACTED]``.

    Built once per session: the pattern is compiled at construction. The full pattern is
    slow on long texts (every position tries every spelling), so :meth:`__call__` first runs
    a cheap, exact-or-broader prefilter: escapes are decoded, the text lower-cased, and the
    secrets (and ``sk-bab-``) looked for with ``in``. Only a text that may hold a secret pays
    for the substitution.
    """

    __slots__ = ("_cores", "_cores_b", "_needles", "_needles_b", "_pattern", "_slow")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        alternatives = [_KEY_SHAPE.pattern]
        needles = ["sk-bab-"]
        cores: list[str] = []
        exact_cores: set[bytes] = set()
        raw_secrets: list[bytes] = []
        slow = False
        for secret in secrets:
            if not secret:
                continue
            alternatives.append("".join(_char_pattern(char) for char in secret))
            secret_cores = _base64_cores(secret.encode())
            alternatives.extend(re.escape(core) for core in secret_cores)
            needles.append(secret.lower())
            cores.extend(core.lower() for core in secret_cores)
            exact_cores.update(core.encode() for core in secret_cores)
            raw_secrets.append(secret.encode())
            # "+" may stand for a space (form encoding), and a secret holding an escape
            # character may be spelt half-decoded: no cheap prefilter for those.
            slow = slow or any(char in secret for char in " %\\&")
        # Longest first, so that a whole key wins over a shorter encoded core.
        alternatives.sort(key=len, reverse=True)
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE)
        self._needles = tuple(needles)
        self._cores = tuple(dict.fromkeys(cores))
        # The fast path of a body looks for the secrets and the prefix of any Babou key in
        # any case, and for their exact base64.
        needles_b = (b"sk-bab-", *(secret.lower() for secret in raw_secrets))
        # A needle holding another one is found whenever that one is: look for it once.
        self._needles_b = tuple(
            needle
            for needle in dict.fromkeys(needles_b)
            if not any(other in needle for other in needles_b if other != needle)
        )
        self._cores_b = tuple(exact_cores)
        self._slow = slow

    def _may_contain(self, text: str) -> bool:
        """Cheap check: ``False`` only when the full pattern cannot match ``text``."""
        if self._slow:
            return True
        low = text.lower()
        if any(core in low for core in self._cores):
            return True
        if "%" in low or "\\" in low or "&#" in low:
            low = _ESCAPE.sub(_unescape, low).lower()
        return any(needle in low for needle in self._needles)

    def __call__(self, text: str) -> str:
        """``text`` with every form of the secrets replaced by ``[REDACTED]``."""
        if not self._may_contain(text):
            return text
        return self._pattern.sub(REDACTED, text)

    def contains(self, text: str) -> bool:
        """Whether ``text`` holds a form of a secret (or a key-shaped string)."""
        return self._may_contain(text) and self._pattern.search(text) is not None

    def redact_bytes(self, data: bytes) -> bytes:
        r"""
        ``data`` (a response body, any encoding) with every form of the secrets hidden.

        Read as Latin-1, which maps bytes to characters one to one, so the ASCII spellings
        of the key are found whatever the body's real encoding, and nothing else changes.
        Every body of a session passes here, so the common case (no secret, no escape
        character) is decided with a handful of byte searches: an escaped spelling needs a
        ``\``, ``%`` or ``&``; the others are the secret itself or its base64 cores.
        """
        # map over the bound __contains__: the searches run without a Python frame each.
        if (
            not self._slow
            and len(data.translate(None, b"\\%&")) == len(data)
            and not any(map(data.lower().__contains__, self._needles_b))
            and not any(map(data.__contains__, self._cores_b))
        ):
            return data
        text = data.decode("latin-1")
        if not self._may_contain(text):
            return data
        return self._pattern.sub(REDACTED, text).encode("latin-1")


_ANONYMOUS: Final = Redactor()


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with ``secret`` (in any spelling) and anything key-shaped hidden."""
    if not secret:
        return _ANONYMOUS(text)
    return Redactor([secret])(text)
