"""Removing secret values from text that leaves the process (messages, pings, warnings about them).

The notifier knows some secrets for sure (the target URLs it resolved, the repository passphrase the CLI
hands it, the configuration's env and file references) and replaces each with ``***``. A URL is taken
apart too: its password, and its user name, path segments and query values that look like tokens (at
least :data:`MIN_PART` characters, and holding a digit or punctuation or at least 16 characters long)
count as secrets, since services put tokens in any of them (``slack://T0/B0/XXXX``, ``ntfy://topic-1``,
``?token=...``); plain words such as ``services`` in ``https://hooks.slack.com/services/...`` are left,
so that a message keeps its words.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
#: URL parts shorter than this are not masked (a port, "v1", "api"); tokens are longer.
MIN_PART = 6


def _tokenish(part: str) -> bool:
    return len(part) >= MIN_PART and (not part.isalpha() or len(part) >= 16)


def url_parts(url: str) -> list[str]:
    """The parts of ``url`` that may be secrets: the whole URL, its password, and the user name, path
    segments and query values that look like tokens (and their percent-decoded forms)."""
    whole = [url]
    parts: list[str] = []
    try:
        split = urlsplit(url)
        if split.password:
            whole += [split.password, unquote(split.password)]
        parts += [split.username or "", *split.path.split("/"), split.fragment]
        parts += [v for _, v in parse_qsl(split.query, keep_blank_values=True)]
    except ValueError:  # not parseable as a URL: the whole string is still masked
        pass
    parts += [unquote(p) for p in parts]
    return whole + [p for p in parts if _tokenish(p)]


class Redactor:
    """A set of secret values; :meth:`__call__` masks every one of them in a text (longest first)."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets: set[str] = set()
        for s in secrets or []:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3:
            self._secrets.add(secret)
            stripped = secret.strip()
            if len(stripped) >= 3:
                self._secrets.add(stripped)

    def add_url(self, url: str) -> None:
        for part in url_parts(url):
            self.add(part)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text
