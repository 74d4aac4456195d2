"""A small SQL tokenizer: statements, and `@start_date` outside strings and comments."""

from __future__ import annotations

import re

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


def bind_start_date(sql: str, placeholder: str, *, escape_percent: bool = False
                    ) -> tuple[str, bool]:
    """Replace the `@start_date` token (outside literals and comments) with a placeholder.

    :param escape_percent: double every `%` (psycopg parses `%` when parameters are sent).
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
    if escape_percent:
        parts = [p if p == placeholder else p.replace("%", "%%") for p in parts]
    return "".join(parts), True


def strip_trailing_semicolon(sql: str) -> str:
    """Drop one trailing `;` (and whitespace) so the query can be wrapped."""
    statements = split_statements(sql)
    if len(statements) != 1:
        return sql
    body = sql.rstrip()
    return body[:-1].rstrip() if body.endswith(";") else body
