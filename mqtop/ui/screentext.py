"""The current screen as plain text, from Textual's public SVG screenshot.

Textual exports a screen only as SVG (``App.export_screenshot``): Rich writes each run of
characters as one ``<text>`` element at its cell position, on a fixed grid. Reading the
positions back gives what a terminal shows, without reaching into Textual's compositor.
"""

from __future__ import annotations

import html
import re

from rich.cells import cell_len

CHAR_WIDTH = 20 * 0.61  # Rich's SVG cell width: 20px lines, font aspect ratio 0.61
_TEXT = re.compile(
    r'<text [^>]*?x="([0-9.e+-]+)"[^>]*?clip-path="url\(#[^)]*?-line-(\d+)\)">([^<]*)</text>'
)


def svg_text(svg: str, width: int, height: int) -> str:
    """The characters of a Rich SVG export, ``height`` lines of ``width`` cells."""
    grid = [[" "] * width for _ in range(height)]
    for x, line, run in _TEXT.findall(svg):
        row = int(line)
        col = round(float(x) / CHAR_WIDTH)
        if row >= height:
            continue
        for char in html.unescape(run).replace("\xa0", " "):
            if col >= width:
                break
            grid[row][col] = char
            cells = cell_len(char)
            for extra in range(1, cells):  # a wide character also covers the next cell
                if col + extra < width:
                    grid[row][col + extra] = ""
            col += max(cells, 1)
    return "\n".join("".join(row) for row in grid)
