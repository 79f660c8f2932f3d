"""The Web UI's login form, as both browser scripts fill it."""


def fill_login_form(page, user, password):
    """Fills the login form and waits until it keeps what was typed: the panel may render
    again once the UI has read its configuration and drop it (seen under load as a login POST
    without a username)."""
    user_input = page.locator("#id_user_id input").first
    password_input = page.locator("#id_password input").first
    user_input.fill(user, timeout=30_000)
    password_input.fill(password)
    kept = 0
    for _ in range(40):
        page.wait_for_timeout(250)
        if user_input.input_value() == user and password_input.input_value() == password:
            # Kept over two looks in a row: the panel has settled.
            kept += 1
            if kept == 2:
                return
            continue
        kept = 0
        user_input.fill(user)
        password_input.fill(password)
    raise RuntimeError("the login form does not keep the credentials typed into it")
