"""``python -m hierx_nb``: the ``hierx`` command."""
from .cli import main

raise SystemExit(main())
