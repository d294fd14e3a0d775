"""The COELHO web UI (NiceGUI): one more HTTP client of the functions, like `curl` or `kn`.

Modules: `main` (the app: `root()`, `serve()`), `theme` (the frame), `client` (the async HTTP client of the
functions and MLflow's REST API), `live` (a short-lived cache shared by every browser tab), `forms` (event forms
from the schemas, randomised by the producers' generators), `widgets` (gauge, map, charts, cards), `fmt` (numbers
with units), `login` (the optional password), and `pages/` (one module per page or tab). Nothing here imports a
model, Redis or MLflow: the schemas and generators are plain code, and every figure comes over HTTP.
"""

from __future__ import annotations
