"""PNG images of the diagnostic figures, drawn with matplotlib (plotly's own PNG export needs kaleido and a browser).

`png_bytes` draws the subset of plotly that `coelho.core.diagnostics` uses: scatter traces (lines, markers,
colour scales, a second y axis), bars (vertical or horizontal, error bars), heatmaps with their numbers,
and tables, with the layout's title, axis titles, tick labels and reversed axes. The interactive figure is
the plotly JSON; the PNG is its static twin for MLflow's artifact view and for reports.

>>> from coelho.core.diagnostics import confusion_figure
>>> png_bytes(confusion_figure({"tn": 5, "fp": 1, "fn": 0, "tp": 2}, 0.5).figure)[:8]
b'\\x89PNG\\r\\n\\x1a\\n'
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend
from matplotlib.axes import Axes  # noqa: E402

__all__ = ["png_bytes"]

_DASHES = {"dash": "--", "dot": ":", "dashdot": "-."}
#: Above this many touching horizontal bars (a silhouette plot) one filled outline draws them: same picture,
#: milliseconds instead of seconds of patches.
MANY_BARS = 200
_COLORMAPS = {"Blues": "Blues", "Viridis": "viridis", "RdBu": "RdBu"}


def _text(spec: Any) -> str:
    if isinstance(spec, Mapping):
        return str(spec.get("text", ""))
    return "" if spec is None else str(spec)


def png_bytes(figure: Mapping[str, Any], width: float = 8.0, height: float = 5.0, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    layout = figure.get("layout", {})
    if any(trace.get("type") == "table" for trace in figure.get("data", [])):
        width *= 1.6  # tables are wide
    fig, ax = plt.subplots(figsize=(width, height), dpi=dpi)
    try:
        second: Axes | None = None
        for trace in figure.get("data", []):
            target = ax
            if trace.get("yaxis") == "y2":
                second = second or ax.twinx()
                target = second
            _draw(target, trace)
        _decorate(ax, layout, second)
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _draw(ax: Axes, trace: Mapping[str, Any]) -> None:
    kind = trace.get("type", "scatter")
    if kind == "scatter":
        _scatter(ax, trace)
    elif kind == "bar":
        _bar(ax, trace)
    elif kind == "heatmap":
        _heatmap(ax, trace)
    elif kind == "table":
        _table(ax, trace)
    else:
        raise ValueError(f"cannot draw a {kind!r} trace")


def _scatter(ax: Axes, trace: Mapping[str, Any]) -> None:
    mode = trace.get("mode", "lines")
    x, y = trace.get("x", []), trace.get("y", [])
    label = None if trace.get("showlegend") is False else trace.get("name")
    if "lines" in mode:
        line = trace.get("line", {})
        ax.plot(x, y, linestyle=_DASHES.get(line.get("dash"), "-"), color=line.get("color"),
                marker="o" if "markers" in mode else None, markersize=4, label=label)
        return
    marker = trace.get("marker", {})
    color = marker.get("color")
    if isinstance(color, list):
        cmap = plt.get_cmap(_COLORMAPS.get(marker.get("colorscale"), "viridis"))
        ax.scatter(x, y, c=color, cmap=cmap.reversed() if marker.get("reversescale") else cmap,
                   vmin=marker.get("cmin"), vmax=marker.get("cmax"), s=6, alpha=marker.get("opacity", 1.0),
                   label=label)
    else:
        ax.scatter(x, y, color=color, s=6, alpha=marker.get("opacity", 1.0), label=label)


def _bar(ax: Axes, trace: Mapping[str, Any]) -> None:
    x, y = trace.get("x", []), trace.get("y", [])
    color = trace.get("marker", {}).get("color")
    if trace.get("orientation") == "h":
        errors = trace.get("error_x", {}).get("array")
        width = trace.get("width", 0.8)
        if errors is None and width == 1 and len(y) > MANY_BARS and not isinstance(y[0], str):
            colour = {"color": color} if color else {}  # else the next colour of the cycle, as bars take it
            ax.fill_betweenx(y, 0, x, step="mid", linewidth=0, label=trace.get("name"), **colour)
            return
        ax.barh([str(v) for v in y] if y and isinstance(y[0], str) else y, x, height=width, xerr=errors,
                color=color, label=trace.get("name"))
    else:
        ax.bar([str(v) for v in x], y, color=color, label=trace.get("name"))
        if len(x) > 12:
            ax.tick_params(axis="x", labelrotation=90, labelsize=6)


def _heatmap(ax: Axes, trace: Mapping[str, Any]) -> None:
    z = trace["z"]
    image = ax.imshow(z, cmap=_COLORMAPS.get(trace.get("colorscale"), "viridis"), aspect="auto",
                      vmin=trace.get("zmin"), vmax=trace.get("zmax"))
    ax.set_xticks(range(len(trace.get("x", []))), [str(v) for v in trace.get("x", [])],
                  rotation=90 if len(trace.get("x", [])) > 6 else 0, fontsize=7)
    ax.set_yticks(range(len(trace.get("y", []))), [str(v) for v in trace.get("y", [])])
    text = trace.get("text")
    if text:
        for i, row in enumerate(text):
            for j, value in enumerate(row):
                ax.text(j, i, value, ha="center", va="center", color="black", fontsize=12)
    if trace.get("showscale", True):
        ax.figure.colorbar(image, ax=ax)


def _table(ax: Axes, trace: Mapping[str, Any]) -> None:
    header = trace["header"]["values"]
    columns = trace["cells"]["values"]
    rows = [list(row) for row in zip(*columns, strict=True)] if columns else []
    ax.axis("off")
    labels = [str(name).replace("_", "_\n") for name in header]  # long names wrap instead of widening the table
    table = ax.table(cellText=rows or [[""] * len(header)], colLabels=labels, bbox=[0.0, 0.0, 1.0, 1.0])
    table.auto_set_font_size(False)
    table.set_fontsize(8)


def _decorate(ax: Axes, layout: Mapping[str, Any], second: Axes | None) -> None:
    ax.set_title(_text(layout.get("title")))
    xaxis, yaxis = layout.get("xaxis", {}), layout.get("yaxis", {})
    ax.set_xlabel(_text(xaxis.get("title")))
    ax.set_ylabel(_text(yaxis.get("title")))
    if "range" in yaxis:
        ax.set_ylim(*yaxis["range"])
    if yaxis.get("autorange") == "reversed" and not ax.yaxis_inverted():
        ax.invert_yaxis()
    if yaxis.get("tickvals") is not None:
        ax.set_yticks(yaxis["tickvals"], yaxis.get("ticktext", yaxis["tickvals"]), fontsize=7)
    if yaxis.get("showticklabels") is False:
        ax.set_yticks([])
    if second is not None:
        second.set_ylabel(_text(layout.get("yaxis2", {}).get("title")))
    handles, labels = ax.get_legend_handles_labels()
    if second is not None:
        more_handles, more_labels = second.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles and len(handles) <= 12:
        ax.legend(handles, labels, fontsize=8, loc="best")
