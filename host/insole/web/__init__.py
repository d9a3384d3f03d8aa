"""The live dashboard in the browser (`insole monitor --web`, `insole demo --web`).

* :mod:`~insole.web.server` — aiohttp on its own loop and thread: the page, its static
  files (``static/``, the chart library vendored under ``static/vendor/``: the page
  works offline) and one WebSocket per page; a token off loopback;
* :mod:`~insole.web.dashboard` — the polling thread's side: frames out, page requests
  (cue settings, recording) carried out on the session;
* :mod:`~insole.web.snapshot` — a frame: the session's state as JSON;
* :mod:`~insole.web.form` — the cue-settings form and its validation;
* :mod:`~insole.web.geometry` — the insole outline the heat map is drawn on.

docs/dashboard.md describes the page.
"""
