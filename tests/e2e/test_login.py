"""`levered login` end to end: a real server, the real CLI, real headless Chromium (issue 5).

The browser flow (`--no-browser`, the printed URL opened in Chromium: sign in, pick the
organization, consent) and the device flow (`--device`, the code typed into the
verification page); then `whoami` and an API call run on the stored session, `logout`
revokes it on the server. Set LEVERED_SCREENSHOTS=<dir> to save the pages as PNG.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from levered_core.testing import run_cli
from tests.e2e.login_server import AUTHORIZE_URL, PASSWORD, Login, LoginServer, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian's chromium is not installed (/usr/bin/chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoginServer]:
    yield from start_server(tmp_path_factory.mktemp("login-server"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through Selenium and Debian's chromedriver, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="levered-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=900,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _shoot(driver: Any, name: str) -> None:
    target = os.environ.get("LEVERED_SCREENSHOTS")
    if target:
        pathlib.Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(pathlib.Path(target) / f"{name}.png"))


def _wait(driver: Any, by: str, value: str, timeout: float = 20) -> Any:
    """The element once the page that holds it has loaded (clicks return before navigation)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        expected_conditions.presence_of_element_located((by, value)))


def _submit(driver: Any, by: str, value: str, timeout: float = 30) -> None:
    """Click a submit button and wait until its page is gone (else the next lookup may find the old page)."""
    from selenium.webdriver.support.ui import WebDriverWait

    button = driver.find_element(by, value)
    button.click()
    WebDriverWait(driver, timeout).until(lambda _driver: _detached(button))


def _detached(element: Any) -> bool:
    """Whether the element's page has gone.

    Chromium reports a node of a page being replaced either as stale or, mid-navigation, as an
    "unknown error" naming a node that no longer belongs to the document: both mean gone.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc) or "No node with given id" in str(exc):
            return True
        raise
    return False


def _wait_text(driver: Any, text: str, timeout: float = 20) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: text in d.find_element(By.TAG_NAME, "body").text)


def _auth_file(home: pathlib.Path) -> pathlib.Path:
    files = list(home.glob("auth.*.json"))
    assert len(files) == 1, files
    return files[0]


def test_browser_login_then_whoami_and_an_api_call(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    home = tmp_path / "home"
    login = Login(home, "--no-browser", "--api-url", server.url)
    url = login.wait_for(AUTHORIZE_URL).group(1)
    assert "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2F127.0.0.1" in url

    browser.get(url)
    assert "Sign in" in browser.title
    _shoot(browser, "login-signin")
    browser.find_element(By.ID, "email").send_keys("ada@acme.test")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    _submit(browser, By.ID, "sign-in")
    # Ada belongs to two organizations: the picker, then the consent naming the choice.
    _wait(browser, By.ID, "org-form")
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "fieldset label")]
    assert labels == ["Acme", "Default"]
    browser.find_element(By.CSS_SELECTOR, "fieldset label:first-child input").click()
    _submit(browser, By.ID, "continue")
    question = _wait(browser, By.ID, "consent-question").text
    assert question == "Authorize the Levered CLI to act as ada@acme.test in Acme?"
    _shoot(browser, "login-consent")
    _submit(browser, By.ID, "approve")
    _wait_text(browser, "You can close this tab")

    code, out, err = login.finish()
    assert code == 0, err
    assert out.strip() == f"Logged in as ada@acme.test (Acme) at {server.url}"
    auth = _auth_file(home)
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert "lva_" in auth.read_text() and "lva_" not in out + err

    env = {"LEVERED_API_URL": server.url, "LEVERED_SITE_CONFIG": str(home / "no-site.json")}
    who = run_cli("whoami", "--json", home=home, env=env)
    assert who.exit_code == 0, who.stderr
    assert who.json["user"]["email"] == "ada@acme.test"
    assert who.json["organization"]["name"] == "Acme" and who.json["auth"]["type"] == "session"
    listed = run_cli("optimizations", "list", "--json", home=home, env=env)
    assert listed.exit_code == 0, listed.stderr
    assert listed.json["optimizations"] == []

    out = run_cli("logout", "--json", home=home, env=env)
    assert out.exit_code == 0 and out.json["revoked"] is True, out.stderr
    assert not list(home.glob("auth.*.json"))


def test_device_login(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    home = tmp_path / "home"
    login = Login(home, "--device", "--api-url", server.url)
    found = login.wait_for(r"open (http://\S+/oauth/device) and enter the code ([B-Z]{4}-[B-Z]{4})")
    verification, user_code = found.group(1), found.group(2)

    browser.get(verification)
    browser.delete_all_cookies()  # a new person at the browser: no session of Ada's
    browser.get(verification)
    _shoot(browser, "login-device")
    browser.find_element(By.ID, "user_code").send_keys(user_code.lower().replace("-", ""))
    _submit(browser, By.ID, "submit-code")
    _wait(browser, By.ID, "email").send_keys("bob@acme.test")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    _submit(browser, By.ID, "sign-in")
    question = _wait(browser, By.ID, "consent-question").text
    assert question == "Authorize the Levered CLI to act as bob@acme.test in Acme?"
    _submit(browser, By.ID, "approve")
    _wait_text(browser, "now logged in")

    code, out, err = login.finish(timeout=40)
    assert code == 0, err
    assert out.strip() == f"Logged in as bob@acme.test (Acme) at {server.url}"
    assert stat.S_IMODE(_auth_file(home).stat().st_mode) == 0o600
    env = {"LEVERED_API_URL": server.url, "LEVERED_SITE_CONFIG": str(home / "no-site.json")}
    who = run_cli("whoami", "--json", home=home, env=env)
    assert who.exit_code == 0 and who.json["user"]["email"] == "bob@acme.test", who.stderr
