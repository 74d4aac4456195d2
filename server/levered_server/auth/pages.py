"""HTML of the login pages: small `string.Template` files, every value escaped."""

from __future__ import annotations

import functools
import html
import pathlib
import string

TEMPLATES = pathlib.Path(__file__).parent / "templates"
STATIC = pathlib.Path(__file__).parent / "static"
# No scripts, no frames: the consent page cannot be clickjacked or scripted.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


@functools.cache
def _template(name: str) -> string.Template:
    return string.Template((TEMPLATES / f"{name}.html").read_text())


def render(name: str, title: str, **values: str) -> str:
    """Render `templates/<name>.html` inside the layout; values are escaped except `*_html`."""
    safe = {k.removesuffix("_html"): v if k.endswith("_html") else html.escape(v)
            for k, v in values.items()}
    content = _template(name).safe_substitute(safe)
    return _template("base").substitute(title=html.escape(title), content=content)


def hidden(fields: dict[str, str]) -> str:
    """Hidden inputs carrying a flow's own fields."""
    return "\n".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())


def error_box(message: str | None) -> str:
    """An error paragraph, or nothing."""
    return f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""


def org_choices(orgs: list[tuple[str, str]]) -> str:
    """Radio buttons of the organization picker, the first one checked."""
    return "\n".join(
        f'<label><input type="radio" name="organization_id" value="{html.escape(oid)}"'
        f'{" checked" if i == 0 else ""}> {html.escape(name)}</label>'
        for i, (oid, name) in enumerate(orgs))


def stylesheet() -> str:
    """The pages' one stylesheet."""
    return (STATIC / "levered.css").read_text()
