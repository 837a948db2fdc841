"""The progress bar and the one-line status of an explorer.

The bar (an ``IntProgress`` advanced once per simulation) is made visible when a run is expected
to take longer than ``after_s`` (from :func:`~cmdqv_lab.widgets.runs.estimate_s`), or as soon as
the simulations finished so far show that the rest will; it is hidden when the run ends. Its
widget messages go out while the kernel is busy simulating, so the browser sees it advance.

>>> s = StatusBar(after_s=1.0)
>>> s.begin(3, est_s=5.0)
>>> s.shown, s.progress.layout.visibility, s.progress.description
(True, 'visible', '0/3')
>>> s.step(3, 3, 4.2); s.end()
>>> s.progress.value, s.progress.layout.visibility
(3, 'hidden')
"""

from __future__ import annotations

import html

import ipywidgets as w

ERROR_STYLE = "color:#b00020"


class StatusBar:
    """A progress bar and a status line (HTML) side by side."""

    def __init__(self, after_s: float = 1.0) -> None:
        self.after_s = after_s
        self.progress = w.IntProgress(
            value=0, min=0, max=1, layout=w.Layout(width="240px", visibility="hidden")
        )
        self.status = w.HTML()
        self.widget = w.HBox([self.progress, self.status])
        #: whether the bar was shown during the last run
        self.shown = False

    def begin(self, n: int, est_s: float) -> None:
        """A run of ``n`` simulations expected to take ``est_s`` seconds starts."""
        p = self.progress
        p.max, p.value, p.description = n, 0, f"0/{n}"
        self.shown = est_s > self.after_s
        p.layout.visibility = "visible" if self.shown else "hidden"
        about = "under a second" if est_s < 1 else f"about {est_s:.0f} s"
        self.status.value = html.escape(f"running {n} simulation{'s' if n > 1 else ''} ({about})…")

    def step(self, done: int, n: int, elapsed_s: float) -> None:
        """``done`` of ``n`` simulations finished after ``elapsed_s`` seconds."""
        p = self.progress
        p.value, p.description = done, f"{done}/{n}"
        if not self.shown and elapsed_s / done * (n - done) > self.after_s:
            self.shown = True
            p.layout.visibility = "visible"

    def end(self) -> None:
        self.progress.layout.visibility = "hidden"

    def stale(self) -> None:
        self.status.value = "<i>parameters changed: press Run</i>"

    def error(self, message: str, tail: str = "") -> None:
        """Show ``message`` as one red line (``tail`` in normal text after it)."""
        self.status.value = f'<span style="{ERROR_STYLE}">⚠ {html.escape(message)}</span>{html.escape(tail)}'
