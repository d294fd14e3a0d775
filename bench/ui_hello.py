"""The ui section's baseline page: a bare NiceGUI app served the way `coelho ui` serves the UI.

One label (the page-load baseline) and the floor of a click round trip: a button and a result line marked as
the UI's Predict button and result line are, whose async handler only sets the line (no call behind it), with
the same timing attributes (`data-call-ms` 0, `data-handler-ms`).
"""

from __future__ import annotations

import sys
import time

from nicegui import ui

TEXT = "hello baseline page"


def root() -> None:
    ui.label(TEXT)
    line = ui.label("no click yet").props('data-testid="result-meta"')
    clicks = [0]

    async def echo() -> None:
        started = time.perf_counter()
        clicks[0] += 1
        line.set_text(f"Echo {clicks[0]}")
        line.props["data-call-ms"] = "0"
        line.props["data-handler-ms"] = f"{(time.perf_counter() - started) * 1000:.3f}"

    ui.button("Echo", on_click=echo).props('data-testid="predict"')


if __name__ in {"__main__", "__mp_main__"}:
    ui.run(root, host="127.0.0.1", port=int(sys.argv[1]), reload=False, show=False, show_welcome_message=False)
