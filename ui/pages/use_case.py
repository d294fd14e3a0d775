"""`/{key}` and `/{key}/{tab}`: a use case's banner and its tabs Incremental, Batch and SQL (deep-linkable)."""

from __future__ import annotations

from nicegui import ui

from coelho_ui.pages import batch, incremental, sql
from coelho_ui.usecases import VIEWS

__all__ = ["TABS", "page"]

#: Tab name (its path), label, icon.
TABS = (("incremental", "Incremental", "bolt"), ("batch", "Batch", "model_training"), ("sql", "SQL", "table_view"))


class TabBar:
    """Tabs whose clicks navigate to the tab's path; a tab shows itself as selected without navigating."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.quiet = False
        with ui.tabs(on_change=self._clicked).classes("w-full text-grey-8").props("inline-label no-caps align=left") \
                as self.tabs:
            for name, label, icon in TABS:
                ui.tab(name, label, icon).mark(f"tab-{name}")

    def shown(self, name: str) -> None:
        """Mark `name` as the selected tab (called by the tab being shown)."""
        self.quiet = True
        try:
            self.tabs.set_value(name)
        finally:
            self.quiet = False

    def _clicked(self) -> None:
        if not self.quiet:
            ui.navigate.to(f"/{self.key}/{self.tabs.value}")


def page(key: str) -> None:
    """A use case: banner, tabs, and the selected tab below them."""
    view = VIEWS.get(key)
    if view is None:
        ui.label(f"There is no use case {key!r}: choose {', '.join(VIEWS)}.").mark("not-found")
        return
    with ui.row().classes("w-full items-center gap-3 px-4 py-2 rounded text-white").style(
            f"background: {view.colour}"):
        ui.icon(view.icon).classes("text-3xl")
        with ui.column().classes("gap-0"):
            ui.label(view.title).classes("text-h6")
            ui.label(view.summary).classes("text-sm opacity-90")
    bar = TabBar(key)
    ui.sub_pages({"/": incremental.tab, "/incremental": incremental.tab, "/batch": batch.tab, "/sql": sql.tab},
                 data={"view": view, "shown": bar.shown}).classes("w-full")
