"""The SQL tab: an editor with SQL highlighting, the function's templates, results in a grid, the table's schema.

Run with the button or Ctrl+Enter (Cmd+Enter). The sql function runs the query read-only with DuckDB; its
refusals (not a SELECT, a forbidden function, a timeout) appear under the editor as it words them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from nicegui import ui

from coelho_ui import fmt
from coelho_ui.client import functions
from coelho_ui.usecases import UseCaseView
from coelho_ui.widgets import tagged

__all__ = ["grid_options", "tab"]

DEFAULT_LIMIT = 10_000
PAGE_SIZE = 50
SCHEMA_COLUMNS = [{"name": "name", "label": "Column", "field": "name", "align": "left"},
                  {"name": "type", "label": "Type", "field": "type", "align": "left"}]


def grid_options(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """AG Grid options of a query result; fields are positional, so any column name (dots, spaces) shows as is.

    >>> options = grid_options(["a.b", "n"], [[1, 2]])
    >>> options["columnDefs"][0], options["rowData"]
    ({'headerName': 'a.b', 'field': 'c0'}, [{'c0': 1, 'c1': 2}])
    """
    return {
        "columnDefs": [{"headerName": name, "field": f"c{i}"} for i, name in enumerate(columns)],
        "rowData": [{f"c{i}": value for i, value in enumerate(row)} for row in rows],
        "defaultColDef": {"sortable": True, "filter": True, "resizable": True},
        "pagination": True, "paginationPageSize": PAGE_SIZE, "paginationPageSizeSelector": False,
    }


class Sql:
    """Editor, templates, result grid and schema of one use case's table."""

    def __init__(self, view: UseCaseView) -> None:
        self.view = view
        self.api = functions()
        with ui.row().classes("w-full gap-4 items-start no-wrap"):
            with ui.column().classes("w-3/4 grow"):
                self.editor = ui.codemirror("SELECT * FROM data LIMIT 100", language="SQL",
                                            keymap={"Mod-Enter": self.run}).classes("w-full border rounded").style(
                    "height: 160px").mark("editor")
                with ui.row().classes("items-center w-full"):
                    tagged(ui.button("Run", icon="play_arrow", on_click=self.run), "run")
                    ui.button("Clear", icon="clear", on_click=lambda: self.editor.set_value("")).props("flat")
                    self.limit = ui.number("Row limit", value=DEFAULT_LIMIT, min=1, precision=0).classes("w-32").mark(
                        "limit")
                    ui.label("Ctrl+Enter runs the query. The table is `data` (or its full name).").classes(
                        "text-xs text-grey-7")
                self.error = tagged(ui.label().classes("text-negative text-sm"), "sql-error")
                self.summary = tagged(ui.label().classes("text-sm text-grey-8"), "sql-summary")
                self.grid = ui.aggrid(grid_options([], []), theme="quartz").classes("w-full").style(
                    "height: 460px").mark("grid")
            with ui.column().classes("w-1/4 min-w-64"):
                with ui.card().classes("w-full"):
                    ui.label("Templates").classes("text-subtitle1 text-bold")
                    self.templates = ui.column().classes("gap-1 w-full").mark("templates")
                with ui.card().classes("w-full"):
                    ui.label("Table").classes("text-subtitle1 text-bold")
                    self.table_info = ui.label(fmt.DASH).classes("text-sm").mark("table-info")
                    self.columns = ui.table(columns=SCHEMA_COLUMNS, rows=[], row_key="name").props(
                        "dense flat").classes("w-full").mark("schema")

    async def load(self) -> None:
        """The function's templates and the table's schema and row count."""
        templates, schema = await asyncio.gather(self.api.sql_info("templates", self.view.key),
                                                 self.api.sql_info("schema", self.view.key))
        body = templates.data()
        if body.get("default_query"):
            self.editor.set_value(body["default_query"])
        with self.templates:
            for template in body.get("templates", []):
                ui.button(template["name"], on_click=lambda q=template["query"]: self.editor.set_value(q)).props(
                    "flat dense no-caps align=left").classes("w-full").tooltip(template.get("description", ""))
            if not templates.ok:
                ui.label(templates.error or "").classes("text-sm text-negative")
        info = schema.data()
        if schema.ok:
            self.table_info.set_text(f"{info.get('table_name')} (also `data`): {fmt.count(info.get('row_count'))} "
                                     f"rows, Delta version {info.get('version')}")
            self.columns.rows = [{"name": c["name"], "type": c["type"]} for c in info.get("columns", [])]
            self.columns.update()
        else:
            self.table_info.set_text(schema.error or "")

    async def run(self) -> None:
        """Send the editor's query; show the rows, or the function's reason for refusing it."""
        limit = int(self.limit.value or DEFAULT_LIMIT)
        reply = await self.api.sql(self.view.key, self.editor.value, limit)
        if not reply.ok:
            self.error.set_text(reply.error or "")
            if not reply.answered:
                ui.notify(reply.error, type="negative", multi_line=True)
            return
        self.error.set_text("")
        body = reply.data()
        self.grid.options.update(grid_options(body["columns"], body["rows"]))
        self.grid.update()
        truncated = f" (truncated at the limit of {fmt.count(limit)})" if body.get("truncated") else ""
        self.summary.set_text(f"{fmt.count(body['row_count'])} rows{truncated} in {body['execution_ms']:.1f} ms")


async def tab(view: UseCaseView, shown: Callable[[str], None]) -> None:
    """The SQL tab of `view`."""
    shown("sql")
    sql = Sql(view)
    await sql.load()
    await sql.run()  # the default query: the grid shows the table's first rows
