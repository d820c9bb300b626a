"""`python -m app.migrations`: the same as `app migrate`."""

from app.cli import main

raise SystemExit(main(["migrate"]))
