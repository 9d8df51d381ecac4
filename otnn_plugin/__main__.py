"""``python -m otnn_plugin``: the ``otnn`` command (also for ``torchrun -m otnn_plugin``)."""
from .cli import main

raise SystemExit(main())
