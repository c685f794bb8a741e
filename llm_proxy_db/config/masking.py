"""Masking passwords by structure: the password *field* of a URL or a Go MySQL DSN.

Replacing the password's text wherever it occurs garbles messages and can reveal the
password by elimination (a password ``5432`` turns ``port 5432`` into ``port ***``; a
password ``e`` rewrites every ``e``).  Here a connection string is parsed, the field that
holds the password is replaced by ``***``, and nothing else in the message changes.

Two shapes are understood:

* URLs, ``scheme://user:password@host:port/db?opts``: the user information ends at the
  *last* ``@`` before the path (as Go's ``net/url`` reads it), and a ``password=`` query
  parameter is masked too;
* the Go MySQL driver's DSN, ``user:password@protocol(address)/dbname?param=value``
  (every part optional), parsed by :func:`parse_mysql_dsn` for reuse by the MySQL support;
* libpq's ``key=value`` connection strings (``host=h password=X dbname=d``): the value of
  every ``password`` key, quoted or not, is masked.

The module imports nothing heavy: the fast startup path uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

MASK = "***"
_QUERY_PASSWORD = re.compile(r"(?P<key>(?:^|[?&;])password=)(?P<value>[^&#\s]*)", re.IGNORECASE)
# One connection-string-looking word inside a longer message: a URL or a Go MySQL DSN.
_URL_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
# libpq key=value: ``password=value`` or ``password = 'quoted \\' value'`` (to its end if unclosed).
_KEY_VALUE_PASSWORD = re.compile(
    r"(?P<key>\bpassword\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*(?:'|$)|[^\s']\S*)", re.IGNORECASE
)
_KEY_VALUE_START = re.compile(r"\s*[A-Za-z_]+\s*=")
_DSN_WORD = re.compile(r"\S*@[A-Za-z0-9]*\([^)\s]*\)/\S*")


@dataclass(frozen=True)
class MySQLDSN:
    """The parts of a Go MySQL DSN ``user:password@protocol(address)/dbname?params``."""

    user: str = ""
    password: str | None = None
    net: str = ""
    dbname: str = ""
    params: str = ""
    has_credentials: bool = False

    @property
    def protocol(self) -> str:
        """``tcp``, ``unix`` ... (empty when not given)."""
        return self.net.partition("(")[0]

    @property
    def address(self) -> str:
        """``host:port`` or a socket path (empty when not given)."""
        _, paren, rest = self.net.partition("(")
        return rest[:-1] if paren and rest.endswith(")") else ""

    def render(self) -> str:
        """The DSN text again (the password as stored: mask it first with :func:`mask_mysql_dsn`)."""
        credentials = self.user + (f":{self.password}" if self.password is not None else "")
        at = "@" if self.has_credentials else ""
        query = f"?{self.params}" if self.params else ""
        return f"{credentials}{at}{self.net}/{self.dbname}{query}"


def parse_mysql_dsn(text: str) -> MySQLDSN:
    """Split a Go MySQL DSN into its fields; raise ValueError when it has no ``/dbname`` part.

    As the Go driver does, the credentials end at the *last* ``@`` before the final ``/``,
    and the password runs from the first ``:`` of the credentials to that ``@``, so a
    password may itself hold ``@`` or ``:``.
    """
    slash = text.rfind("/")
    if slash < 0:
        raise ValueError("a MySQL DSN needs /dbname")
    head, tail = text[:slash], text[slash + 1 :]
    dbname, _, params = tail.partition("?")
    credentials, at, net = head.rpartition("@")
    user, colon, password = credentials.partition(":")
    return MySQLDSN(user, password if colon else None, net, dbname, params, bool(at))


def mask_mysql_dsn(text: str) -> str:
    """The DSN with its password field (and any ``password=`` parameter) masked."""
    try:
        dsn = parse_mysql_dsn(text)
    except ValueError:
        return mask_key_value(text)
    password = MASK if dsn.password is not None else None
    return replace(dsn, password=password, params=_mask_query(dsn.params)).render()


def mask_url(text: str) -> str:
    """The URL with its password field and any ``password=`` query parameter masked."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    authority_end = _authority_end(rest)
    authority, tail = rest[:authority_end], rest[authority_end:]
    credentials, at, host = authority.rpartition("@")
    if at and ":" in credentials:
        user = credentials.split(":", 1)[0]
        authority = f"{user}:{MASK}@{host}"
    path, question, query = tail.partition("?")
    return f"{scheme}://{authority}{path}{question}{_mask_query(query)}"


def _authority_end(rest: str) -> int:
    """Where a URL's authority ends: the first ``/``, ``?`` or ``#`` after the last ``@``."""
    at = rest.rfind("@")
    for index in range(max(at, 0), len(rest)):
        if rest[index] in "/?#":
            return index
    return len(rest)


def _mask_query(query: str) -> str:
    return _QUERY_PASSWORD.sub(lambda match: match.group("key") + MASK, query)


def is_key_value(text: str) -> bool:
    """True for a libpq ``key=value`` connection string (``host=h dbname=d``), not a URL."""
    return "://" not in text and _KEY_VALUE_START.match(text) is not None


def mask_key_value(text: str) -> str:
    """``text`` with the value of every ``password=`` key (libpq ``key=value`` form) masked."""
    return _KEY_VALUE_PASSWORD.sub(lambda match: match.group("key") + MASK, text)


def mask_connection_string(text: str) -> str:
    """Mask a URL, a Go MySQL DSN or a libpq ``key=value`` string given on its own (e.g. a
    value of ``DATABASE_URL``)."""
    if "://" in text:
        return mask_url(text)
    if is_key_value(text):
        return mask_key_value(text)
    if "@" in text or "password=" in text.lower():
        return mask_mysql_dsn(text)
    return text


def mask_message(message: str) -> str:
    """Mask every URL and MySQL DSN that appears as a word of a longer message."""
    message = _URL_WORD.sub(lambda match: mask_url(match.group(0)), message)
    message = _DSN_WORD.sub(lambda match: mask_mysql_dsn(match.group(0)), message)
    return mask_key_value(message)
