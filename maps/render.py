"""Pictures of a floor, for people: which cell is what, where stations queue, which way lanes run.

Small floors get per-cell detail (queue order numbers, arrows, grid lines); large floors
keep colours, station labels and queue lines only, so that the picture stays legible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maps.model import KIND_CODES, CellKind, StationKind, WarehouseMap

#: Colour of each cell kind (colour-blind friendly where it matters: stations vs storage).
COLOURS: dict[CellKind, str] = {
    CellKind.AISLE: "#f4f4f0",
    CellKind.STORAGE: "#8c6d46",
    CellKind.WORKING: "#d62728",
    CellKind.QUEUE: "#ff9f7f",
    CellKind.CHARGER: "#f2c200",
    CellKind.PARKING: "#6baed6",
    CellKind.PACKING: "#8fd175",
    CellKind.BLOCKED: "#2b2b2b",
}
_LABELS: dict[CellKind, str] = {
    CellKind.AISLE: "aisle '.'",
    CellKind.STORAGE: "storage (shelf home) 'S'",
    CellKind.WORKING: "station working cell 'W'",
    CellKind.QUEUE: "station queue cell 'Q'",
    CellKind.CHARGER: "charger 'C'",
    CellKind.PARKING: "parking 'P'",
    CellKind.PACKING: "packing area 'K'",
    CellKind.BLOCKED: "blocked '#'",
}
#: Marker pointing along (dx, dy) in layout coordinates (y down): the operator faces the working cell.
_TOWARDS = {(1, 0): ">", (-1, 0): "<", (0, 1): "v", (0, -1): "^"}
#: Above this many cells per side, per-cell marks would be smaller than a pixel or two.
_DETAIL_LIMIT = 120


def render_map(wmap: WarehouseMap, path: str | Path, title: str | None = None, dpi: int = 100) -> Path:
    """Draw `wmap` to an image file (format from the suffix, e.g. .png) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    detailed = max(wmap.width, wmap.height) <= _DETAIL_LIMIT
    cell_inches = min(0.34, 18.0 / wmap.width, 14.0 / wmap.height)
    fig_w = max(wmap.width * cell_inches + 4.2, 8.0)  # room for the legend on the right
    fig_h = max(wmap.height * cell_inches + 1.4, 4.0)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=dpi)

    kinds = list(CellKind)
    cmap = ListedColormap([COLOURS[k] for k in kinds])
    ax.imshow(wmap.kinds, cmap=cmap, vmin=-0.5, vmax=len(kinds) - 0.5, interpolation="nearest",
              extent=(-0.5, wmap.width - 0.5, wmap.height - 0.5, -0.5))
    if detailed:
        ax.set_xticks(np.arange(-0.5, wmap.width), minor=True)
        ax.set_yticks(np.arange(-0.5, wmap.height), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.4)
        ax.tick_params(which="minor", length=0)
    ax.add_patch(Rectangle((-0.5, -0.5), wmap.width, wmap.height, fill=False, edgecolor="#555555", linewidth=1.0))
    cell_points = cell_inches * 72  # font sizes follow the size of a cell on the page
    _draw_one_way(ax, wmap)
    _draw_stations(ax, wmap, detailed, cell_points)
    if detailed:
        for cell in wmap.cells_of(CellKind.CHARGER):
            ax.text(cell.x, cell.y, "C", ha="center", va="center", fontsize=0.4 * cell_points, fontweight="bold",
                    color="#5a4500")

    margin = 1.6
    ax.set_xlim(-0.5 - margin, wmap.width - 0.5 + margin)
    ax.set_ylim(wmap.height - 0.5 + margin, -0.5 - margin)
    ax.set_aspect("equal")
    ax.set_xlabel("x (column)")
    ax.set_ylabel("y (row; metric y points up)")
    present = [k for k in kinds if np.any(wmap.kinds == KIND_CODES[k])]
    handles: list = [Patch(facecolor=COLOURS[k], edgecolor="#999999", label=_LABELS[k]) for k in present]
    if wmap.one_way:
        handles.append(Line2D([], [], color="#1f4e99", marker=">", linestyle="-", label="one-way lane (arrow = only exit)"))
    if wmap.stations:
        handles.append(Line2D([], [], color="#7a1010", linewidth=1.5, marker="o", markersize=3,
                              label="queue order 1..n (entry -> working cell)"))
        handles.append(Line2D([], [], color="#b01010", marker="v", linestyle="", label="pick station operator"))
        handles.append(Line2D([], [], color="#1a6a1a", marker="v", linestyle="", label="stow station operator"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    counts = [f"{len(wmap.stations)} stations"] + [
        f"{wmap.count(k)} {word}" for k, word in
        ((CellKind.STORAGE, "storage"), (CellKind.CHARGER, "chargers"), (CellKind.PARKING, "parking"))
    ]
    counts = [c for c in counts if not c.startswith("0 ")]
    ax.set_title(title or ", ".join([f"{wmap.name}: {wmap.width} x {wmap.height} cells", *counts]), fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return out


def _draw_one_way(ax, wmap: WarehouseMap) -> None:
    if not wmap.one_way:
        return
    cells = list(wmap.one_way)
    xs = np.array([c.x for c in cells], dtype=float)
    ys = np.array([c.y for c in cells], dtype=float)
    steps = np.array([wmap.one_way[c].step for c in cells], dtype=float)
    length = 0.7
    ax.quiver(xs - steps[:, 0] * length / 2, ys - steps[:, 1] * length / 2, steps[:, 0] * length, steps[:, 1] * length,
              angles="xy", scale_units="xy", scale=1, color="#1f4e99",
              width=0.12 / (wmap.width + 3.2), headwidth=3.5, headlength=3.5, headaxislength=3)


def _draw_stations(ax, wmap: WarehouseMap, detailed: bool, cell_points: float) -> None:
    for st in wmap.stations:
        for working, queue in zip(st.working, st.queues):
            path = [*queue, working]
            ax.plot([c.x for c in path], [c.y for c in path], color="#7a1010", alpha=0.6,
                    linewidth=max(0.1 * cell_points, 0.5), marker="o", markersize=0.15 * cell_points)
            if detailed:
                for order, cell in enumerate(queue, start=1):
                    ax.text(cell.x, cell.y - 0.25, str(order), ha="center", va="center", fontsize=0.35 * cell_points,
                            fontweight="bold", color="#3a0000")
        dx, dy = st.operator_side.step
        colour = "#b01010" if st.kind is StationKind.PICK else "#1a6a1a"
        for working in st.working:
            ax.plot(working.x + dx * 0.75, working.y + dy * 0.75, marker=_TOWARDS[(-dx, -dy)], color=colour,
                    markersize=0.3 * cell_points)
        x = sum(c.x for c in st.working) / len(st.working)
        y = sum(c.y for c in st.working) / len(st.working)
        ax.text(x + dx * 1.35, y + dy * 1.35, st.id, ha="center", va="center",
                fontsize=max(0.45 * cell_points, 4), fontweight="bold", color=colour, rotation=90 if dx else 0)
