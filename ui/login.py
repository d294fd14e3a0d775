"""The optional password (COELHO_UI_PASSWORD): without it every page asks for it first.

The session is a flag in `app.storage.user`, a cookie signed with COELHO_UI_STORAGE_SECRET (random per process
when unset, which logs everybody out at a restart). A wrong password waits a second before it answers.
"""

from __future__ import annotations

import asyncio
import hmac

from nicegui import app, ui

from coelho.config import Settings

__all__ = ["allowed", "form", "log_out"]

WRONG_PASSWORD_DELAY_S = 1.0


def allowed(settings: Settings) -> bool:
    """Whether this browser may see the pages."""
    return not settings.ui_password or app.storage.user.get("authenticated") is True


def form(settings: Settings) -> None:
    """The login card."""
    assert settings.ui_password
    secret = settings.ui_password.encode()

    async def attempt() -> None:
        if hmac.compare_digest(str(password.value or "").encode(), secret):
            app.storage.user["authenticated"] = True
            ui.navigate.reload()
            return
        await asyncio.sleep(WRONG_PASSWORD_DELAY_S)
        ui.notify("Wrong password", type="negative")

    with ui.card().classes("absolute-center w-80 items-stretch"):
        ui.label("COELHO RealTime").classes("text-h6")
        password = ui.input("Password", password=True, password_toggle_button=True).on("keydown.enter", attempt)
        ui.button("Log in", on_click=attempt)


def log_out() -> None:
    """Forget this browser's session."""
    app.storage.user["authenticated"] = False
    ui.navigate.reload()
