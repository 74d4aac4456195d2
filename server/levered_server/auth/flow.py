"""The browser side of both flows: login → organization → consent (API.md 4.3, 4.4).

Each call takes one request (query, form, cookie, client IP) and returns a `Page`: HTML,
or a redirect to the CLI's loopback listener. Every POST needs the session's CSRF token.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable

from oauthlib.oauth2 import FatalClientError, OAuth2Error

from levered_server.auth import browser, pages
from levered_server.auth.browser import PageSession
from levered_server.auth.endpoints import OAuthServer, normalize_user_code
from levered_server.store import Store

Form = dict[str, str]


@dataclasses.dataclass
class Page:
    """What to answer: a status with HTML or a redirect, maybe a new session cookie."""

    status: int = 200
    html: str = ""
    location: str | None = None
    cookie: str | None = None


@dataclasses.dataclass
class Flow:
    """Where the forms post and what the consent does, for one of the two flows."""

    action: str
    fields: dict[str, str]
    device_code: str | None
    on_decision: Callable[[str, str, bool], Page]


def _page(status: int, title: str, template: str, **values: str) -> Page:
    return Page(status=status, html=pages.render(template, title, **values))


def message(status: int, title: str, text: str) -> Page:
    """A page with one sentence."""
    return _page(status, title, "message", message=text)


def _login(flow: Flow, sess: PageSession, error: str | None = None, email: str = "",
           status: int = 200) -> Page:
    return _page(status, "Sign in", "login", action=flow.action, csrf=sess.csrf_token,
                 hidden_html=pages.hidden(flow.fields), error_html=pages.error_box(error),
                 email=email)


def _consent(store: Store, flow: Flow, sess: PageSession, org: tuple[str, str]) -> Page:
    assert sess.user_id is not None
    device = (f'<p class="note">Device code: <code>{flow.device_code[:4]}-'
              f'{flow.device_code[4:]}</code></p>') if flow.device_code else ""
    return _page(200, "Authorize the Levered CLI", "consent", action=flow.action,
                 csrf=sess.csrf_token, hidden_html=pages.hidden(flow.fields),
                 email=browser.user_email(store, sess.user_id), organization=org[1],
                 organization_id=org[0], device_html=device)


def _next(store: Store, flow: Flow, sess: PageSession) -> Page:
    if sess.user_id is None:
        return _login(flow, sess)
    orgs = browser.organizations_of(store, sess.user_id)
    if not orgs:
        return message(403, "No organization", "Your account belongs to no organization.")
    if len(orgs) == 1:
        return _consent(store, flow, sess, orgs[0])
    return _page(200, "Choose an organization", "organizations", action=flow.action,
                 csrf=sess.csrf_token, hidden_html=pages.hidden(flow.fields),
                 email=browser.user_email(store, sess.user_id),
                 choices_html=pages.org_choices(orgs))


def _step(store: Store, flow: Flow, sess: PageSession, form: Form, ip: str) -> Page:
    step = form.get("step")
    if step == "login":
        email = form.get("email", "")[:320]
        try:
            user_id = browser.check_password(store, email, form.get("password", "")[:1024], ip)
        except PermissionError:
            return _login(flow, sess, "Too many failed sign-ins; try again in 15 minutes.",
                          email, status=429)
        if user_id is None:
            return _login(flow, sess, "Wrong email or password.", email, status=401)
        new = browser.sign_in(store, sess, user_id)
        page = _next(store, flow, new)
        page.cookie = new.cookie
        return page
    if sess.user_id is None:
        return _login(flow, sess)
    orgs = dict(browser.organizations_of(store, sess.user_id))
    org_id = form.get("organization_id", "")
    if step in ("org", "consent") and org_id not in orgs:
        return message(403, "Not allowed", "You are not a member of that organization.")
    if step == "org":
        return _consent(store, flow, sess, (org_id, orgs[org_id]))
    if step == "consent":
        return flow.on_decision(sess.user_id, org_id, form.get("decision") == "approve")
    return _next(store, flow, sess)


def _with_session(store: Store, cookie: str | None, form: Form | None,
                  run: Callable[[PageSession], Page]) -> Page:
    sess = browser.load_session(store, cookie)
    if form is not None and not browser.csrf_ok(sess, form.get("csrf_token")):
        page = message(403, "Form expired",
                       "This form has expired or did not come from this page; "
                       "go back, reload the page and try again.")
    else:
        page = run(sess)
    if sess.is_new and page.cookie is None:
        page.cookie = sess.cookie
    return page


def authorize(store: Store, server: OAuthServer, query: str, form: Form | None, cookie: str | None,
              ip: str) -> Page:
    """`GET`/`POST /oauth/authorize`."""
    uri = f"{server.issuer}/oauth/authorize?{query}"
    try:
        server.check_authorize(uri)
    except FatalClientError as exc:
        return message(400, "Invalid login request",
                       f"This login link is invalid ({exc.description}). Run `levered login` again.")
    except OAuth2Error as exc:
        assert exc.redirect_uri
        return Page(status=302, location=server.error_redirect(exc.redirect_uri, exc, exc.state))
    params = dict(urllib.parse.parse_qsl(query))

    def decide(user_id: str, org_id: str, approve: bool) -> Page:
        if not approve:
            return Page(status=302, location=server.error_redirect(
                params["redirect_uri"], "access_denied", params.get("state")))
        return Page(status=302, location=server.approve(uri, user_id, org_id))

    flow = Flow(action=f"/oauth/authorize?{query}", fields={}, device_code=None,
                on_decision=decide)
    return _with_session(store, cookie, form, lambda s: _step(store, flow, s, form or {}, ip))


def device(store: Store, user_code: str, form: Form | None, cookie: str | None, ip: str) -> Page:
    """`GET`/`POST /oauth/device`: the code, then login, organization and consent."""
    code = normalize_user_code(user_code)

    def decide(user_id: str, org_id: str, approve: bool) -> Page:
        if not browser.decide_device(store, code, user_id, org_id, approve):
            return message(400, "Code expired", "That code has expired; run `levered login "
                                                "--device` again.")
        if approve:
            return message(200, "Device connected",
                           "The Levered CLI is now logged in. You can close this tab and "
                           "return to the terminal.")
        return message(200, "Login denied", "The request was denied; nothing was authorized.")

    flow = Flow(action="/oauth/device", fields={"user_code": code}, device_code=code,
                on_decision=decide)

    def run(sess: PageSession) -> Page:
        if form is None or not code:
            return _page(200, "Connect a device", "device", csrf=sess.csrf_token,
                         user_code=user_code, error_html="")
        if not browser.pending_device(store, code):
            return _page(400, "Connect a device", "device", csrf=sess.csrf_token,
                         user_code=user_code, error_html=pages.error_box(
                             "That code is wrong or has expired."))
        return _step(store, flow, sess, form, ip)

    return _with_session(store, cookie, form, run)
