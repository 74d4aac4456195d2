"""A small SQL tokenizer: statements, and `@start_date` outside strings and comments."""

from __future__ import annotations

import re
from collections.abc import Callable

_TOKEN = re.compile(
    r"""
    (?P<line>--[^\n]*)
  | (?P<block>/\*.*?(\*/|\Z))
  | (?P<str>'(?:[^']|'')*('|\Z))
  | (?P<ident>"(?:[^"]|"")*("|\Z))
  | (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?(\$(?P=tag)\$|\Z))
  | (?P<param>@start_date\b)
  | (?P<semi>;)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<other>.)
    """, re.S | re.X)


def split_statements(sql: str) -> list[str]:
    """Split on `;` outside literals, identifiers and comments; drop empty statements."""
    out: list[str] = []
    current: list[str] = []
    for m in _TOKEN.finditer(sql):
        if m.lastgroup == "semi":
            out.append("".join(current))
            current = []
        elif m.lastgroup not in ("line", "block"):
            current.append(m.group())
    out.append("".join(current))
    return [s for s in out if s.strip()]


def first_keyword(statement: str) -> str | None:
    """The first word of a statement, upper-cased, skipping comments and parentheses."""
    for m in _TOKEN.finditer(statement):
        if m.lastgroup == "word":
            return m.group().upper()
        if m.lastgroup in ("line", "block") or m.group() in "( \t\r\n":
            continue
        return None
    return None


def bind_start_date(sql: str, placeholder: str, *,
                    escape: Callable[[str], str] | None = None) -> tuple[str, bool]:
    """Replace the `@start_date` token (outside literals and comments) with a placeholder.

    :param escape: applied to the rest of the text when the token occurs (the dialect's
        `escape_text`: psycopg parses `%` when parameters are sent).
    :returns: the new text, and whether the token occurred (when not, the text is unchanged).
    """
    parts, found = [], False
    for m in _TOKEN.finditer(sql):
        if m.lastgroup == "param":
            parts.append(placeholder)
            found = True
        else:
            parts.append(m.group())
    if not found:
        return sql, False
    if escape is not None:
        parts = [p if p == placeholder else escape(p) for p in parts]
    return "".join(parts), True


def strip_trailing_semicolon(sql: str) -> str:
    """Drop one trailing `;` (and whitespace) so the query can be wrapped; a query that ends
    in a `--` comment keeps a line break, so what is wrapped around it is not commented out."""
    statements = split_statements(sql)
    if len(statements) != 1:
        return sql
    body = sql.rstrip()
    body = body[:-1].rstrip() if body.endswith(";") else body
    last = [m.lastgroup for m in _TOKEN.finditer(body) if not m.group().isspace()][-1:]
    return body + "\n" if last == ["line"] else body
