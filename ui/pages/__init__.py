"""One module per page or tab: `home` (/), `use_case` (/{key} and its tabs), `incremental`, `batch`, `sql`."""

from __future__ import annotations
