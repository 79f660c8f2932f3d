"""Runs a session, its apps and a folder upload through the official Backend.AI Web UI.

Logs in through the real login form, prints `{"event": "logged-in"}` and waits for a line on
stdin (the test starts the agent meanwhile); launches a session named --session from the
Sessions page's launcher dialog (the --image environment, default resources) and waits until
the list shows it RUNNING and its app buttons (the test writes the kernel's service ports);
opens the session's app launcher and starts `jupyter`, then the terminal button (`ttyd`), and
reads the page each new tab shows; opens --folder in the Data & Storage page's file browser and uploads --upload into
it. Fails (in the report) on any API call answering 4xx/5xx, GraphQL error, page error or
"Problem occurred" toast, with a screenshot per failing step in --shots. Prints the report as
the last line on stdout and exits 0 when the script itself ran.

Usage: webui_apps.py --url URL --user EMAIL --password PW --image IMAGE --folder NAME
                     --upload FILE --shots DIR [--session NAME] [--chromium PATH]
"""

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import sync_playwright

from webui_login import fill_login_form

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Calls that fail on the original 22.09 manager too (an enterprise plugin's route).
KNOWN_ABSENT_ON_ORIGINAL = [re.compile(r"/func/license\b")]

# How long one UI step may take (session creation goes through the scheduler and the agent).
STEP_MS = 60_000


class StepFailed(Exception):
    pass



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--upload", required=True)
    parser.add_argument("--shots", required=True)
    parser.add_argument("--session", default="webui-apps")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    shots = Path(args.shots)
    shots.mkdir(parents=True, exist_ok=True)
    web_origin = urlparse(args.url).netloc

    failures = []  # {"step", "kind", "detail"}
    state = {"step": "login", "capturing": False}
    report = {"logged_in_as": None, "session": args.session, "apps": {}, "uploaded": None}

    def is_watched(url):
        # The manager's API through the web server, and everything that is not the web server
        # (the wsproxy's API and its app ports).
        netloc = urlparse(url).netloc
        return netloc != web_origin or "/func/" in url or "/server/" in url

    def on_response(response):
        url = response.url
        if not state["capturing"] or not is_watched(url):
            return
        if response.status >= 400:
            if any(p.search(url) for p in KNOWN_ABSENT_ON_ORIGINAL):
                return
            try:
                body = response.text()[:300]
            except Exception:  # noqa: BLE001 - a body that cannot be read is still a failure
                body = ""
            failures.append({
                "step": state["step"],
                "kind": "api",
                "detail": f"{response.request.method} {url} -> {response.status} {body}",
            })
        elif "/admin/gql" in url:
            try:
                data = response.json()
            except Exception:  # noqa: BLE001
                return
            if isinstance(data, dict) and data.get("errors"):
                failures.append({
                    "step": state["step"],
                    "kind": "graphql",
                    "detail": json.dumps(data["errors"])[:400],
                })

    def on_page_error(error):
        if state["capturing"]:
            failures.append({"step": state["step"], "kind": "js", "detail": str(error)[:400]})

    def toasts(page):
        if page.get_by_text(re.compile("Problem occurred")).count():
            failures.append({"step": state["step"], "kind": "toast", "detail": "Problem occurred"})

    def step(page, name, action):
        state["step"] = name
        before = len(failures)
        try:
            action()
        except Exception as error:  # noqa: BLE001 - reported, with a screenshot
            failures.append({"step": name, "kind": "step", "detail": str(error)[:600]})
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            raise StepFailed(name) from error
        toasts(page)
        if len(failures) > before:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.on("response", on_response)
        page = context.new_page()
        page.on("pageerror", on_page_error)

        def login():
            page.goto(args.url + "/", wait_until="load")
            # mwc-textfield: the real <input> is in its shadow root (Playwright pierces it).
            fill_login_form(page, args.user, args.password)
            state["capturing"] = True
            page.get_by_role("button", name=re.compile("login", re.I)).first.click()
            page.wait_for_function(
                "() => globalThis.backendaiclient && globalThis.backendaiclient.ready === true",
                timeout=30_000,
            )
            report["logged_in_as"] = page.evaluate("() => globalThis.backendaiclient.email")
            # The terminal's first-use guide would cover the page: mark it seen.
            page.evaluate("() => localStorage.setItem('backendaiwebui.terminalguide', 'false')")

        def launch_session():
            page.goto(f"{args.url}/job", wait_until="load")
            start = page.locator("#launch-session:not([disabled])").first
            start.click(timeout=STEP_MS)
            dialog = page.locator("#new-session-dialog")
            name = args.image.rsplit(":", 1)[0]
            page.locator("#environment").first.click(timeout=STEP_MS)
            dialog.locator(f"mwc-list-item[value='{name}']").first.click(timeout=STEP_MS)
            page.locator("#session-name input").first.fill(args.session)
            # "Confirm and Launch" jumps to the last page, "Launch" asks to confirm (no folder
            # is mounted), the confirmation sends `POST /session`.
            launch = page.locator("#launch-button").first
            launch.click(timeout=STEP_MS)
            launch.click(timeout=STEP_MS)
            # The dialog may still reset the name field after loading its image details; the
            # UI reads the field when the launch is confirmed, so make sure it holds the name.
            field = page.locator("#session-name").first
            if field.evaluate("f => f.value") != args.session:
                field.evaluate("(f, name) => { f.value = name; }", args.session)
            page.locator("#launch-confirmation-button").first.click(timeout=STEP_MS)

        def wait_running():
            row = page.locator("vaadin-grid-cell-content", has_text=args.session).first
            row.wait_for(timeout=STEP_MS)
            # The status column's cell (the list has this one session).
            status = page.locator(
                "vaadin-grid-cell-content", has_text=re.compile(r"^\s*RUNNING\s*$")
            ).first
            status.wait_for(timeout=STEP_MS)

        def open_app(app, opener):
            with context.expect_page(timeout=STEP_MS) as new_tab:
                opener()
            tab = new_tab.value
            tab.on("pageerror", on_page_error)
            tab.locator("#app").wait_for(timeout=STEP_MS)
            report["apps"][app] = tab.locator("#app").inner_text()
            tab.close()

        def app_buttons():
            # The list shows the app buttons once a refresh reads the kernel's service ports.
            page.locator("#\\30 -apps:not([disabled])").first.wait_for(timeout=STEP_MS)
            # When the creation answer already listed service ports (the test writes them as
            # the kernel turns RUNNING, which may come before or after the answer), the UI has
            # opened the app launcher by itself; close it so the list's buttons can be used.
            apps = page.locator("#app-dialog mwc-icon-button.apps").first
            if apps.is_visible():
                page.keyboard.press("Escape")
                apps.wait_for(state="hidden", timeout=STEP_MS)

        def jupyter():
            def run():
                page.locator("#\\30 -apps").first.click(timeout=STEP_MS)
                launcher = page.locator("#app-dialog mwc-icon-button.apps")
                launcher.first.wait_for(timeout=STEP_MS)
                for index in range(launcher.count()):
                    button = launcher.nth(index)
                    if button.evaluate("b => b['app-name']") == "jupyter":
                        button.click(timeout=STEP_MS)
                        return
                raise StepFailed("the app launcher shows no jupyter")

            open_app("jupyter", run)

        def terminal():
            open_app(
                "ttyd",
                lambda: page.locator("#\\30 -terminal").first.click(timeout=STEP_MS),
            )

        def upload():
            page.goto(f"{args.url}/data", wait_until="load")
            # The row's "open a folder" button: the cell's name is a narrow target inside a
            # wider box, and a click on the box's centre can miss it by a few pixels.
            page.locator(
                f"#controls[folder-name='{args.folder}'] mwc-icon-button[icon='folder_open']"
            ).first.click(timeout=STEP_MS)
            explorer = page.locator("#folder-explorer-dialog")
            # The dialog's host has no box of its own: wait for its upload button instead.
            explorer.get_by_text(re.compile("upload files", re.I)).first.wait_for(
                timeout=STEP_MS
            )
            page.locator("#fileInput").first.set_input_files(args.upload)
            filename = Path(args.upload).name
            explorer.locator("vaadin-grid-cell-content", has_text=filename).first.wait_for(
                timeout=STEP_MS
            )
            report["uploaded"] = filename

        try:
            step(page, "login", login)
            print(json.dumps({"event": "logged-in"}), flush=True)
            sys.stdin.readline()
            step(page, "launch-session", launch_session)
            step(page, "session-running", wait_running)
            step(page, "app-buttons", app_buttons)
            step(page, "jupyter", jupyter)
            step(page, "terminal", terminal)
            step(page, "upload", upload)
        except StepFailed:
            pass
        browser.close()

    report["failures"] = failures
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
