"""The ui section's baseline page: a bare NiceGUI app with one label, served the way `coelho ui` serves the UI."""

from __future__ import annotations

import sys

from nicegui import ui

TEXT = "hello baseline page"


def root() -> None:
    ui.label(TEXT)


if __name__ in {"__main__", "__mp_main__"}:
    ui.run(root, host="127.0.0.1", port=int(sys.argv[1]), reload=False, show=False, show_welcome_message=False)
