"""The web UI app: one shell (`root`) with the pages as sub pages; `coelho ui` calls `serve`.

Paths: `/` (the platform and its use cases), `/{use_case}` and `/{use_case}/{tab}` with the tabs `incremental`,
`batch` and `sql`. NiceGUI's User fixture runs this file as its main file (`main_file` in pytest's
configuration), which is why `serve` runs under the `__main__` guard too.
"""

from __future__ import annotations

import secrets

from nicegui import app, ui

from coelho.config import Settings
from coelho_ui import client, live, login, theme
from coelho_ui.pages import home, use_case

__all__ = ["root", "serve"]


def root() -> None:
    """Every page: the login card when a password is set and not given yet, else the frame and the sub pages."""
    settings = client.functions().settings
    if not login.allowed(settings):
        login.form(settings)
        return
    theme.frame(settings)
    with ui.column().classes("w-full max-w-screen-2xl mx-auto p-2 gap-2"):
        ui.sub_pages({"/": home.page, "/{key}": use_case.page}).classes("w-full")


def serve(settings: Settings, port: int = 8080, host: str = "0.0.0.0") -> None:
    """Run the UI until interrupted (one process: NiceGUI keeps each tab's state in memory)."""
    app.on_startup(lambda: (live.reset(), client.connect(settings)))
    app.on_shutdown(client.disconnect)
    ui.run(root, host=host, port=port, title="COELHO RealTime", favicon="⚡", reload=False, show=False,
           storage_secret=settings.ui_storage_secret or secrets.token_urlsafe(32), show_welcome_message=False)


if __name__ in {"__main__", "__mp_main__"}:
    from_env = Settings.from_env()
    serve(from_env, from_env.port)
