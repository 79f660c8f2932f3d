"""Tours the official Backend.AI Web UI in headless Chromium against a running web server.

Logs in through the real login form, opens every menu page and its tabs, and reports every API
call that answered 4xx/5xx and every "Problem occurred" notification. Prints one JSON object
on stdout (the Rust test reads it) and exits 0 when the tour itself ran, whatever it found;
screenshots of failing pages go to the directory given by --shots.

Usage: webui_tour.py --url http://127.0.0.1:PORT --user EMAIL --password PW --shots DIR
                     [--chromium /usr/bin/chromium] [--pages summary,job,...]
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from webui_login import fill_login_form

# The Web UI's menu pages (availablePages in the 23.09 bundle) a superadmin can open, each with
# the tab buttons it shows. A tab is clicked by its visible label.
PAGES = {
    "summary": [],
    "job": ["Running", "Finished", "Others"],
    "data": ["General", "Data", "Automount", "Model"],
    "agent-summary": [],
    "statistics": ["1 Day", "1 Week"],
    "credential": ["Users", "Credentials", "Resource Policies"],
    "environment": ["Images", "Resource Presets", "Registries"],
    "agent": ["Connected", "Terminated", "Resource Group"],
    "settings": [],
    "maintenance": [],
    "information": [],
    "usersettings": ["General", "Logs"],
}

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

SETTLE_SECONDS = 2.5


def is_api_call(url):
    return "/func/" in url or "/server/" in url



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--shots", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--pages", default=",".join(PAGES))
    args = parser.parse_args()
    shots = Path(args.shots)
    shots.mkdir(parents=True, exist_ok=True)

    failures = []  # {"page", "kind", "detail"}
    visited = []
    # Before the form is sent the UI probes the web server's session (a 400 on
    # `/server/login` there is the web server's "not logged in", not a manager answer).
    current = {"page": "login", "capturing": False}

    def on_response(response):
        url = response.url
        if not current["capturing"] or not is_api_call(url) or response.status < 400:
            return
        if any(p.search(url) for p in KNOWN_ABSENT_ON_ORIGINAL):
            return
        try:
            body = response.text()[:300]
        except Exception:  # noqa: BLE001 - a body that cannot be read is still a failure
            body = ""
        failures.append({
            "page": current["page"],
            "kind": "api",
            "detail": f"{response.request.method} {url} -> {response.status} {body}",
        })

    def gql_errors(response):
        # GraphQL answers 200 with `errors` for resolver failures; the UI toasts them.
        url = response.url
        if not current["capturing"] or "/admin/gql" not in url or response.status >= 400:
            return
        try:
            data = response.json()
        except Exception:  # noqa: BLE001
            return
        if isinstance(data, dict) and data.get("errors"):
            failures.append({
                "page": current["page"],
                "kind": "graphql",
                "detail": json.dumps(data["errors"])[:400],
            })

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("response", on_response)
        page.on("response", gql_errors)
        page.on("pageerror", lambda error: current["capturing"] and failures.append({
            "page": current["page"], "kind": "js", "detail": str(error)[:400],
        }))

        page.goto(args.url + "/", wait_until="load")
        # mwc-textfield: the real <input> is inside its shadow root (Playwright pierces it).
        fill_login_form(page, args.user, args.password)
        current["capturing"] = True
        page.get_by_role("button", name=re.compile("login", re.I)).first.click()
        # Logged in once the sidebar's user menu is there.
        page.wait_for_function(
            "() => globalThis.backendaiclient && globalThis.backendaiclient.ready === true",
            timeout=30_000,
        )
        logged_in_as = page.evaluate("() => globalThis.backendaiclient.email")
        manager_version = page.evaluate("() => globalThis.backendaiclient.managerVersion")

        for name in [p for p in args.pages.split(",") if p]:
            current["page"] = name
            before = len(failures)
            page.goto(f"{args.url}/{name}", wait_until="load")
            page.wait_for_timeout(SETTLE_SECONDS * 1000)
            for tab in PAGES.get(name, []):
                current["page"] = f"{name}/{tab}"
                button = page.get_by_role("tab", name=re.compile(f"^{re.escape(tab)}$", re.I))
                if button.count() == 0:
                    button = page.get_by_text(tab, exact=True)
                if button.count() == 0:
                    continue
                try:
                    button.first.click(timeout=3000)
                except Exception:  # noqa: BLE001 - a hidden tab is not a manager failure
                    continue
                page.wait_for_timeout(SETTLE_SECONDS * 1000)
            toasts = page.get_by_text(re.compile("Problem occurred")).count()
            if toasts:
                failures.append({"page": name, "kind": "toast", "detail": "Problem occurred"})
            visited.append(name)
            if len(failures) > before:
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        browser.close()

    print(json.dumps({
        "logged_in_as": logged_in_as,
        "manager_version": manager_version,
        "visited": visited,
        "failures": failures,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
