"""The local web dashboard: served by ``crosswind replicate`` at ``/`` (next to
``/api/status`` and ``/metrics``) and by ``crosswind dashboard`` from the state
store alone. Server side (``server.py``: the routes, a sampler keeping the
last hour of lag, throughput and backlog, the cutover timeline) and the static
page (``static/``: plain HTML, CSS and JavaScript with SVG charts, shipped as
package data; nothing is loaded from elsewhere).

May import: config, state, live, cutover, observability. Imported by the CLI only.
"""
