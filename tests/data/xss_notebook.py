# %% [markdown]
# # XSS probe: every payload must come out inert
#
# A test notebook for the report's sanitiser (tests/test_report_xss.py). Each payload tries to run
# `alert()` or set `window.pwned` through a different door: Markdown cells, `display(HTML(...))`,
# `display(Markdown(...))`, answers, table titles and cells, printed output and chart titles.
#
# <script>window.pwned = "md-script"; alert("md-script")</script>
# <img src=x onerror="window.pwned='md-img';alert('md-img')">
# <iframe srcdoc="<script>parent.pwned='md-iframe';alert('md-iframe')</script>"></iframe>
# <a href="javascript:alert('md-js')">js link</a> <a href="&#106;avascript:alert('md-entity')">entity link</a>
# <a href="data:text/html,<script>alert('md-data')</script>">data link</a>
# <meta http-equiv="refresh" content="0;url=javascript:alert('md-refresh')">
# <svg onload="alert('md-svg')"></svg> <details open ontoggle="alert('md-toggle')"><summary>t</summary></details>
# <form action="javascript:alert('md-form')"><button>go</button></form> <base href="javascript:alert('md-base')//">
# <object data="javascript:alert('md-object')"></object> <style>@import 'https://example.com/x.css';</style>
# <math><mtext><table><mglyph><style><img src=x onerror="alert('md-mxss')">
#
# [markdown js link](javascript:alert('md-mdlink'))

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import polars as pl
from IPython.display import HTML, Markdown, display

from cmdqv_lab import plots
from cmdqv_lab.report import answer, param_table, result_table

plots.enable()
PAYLOADS = [
    "<script>window.pwned='P-script';alert('P-script')</script>",
    "<img src=x onerror=\"window.pwned='P-img';alert('P-img')\">",
    "<iframe srcdoc=\"<script>parent.pwned='P-iframe';alert('P-iframe')</script>\"></iframe>",
    "<a href=\"javascript:alert('P-js')\">js</a>",
    "<a href=\"&#106;avascript:alert('P-entity')\">entity</a>",
    "<a href=\"data:text/html,<script>alert('P-data')</script>\">data</a>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(\'P-refresh\')">',
    "<svg onload=\"alert('P-svg')\"></svg>",
    "<details open ontoggle=\"alert('P-toggle')\"><summary>t</summary></details>",
    "</script><script>window.pwned='P-break';alert('P-break')</script>",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"alert('P-mxss')\">",
]
for p in PAYLOADS:
    display(HTML(p))
    display(Markdown(f"markdown output {p}"))
    print(p)

# %%
answer("Q1", "Answer text " + " ".join(PAYLOADS), numbers=[(PAYLOADS[1], PAYLOADS[0], "computed")])
param_table({PAYLOADS[0]: PAYLOADS[1], "scenario": PAYLOADS[9]}, "Parameters " + PAYLOADS[9])
result_table(pl.DataFrame({"name": PAYLOADS, "value": list(range(len(PAYLOADS)))}), "Results " + PAYLOADS[2])
display({"text/html": PAYLOADS[6] + PAYLOADS[1], "text/plain": "raw"}, raw=True)
display(
    {
        "image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg' onload=\"alert('P-svgimg')\"><script>alert('P-svgscript')</script></svg>"
    },
    raw=True,
)

# %%
df = pl.DataFrame(
    {
        "cpus": [1, 2, 1, 2],
        "ops_per_s": [1.0, 2.0, 1.5, 2.5],
        "policy": [PAYLOADS[9], PAYLOADS[9], PAYLOADS[0], PAYLOADS[0]],
    }
)
plots.show(plots.throughput_vs_cpus(df, title="Chart " + PAYLOADS[9], kind="computed"))
