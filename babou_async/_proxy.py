"""
Which proxy each request goes through: the session's ``proxy=``, else the environment's.

Pure (no I/O beyond reading ``os.environ`` once, at construction): :class:`ProxyRoutes`
turns a session's ``proxy=`` setting into a :class:`Proxy` (or none) per origin, which the
transport passes to aiohttp request by request.

Why not aiohttp's ``trust_env=True``: it also reads ``~/.netrc`` and sends the credentials
it finds there as ``Authorization: Basic`` to any host without an ``Authorization`` header,
the download host included; and it re-reads the environment in a worker thread for every
request. The environment is read here instead, the way ``curl``, ``urllib`` and ``httpx``
read it (:func:`urllib.request.getproxies_environment`, :func:`proxy_bypass_environment`):

* ``HTTPS_PROXY`` for ``https://`` URLs, ``HTTP_PROXY`` for ``http://`` ones (lower case
  wins when both are set; ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` says we run
  as a CGI script, as ``urllib`` does against httpoxy); ``ALL_PROXY`` is not read;
* ``NO_PROXY``: a comma-separated list of hosts and domain suffixes (``*`` for all) that go
  direct. ``localhost`` and ``127.0.0.1`` are *not* exempt unless listed.

The proxy's own credentials come from its URL's userinfo only, as a ``Proxy-Authorization``
header; the API key is never used as one.
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Mapping
from typing import Literal
from urllib.parse import unquote, urlsplit

import attrs

from ._exceptions import ConfigurationError

__all__ = ["Proxy", "ProxyRoutes", "ProxySetting", "check_proxy"]

_MAX_ORIGINS = 256

#: What ``BabouSession(proxy=...)`` accepts: a URL, ``None`` (the environment), or ``False``
#: or ``""`` (no proxy at all).
ProxySetting = str | Literal[False] | None


@attrs.frozen
class Proxy:
    """
    One proxy: its URL without userinfo, and the header carrying that userinfo.

    Attributes:
        url: ``http(s)://host:port``, no credentials.
        headers: ``Proxy-Authorization`` when the URL had userinfo (never shown in a repr).
    """

    url: str
    headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)


def check_proxy(value: object, source: str = "proxy") -> Proxy:
    """
    Parse a proxy URL; a missing scheme means ``http://`` (as curl and httpx read it).

    Raises:
        ConfigurationError: Naming ``source`` (the argument or the environment variable).
    """
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{source} must be a proxy URL (str), None or False, got {type(value).__name__}"
        )
    text = value if "://" in value else f"http://{value}"
    problem = None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError as exc:
        problem = f"malformed ({exc})"
    else:
        if any(ch.isspace() or not ch.isprintable() for ch in text):
            problem = "it contains whitespace or control characters"
        elif parts.scheme not in ("http", "https"):
            problem = f"scheme {parts.scheme!r} is not supported (http or https)"
        elif not parts.hostname:
            problem = "it has no host"
        elif parts.path not in ("", "/") or parts.query or parts.fragment:
            problem = "a proxy URL is scheme://[user:password@]host[:port] only"
    if problem is not None:
        raise ConfigurationError(f"bad {source}: {problem}")
    host = parts.netloc.rpartition("@")[2]
    headers = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(pair.encode()).decode("ascii")
        headers = {"Proxy-Authorization": f"Basic {token}"}
    return Proxy(url=f"{parts.scheme}://{host}", headers=headers)


class ProxyRoutes:
    """
    The proxy of each origin, from ``proxy=`` or the environment (read once, here).

    ``setting`` is a URL (every request uses it), ``None`` (the environment) or ``False``
    / ``""`` (no proxy). Answers are cached per origin.

    Raises:
        ConfigurationError: A bad ``proxy=`` or proxy environment variable.
    """

    __slots__ = ("_cache", "_fixed", "_no_proxy", "_schemes")

    def __init__(self, setting: ProxySetting) -> None:
        self._cache: dict[tuple[str, str], Proxy | None] = {}
        self._schemes: dict[str, Proxy] = {}
        self._no_proxy: dict[str, str] = {}
        self._fixed: Proxy | None = None
        if setting is False or setting == "":
            return
        if setting is not None:
            self._fixed = check_proxy(setting)
            return
        found = urllib.request.getproxies_environment()
        for scheme in ("http", "https"):
            if found.get(scheme):
                self._schemes[scheme] = check_proxy(found[scheme], f"{scheme.upper()}_PROXY")
        if found.get("no"):
            self._no_proxy = {"no": found["no"]}

    @property
    def active(self) -> bool:
        """Whether any request may go through a proxy."""
        return self._fixed is not None or bool(self._schemes)

    def for_origin(self, scheme: str, netloc: str) -> Proxy | None:
        """The proxy for requests to ``scheme://netloc`` (``host[:port]``), or ``None``."""
        if self._fixed is not None or not self._schemes:
            return self._fixed
        key = (scheme, netloc)
        if key not in self._cache:
            proxy = self._schemes.get(scheme)
            if proxy is not None and self._no_proxy:
                # urllib's matching: suffixes, host:port, "*"; given only our NO_PROXY.
                bypass = urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
                    netloc, self._no_proxy
                )
                proxy = None if bypass else proxy
            if len(self._cache) >= _MAX_ORIGINS:  # a redirect chain of ever new hosts
                self._cache.clear()
            self._cache[key] = proxy
        return self._cache[key]

    def for_url(self, url: str) -> Proxy | None:
        """The proxy for requests to ``url``."""
        parts = urlsplit(url)
        return self.for_origin(parts.scheme, parts.netloc.rpartition("@")[2])
