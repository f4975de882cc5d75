"""What a `--store` value is: a PostgreSQL URL checked and shown without its password. Its own
module, so the conversions file (edgeship.convert.project) checks `[project] store` without
importing the report package, which imports the convert package."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from edgeship.errors import EdgeshipError

SCHEMES = ("postgresql", "postgres")


def is_url(value: str | None) -> bool:
    return bool(value) and str(value).split("://", 1)[0].lower() in SCHEMES and "://" in str(value)


def check_url(url: str, what: str = "--store") -> str:
    """A postgresql:// URL, or one EdgeshipError line naming it and the form it should have."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # parsed only when read: a port that is no number is refused here, not by a DNS lookup
    except ValueError as error:
        raise EdgeshipError(f"{what} {redact(url)!r} is not a URL ({error}); use postgresql://USER@HOST[:PORT]/DATABASE") from None
    if parts.scheme.lower() not in SCHEMES or not (parts.path.strip("/") or "dbname=" in parts.query):
        raise EdgeshipError(f"{what} {redact(url)!r} is not a PostgreSQL URL with a database name; "
                            f"use postgresql://USER@HOST[:PORT]/DATABASE (or leave it out for the SQLite store in the results folder)")
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc if parts.password is None else parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    # libpq also takes the password as a query parameter (?password=...)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(name.lower() == "password" for name, _ in pairs):
        query = urlencode([(name, "***" if name.lower() == "password" else value) for name, value in pairs], safe="*")
    else:
        query = parts.query
    return url if (netloc, query) == (parts.netloc, parts.query) else urlunsplit(parts._replace(netloc=netloc, query=query))
