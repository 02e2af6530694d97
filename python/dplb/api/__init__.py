"""The management API (`/api/v1`, DESIGN sections 6 and 9): FastAPI over the store, the
reconciler and the dataplane. `create_app` builds it; `dplb ctl` and the web admin use it."""

from dplb.api.app import create_app

__all__ = ["create_app"]
