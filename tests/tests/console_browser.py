"""The console as a person uses it, in Debian's headless Chromium through chromedriver.

Run by tests/tests/console.rs, which starts the API and a worker over a test database and Redis,
makes the data (three dead jobs, page views in a community, a conversion) and checks the effects
in Redis afterwards. This script signs in, reads counts, opens a dead job and its error, requeues
it and watches it complete, discards another, pauses and resumes the queue, opens every page and
the analytics with data, and writes a screenshot of each page at desktop and phone widths.

A page that does not answer 200, a JavaScript console message at SEVERE (errors, CSP
violations), a page wider than a phone's screen, an unlabelled form control or a page without
exactly one h1 fails the run. It prints one JSON line of what it did.

Environment: CONSOLE_URL, CONSOLE_TOKEN, QUEUE, DEAD_IDS (comma-separated, 3), COMMUNITY,
TOP_PAGE, SHOT_DIR.
"""

import json
import os
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

BASE = os.environ["CONSOLE_URL"].rstrip("/")
TOKEN = os.environ["CONSOLE_TOKEN"]
QUEUE = os.environ["QUEUE"]
DEAD = os.environ["DEAD_IDS"].split(",")
COMMUNITY = os.environ["COMMUNITY"]
TOP_PAGE = os.environ["TOP_PAGE"]
SHOTS = os.environ["SHOT_DIR"]

SIZES = [("desktop", 1280, 900), ("phone", 390, 844)]


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def start():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--user-data-dir=" + tempfile.mkdtemp(prefix="celeriac-chromium-"),
    ]:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(30)
    driver.set_window_size(1280, 900)
    return driver


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def page_ok(driver, what, status=200):
    """The page loaded with `status`, logged no error, has one h1 and labels every control."""
    got = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return n ? n.responseStatus : null;"
    )
    check(got == status, f"{what}: status {got}, wanted {status} ({driver.current_url})")
    errors = console_errors(driver)
    if status != 200:
        # Chrome logs the page's own status as a failed load.
        errors = [e for e in errors if f"status of {status}" not in e.get("message", "")]
    check(not errors, f"{what}: JavaScript console errors: {errors}")
    h1 = driver.find_elements(By.TAG_NAME, "h1")
    check(len(h1) == 1, f"{what}: {len(h1)} h1 elements")
    unlabelled = driver.execute_script(
        """
        return [...document.querySelectorAll('input:not([type=hidden]), select, button')]
          .filter(el => {
            if (el.tagName === 'BUTTON') return !el.textContent.trim() && !el.getAttribute('aria-label');
            if (el.getAttribute('aria-label')) return false;
            if (el.id && document.querySelector(`label[for="${el.id}"]`)) return false;
            return !el.closest('label');
          })
          .map(el => el.outerHTML.slice(0, 80));
        """
    )
    check(not unlabelled, f"{what}: controls without a label: {unlabelled}")
    charts = driver.execute_script(
        "return [...document.querySelectorAll('svg[role=img]')]"
        ".filter(s => !s.getAttribute('aria-label')).length;"
    )
    check(charts == 0, f"{what}: {charts} charts without a text alternative")


def click_to_load(driver, element):
    """Click `element`, which loads another page, and wait until that page has loaded: a check
    made right after the click could still see the old page, or none (mid-navigation)."""
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def gone():
        try:
            old.tag_name
            return False
        except StaleElementReferenceException:
            return True

    wait_for("the next page to load", lambda: gone()
             and driver.execute_script("return document.readyState") == "complete", timeout=15)


def go(driver, path, what, status=200):
    driver.get(BASE + path)
    page_ok(driver, what, status)


def text(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text.strip()


def flash(driver):
    found = driver.find_elements(By.CSS_SELECTOR, "p.flash")
    return found[0].text.strip() if found else ""


def shots(driver, name, taken):
    """The page at each width: full height, and no wider than the screen."""
    for label, width, height in SIZES:
        driver.set_window_size(width, height)
        time.sleep(0.2)
        wide = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
        )
        check(wide <= 1, f"{name} at {label} width: {wide} px wider than the screen")
        full = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(width, min(max(full + 140, height), 6000))
        time.sleep(0.2)
        path = os.path.join(SHOTS, f"{name}-{label}.png")
        check(driver.save_screenshot(path), f"screenshot {path}")
        taken.append(path)
    driver.set_window_size(1280, 900)
    check(not console_errors(driver), f"{name}: JavaScript console errors while resizing")


def wait_for(what, fn, timeout=30.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (StaleElementReferenceException, NoSuchElementException):
            pass  # a live update swapped the element while it was read, or the page is loading
        except WebDriverException as e:
            # Chromium 156 reports an element whose page navigated away mid-read this way.
            if "does not belong to the document" not in str(e):
                raise
        time.sleep(0.25)
    raise Failed(f"timed out waiting for {what} (last: {last!r})")


def dead_count(driver):
    row = driver.find_element(By.XPATH, f"//tr[th/a[text()='{QUEUE}']]")
    return row.find_elements(By.CSS_SELECTOR, "td")[4].text.strip()


def run(driver):
    taken = []
    # Not signed in: every page sends you to the form.
    driver.get(BASE + "/console")
    check(driver.current_url.endswith("/console/login"), f"redirected to {driver.current_url}")
    page_ok(driver, "login")
    shots(driver, "login", taken)
    # By keyboard: the token, then Enter. A wrong one is refused with a message.
    field = driver.find_element(By.ID, "token")
    field.send_keys("not-the-token", Keys.ENTER)
    wait_for("the refusal", lambda: driver.find_elements(By.ID, "login-error"))
    check("not the API token" in text(driver, "#login-error"), "the refusal says why")
    driver.get_log("browser")  # the 401 of the refused sign-in is logged as a failed load
    driver.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
    wait_for("the overview", lambda: driver.current_url.endswith("/console"))
    page_ok(driver, "overview")
    check(text(driver, "h1") == "Overview", "the overview's title")
    # The cookie is not readable by scripts.
    check("celeriac_console" not in driver.execute_script("return document.cookie;"), "HttpOnly")
    # The first Tab stop skips to the content.
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = driver.switch_to.active_element
    check(focused.text.strip() == "Skip to content", f"first tab stop: {focused.text!r}")
    check(dead_count(driver) == str(len(DEAD)), f"dead count on the overview: {dead_count(driver)}")
    shots(driver, "overview", taken)

    # The queue's dead jobs, from the overview's dead count.
    click_to_load(driver, driver.find_element(By.XPATH, f"//tr[th/a[text()='{QUEUE}']]//a[contains(@href,'state=dead')]"))
    page_ok(driver, "dead jobs")
    for job in DEAD:
        check(driver.find_elements(By.ID, f"sel-{job}"), f"dead job {job} listed")
    check("refused by the test" in driver.page_source, "errors shown on the dead page")
    shots(driver, "queue-dead", taken)

    # One dead job: its error, then requeue it and watch it complete (live updates, no reload).
    requeued, discarded, kept = DEAD
    go(driver, f"/console/queues/{QUEUE}/jobs/{requeued}", "a dead job")
    check(text(driver, "#job-state") == "dead", "the job is dead")
    check("refused by the test" in text(driver, "#job-error"), "its error is shown")
    shots(driver, "job-dead", taken)
    click_to_load(driver, driver.find_element(By.XPATH, "//button[text()='Requeue']"))
    page_ok(driver, "after requeue")
    check(flash(driver) == "1 job requeued.", f"requeue message: {flash(driver)!r}")
    go(driver, f"/console/queues/{QUEUE}/jobs/{requeued}", "the requeued job")
    wait_for(
        "the requeued job to complete",
        lambda: text(driver, "#job-state") == "done",
        timeout=60,
    )
    check(not console_errors(driver), "live updates logged errors")
    shots(driver, "job-done", taken)

    # Discard another, selected by its checkbox, after confirming.
    go(driver, f"/console/queues/{QUEUE}?state=dead", "dead jobs again")
    driver.find_element(By.ID, f"sel-{discarded}").click()
    driver.find_element(By.XPATH, "//button[text()='Discard selected']").click()
    driver.switch_to.alert.accept()
    wait_for("the discard", lambda: flash(driver) == "1 job discarded.")
    page_ok(driver, "after discard")
    check(not driver.find_elements(By.ID, f"sel-{discarded}"), "the discarded job is gone")
    check(driver.find_elements(By.ID, f"sel-{kept}"), "the other dead job stays")

    # Pause and resume.
    click_to_load(driver, driver.find_element(By.XPATH, "//button[text()='Pause queue']"))
    page_ok(driver, "after pause")
    check(text(driver, ".badge.paused") == "paused", "the queue shows paused")
    go(driver, "/console", "overview while paused")
    row = driver.find_element(By.XPATH, f"//tr[th/a[text()='{QUEUE}']]")
    check("paused" in row.text, "the overview shows the pause")
    go(driver, f"/console/queues/{QUEUE}", "the paused queue")
    shots(driver, "queue-paused", taken)
    click_to_load(driver, driver.find_element(By.XPATH, "//button[text()='Resume queue']"))
    page_ok(driver, "after resume")
    check(text(driver, ".actions .badge") == "active", "the queue is active again")

    # Workers and schedules.
    go(driver, "/console/workers", "workers")
    check("worker" in text(driver, "#workers"), "a live worker is listed")
    shots(driver, "workers", taken)
    go(driver, "/console/schedules", "schedules")
    check("cleanup_old_anonymous_data" in text(driver, "#schedules"), "periodic jobs listed")
    shots(driver, "schedules", taken)

    # Analytics with data: the community's live visitors, top pages, conversions.
    go(driver, "/console/analytics", "analytics")
    driver.find_element(By.NAME, "communities").send_keys(COMMUNITY)
    click_to_load(driver, driver.find_element(By.XPATH, "//button[text()='Show']"))
    page_ok(driver, "analytics for a community")
    visitors = text(driver, "#visitors")
    check(COMMUNITY in visitors, "the community's visitors are shown")
    check(TOP_PAGE in driver.page_source, "the top page is charted")
    signed_up = driver.find_elements(By.CSS_SELECTOR, "#conversions .card .value")[1].text.strip()
    check(signed_up == "1", f"one conversion counted, not {signed_up}")
    shots(driver, "analytics", taken)

    # A stale form (wrong CSRF token) is refused, and nothing changed.
    driver.execute_script(
        "document.querySelector('form[action$=\"/logout\"] input[name=csrf]').value = 'forged';"
    )
    driver.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait_for("the refusal", lambda: text(driver, "h1") == "Something went wrong")
    check(text(driver, "p.flash.error").startswith("403"), "a forged form is refused with 403")
    driver.get_log("browser")  # the refused post, logged as a failed load
    go(driver, "/console/workers", "still signed in")
    driver.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait_for("signed out", lambda: driver.current_url.endswith("/console/login"))
    return {"requeued": requeued, "discarded": discarded, "kept": kept, "screenshots": taken}


def main():
    os.makedirs(SHOTS, exist_ok=True)
    driver = start()
    try:
        out = run(driver)
    except Failed as e:
        path = os.path.join(SHOTS, "failure.png")
        driver.save_screenshot(path)
        print(f"console test failed: {e} (screenshot {path}, at {driver.current_url})", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
